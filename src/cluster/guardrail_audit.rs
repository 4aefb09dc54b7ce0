//! The guardrail audit loop (issue 14): every `--audit-interval`, an incremental pass of
//! [`Auditor`] over the catalog, then the metric `egress_webhook_guardrail_violations` (every
//! replica, from its own catalog) and each guardrail's status (the controller's leader only, as
//! for the other status writes).
//!
//! The leader also keeps one OpenReports Report per namespace (`guardrail_reports`) and the
//! lockdown NetworkPolicies (`lockdown`) on the same tick.
//!
//! A status is written only when it differs from the one the catalog's guardrail watch holds
//! (ignoring `lastAuditTime`): after a restart or a change of leader nothing identical is
//! rewritten, and a status changed by anyone else is put right at the next pass. An idle cluster
//! sees no request from the audit; `egress_webhook_guardrail_last_audit_timestamp_seconds`
//! (every replica) shows that it runs. `lastAuditTime` is the time of the pass that found the
//! results written. The violations list is capped at [`MAX_LISTED_VIOLATIONS`],
//! `totalViolations` counts all.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::{Timestamp, Unit};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::api::EgressGuardrail;
use crate::api::egress_guardrail::{MAX_LISTED_VIOLATIONS, POLICY_GROUP, POLICY_VERSION};
use crate::catalog::Catalog;
use crate::companions::FIELD_MANAGER;
use crate::core::guardrails::audit::{Auditor, GuardrailAudit};
use crate::metrics::{GuardrailLabels, Metrics};

use super::own_writes::OwnWrites;

/// Whether this replica writes statuses (the controller's Lease holder).
pub type IsLeader = Arc<dyn Fn() -> bool + Send + Sync>;

/// Start the loop on the current runtime.
pub fn spawn(
    client: Client,
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
    is_leader: IsLeader,
    interval: Duration,
    report_kinds: Vec<super::guardrail_reports::ReportKind>,
) -> JoinHandle<()> {
    tokio::spawn(run(
        client,
        catalog,
        metrics,
        is_leader,
        interval,
        report_kinds,
    ))
}

async fn run(
    client: Client,
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
    is_leader: IsLeader,
    interval: Duration,
    report_kinds: Vec<super::guardrail_reports::ReportKind>,
) {
    let api: Api<EgressGuardrail> = Api::all(client.clone());
    let mut reports: Vec<super::guardrail_reports::Reports> = report_kinds
        .into_iter()
        .map(|k| super::guardrail_reports::Reports::start(client.clone(), k))
        .collect();
    let mut lockdown = super::lockdown::Lockdown::start(client.clone(), catalog.clone());
    let mut auditor = Auditor::new();
    let mut shown: BTreeSet<GuardrailLabels> = BTreeSet::new();
    // Statuses sent that the catalog's guardrail watch has not shown yet.
    let mut sent: OwnWrites<Value> = OwnWrites::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A change of our NetworkPolicies (one edited or deleted by hand) is repaired at once;
        // everything else follows the catalog at each interval.
        let full = tokio::select! {
            _ = tick.tick() => true,
            _ = lockdown.changed() => false,
        };
        if !catalog.is_synced() {
            continue;
        }
        if !full {
            if is_leader() {
                let want = catalog.read(crate::core::lockdown::desired);
                lockdown.sync(&client, &want, &metrics).await;
            }
            continue;
        }
        let started = Instant::now();
        let (stats, results, stored, policies) = catalog.read(|s| {
            let stats = auditor.pass(s);
            let stored: BTreeMap<String, Stored> = s
                .guardrails()
                .iter()
                .map(|c| {
                    let g = &c.guardrail;
                    let status = g
                        .status
                        .as_ref()
                        .and_then(|st| serde_json::to_value(st).ok());
                    let stored = Stored {
                        generation: g.metadata.generation,
                        resource_version: g.metadata.resource_version.clone(),
                        status,
                    };
                    (c.name().to_string(), stored)
                })
                .collect();
            (
                stats,
                auditor.results(),
                stored,
                crate::core::lockdown::desired(s),
            )
        });
        let took = started.elapsed();
        shown = update_metric(&metrics, &results, shown);
        metrics
            .guardrail_last_audit
            .set(Timestamp::now().as_second());
        let total: usize = results.values().map(|r| r.violations.len()).sum();
        tracing::info!(
            evaluated = stats.evaluated,
            objects = stats.objects,
            guardrails = results.len(),
            violations = total,
            took_us = took.as_micros() as u64,
            "guardrail audit pass"
        );
        if !is_leader() {
            continue;
        }
        // The time of this pass: it goes out only with results that changed (lastAuditTime is
        // when the written results were found, see the CRD's field doc).
        let now = Timestamp::now()
            .round(Unit::Second)
            .unwrap_or_else(|_| Timestamp::now())
            .to_string();
        for (name, audit) in &results {
            let stored = stored.get(name).cloned().unwrap_or_default();
            let desired = status(audit, stored.generation, stored.status.as_ref(), &now);
            let compared = without_time(&desired);
            let rv = stored.resource_version.as_deref();
            sent.observe(name, rv);
            if stored.status.as_ref().map(without_time).as_ref() == Some(&compared) {
                continue;
            }
            if sent.already_sent(name, rv, Some(&compared)) {
                continue;
            }
            let body = json!({
                "apiVersion": format!("{POLICY_GROUP}/{POLICY_VERSION}"),
                "kind": "EgressGuardrail",
                "status": desired,
            });
            let params = PatchParams::apply(FIELD_MANAGER).force();
            metrics.guardrail_write("EgressGuardrail/status", "apply");
            match api.patch_status(name, &params, &Patch::Apply(&body)).await {
                Ok(_) => {
                    tracing::debug!(guardrail = %name, "guardrail status written");
                    sent.record(
                        name.clone(),
                        stored.resource_version.clone(),
                        Some(compared),
                    );
                }
                // Deleted since the pass, or a transient error: the next pass compares again.
                Err(e) => {
                    tracing::warn!(guardrail = %name, error = %e, "guardrail status not written")
                }
            }
        }
        sent.retain(|name| results.contains_key(name));
        let wanted = super::guardrail_reports::desired(&results);
        for r in &mut reports {
            r.sync(&client, &wanted, &metrics).await;
        }
        lockdown.sync(&client, &policies, &metrics).await;
    }
}

/// A guardrail as the catalog holds it: what its status is compared with.
#[derive(Clone, Default)]
struct Stored {
    generation: Option<i64>,
    resource_version: Option<String>,
    status: Option<Value>,
}

/// A status without `lastAuditTime`: what is compared. The time alone changing is no reason to
/// write (an idle cluster sees no write from the audit; its liveness is the metric
/// `egress_webhook_guardrail_last_audit_timestamp_seconds`).
fn without_time(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("lastAuditTime");
    }
    v
}

/// Set the gauge of each (guardrail, action) to its count; remove label sets that no longer
/// exist (a deleted guardrail, or its former action). Returns the label sets now shown.
fn update_metric(
    metrics: &Metrics,
    results: &BTreeMap<String, GuardrailAudit>,
    before: BTreeSet<GuardrailLabels>,
) -> BTreeSet<GuardrailLabels> {
    let mut now = BTreeSet::new();
    for (name, audit) in results {
        let labels = GuardrailLabels {
            guardrail: name.clone(),
            action: audit.action.as_str().to_string(),
        };
        metrics
            .guardrail_violations
            .get_or_create(&labels)
            .set(audit.violations.len() as i64);
        now.insert(labels);
    }
    for old in before.difference(&now) {
        metrics.guardrail_violations.remove(old);
    }
    now
}

/// The status of one guardrail after a pass; the Audited condition keeps its
/// lastTransitionTime while its status and reason stay the same.
pub fn status(
    audit: &GuardrailAudit,
    generation: Option<i64>,
    previous: Option<&Value>,
    now: &str,
) -> Value {
    let listed: Vec<Value> = audit
        .violations
        .iter()
        .take(MAX_LISTED_VIOLATIONS)
        .map(|v| {
            json!({
                "object": {
                    "kind": v.finding.object.kind,
                    "namespace": v.finding.object.namespace,
                    "name": v.finding.object.name,
                },
                "rule": v.finding.rule,
                "message": format!("{}: {}", v.finding.path, v.finding.message),
            })
        })
        .collect();
    let total = audit.violations.len();
    let (reason, message) = if total == 0 {
        (
            "NoViolations",
            "no object violates this guardrail".to_string(),
        )
    } else {
        (
            "ViolationsFound",
            format!(
                "{total} violation(s); enforcementAction {}",
                audit.action.as_str()
            ),
        )
    };
    let since = previous
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Audited"))
        .filter(|c| c["status"] == "True" && c["reason"] == reason)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now)
        .to_string();
    let mut status = json!({
        "violations": listed,
        "totalViolations": total,
        "lastAuditTime": now,
        "conditions": [{
            "type": "Audited",
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
        }],
    });
    if let Some(g) = generation {
        status["observedGeneration"] = json!(g);
        status["conditions"][0]["observedGeneration"] = json!(g);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::guardrails::Action;

    #[test]
    fn a_later_pass_with_the_same_results_compares_equal_and_a_change_does_not() {
        let audit = GuardrailAudit {
            action: Action::Audit,
            violations: Vec::new(),
        };
        let stored = status(&audit, Some(1), None, "2026-01-01T00:00:00Z");
        let later = status(&audit, Some(1), Some(&stored), "2026-01-02T00:00:00Z");
        assert_ne!(stored, later, "lastAuditTime differs");
        assert_eq!(
            without_time(&stored),
            without_time(&later),
            "an unchanged result is not written again, however long ago the last write was"
        );
        let changed = status(&audit, Some(2), Some(&stored), "2026-01-02T00:00:00Z");
        assert_ne!(
            without_time(&stored),
            without_time(&changed),
            "a new generation"
        );
    }

    #[test]
    fn the_stored_status_as_the_typed_guardrail_reads_it_compares_equal() {
        let audit = GuardrailAudit {
            action: Action::Audit,
            violations: Vec::new(),
        };
        let written = status(&audit, Some(3), None, "2026-01-01T00:00:00Z");
        // What the catalog holds after the watch delivered the written status.
        let typed: crate::api::egress_guardrail::EgressGuardrailStatus =
            serde_json::from_value(written.clone()).unwrap();
        let read = serde_json::to_value(typed).unwrap();
        let next = status(&audit, Some(3), Some(&read), "2026-01-01T00:05:00Z");
        assert_eq!(without_time(&read), without_time(&next));
    }
}

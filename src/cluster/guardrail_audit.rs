//! The guardrail audit loop (issue 14): every `--audit-interval`, an incremental pass of
//! [`Auditor`] over the catalog, then the metric `egress_webhook_guardrail_violations` (every
//! replica, from its own catalog) and each guardrail's status (the controller's leader only, as
//! for the other status writes).
//!
//! The leader also keeps one OpenReports Report per namespace (`guardrail_reports`) and the
//! lockdown NetworkPolicies (`lockdown`) on the same tick.
//!
//! A status is written when its results changed, and otherwise every 10 intervals (a heartbeat:
//! `lastAuditTime` shows the audit runs, while an idle cluster sees almost no writes); the
//! violations list is capped at [`MAX_LISTED_VIOLATIONS`], `totalViolations` counts all.

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
        .map(super::guardrail_reports::Reports::new)
        .collect();
    let mut lockdown = super::lockdown::Lockdown::default();
    let mut auditor = Auditor::new();
    let mut shown: BTreeSet<GuardrailLabels> = BTreeSet::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !catalog.is_synced() {
            continue;
        }
        let started = Instant::now();
        let (stats, results, stored, policies) = catalog.read(|s| {
            let stats = auditor.pass(s);
            let stored: BTreeMap<String, (Option<i64>, Option<Value>)> = s
                .guardrails()
                .iter()
                .map(|c| {
                    let g = &c.guardrail;
                    let status = g
                        .status
                        .as_ref()
                        .and_then(|st| serde_json::to_value(st).ok());
                    (c.name().to_string(), (g.metadata.generation, status))
                })
                .collect();
            let policies: BTreeMap<String, Value> = crate::core::lockdown::locked_namespaces(s)
                .into_iter()
                .map(|ns| {
                    let np = crate::core::lockdown::network_policy(&ns, s);
                    (ns, np)
                })
                .collect();
            (stats, auditor.results(), stored, policies)
        });
        let took = started.elapsed();
        shown = update_metric(&metrics, &results, shown);
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
        let now_ts = Timestamp::now()
            .round(Unit::Second)
            .unwrap_or_else(|_| Timestamp::now());
        let now = now_ts.to_string();
        for (name, audit) in &results {
            let (generation, previous) = stored.get(name).cloned().unwrap_or_default();
            let desired = status(audit, generation, previous.as_ref(), &now);
            if !needs_write(
                previous.as_ref(),
                &desired,
                now_ts,
                interval * HEARTBEAT_PASSES,
            ) {
                continue;
            }
            let body = json!({
                "apiVersion": format!("{POLICY_GROUP}/{POLICY_VERSION}"),
                "kind": "EgressGuardrail",
                "status": desired,
            });
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match api.patch_status(name, &params, &Patch::Apply(&body)).await {
                Ok(_) => tracing::debug!(guardrail = %name, "guardrail status written"),
                // Deleted since the pass, or a transient error: the next pass writes again.
                Err(e) => {
                    tracing::warn!(guardrail = %name, error = %e, "guardrail status not written")
                }
            }
        }
        let wanted = super::guardrail_reports::desired(&results);
        for r in &mut reports {
            r.sync(&client, wanted.clone()).await;
        }
        lockdown.sync(&client, policies).await;
    }
}

/// An unchanged status is written again only after this many intervals, so that an idle
/// cluster sees one small write per guardrail per 10 intervals (10 min by default) rather than
/// one every pass, and `lastAuditTime` still shows that the audit runs.
const HEARTBEAT_PASSES: u32 = 10;

/// Does the stored status differ from `desired` in more than `lastAuditTime`, or is its
/// `lastAuditTime` older than `heartbeat`?
fn needs_write(
    previous: Option<&Value>,
    desired: &Value,
    now: Timestamp,
    heartbeat: Duration,
) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    let without_time = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("lastAuditTime");
        }
        v
    };
    if without_time(previous) != without_time(desired) {
        return true;
    }
    let last = previous
        .get("lastAuditTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok());
    match last {
        Some(t) => now.duration_since(t).unsigned_abs() >= heartbeat,
        None => true,
    }
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
    fn an_unchanged_status_is_written_again_only_after_the_heartbeat() {
        let audit = GuardrailAudit {
            action: Action::Audit,
            violations: Vec::new(),
        };
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let stored = status(&audit, Some(1), None, &t0.to_string());
        let later = |secs: i64| t0 + jiff_secs(secs);
        let desired = |at: Timestamp| status(&audit, Some(1), Some(&stored), &at.to_string());
        let beat = Duration::from_secs(600);
        assert!(needs_write(None, &desired(t0), t0, beat), "no status yet");
        assert!(!needs_write(
            Some(&stored),
            &desired(later(60)),
            later(60),
            beat
        ));
        assert!(needs_write(
            Some(&stored),
            &desired(later(600)),
            later(600),
            beat
        ));
        let changed = status(&audit, Some(2), Some(&stored), &later(60).to_string());
        assert!(
            needs_write(Some(&stored), &changed, later(60), beat),
            "a new generation"
        );
    }

    fn jiff_secs(s: i64) -> k8s_openapi::jiff::SignedDuration {
        k8s_openapi::jiff::SignedDuration::from_secs(s)
    }
}

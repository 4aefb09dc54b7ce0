//! The status of a parent, in Gloo's shape (`status.common.State`, the per-kind counts) plus a
//! standard `conditions` list, computed from the snapshot and the outcome of its last companion
//! write. Pure: the controller supplies the outcome and the clock.
//!
//! Approval, first match wins:
//! - `FAILED`: the companions could not be written (the reason is the message).
//! - `INVALID`: the object, validated again against the cluster as it is now, has errors (a
//!   reference that was deleted after admission, say). Its companions are still what the
//!   expansion makes of it.
//! - `PENDING`: a write waits on another (make-before-break) or on someone else's recent change.
//! - `WARNING`: admitted with warnings; the message names the rule ids.
//! - `ACCEPTED`: no findings and every companion in place.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{
    Object, Operation, Options, Snapshot,
    expand::bindings,
    findings::{Finding, Severity},
    rules::validate_defaulted,
    snapshot::{external_service_destinations, identity_selectors},
};
use crate::api::meta::NamespacedName as _;
use crate::api::{AccessPolicy, ExternalService, VirtualGateway, list};

/// Longest `message` written; the rest is cut (`kubectl get -o wide` stays readable, and a
/// status is no place for a report: `egress-webhook check` prints every finding).
pub const MESSAGE_LIMIT: usize = 1000;

/// The condition types we write.
pub const READY: &str = "Ready";
pub const COMPANIONS_SYNCED: &str = "CompanionsSynced";

/// How the last attempt to put the parent's companions in place ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sync {
    /// Every companion is stored as desired.
    InPlace,
    /// Not yet: waiting on something (the reason).
    Waiting(String),
    /// A write was refused or failed (the reason).
    Failed(String),
}

/// The approval state and the message that goes with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub approval: &'static str,
    pub message: String,
}

/// What the findings and the companions' state say about `obj`.
pub fn verdict(findings: &[Finding], sync: &Sync, details: &str) -> Verdict {
    let ids = |sev: Severity| -> Vec<&str> {
        let set: BTreeSet<&str> = findings
            .iter()
            .filter(|f| f.severity == sev)
            .map(|f| f.rule)
            .collect();
        set.into_iter().collect()
    };
    let lines = |sev: Severity| -> String {
        findings
            .iter()
            .filter(|f| f.severity == sev)
            .map(|f| format!("{}: {} [{}]", f.path, f.message, f.rule))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (approval, message) = match sync {
        Sync::Failed(reason) => ("FAILED", format!("companions not written: {reason}")),
        _ if !ids(Severity::Error).is_empty() => (
            "INVALID",
            format!(
                "errors {}: {}",
                ids(Severity::Error).join(", "),
                lines(Severity::Error)
            ),
        ),
        Sync::Waiting(reason) => ("PENDING", reason.clone()),
        Sync::InPlace if !ids(Severity::Warning).is_empty() => (
            "WARNING",
            format!(
                "warnings {}: {}",
                ids(Severity::Warning).join(", "),
                lines(Severity::Warning)
            ),
        ),
        Sync::InPlace => ("ACCEPTED", details.to_string()),
    };
    Verdict {
        approval,
        message: truncate(message),
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MESSAGE_LIMIT {
        let mut end = MESSAGE_LIMIT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The status `obj` (defaulted, as the catalog holds it) should have. `previous` is the stored
/// status: a condition whose `status` did not change keeps its `lastTransitionTime`; `now` is
/// RFC 3339 for the ones that did.
pub fn desired_status(
    obj: &Object,
    snap: &Snapshot,
    opts: &Options,
    sync: &Sync,
    previous: Option<&Value>,
    now: &str,
) -> Value {
    // The same validation admission runs (a stored object is already defaulted).
    let findings = validate_defaulted(obj, obj, snap, opts, Operation::Create);
    let (counts, details) = match obj {
        Object::ExternalService(es) => external_service_fields(es, snap),
        Object::VirtualGateway(vg) => virtual_gateway_fields(vg, snap),
        Object::AccessPolicy(ap) => access_policy_fields(ap, snap),
        _ => (serde_json::Map::new(), String::new()),
    };
    let v = verdict(&findings, sync, &details);
    let generation = obj.generation();
    let mut state = serde_json::Map::new();
    if let Some(g) = generation {
        state.insert("observedGeneration".into(), json!(g));
    }
    state.insert("approval".into(), json!(v.approval));
    if !v.message.is_empty() {
        state.insert("message".into(), json!(v.message));
    }
    let ready = matches!(v.approval, "ACCEPTED" | "WARNING");
    let (synced, synced_reason, synced_message) = match sync {
        Sync::InPlace => ("True", "InPlace", String::new()),
        Sync::Waiting(m) => ("False", "Waiting", m.clone()),
        Sync::Failed(m) => ("False", "WriteFailed", truncate(m.clone())),
    };
    let conditions = vec![
        condition(
            READY,
            if ready { "True" } else { "False" },
            v.approval,
            &v.message,
            generation,
            previous,
            now,
        ),
        condition(
            COMPANIONS_SYNCED,
            synced,
            synced_reason,
            &synced_message,
            generation,
            previous,
            now,
        ),
    ];
    let mut status = counts;
    status.insert("common".into(), json!({ "State": state }));
    status.insert("conditions".into(), Value::Array(conditions));
    Value::Object(status)
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    previous: Option<&Value>,
    now: &str,
) -> Value {
    let before = previous
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_));
    let since = match before {
        Some(c) if c["status"] == status => c["lastTransitionTime"].as_str().unwrap_or(now),
        _ => now,
    };
    let mut c = json!({
        "type": type_,
        "status": status,
        "reason": reason_word(reason),
        "lastTransitionTime": since,
    });
    if let Some(g) = generation {
        c["observedGeneration"] = json!(g);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

/// `ACCEPTED` → `Accepted`: condition reasons are CamelCase by convention.
fn reason_word(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_uppercase()) {
        let lower = s.to_ascii_lowercase();
        let mut chars = lower.chars();
        chars
            .next()
            .map(|f| f.to_ascii_uppercase().to_string() + chars.as_str())
            .unwrap_or_default()
    } else {
        s.to_string()
    }
}

/// Does the stored status differ from the desired one in anything but the times of unchanged
/// conditions? A stored status without `conditions` (a cluster with Gloo's own CRDs, whose
/// schema prunes the field) compares on the Gloo fields alone, so that it is not written again
/// and again.
pub fn needs_write(stored: Option<&Value>, desired: &Value) -> bool {
    let Some(stored) = stored else {
        return true;
    };
    let without_conditions = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("conditions");
        }
        v
    };
    if without_conditions(stored) != without_conditions(desired) {
        return true;
    }
    match stored.get("conditions") {
        None => false,
        // Equal when equal in everything but lastTransitionTime (which `desired_status` carried
        // over from `stored` where the status did not change).
        Some(have) => have != &desired["conditions"],
    }
}

fn names_message(what: &str, names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        format!("no {what}")
    } else {
        format!(
            "{what}: {}",
            names.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

/// `numAppliedDestinationPolicies` (by policy kind, as Gloo keys it by GVK),
/// `numSelectedVirtualGateways`; the message names the policies and gateways.
fn external_service_fields(
    es: &ExternalService,
    snap: &Snapshot,
) -> (serde_json::Map<String, Value>, String) {
    let policies: BTreeSet<String> = snap
        .access_policies_selecting(es)
        .iter()
        .map(|ap| ap.metadata.qualified_name())
        .collect();
    let gateways: BTreeSet<String> = bindings::resolve(es, snap)
        .iter()
        .map(|b| b.vg.metadata.qualified_name())
        .collect();
    let mut m = serde_json::Map::new();
    let mut applied = BTreeMap::new();
    if !policies.is_empty() {
        applied.insert(
            "security.policy.gloo.solo.io/v2, Kind=AccessPolicy".to_string(),
            policies.len(),
        );
    }
    m.insert("numAppliedDestinationPolicies".into(), json!(applied));
    m.insert("numSelectedVirtualGateways".into(), json!(gateways.len()));
    let details = format!(
        "{}; {}",
        names_message("AccessPolicies", &policies),
        names_message("VirtualGateways", &gateways)
    );
    (m, details)
}

/// `externalServicesCount`: the ExternalServices routed through the gateway.
fn virtual_gateway_fields(
    vg: &VirtualGateway,
    snap: &Snapshot,
) -> (serde_json::Map<String, Value>, String) {
    let meta = &vg.metadata;
    let services: BTreeSet<String> = snap
        .external_services_using_gateway(
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or(""),
        )
        .iter()
        .map(|es| es.metadata.qualified_name())
        .collect();
    let mut m = serde_json::Map::new();
    m.insert("externalServicesCount".into(), json!(services.len()));
    (m, names_message("ExternalServices", &services))
}

/// `numSelectedDestinationPorts` (ports of the selected ExternalServices that the destination's
/// port selector admits) and `numAllowedServiceAccounts`; the message names the ExternalServices.
fn access_policy_fields(
    ap: &AccessPolicy,
    snap: &Snapshot,
) -> (serde_json::Map<String, Value>, String) {
    let mut selected: BTreeSet<String> = BTreeSet::new();
    let mut ports: BTreeSet<(String, u32)> = BTreeSet::new();
    let destinations = list(&ap.spec.apply_to_destinations);
    if list(&ap.spec.apply_to_workloads).is_empty() {
        for (i, sel) in external_service_destinations(ap) {
            let port_sel = destinations.get(i).and_then(|d| d.port.as_ref());
            for es in snap.external_services_selected(sel) {
                let id = es.metadata.qualified_name();
                selected.insert(id.clone());
                for p in list(&es.spec.ports) {
                    let number = p.number.unwrap_or(0);
                    let admitted = match port_sel {
                        Some(ps) => {
                            ps.number.is_none_or(|n| n == number)
                                && ps
                                    .name
                                    .as_deref()
                                    .is_none_or(|n| p.name.as_deref() == Some(n))
                        }
                        None => true,
                    };
                    if admitted {
                        ports.insert((id.clone(), number));
                    }
                }
            }
        }
    }
    let accounts: BTreeSet<String> = identity_selectors(ap)
        .into_iter()
        .flat_map(|sel| snap.service_accounts_selected(sel))
        .map(|sa| sa.metadata.qualified_name())
        .collect();
    let mut m = serde_json::Map::new();
    m.insert("numSelectedDestinationPorts".into(), json!(ports.len()));
    m.insert("numAllowedServiceAccounts".into(), json!(accounts.len()));
    (m, names_message("ExternalServices", &selected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::defaults::default_object;

    fn example() -> (Vec<Object>, Snapshot, Options) {
        let loaded =
            crate::load::load_inputs(&[
                concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/examples").to_string()
            ])
            .expect("examples load");
        let opts = Options::default();
        let objects: Vec<Object> = loaded
            .objects
            .into_iter()
            .map(|l| default_object(l.object, &opts))
            .collect();
        let snap = Snapshot::new(objects.clone(), &opts);
        (objects, snap, opts)
    }

    fn of_kind<'a>(objects: &'a [Object], kind: &str) -> &'a Object {
        objects.iter().find(|o| o.kind_name() == kind).unwrap()
    }

    #[test]
    fn the_running_example_is_warning_with_the_rule_ids_admission_gives() {
        let (objects, snap, opts) = example();
        let es = of_kind(&objects, "ExternalService");
        let s = desired_status(es, &snap, &opts, &Sync::InPlace, None, "t0");
        let state = &s["common"]["State"];
        assert_eq!(state["approval"], "WARNING", "{s}");
        // The ids admission reports for this object, from the same rules.
        let ids: BTreeSet<&str> = validate_defaulted(es, es, &snap, &opts, Operation::Create)
            .iter()
            .map(|f| f.rule)
            .collect();
        assert!(!ids.is_empty());
        for id in ids {
            assert!(state["message"].as_str().unwrap().contains(id), "{id}: {s}");
        }
        assert_eq!(
            s["numAppliedDestinationPolicies"]
                .as_object()
                .unwrap()
                .values()
                .filter_map(Value::as_u64)
                .sum::<u64>(),
            1,
            "{s}"
        );
        assert_eq!(s["numSelectedVirtualGateways"], 1, "{s}");
        let vg = of_kind(&objects, "VirtualGateway");
        let s = desired_status(vg, &snap, &opts, &Sync::InPlace, None, "t0");
        assert_eq!(s["externalServicesCount"], 1, "{s}");
    }

    #[test]
    fn a_failed_write_is_failed_with_its_reason_and_not_ready() {
        let (objects, snap, opts) = example();
        let es = of_kind(&objects, "ExternalService");
        let s = desired_status(
            es,
            &snap,
            &opts,
            &Sync::Failed("refused by policy".into()),
            None,
            "t0",
        );
        assert_eq!(s["common"]["State"]["approval"], "FAILED");
        assert!(
            s["common"]["State"]["message"]
                .as_str()
                .unwrap()
                .contains("refused by policy")
        );
        assert_eq!(s["conditions"][0]["type"], READY);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][1]["reason"], "WriteFailed");
    }

    #[test]
    fn an_unchanged_status_is_not_written_again_and_keeps_its_transition_times() {
        let (objects, snap, opts) = example();
        let ap = of_kind(&objects, "AccessPolicy");
        let first = desired_status(ap, &snap, &opts, &Sync::InPlace, None, "t0");
        let again = desired_status(ap, &snap, &opts, &Sync::InPlace, Some(&first), "t1");
        assert!(!needs_write(Some(&first), &again), "{first} vs {again}");
        let failed = desired_status(
            ap,
            &snap,
            &opts,
            &Sync::Failed("x".into()),
            Some(&first),
            "t2",
        );
        assert!(needs_write(Some(&first), &failed));
        assert_eq!(failed["conditions"][0]["lastTransitionTime"], "t2");
        // Pruned by a schema without `conditions`: compared on the Gloo fields alone.
        let mut pruned = first.clone();
        pruned.as_object_mut().unwrap().remove("conditions");
        assert!(!needs_write(Some(&pruned), &again));
        assert!(needs_write(None, &again));
    }

    #[test]
    fn verdicts_in_order() {
        let none: Vec<Finding> = Vec::new();
        assert_eq!(verdict(&none, &Sync::InPlace, "").approval, "ACCEPTED");
        assert_eq!(
            verdict(&none, &Sync::Waiting("w".into()), "").approval,
            "PENDING"
        );
        assert_eq!(reason_word("ACCEPTED"), "Accepted");
        assert_eq!(reason_word("InPlace"), "InPlace");
        assert!(truncate("é".repeat(MESSAGE_LIMIT)).len() <= MESSAGE_LIMIT + 3);
    }
}

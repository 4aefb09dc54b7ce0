//! AuthorizationPolicies on the egress gateway (DESIGN §5): ALLOW rules per AccessPolicy that
//! selects an ExternalService, and the open rule for routed ExternalServices no policy selects.
//!
//! Istio denies every request no ALLOW rule matches once any ALLOW policy selects the gateway,
//! so each routed host needs some rule: its policies' rules, or the open rule (E26 warns).

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{AccessPolicy, ExternalService, list};
use crate::core::{Options, names, object::GlooKind, snapshot::Snapshot};
use crate::istio::{
    AuthorizationPolicySpec, IstioObject, Operation, Rule, Spec, To, WorkloadSelector,
};

use super::bindings::{self, Binding};
use super::metadata::{Parent, metadata};
use super::service_entry;
use super::workload_policy::{authz_entries, rule_for};

/// Where an ALLOW policy goes: the gateway namespace, and the pods it selects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub namespace: String,
    pub service: String,
    pub labels: BTreeMap<String, String>,
}

fn targets(bindings: &[Binding<'_>]) -> BTreeSet<Target> {
    bindings
        .iter()
        .map(|b| Target {
            namespace: b.namespace().to_string(),
            service: b.service_name().to_string(),
            labels: b.workload_labels.clone(),
        })
        .collect()
}

/// `[h, "h:*"]` for every host: Istio compares `hosts` with the Host header exactly, port included.
pub fn operation_hosts<'a>(hosts: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = hosts
        .into_iter()
        .flat_map(|h| [h.clone(), format!("{h}:*")])
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The open rule for a routed ExternalService that no AccessPolicy selects.
pub fn open_rules(
    es: &ExternalService,
    bindings: &[Binding<'_>],
    snap: &Snapshot,
    opts: &Options,
) -> Vec<IstioObject> {
    if bindings.is_empty() || !snap.access_policies_selecting(es).is_empty() {
        return Vec::new();
    }
    let hosts = service_entry::hosts(es);
    let es_name = es.metadata.name.as_deref().unwrap_or("");
    let es_ns = es.metadata.namespace.as_deref().unwrap_or("default");
    targets(bindings)
        .into_iter()
        .map(|t| {
            let spec = AuthorizationPolicySpec {
                selector: Some(WorkloadSelector {
                    match_labels: t.labels.clone(),
                }),
                action: "ALLOW",
                rules: vec![Rule {
                    to: vec![To {
                        operation: Operation {
                            hosts: operation_hosts(&hosts),
                            ..Default::default()
                        },
                    }],
                    ..Default::default()
                }],
            };
            let name = names::object_name(&["externalservice", es_name, es_ns, &t.service, "open"]);
            let parent = Parent {
                kind: GlooKind::ExternalService,
                meta: &es.metadata,
            };
            IstioObject::new(
                metadata(parent, &t.namespace, name, opts),
                Spec::AuthorizationPolicy(spec),
            )
        })
        .collect()
}

/// ALLOW policies for an AccessPolicy's EXTERNAL_SERVICE destinations: one per gateway it reaches
/// (and a second, annotated `istio.io/dry-run`, for its `dryRun` entries).
pub fn for_access_policy(ap: &AccessPolicy, snap: &Snapshot, opts: &Options) -> Vec<IstioObject> {
    if !list(&ap.spec.apply_to_workloads).is_empty() {
        return Vec::new(); // A4: destinations are ignored
    }
    // target -> hosts of the selected ExternalServices behind it
    let mut hosts_by_target: BTreeMap<Target, BTreeSet<String>> = BTreeMap::new();
    for (_, sel) in crate::core::snapshot::external_service_destinations(ap) {
        for es in snap.external_services_selected(sel) {
            let hosts = service_entry::hosts(es);
            for t in targets(&bindings::resolve(es, snap)) {
                hosts_by_target
                    .entry(t)
                    .or_default()
                    .extend(hosts.iter().cloned());
            }
        }
    }
    let ap_name = ap.metadata.name.as_deref().unwrap_or("");
    let ap_ns = ap.metadata.namespace.as_deref().unwrap_or("default");
    let entries = authz_entries(ap);
    let mut out = Vec::new();
    for (target, hosts) in hosts_by_target {
        let to = To {
            operation: Operation {
                hosts: operation_hosts(&hosts),
                ..Default::default()
            },
        };
        for dry_run in [false, true] {
            let chosen: Vec<_> = entries
                .iter()
                .filter(|e| e.dry_run.unwrap_or(false) == dry_run)
                .collect();
            if dry_run && chosen.is_empty() {
                continue;
            }
            let mut rules: Vec<Rule> = chosen
                .iter()
                .filter_map(|e| rule_for(e, to.operation.clone(), true, snap, opts))
                .collect();
            // Only dry-run entries: nothing is enforced yet, so the hosts stay as open as before.
            if !dry_run && chosen.is_empty() && !entries.is_empty() {
                rules.push(Rule {
                    to: vec![to.clone()],
                    ..Default::default()
                });
            }
            let suffix = if dry_run { "dry-run" } else { "" };
            // The policy's namespace is left out of the name when the object lives there anyway.
            let ns_part = if ap_ns == target.namespace { "" } else { ap_ns };
            let name =
                names::object_name(&["accesspolicy", ap_name, ns_part, &target.service, suffix]);
            let parent = Parent {
                kind: GlooKind::AccessPolicy,
                meta: &ap.metadata,
            };
            let mut meta = metadata(parent, &target.namespace, name, opts);
            if dry_run {
                meta.annotations =
                    Some([("istio.io/dry-run".to_string(), "true".to_string())].into());
            }
            let spec = AuthorizationPolicySpec {
                selector: Some(WorkloadSelector {
                    match_labels: target.labels.clone(),
                }),
                action: "ALLOW",
                rules,
            };
            out.push(IstioObject::new(meta, Spec::AuthorizationPolicy(spec)));
        }
    }
    out
}

//! Lockdown (issue 14, EGRESS.md §5): a namespace labelled `egress-webhook.dev/lockdown: "true"`
//! gets a NetworkPolicy that denies all egress of its pods except DNS, istiod (15012) and the
//! egress gateway pods, on the gateway Services' targetPorts (NetworkPolicy sees the pod port
//! after the Service's DNAT: 8080/8443, not 80/443). A sidecar bypass then reaches nothing
//! outside, and the gateway's ISTIO_MUTUAL server and AuthorizationPolicy decide the rest.
//!
//! Pure: the policy is computed from the snapshot (namespace labels, VirtualGateways, Services).
//! The gateways are those of every egress VirtualGateway (a listener with
//! `exposedExternalServices`, or an ExternalService routing through it, DESIGN §9 V19): any of
//! them may carry the namespace's traffic.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use crate::api::list;
use crate::core::expand::bindings::workload_selectors;
use crate::core::expand::metadata::{MANAGED_BY, MANAGER};
use crate::core::snapshot::{Key, Snapshot, key};

pub const LOCKDOWN_LABEL: &str = "egress-webhook.dev/lockdown";
/// The NetworkPolicy's name in each locked-down namespace.
pub const POLICY_NAME: &str = "egress-webhook-lockdown";
/// Where istiod runs (Istio's default install namespace) and its pods' label.
pub const ISTIOD_NAMESPACE: &str = "istio-system";

/// The namespaces labelled for lockdown, sorted; namespaces being deleted are left out (a
/// policy cannot be created in them, and theirs goes with them).
pub fn locked_namespaces(snap: &Snapshot) -> Vec<String> {
    let g = snap.guardrails();
    g.namespace_names()
        .filter(|ns| !g.is_terminating(ns) && is_locked(snap, ns))
        .map(str::to_string)
        .collect()
}

fn is_locked(snap: &Snapshot, namespace: &str) -> bool {
    snap.guardrails()
        .namespace_labels(namespace)
        .get(LOCKDOWN_LABEL)
        .map(String::as_str)
        == Some("true")
}

/// What lockdown wants in the cluster, from one snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// Namespace → its NetworkPolicy ([`network_policy`]).
    pub policies: BTreeMap<String, Value>,
    /// Namespaces seen without the label and not being deleted: one of our policies there goes.
    /// A namespace not seen at all is in neither map, so nothing is deleted because the
    /// namespace cache is behind.
    pub unlocked: BTreeSet<String>,
}

pub fn desired(snap: &Snapshot) -> Desired {
    let g = snap.guardrails();
    let mut out = Desired::default();
    for ns in g.namespace_names() {
        if g.is_terminating(ns) {
            continue;
        }
        if is_locked(snap, ns) {
            out.policies
                .insert(ns.to_string(), network_policy(ns, snap));
        } else {
            out.unlocked.insert(ns.to_string());
        }
    }
    out
}

/// The gateway Services of every egress VirtualGateway, by (namespace, name).
fn egress_gateway_services(snap: &Snapshot) -> BTreeMap<Key, &Service> {
    let mut out = BTreeMap::new();
    for vg in snap.virtual_gateways() {
        let ns = vg.metadata.namespace.as_deref().unwrap_or("default");
        let name = vg.metadata.name.as_deref().unwrap_or("");
        let exposes = list(&vg.spec.listeners)
            .iter()
            .any(|l| !list(&l.exposed_external_services).is_empty());
        if !exposes && snap.external_services_using_gateway(ns, name).is_empty() {
            continue;
        }
        for sel in workload_selectors(vg) {
            for svc in snap.services_selected(sel, ns) {
                let k = key(
                    svc.metadata.namespace.as_deref().unwrap_or("default"),
                    svc.metadata.name.as_deref().unwrap_or(""),
                );
                out.insert(k, svc);
            }
        }
    }
    out
}

/// The NetworkPolicy of one locked-down namespace (networking.k8s.io/v1, for server-side apply).
pub fn network_policy(namespace: &str, snap: &Snapshot) -> Value {
    let mut egress = vec![
        json!({
            "to": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }),
        json!({
            "to": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ISTIOD_NAMESPACE}},
                "podSelector": {"matchLabels": {"app": "istiod"}},
            }],
            "ports": [{"protocol": "TCP", "port": 15012}],
        }),
    ];
    for ((ns, _), svc) in egress_gateway_services(snap) {
        let Some(spec) = &svc.spec else { continue };
        let pods = spec.selector.clone().unwrap_or_default();
        // A Service without a selector has no pods to name: skipped rather than opening egress
        // to every pod of its namespace.
        if pods.is_empty() {
            continue;
        }
        let ports: Vec<Value> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let port = match &p.target_port {
                    Some(IntOrString::Int(n)) => json!(n),
                    Some(IntOrString::String(name)) => json!(name),
                    None => json!(p.port),
                };
                json!({"protocol": p.protocol.as_deref().unwrap_or("TCP"), "port": port})
            })
            .collect();
        egress.push(json!({
            "to": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.as_ref()}},
                "podSelector": {"matchLabels": pods},
            }],
            "ports": ports,
        }));
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": POLICY_NAME,
            "namespace": namespace,
            "labels": {MANAGED_BY: MANAGER},
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": egress,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Options;
    use crate::load::load_inputs;

    #[test]
    fn the_running_example_gateway_ports_are_the_target_ports() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/examples").to_string();
        let objects = load_inputs(&[dir])
            .unwrap()
            .objects
            .into_iter()
            .map(|l| crate::core::defaults::default_object(l.object, &Options::default()));
        let mut snap = Snapshot::new(objects, &Options::default());
        snap.guardrails_mut().set_namespace(
            "bookinfo",
            [(LOCKDOWN_LABEL.to_string(), "true".to_string())].into(),
        );
        snap.guardrails_mut()
            .set_namespace("global", Default::default());
        assert_eq!(locked_namespaces(&snap), ["bookinfo"]);
        let np = network_policy("bookinfo", &snap);
        assert_eq!(
            np["spec"]["egress"][2],
            json!({
                "to": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-egress"}},
                    "podSelector": {"matchLabels": {"app": "istio-egressgateway", "istio": "egressgateway"}},
                }],
                "ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 8443}],
            })
        );
        assert_eq!(np["spec"]["egress"].as_array().unwrap().len(), 3);
        assert_eq!(np["spec"]["policyTypes"], json!(["Egress"]));
        assert_eq!(np["spec"]["podSelector"], json!({}));
    }

    #[test]
    fn a_terminating_namespace_is_neither_locked_nor_unlocked() {
        let mut snap = Snapshot::new(Vec::new(), &Options::default());
        let locked = [(LOCKDOWN_LABEL.to_string(), "true".to_string())];
        let g = snap.guardrails_mut();
        g.set_namespace("a", locked.clone().into());
        g.set_namespace("b", locked.into());
        g.set_namespace("c", Default::default());
        g.set_namespace("d", Default::default());
        g.set_terminating("b", true);
        g.set_terminating("d", true);
        let d = desired(&snap);
        assert_eq!(d.policies.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(d.unlocked.iter().collect::<Vec<_>>(), ["c"]);
        assert_eq!(locked_namespaces(&snap), ["a"]);
        snap.guardrails_mut().set_terminating("b", false);
        assert_eq!(desired(&snap).policies.len(), 2);
    }
}

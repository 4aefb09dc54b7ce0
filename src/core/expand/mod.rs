//! Expansion: snapshot → the desired Istio objects (DESIGN §5, EGRESS.md §2 and §6).
//!
//! A pure function of the snapshot: the same input always gives the same, sorted list, with
//! stable names (`core::names`). One file per Istio kind; `bindings` resolves which gateway
//! each routed ExternalService port goes through, so that every kind agrees on it.

pub mod authorization_policy;
pub mod bindings;
pub mod destination_rule;
pub mod gateway;
pub mod metadata;
pub mod service_entry;
pub mod virtual_service;
pub mod workload_policy;

use crate::istio::IstioObject;

use super::{Options, snapshot::Snapshot};

/// Every desired Istio object for the snapshot, sorted by kind, namespace and name.
pub fn expand(snap: &Snapshot, opts: &Options) -> Vec<IstioObject> {
    let mut out = Vec::new();
    for es in snap.external_services() {
        let bindings = bindings::resolve(es, snap);
        out.extend(service_entry::for_external_service(es, &bindings, opts));
        out.extend(destination_rule::tls_origination(es, opts));
        out.extend(destination_rule::gateway_hops(es, &bindings, opts));
        out.extend(virtual_service::for_external_service(es, &bindings, opts));
        out.extend(authorization_policy::open_rules(es, &bindings, snap, opts));
    }
    for vg in snap.virtual_gateways() {
        out.extend(gateway::for_virtual_gateway(vg, snap, opts));
    }
    for ap in snap.access_policies() {
        out.extend(authorization_policy::for_access_policy(ap, snap, opts));
        out.extend(workload_policy::for_access_policy(ap, snap, opts));
    }
    sort_and_dedup(out)
}

/// Sort by kind, namespace, name. Two parents whose names sanitize to the same object name would
/// collide; the first (in sort order of parents) keeps the name, so the output stays deterministic.
fn sort_and_dedup(mut out: Vec<IstioObject>) -> Vec<IstioObject> {
    out.sort_by_key(|a| a.sort_key());
    out.dedup_by(|b, a| a.sort_key() == b.sort_key());
    out
}

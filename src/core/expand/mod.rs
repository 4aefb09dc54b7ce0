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

use std::collections::BTreeSet;

use crate::api::{AccessPolicy, ExternalService, VirtualGateway};
use crate::istio::IstioObject;

use super::{
    Options,
    object::{GlooKind, Object},
    snapshot::Snapshot,
};

/// A Gloo object that companions are generated from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParentRef {
    pub kind: GlooKind,
    pub namespace: String,
    pub name: String,
}

impl ParentRef {
    pub fn new(kind: GlooKind, namespace: &str, name: &str) -> Self {
        ParentRef {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    fn of(kind: GlooKind, meta: &crate::api::Meta) -> Self {
        ParentRef::new(
            kind,
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or(""),
        )
    }
}

/// Every desired Istio object for the snapshot, sorted by kind, namespace and name.
pub fn expand(snap: &Snapshot, opts: &Options) -> Vec<IstioObject> {
    let mut out = Vec::new();
    for es in snap.external_services() {
        out.extend(of_external_service(es, snap, opts));
    }
    for vg in snap.virtual_gateways() {
        out.extend(gateway::for_virtual_gateway(vg, snap, opts));
    }
    for ap in snap.access_policies() {
        out.extend(of_access_policy(ap, snap, opts));
    }
    sort_and_dedup(out)
}

/// The desired objects of some parents only (what one admission recomputes), sorted.
/// A parent missing from the snapshot has none: its companions are to be deleted.
pub fn expand_parents(
    snap: &Snapshot,
    opts: &Options,
    parents: &BTreeSet<ParentRef>,
) -> Vec<IstioObject> {
    let mut out = Vec::new();
    for p in parents {
        match p.kind {
            GlooKind::ExternalService => {
                if let Some(es) = snap.external_service(&p.namespace, &p.name) {
                    out.extend(of_external_service(es, snap, opts));
                }
            }
            GlooKind::VirtualGateway => {
                if let Some(vg) = snap.virtual_gateway(&p.namespace, &p.name) {
                    out.extend(gateway::for_virtual_gateway(vg, snap, opts));
                }
            }
            GlooKind::AccessPolicy => {
                if let Some(ap) = snap.access_policy(&p.namespace, &p.name) {
                    out.extend(of_access_policy(ap, snap, opts));
                }
            }
        }
    }
    sort_and_dedup(out)
}

fn of_external_service(es: &ExternalService, snap: &Snapshot, opts: &Options) -> Vec<IstioObject> {
    let bindings = bindings::resolve(es, snap);
    let mut out = service_entry::for_external_service(es, &bindings, opts);
    out.extend(destination_rule::tls_origination(es, opts));
    out.extend(destination_rule::gateway_hops(es, &bindings, opts));
    out.extend(virtual_service::for_external_service(es, &bindings, opts));
    out.extend(authorization_policy::open_rules(es, &bindings, snap, opts));
    out
}

fn of_access_policy(ap: &AccessPolicy, snap: &Snapshot, opts: &Options) -> Vec<IstioObject> {
    let mut out = authorization_policy::for_access_policy(ap, snap, opts);
    out.extend(workload_policy::for_access_policy(ap, snap, opts));
    out
}

/// The parents whose companions can change when `obj` changes, as seen in `snap`. Call it on
/// the snapshot before and after the change and take the union: a reference dropped by the
/// change only shows in the one before.
///
/// - ExternalService: itself (ServiceEntry, DestinationRules, VirtualService, open rule), the
///   VirtualGateways it routes through (Gateway server hosts), the AccessPolicies selecting it.
/// - VirtualGateway: itself, the ExternalServices routed through it, and their AccessPolicies.
/// - AccessPolicy: itself, and the ExternalServices it selects (their open rule comes or goes).
/// - Service: the VirtualGateways whose workloads select it (with their ExternalServices and
///   those ExternalServices' AccessPolicies), and AccessPolicies with SERVICE destinations that
///   may select it.
/// - ServiceAccount: the AccessPolicies whose clients select it. Called on the snapshot before
///   and after a change, a label change that moves an account in or out of a selector counts.
///   A Service or ServiceAccount that nothing selects affects no parent at all.
pub fn affected_parents(snap: &Snapshot, obj: &Object) -> BTreeSet<ParentRef> {
    let mut out = BTreeSet::new();
    match obj {
        Object::ExternalService(es) => {
            out.insert(ParentRef::of(GlooKind::ExternalService, &es.metadata));
            // The stored version may differ from `es` (which may be the new one): both count.
            let stored = snap.external_service(
                es.metadata.namespace.as_deref().unwrap_or("default"),
                es.metadata.name.as_deref().unwrap_or(""),
            );
            for e in std::iter::once(es).chain(stored) {
                add_external_service_relations(snap, e, &mut out);
            }
        }
        Object::VirtualGateway(vg) => {
            out.insert(ParentRef::of(GlooKind::VirtualGateway, &vg.metadata));
            add_gateway_users(snap, vg, &mut out);
        }
        Object::AccessPolicy(ap) => {
            out.insert(ParentRef::of(GlooKind::AccessPolicy, &ap.metadata));
            for (_, sel) in super::snapshot::external_service_destinations(ap) {
                for es in snap.external_services_selected(sel) {
                    out.insert(ParentRef::of(GlooKind::ExternalService, &es.metadata));
                }
            }
        }
        Object::Service(svc) => {
            let (ns, name) = (
                svc.metadata.namespace.as_deref().unwrap_or("default"),
                svc.metadata.name.as_deref().unwrap_or(""),
            );
            // Gateways whose workloads select this Service (the gateway Service: ports, host).
            for vg in snap.virtual_gateways() {
                if bindings::selects_service(vg, snap, ns, name) {
                    out.insert(ParentRef::of(GlooKind::VirtualGateway, &vg.metadata));
                    add_gateway_users(snap, vg, &mut out);
                }
            }
            // Policies with SERVICE destinations that may select it.
            for ap in snap.access_policies_selecting_in(ns) {
                if !super::snapshot::service_selectors(ap).is_empty() {
                    out.insert(ParentRef::of(GlooKind::AccessPolicy, &ap.metadata));
                }
            }
        }
        Object::ServiceAccount(sa) => {
            let (ns, name) = (
                sa.metadata.namespace.as_deref().unwrap_or("default"),
                sa.metadata.name.as_deref().unwrap_or(""),
            );
            // Only the policies whose clients select this account: its principal comes or goes.
            for ap in snap.access_policies_selecting_in(ns) {
                let selects = super::snapshot::identity_selectors(ap)
                    .into_iter()
                    .any(|sel| {
                        crate::core::selectors::is_local_cluster(
                            crate::api::text(&sel.cluster),
                            snap.cluster(),
                        ) && crate::core::selectors::object_selector_matches(
                            sel,
                            None,
                            ns,
                            name,
                            sa.metadata.labels.as_ref(),
                        )
                    });
                if selects {
                    out.insert(ParentRef::of(GlooKind::AccessPolicy, &ap.metadata));
                }
            }
        }
    }
    out
}

fn add_external_service_relations(
    snap: &Snapshot,
    es: &ExternalService,
    out: &mut BTreeSet<ParentRef>,
) {
    for b in bindings::resolve(es, snap) {
        out.insert(ParentRef::of(GlooKind::VirtualGateway, &b.vg.metadata));
    }
    for ap in snap.access_policies_selecting(es) {
        out.insert(ParentRef::of(GlooKind::AccessPolicy, &ap.metadata));
    }
}

fn add_gateway_users(snap: &Snapshot, vg: &VirtualGateway, out: &mut BTreeSet<ParentRef>) {
    let ns = vg.metadata.namespace.as_deref().unwrap_or("default");
    for es in snap.external_services_using_gateway(ns, vg.metadata.name.as_deref().unwrap_or("")) {
        out.insert(ParentRef::of(GlooKind::ExternalService, &es.metadata));
        for ap in snap.access_policies_selecting(es) {
            out.insert(ParentRef::of(GlooKind::AccessPolicy, &ap.metadata));
        }
    }
}

/// Sort by kind, namespace, name. Two parents whose names sanitize to the same object name would
/// collide; the first (in sort order of parents) keeps the name, so the output stays deterministic.
fn sort_and_dedup(mut out: Vec<IstioObject>) -> Vec<IstioObject> {
    out.sort_by_key(|a| a.sort_key());
    out.dedup_by(|b, a| a.sort_key() == b.sort_key());
    out
}

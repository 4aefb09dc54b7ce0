//! Which gateway each routed ExternalService port goes through.
//!
//! For every `egressGatewayRoutes.virtualGatewayRefs[]` entry that resolves (local cluster,
//! VirtualGateway exists, an http ISTIO_MUTUAL listener exposes the host, a selected gateway
//! Service has the listener's port), one `Binding`. References that do not resolve produce no
//! companions; the rules (E22, E23, V20) have already told the user why.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

use crate::api::{
    ExternalService, ObjectSelector, VirtualGateway, list, text, virtual_gateway::Listener,
};
use crate::core::{names, rules::syntax, selectors, snapshot::Snapshot};

#[derive(Clone, Debug)]
pub struct Binding<'a> {
    /// Index of the ExternalService port.
    pub port_index: usize,
    /// The declared port the gateway dials (P).
    pub port_number: u32,
    /// The port the mesh sends to (M, `portMatch`).
    pub port_match: u32,
    pub vg: &'a VirtualGateway,
    pub listener_index: usize,
    /// The gateway Service port of the listener (L).
    pub listener_port: u32,
    pub service: &'a Service,
    /// Labels of the gateway pods (W): the selector's labels, else the Service's `spec.selector`.
    pub workload_labels: BTreeMap<String, String>,
}

impl Binding<'_> {
    pub fn service_name(&self) -> &str {
        self.service.metadata.name.as_deref().unwrap_or("")
    }
    /// The gateway namespace: where the Gateway, the hop DestinationRule, the VirtualService and
    /// the AuthorizationPolicies go.
    pub fn namespace(&self) -> &str {
        self.service
            .metadata
            .namespace
            .as_deref()
            .unwrap_or("default")
    }
    pub fn service_host(&self) -> String {
        format!(
            "{}.{}.svc.cluster.local",
            self.service_name(),
            self.namespace()
        )
    }
    pub fn gateway_name(&self) -> String {
        gateway_name(self.vg)
    }
    /// `<namespace>/<name>` as VirtualService `gateways` entries want it.
    pub fn gateway_ref(&self) -> String {
        format!("{}/{}", self.namespace(), self.gateway_name())
    }
}

/// Name of the Gateway made from a VirtualGateway (a DNS-1123 label, as istiod requires).
pub fn gateway_name(vg: &VirtualGateway) -> String {
    names::object_name(&[
        "virtualgateway",
        vg.metadata.name.as_deref().unwrap_or(""),
        vg.metadata.namespace.as_deref().unwrap_or("default"),
    ])
}

/// Resolve every routed port of `es` (defaulted) to its gateway bindings, in port then ref order.
pub fn resolve<'a>(es: &ExternalService, snap: &'a Snapshot) -> Vec<Binding<'a>> {
    let own_ns = es.metadata.namespace.as_deref().unwrap_or("default");
    let hosts = list(&es.spec.hosts);
    let mut out = Vec::new();
    for (port_index, port) in list(&es.spec.ports).iter().enumerate() {
        let (Some(routes), Some(port_number)) = (&port.egress_gateway_routes, port.number) else {
            continue;
        };
        if hosts.is_empty() || !syntax::is_port(port_number) {
            continue; // E16 / E5
        }
        let port_match = routes
            .port_match
            .unwrap_or(crate::core::defaults::DEFAULT_PORT_MATCH);
        if !syntax::is_port(port_match) {
            continue; // E18
        }
        for r in list(&routes.virtual_gateway_refs) {
            if !selectors::is_local_cluster(text(&r.cluster), snap.cluster()) {
                continue;
            }
            let ns = match text(&r.namespace) {
                "" => own_ns,
                ns => ns,
            };
            let Some(vg) = snap.virtual_gateway(ns, text(&r.name)) else {
                continue;
            };
            if let Some(b) = bind(vg, es, snap, port_index, port_number, port_match) {
                out.push(b);
            }
        }
    }
    out
}

fn bind<'a>(
    vg: &'a VirtualGateway,
    es: &ExternalService,
    snap: &'a Snapshot,
    port_index: usize,
    port_number: u32,
    port_match: u32,
) -> Option<Binding<'a>> {
    let vg_ns = vg.metadata.namespace.as_deref().unwrap_or("default");
    let (listener_index, listener) = list(&vg.spec.listeners)
        .iter()
        .enumerate()
        .find(|(_, l)| is_egress_listener(l) && listener_exposes(l, vg_ns, es, snap))?;
    let (service, workload_labels) = gateway_service(vg, listener, snap)?;
    let listener_port = service_port(service, listener)?;
    Some(Binding {
        port_index,
        port_number,
        port_match,
        vg,
        listener_index,
        listener_port,
        service,
        workload_labels,
    })
}

/// An http listener with ISTIO_MUTUAL TLS: the only kind sidecars can hand egress traffic to
/// with their mesh identity (which the AuthorizationPolicy checks).
/// The selectors a VirtualGateway picks its gateway Services with: every KUBE workload's, or
/// everything in its namespace when it has no `workloads`.
pub fn workload_selectors(vg: &VirtualGateway) -> Vec<&ObjectSelector> {
    static EVERYTHING: ObjectSelector = ObjectSelector {
        labels: None,
        name: None,
        namespace: None,
        cluster: None,
        workspace: None,
    };
    match &vg.spec.workloads {
        None => vec![&EVERYTHING],
        Some(w) => w
            .iter()
            .filter(|w| matches!(text(&w.kind), "" | "KUBE"))
            .filter_map(|w| w.selector.as_ref())
            .collect(),
    }
}

/// Does one of the VirtualGateway's workload selectors pick the Service `namespace/name`? (The
/// selectors `gateway_service` chooses the gateway Service from, whatever the listener.)
pub fn selects_service(vg: &VirtualGateway, snap: &Snapshot, namespace: &str, name: &str) -> bool {
    let vg_ns = vg.metadata.namespace.as_deref().unwrap_or("default");
    let selectors = workload_selectors(vg);
    selectors.into_iter().any(|sel| {
        snap.services_selected(sel, vg_ns).into_iter().any(|svc| {
            svc.metadata.namespace.as_deref().unwrap_or("default") == namespace
                && svc.metadata.name.as_deref() == Some(name)
        })
    })
}

pub fn is_egress_listener(l: &Listener) -> bool {
    l.http.is_some()
        && l.tls
            .as_ref()
            .is_some_and(|t| text(&t.mode) == "ISTIO_MUTUAL")
}

/// Does an egress listener admit `es` (defaulted)? `exposedExternalServices` empty (everything
/// exposed), or an entry whose host covers one of the hosts (`ns/` prefix relative to the
/// ExternalService's namespace) and whose optional selector picks it. E23 and the expansion
/// both use this, so a warning and a generated route can never disagree.
pub fn listener_exposes(l: &Listener, vg_ns: &str, es: &ExternalService, snap: &Snapshot) -> bool {
    let es_ns = es.metadata.namespace.as_deref().unwrap_or("default");
    let hosts = list(&es.spec.hosts);
    let exposed = list(&l.exposed_external_services);
    exposed.is_empty()
        || exposed.iter().any(|e| {
            hosts
                .iter()
                .any(|h| syntax::exposed_host_matches(text(&e.host), vg_ns, es_ns, h))
                && e.selector
                    .as_ref()
                    .is_none_or(|sel| snap.selects_external_service(sel, es))
        })
}

/// The first gateway Service (by namespace, name) that the VirtualGateway selects and that has the
/// listener's port, with the pod labels to select. Without `workloads`, Services in the
/// VirtualGateway's namespace are candidates (DESIGN §9 V19/V20).
fn gateway_service<'a>(
    vg: &'a VirtualGateway,
    listener: &Listener,
    snap: &'a Snapshot,
) -> Option<(&'a Service, BTreeMap<String, String>)> {
    let vg_ns = vg.metadata.namespace.as_deref().unwrap_or("default");
    let selectors = workload_selectors(vg);
    let mut candidates: Vec<(&Service, BTreeMap<String, String>)> = Vec::new();
    for sel in selectors {
        for svc in snap.services_selected(sel, vg_ns) {
            if service_port(svc, listener).is_none() {
                continue;
            }
            let labels = match sel.labels.as_ref().filter(|l| !l.is_empty()) {
                Some(l) => l.clone().into(),
                None => svc
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.clone())
                    .unwrap_or_default(),
            };
            // A Gateway with an empty selector would bind every gateway in the mesh: never.
            if !labels.is_empty() {
                candidates.push((svc, labels));
            }
        }
    }
    candidates.sort_by(|a, b| {
        (&a.0.metadata.namespace, &a.0.metadata.name)
            .cmp(&(&b.0.metadata.namespace, &b.0.metadata.name))
    });
    candidates.into_iter().next()
}

/// The Service port number a listener's port selector names (by number or by port name).
pub fn service_port(svc: &Service, listener: &Listener) -> Option<u32> {
    let sel = listener.port.as_ref()?;
    let ports = svc.spec.as_ref()?.ports.as_ref()?;
    ports
        .iter()
        .find(|p| selectors::service_port_matches(sel, p))
        .and_then(|p| u32::try_from(p.port).ok())
}

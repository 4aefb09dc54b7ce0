//! Where a request for `host[:port]` goes, from the same snapshot the expansion reads: through
//! an egress gateway (the ExternalService port routed by `egressGatewayRoutes`, resolved by the
//! expansion's own `bindings`, so the gateway named here is the one the generated VirtualService
//! routes to), straight out of the client's sidecar (a declared port not routed through a
//! gateway), or nowhere declared (the mesh's outbound traffic policy decides).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::api::list;
use crate::core::expand::{bindings, service_entry};
use crate::core::rules::syntax::host_matches;
use crate::core::snapshot::Snapshot;

use super::decide::Workload;

/// One gateway a routed request may reach (several when the route splits across gateways).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewayHop {
    /// `namespace/name` of the VirtualGateway.
    pub virtual_gateway: String,
    /// `namespace/name` of the gateway Service.
    pub service: String,
    /// The gateway Service port the mesh leg sends to.
    pub service_port: u32,
    /// The gateway pods' port behind it (`destination.port` in policies); `None` when the
    /// Service names its targetPort (the number is then only known to the pod spec).
    pub pod_port: Option<u16>,
    pub workload: Workload,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Route {
    /// Through the egress gateway(s): their AuthorizationPolicies decide.
    Gateway {
        /// `namespace/name` of the ExternalService.
        external_service: String,
        /// The port the client calls (the route's `portMatch`).
        port: u32,
        /// The Host header the gateway sees.
        host_header: String,
        hops: Vec<GatewayHop>,
    },
    /// Declared, but this port is not routed through a gateway: the client's sidecar sends it
    /// out itself, and no gateway policy applies.
    Direct { external_service: String, port: u32 },
}

/// The routes for `host` (and `port`, else every port declared for it), in ExternalService
/// order. Empty: no ExternalService declares the host (on that port).
pub fn routes(snap: &Snapshot, host: &str, port: Option<u32>) -> Vec<Route> {
    let mut out = Vec::new();
    for es in snap.external_services() {
        if !service_entry::hosts(es)
            .iter()
            .any(|h| host_matches(h, host))
        {
            continue;
        }
        let id = format!(
            "{}/{}",
            es.metadata.namespace.as_deref().unwrap_or("default"),
            es.metadata.name.as_deref().unwrap_or("")
        );
        let binds = bindings::resolve(es, snap);
        let mut routed: Vec<u32> = binds.iter().map(|b| b.port_match).collect();
        routed.sort();
        routed.dedup();
        for mesh_port in routed
            .iter()
            .copied()
            .filter(|p| port.is_none_or(|q| q == *p))
        {
            let hops = binds
                .iter()
                .filter(|b| b.port_match == mesh_port)
                .map(|b| GatewayHop {
                    virtual_gateway: format!(
                        "{}/{}",
                        b.vg.metadata.namespace.as_deref().unwrap_or("default"),
                        b.vg.metadata.name.as_deref().unwrap_or("")
                    ),
                    service: format!("{}/{}", b.namespace(), b.service_name()),
                    service_port: b.listener_port,
                    pod_port: pod_port(b.service, b.listener_port),
                    workload: Workload {
                        namespace: b.namespace().to_string(),
                        labels: b.workload_labels.clone(),
                    },
                })
                .collect();
            out.push(Route::Gateway {
                external_service: id.clone(),
                port: mesh_port,
                host_header: host_header(host, mesh_port),
                hops,
            });
        }
        // Declared ports the mesh leg does not take: the sidecar sends them out directly.
        let mut direct: Vec<u32> = list(&es.spec.ports)
            .iter()
            .filter_map(|p| p.number)
            .filter(|n| !routed.contains(n))
            .filter(|n| port.is_none_or(|q| q == *n))
            .collect();
        direct.sort();
        direct.dedup();
        out.extend(direct.into_iter().map(|port| Route::Direct {
            external_service: id.clone(),
            port,
        }));
    }
    out
}

/// The Host header an HTTP client sends: the port only when it is not HTTP's default 80.
pub fn host_header(host: &str, port: u32) -> String {
    if port == 80 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// The pod port behind a Service port: its numeric targetPort, or the port itself when none
/// is set (Kubernetes' default); `None` for a named targetPort.
fn pod_port(svc: &k8s_openapi::api::core::v1::Service, service_port: u32) -> Option<u16> {
    let p = svc
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| u32::try_from(p.port).ok() == Some(service_port))?;
    match &p.target_port {
        None => u16::try_from(p.port).ok(),
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
        Some(IntOrString::String(s)) => s.parse().ok(),
    }
}

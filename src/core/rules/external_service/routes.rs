//! E16–E23, E26: routing through egress VirtualGateways (`egressGatewayRoutes`).
//! The defaults of E18 (portMatch 80) and E21 (ref namespace/cluster) live in defaults.rs;
//! these rules see the defaulted object (DESIGN §9: uniqueness and cross-object rules).

use std::collections::HashMap;

use crate::api::{
    ObjectReference, VirtualGateway, external_service::EgressGatewayRoutes, list, text,
};
use crate::core::findings::Report;
use crate::core::rules::syntax::is_port;
use crate::core::selectors::is_local_cluster;

use super::ports::is_known_protocol;
use super::{Ctx, PortView, quoted_list};

/// Protocols whose ports may route through an egress gateway (the proto's "currently only").
const ROUTABLE_PROTOCOLS: [&str; 3] = ["HTTP", "HTTP2", "HTTPS"];

fn routes_of<'a>(p: &PortView<'a>) -> Option<&'a EgressGatewayRoutes> {
    p.defaulted.egress_gateway_routes.as_ref()
}

/// The defaulted portMatch (E18 default: absent or 0 means 80).
fn port_match(routes: &EgressGatewayRoutes) -> u32 {
    match routes.port_match {
        None | Some(0) => crate::core::defaults::DEFAULT_PORT_MATCH,
        Some(n) => n,
    }
}

/// E16: routing through a gateway needs `hosts`: the gateway routes by host name.
pub(super) fn e16(c: &Ctx<'_>, report: &mut Report) {
    if !c.hosts().is_empty() {
        return;
    }
    let declared = if list(&c.defaulted.spec.addresses).is_empty() {
        "declares no hosts"
    } else {
        "declares `addresses`"
    };
    for p in c.ports().filter(|p| routes_of(p).is_some()) {
        report.error(
            "E16",
            p.field("egressGatewayRoutes"),
            format!(
                "egressGatewayRoutes needs `hosts` (the egress gateway routes by host name), but \
                 this ExternalService {declared}"
            ),
        );
    }
}

/// E17: only HTTP, HTTP2 and HTTPS ports can route through an egress gateway. An unknown
/// protocol is E6's error and is not reported again here.
pub(super) fn e17(c: &Ctx<'_>, report: &mut Report) {
    for p in c.ports().filter(|p| routes_of(p).is_some()) {
        let protocol = text(&p.defaulted.protocol);
        if ROUTABLE_PROTOCOLS.contains(&protocol) {
            continue;
        }
        let shown = if protocol.is_empty() {
            "this port has no protocol".to_string()
        } else if is_known_protocol(protocol) {
            format!("this port's protocol is {protocol}")
        } else {
            continue;
        };
        report.error(
            "E17",
            p.field("egressGatewayRoutes"),
            format!(
                "egressGatewayRoutes is supported only on ports with protocol {}; {shown}",
                ROUTABLE_PROTOCOLS.join(", ")
            ),
        );
    }
}

/// E18: portMatch (80 when omitted or 0) is 1..65535.
pub(super) fn e18(c: &Ctx<'_>, report: &mut Report) {
    for p in c.ports() {
        let Some(routes) = routes_of(&p) else {
            continue;
        };
        let n = port_match(routes);
        if !is_port(n) {
            report.error(
                "E18",
                p.field("egressGatewayRoutes.portMatch"),
                format!("portMatch {n} is out of range 1..65535"),
            );
        }
    }
}

/// E19: each routed port needs its own portMatch: the mesh leg of the route matches on it.
pub(super) fn e19(c: &Ctx<'_>, report: &mut Report) {
    let mut seen: HashMap<u32, usize> = HashMap::new();
    for p in c.ports() {
        let Some(routes) = routes_of(&p) else {
            continue;
        };
        let n = port_match(routes);
        let Some(first) = seen.get(&n) else {
            seen.insert(n, p.index);
            continue;
        };
        let omitted = p
            .written
            .and_then(|w| w.egress_gateway_routes.as_ref())
            .is_none_or(|r| r.port_match.unwrap_or(0) == 0);
        let note = if omitted {
            " (an omitted portMatch means 80)"
        } else {
            ""
        };
        report.error(
            "E19",
            p.field("egressGatewayRoutes.portMatch"),
            format!(
                "portMatch {n}{note} is already used by spec.ports[{first}]: each port routed \
                 through an egress gateway needs a unique portMatch"
            ),
        );
    }
}

/// E20: a portMatch equal to another port's number puts two meanings on one port of the
/// ServiceEntry: requests to it may not be routed through the egress gateway.
pub(super) fn e20(c: &Ctx<'_>, report: &mut Report) {
    let numbers: Vec<(usize, u32)> = c
        .ports()
        .filter_map(|p| p.defaulted.number.map(|n| (p.index, n)))
        .collect();
    for p in c.ports() {
        let Some(routes) = routes_of(&p) else {
            continue;
        };
        let n = port_match(routes);
        // An out-of-range portMatch is E18's error; it cannot mean a real port.
        if !is_port(n) {
            continue;
        }
        let Some((other, _)) = numbers.iter().find(|(j, m)| *j != p.index && *m == n) else {
            continue;
        };
        report.warning(
            "E20",
            p.field("egressGatewayRoutes.portMatch"),
            format!(
                "portMatch {n} equals the number of spec.ports[{other}]: requests the mesh sends \
                 to port {n} may not be routed through the egress gateway"
            ),
        );
    }
}

/// E21: a route needs at least one VirtualGateway, and each reference a name (namespace and
/// cluster are defaulted).
pub(super) fn e21(c: &Ctx<'_>, report: &mut Report) {
    for p in c.ports() {
        let Some(routes) = routes_of(&p) else {
            continue;
        };
        let refs = list(&routes.virtual_gateway_refs);
        if refs.is_empty() {
            report.error(
                "E21",
                p.field("egressGatewayRoutes.virtualGatewayRefs"),
                "egressGatewayRoutes needs at least one entry in virtualGatewayRefs: the egress \
                 VirtualGateway(s) to route through",
            );
        }
        for (j, r) in refs.iter().enumerate() {
            if text(&r.name).is_empty() {
                report.error(
                    "E21",
                    p.field(&format!("egressGatewayRoutes.virtualGatewayRefs[{j}].name")),
                    "the VirtualGateway reference has no name",
                );
            }
        }
    }
}

/// E22 and E23, per reference: the VirtualGateway exists (E22), and then it can carry this
/// ExternalService's traffic (E23).
pub(super) fn e22_e23(c: &Ctx<'_>, report: &mut Report) {
    for p in c.ports() {
        let Some(routes) = routes_of(&p) else {
            continue;
        };
        for (j, r) in list(&routes.virtual_gateway_refs).iter().enumerate() {
            let path = p.field(&format!("egressGatewayRoutes.virtualGatewayRefs[{j}]"));
            if let Some(vg) = e22(c, r, &path, report) {
                e23(c, vg, &path, report);
            }
        }
    }
}

/// E22: the referenced VirtualGateway exists; one in another cluster cannot be seen (W).
/// Returns the VirtualGateway when it exists here.
fn e22<'a>(
    c: &Ctx<'a>,
    r: &ObjectReference,
    path: &str,
    report: &mut Report,
) -> Option<&'a VirtualGateway> {
    let name = text(&r.name);
    if name.is_empty() {
        return None; // E21
    }
    let namespace = match text(&r.namespace) {
        "" => c.namespace(),
        ns => ns,
    };
    let cluster = text(&r.cluster);
    if !is_local_cluster(cluster, &c.opts.cluster_name) {
        report.warning(
            "E22",
            path,
            format!(
                "VirtualGateway {namespace}/{name} is in cluster {cluster}, not in this cluster \
                 ({}): it cannot be checked",
                c.opts.cluster_name
            ),
        );
        return None;
    }
    let vg = c.snap.virtual_gateway(namespace, name);
    if vg.is_none() {
        report.error(
            "E22",
            path,
            format!("VirtualGateway {namespace}/{name} does not exist"),
        );
    }
    vg
}

/// E23: the VirtualGateway has an `http` listener with tls mode ISTIO_MUTUAL (sidecars reach
/// the egress gateway over mesh mTLS) whose `exposedExternalServices` is empty (exposes all)
/// or admits one of the hosts. Strict mode makes it an error.
fn e23(c: &Ctx<'_>, vg: &VirtualGateway, path: &str, report: &mut Report) {
    let hosts = c.hosts();
    // Without hosts there is nothing to expose; E16 rejects the route already.
    if hosts.is_empty() {
        return;
    }
    let vg_ns = vg.metadata.namespace.as_deref().unwrap_or("default");
    let vg_id = format!(
        "{vg_ns}/{}",
        vg.metadata.name.as_deref().unwrap_or_default()
    );
    let mtls_http: Vec<_> = list(&vg.spec.listeners)
        .iter()
        .filter(|l| {
            l.http.is_some()
                && l.tls
                    .as_ref()
                    .is_some_and(|t| text(&t.mode) == "ISTIO_MUTUAL")
        })
        .collect();
    if mtls_http.is_empty() {
        report.strict_warning(
            "E23",
            path,
            format!(
                "VirtualGateway {vg_id} has no listener with `http` and tls mode ISTIO_MUTUAL, \
                 which the sidecars need to send this ExternalService's traffic to the egress \
                 gateway"
            ),
        );
        return;
    }
    let admitted = mtls_http
        .iter()
        .any(|l| crate::core::expand::bindings::listener_exposes(l, vg_ns, c.defaulted, c.snap));
    if admitted {
        return;
    }
    let listed: Vec<&str> = mtls_http
        .iter()
        .flat_map(|l| list(&l.exposed_external_services))
        .map(|e| text(&e.host))
        .collect();
    let first_host = hosts.first().map(|h| h.as_str()).unwrap_or_default();
    report.strict_warning(
        "E23",
        path,
        format!(
            "no http ISTIO_MUTUAL listener of VirtualGateway {vg_id} exposes this \
             ExternalService: its exposedExternalServices list {} and none admits host(s) {} of \
             namespace {ns} (by host and, where set, selector); add `{first_host}` (or `{ns}/{first_host}`) to the \
             exposedExternalServices of such a listener",
            quoted_list(&listed),
            quoted_list(hosts),
            ns = c.namespace(),
        ),
    );
}

/// E26 (DESIGN §5): an ExternalService routed through a gateway that no AccessPolicy selects
/// gets an open ALLOW rule at the gateway. One finding, on the first routed port.
pub(super) fn e26(c: &Ctx<'_>, report: &mut Report) {
    let Some(first) = c.ports().find(|p| routes_of(p).is_some()) else {
        return;
    };
    if !c.snap.access_policies_selecting(c.defaulted).is_empty() {
        return;
    }
    let hosts = c.hosts();
    let reach = if hosts.is_empty() {
        "this ExternalService".to_string()
    } else {
        quoted_list(hosts)
    };
    report.warning(
        "E26",
        first.field("egressGatewayRoutes"),
        format!(
            "no AccessPolicy selects ExternalService {}/{}: the egress gateway lets every mesh \
             workload reach {reach} until an AccessPolicy (applyToDestinations kind \
             EXTERNAL_SERVICE) selects it",
            c.namespace(),
            c.name()
        ),
    );
}

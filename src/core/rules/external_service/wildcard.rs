//! E14, E15: the limits of wildcard hosts (`*.example.com`), as the 2.14 CRD documents them.

use crate::api::text;
use crate::core::findings::Report;
use crate::core::rules::syntax::is_wildcard_fqdn;

use super::tls::{originates_tls, tls_of};
use super::{Ctx, PortView};

/// Only well-formed wildcard hosts (`*.example.com`) count: malformed ones (`*`, `foo*.com`)
/// are E2's errors, and warning about their wildcard limits as well would only add noise.
fn has_wildcard_host(c: &Ctx<'_>) -> bool {
    c.hosts().iter().any(|h| is_wildcard_fqdn(h))
}

/// E14: with a wildcard host, `credentialName` is ignored (W); client certificate files work
/// only through an egress gateway (R on a port without `egressGatewayRoutes`), CA files likewise
/// (W); and traffic always goes to port 443, so an explicit other `targetPort` is ignored (W).
pub(super) fn e14(c: &Ctx<'_>, report: &mut Report) {
    if !has_wildcard_host(c) {
        return;
    }
    for p in c.ports() {
        e14_target_port(&p, report);
        e14_tls(&p, report);
    }
}

/// DESIGN §9: only a `targetPort` the user wrote warns, never the defaulted copy of `number`.
fn e14_target_port(p: &PortView<'_>, report: &mut Report) {
    let Some(target) = p.written.and_then(|w| w.target_port.as_ref()) else {
        return;
    };
    let shown = match (target.number, text(&target.name)) {
        (Some(n), _) if n != 443 => n.to_string(),
        (None, name) if !name.is_empty() => format!("{name:?}"),
        _ => return,
    };
    report.warning(
        "E14",
        p.field("targetPort"),
        format!(
            "targetPort {shown} is ignored because hosts contain a wildcard: traffic to a \
             wildcard host is always sent to port 443"
        ),
    );
}

fn e14_tls(p: &PortView<'_>, report: &mut Report) {
    // Only where TLS is originated: ISTIO_MUTUAL certificate fields are E11's errors, and
    // DISABLE uses none of them.
    let Some((t, mode)) = tls_of(p) else {
        return;
    };
    if !originates_tls(mode) {
        return;
    }
    if !text(&t.credential_name).is_empty() {
        report.warning(
            "E14",
            p.field("clientsideTls.credentialName"),
            "credentialName is not supported when hosts contain a wildcard and is ignored: use the \
             caCertificates, clientCertificate and privateKey file paths on a port with \
             egressGatewayRoutes",
        );
    }
    if p.defaulted.egress_gateway_routes.is_some() {
        return;
    }
    for (field, value) in [
        ("clientCertificate", &t.client_certificate),
        ("privateKey", &t.private_key),
    ] {
        if !text(value).is_empty() {
            report.error(
                "E14",
                p.field(&format!("clientsideTls.{field}")),
                format!(
                    "{field} is used with a wildcard host only through an egress gateway, and \
                     this port has no egressGatewayRoutes: the sidecar would present no client \
                     certificate"
                ),
            );
        }
    }
    if !text(&t.ca_certificates).is_empty() {
        report.warning(
            "E14",
            p.field("clientsideTls.caCertificates"),
            "caCertificates is used with a wildcard host only through an egress gateway, and this \
             port has no egressGatewayRoutes: the sidecar verifies the server against its default \
             trust bundle instead",
        );
    }
}

/// E15: a wildcard host reached without an egress gateway and without ExternalEndpoints lets
/// workloads bypass `REGISTRY_ONLY` through the sidecar's TCP passthrough. One finding, on the
/// first wildcard host, naming the ports that do not route through a gateway.
pub(super) fn e15(c: &Ctx<'_>, report: &mut Report) {
    if c.selects_endpoints() {
        return;
    }
    let Some(index) = c.hosts().iter().position(|h| is_wildcard_fqdn(h)) else {
        return;
    };
    let unrouted: Vec<String> = c
        .ports()
        .filter(|p| p.defaulted.egress_gateway_routes.is_none())
        .map(|p| match p.defaulted.number {
            Some(n) => n.to_string(),
            None => p.path(),
        })
        .collect();
    if unrouted.is_empty() {
        return;
    }
    let host = c.hosts().get(index).map(|h| h.as_str()).unwrap_or("");
    report.warning(
        "E15",
        format!("spec.hosts[{index}]"),
        format!(
            "wildcard host {host:?} on port(s) {} without egressGatewayRoutes and without \
             ExternalEndpoints (spec.selector is empty): the REGISTRY_ONLY outbound traffic policy \
             can be bypassed through the sidecar's TCP passthrough; route these ports through an \
             egress gateway or select ExternalEndpoints",
            unrouted.join(", ")
        ),
    );
}

//! V21: deleting or changing a VirtualGateway that ExternalServices still route through.
//! The counterpart of E22/E23 (checked on the ExternalService): those run when the
//! ExternalService changes, this one when the gateway does. `--strict` makes it an error.

use crate::api::virtual_gateway::Listener;
use crate::api::{ExternalService, Text, VirtualGateway, list, text};
use crate::core::findings::Report;
use crate::core::rules::syntax::exposed_host_matches;
use crate::core::snapshot::Snapshot;

fn es_key(es: &ExternalService) -> String {
    format!(
        "{}/{}",
        es.metadata.namespace.as_deref().unwrap_or("default"),
        es.metadata.name.as_deref().unwrap_or("")
    )
}

pub(super) fn v21_delete(vg: &VirtualGateway, snap: &Snapshot, report: &mut Report) {
    let (ns, name) = (super::namespace(vg), super::name(vg));
    let users = snap.external_services_using_gateway(ns, name);
    if users.is_empty() {
        return;
    }
    let names: Vec<String> = users.iter().map(|es| es_key(es)).collect();
    report.strict_warning(
        "V21",
        "metadata.name",
        format!(
            "VirtualGateway {ns}/{name} is still referenced in the virtualGatewayRefs of ExternalService {}: their egress routes stop working when it is deleted; remove those references first",
            names.join(", ")
        ),
    );
}

/// The listener E23 requires for an ExternalService host: http, tls ISTIO_MUTUAL, and
/// `exposedExternalServices` empty (= every ExternalService) or matching the host.
fn serves(l: &Listener, vg_ns: &str, es_ns: &str, host: &str) -> bool {
    let istio_mutual = l
        .tls
        .as_ref()
        .is_some_and(|t| text(&t.mode) == "ISTIO_MUTUAL");
    let exposed = list(&l.exposed_external_services);
    l.http.is_some()
        && istio_mutual
        && (exposed.is_empty()
            || exposed
                .iter()
                .any(|e| exposed_host_matches(text(&e.host), vg_ns, es_ns, host)))
}

fn exposes(vg: &VirtualGateway, es_ns: &str, host: &str) -> bool {
    let vg_ns = super::namespace(vg);
    list(&vg.spec.listeners)
        .iter()
        .any(|l| serves(l, vg_ns, es_ns, host))
}

/// One finding per ExternalService that loses hosts: those the old gateway served (in E23's
/// sense) and the new one does not. Hosts that were not served before are E23's concern.
pub(super) fn v21_update(
    old: &VirtualGateway,
    new: &VirtualGateway,
    snap: &Snapshot,
    report: &mut Report,
) {
    let (ns, name) = (super::namespace(new), super::name(new));
    for es in snap.external_services_using_gateway(ns, name) {
        let es_ns = es.metadata.namespace.as_deref().unwrap_or("default");
        let lost: Vec<&str> = list(&es.spec.hosts)
            .iter()
            .map(Text::as_str)
            .filter(|h| exposes(old, es_ns, h) && !exposes(new, es_ns, h))
            .collect();
        if lost.is_empty() {
            continue;
        }
        report.strict_warning(
            "V21",
            "spec.listeners",
            format!(
                "ExternalService {} routes {} through this VirtualGateway: before this change an http listener with tls ISTIO_MUTUAL exposed it, now none does, so that egress traffic stops",
                es_key(es),
                lost.join(", ")
            ),
        );
    }
}

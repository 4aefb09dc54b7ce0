//! Gateway: one per VirtualGateway (per gateway namespace) that ExternalServices route through,
//! with an ISTIO_MUTUAL server per listener in use, so that the gateway accepts the sidecars'
//! mutual TLS and sees their identities (EGRESS.md §2 (2)).

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{VirtualGateway, list, text};
use crate::core::{Options, object::GlooKind, rules::syntax, snapshot::Snapshot};
use crate::istio::{GatewayPort, GatewaySpec, IstioObject, Server, ServerTls, Spec};

use super::bindings;
use super::metadata::{Parent, metadata};
use super::service_entry;

pub fn for_virtual_gateway(
    vg: &VirtualGateway,
    snap: &Snapshot,
    opts: &Options,
) -> Vec<IstioObject> {
    let vg_ns = vg.metadata.namespace.as_deref().unwrap_or("default");
    let vg_name = vg.metadata.name.as_deref().unwrap_or("");
    // namespace -> (pod labels, listener index -> (listener port, hosts of the bound services))
    type Servers = BTreeMap<usize, (u32, BTreeSet<String>)>;
    let mut by_ns: BTreeMap<String, (BTreeMap<String, String>, Servers)> = BTreeMap::new();
    for es in snap.external_services_using_gateway(vg_ns, vg_name) {
        let es_hosts = service_entry::hosts(es);
        for b in bindings::resolve(es, snap)
            .iter()
            .filter(|b| std::ptr::eq(b.vg, vg))
        {
            let (_, servers) = by_ns
                .entry(b.namespace().to_string())
                .or_insert_with(|| (b.workload_labels.clone(), BTreeMap::new()));
            let server = servers
                .entry(b.listener_index)
                .or_insert_with(|| (b.listener_port, BTreeSet::new()));
            server.1.extend(es_hosts.iter().cloned());
        }
    }
    let mut out = Vec::new();
    for (ns, (selector, servers)) in by_ns {
        let servers = servers
            .into_iter()
            .map(|(index, (port, bound_hosts))| Server {
                port: GatewayPort {
                    number: port,
                    protocol: "HTTPS",
                    name: format!("https-{port}-{index}"),
                },
                hosts: server_hosts(vg, index, bound_hosts),
                tls: ServerTls {
                    mode: "ISTIO_MUTUAL",
                },
            })
            .collect();
        let spec = GatewaySpec { selector, servers };
        let parent = Parent {
            kind: GlooKind::VirtualGateway,
            meta: &vg.metadata,
        };
        let name = bindings::gateway_name(vg);
        out.push(IstioObject::new(
            metadata(parent, &ns, name, opts),
            Spec::Gateway(spec),
        ));
    }
    out
}

/// The listener's `exposedExternalServices` hosts without their Gloo namespace prefix (which
/// scopes ExternalServices, not VirtualServices as an Istio prefix would); when it exposes
/// everything, the hosts of the ExternalServices bound to it.
fn server_hosts(
    vg: &VirtualGateway,
    listener_index: usize,
    bound: BTreeSet<String>,
) -> Vec<String> {
    let exposed: BTreeSet<String> = list(&vg.spec.listeners)
        .get(listener_index)
        .map(|l| list(&l.exposed_external_services))
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            syntax::parse_scoped_host(text(&e.host)).map(|(_, h)| h.to_ascii_lowercase())
        })
        .collect();
    if exposed.is_empty() {
        bound.into_iter().collect()
    } else {
        exposed.into_iter().collect()
    }
}

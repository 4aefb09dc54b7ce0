//! VirtualService: one per external host, in the gateway namespace, carrying both legs
//! (EGRESS.md §2 (4)): the `mesh` leg sends the app's plain HTTP on `portMatch` to the egress
//! gateway over Istio mTLS, and the gateway leg sends it on to the host's declared port.
//! Several VirtualServices for one host are never merged for sidecars, hence one per host.

use crate::api::{ExternalService, list};
use crate::core::{Options, names, object::GlooKind};
use crate::istio::{
    Destination, HttpMatch, HttpRoute, IstioObject, PortSelector, RouteDestination, Spec,
    VirtualServiceSpec,
};

use super::bindings::Binding;
use super::destination_rule::subset_name;
use super::metadata::{Parent, export_all, metadata};
use super::service_entry;

pub const MESH: &str = "mesh";

pub fn for_external_service(
    es: &ExternalService,
    bindings: &[Binding<'_>],
    opts: &Options,
) -> Vec<IstioObject> {
    let Some(first) = bindings.first() else {
        return Vec::new();
    };
    let namespace = first.namespace().to_string();
    let es_name = es.metadata.name.as_deref().unwrap_or("");
    let es_ns = es.metadata.namespace.as_deref().unwrap_or("default");
    let mut gateways: Vec<String> = bindings.iter().map(Binding::gateway_ref).collect();
    gateways.sort();
    gateways.dedup();
    gateways.push(MESH.to_string());

    let mut out = Vec::new();
    for host in service_entry::hosts(es) {
        let mut http = Vec::new();
        // One mesh leg and one gateway leg per routed port, in port order.
        for (port_index, port) in list(&es.spec.ports).iter().enumerate() {
            let legs: Vec<&Binding<'_>> = bindings
                .iter()
                .filter(|b| b.port_index == port_index)
                .collect();
            let Some(b0) = legs.first() else { continue };
            let label = port
                .name
                .as_deref()
                .filter(|n| names::is_dns1123_label(n))
                .map(str::to_string)
                .unwrap_or_else(|| format!("port-{}", b0.port_number));
            let weights = split_weights(legs.len());
            http.push(HttpRoute {
                name: format!("{label}-mesh"),
                matches: vec![HttpMatch {
                    gateways: vec![MESH.to_string()],
                    port: b0.port_match,
                }],
                route: legs
                    .iter()
                    .zip(weights)
                    .map(|(b, weight)| RouteDestination {
                        destination: Destination {
                            host: b.service_host(),
                            subset: Some(subset_name(es, &host)),
                            port: PortSelector {
                                number: b.listener_port,
                            },
                        },
                        weight,
                    })
                    .collect(),
            });
            let mut matches: Vec<HttpMatch> = Vec::new();
            for b in &legs {
                let m = HttpMatch {
                    gateways: vec![b.gateway_ref()],
                    port: b.listener_port,
                };
                if !matches.contains(&m) {
                    matches.push(m);
                }
            }
            http.push(HttpRoute {
                name: format!("{label}-gateway"),
                matches,
                route: vec![RouteDestination {
                    destination: Destination {
                        host: host.clone(),
                        subset: None,
                        port: PortSelector {
                            number: b0.port_number,
                        },
                    },
                    weight: 100,
                }],
            });
        }
        let spec = VirtualServiceSpec {
            hosts: vec![host.clone()],
            gateways: gateways.clone(),
            http,
            export_to: export_all(),
        };
        let name = names::object_name(&["externalservice", es_name, es_ns, &host]);
        let parent = Parent {
            kind: GlooKind::ExternalService,
            meta: &es.metadata,
        };
        out.push(IstioObject::new(
            metadata(parent, &namespace, name, opts),
            Spec::VirtualService(spec),
        ));
    }
    out
}

/// Load-balance across `n` gateways: integer weights summing to 100, the remainder to the first.
pub fn split_weights(n: usize) -> Vec<u32> {
    if n == 0 {
        return Vec::new();
    }
    let n32 = u32::try_from(n).unwrap_or(u32::MAX);
    let base = 100 / n32;
    let rem = 100 - base * n32;
    (0..n32).map(|i| base + u32::from(i < rem)).collect()
}

#[cfg(test)]
mod tests {
    use super::split_weights;

    #[test]
    fn weights_sum_to_100() {
        for n in 1..=7 {
            let w = split_weights(n);
            assert_eq!(w.len(), n);
            assert_eq!(w.iter().sum::<u32>(), 100);
        }
        assert_eq!(split_weights(3), vec![34, 33, 33]);
    }
}

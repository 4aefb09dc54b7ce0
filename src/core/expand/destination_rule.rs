//! DestinationRules: TLS origination toward the external host, and the sidecar → gateway hop
//! (Istio mutual TLS with SNI = the external host, one subset per host).

use std::collections::BTreeMap;

use crate::api::{ExternalService, Text, list, text, text::strings};
use crate::core::{Options, names, object::GlooKind, rules::syntax};
use crate::istio::{
    ClientTls, DestinationRuleSpec, IstioObject, PortSelector, PortTrafficPolicy, Spec, Subset,
    TrafficPolicy,
};

use super::bindings::Binding;
use super::metadata::{Parent, export_all, metadata};
use super::service_entry;

fn parent(es: &ExternalService) -> Parent<'_> {
    Parent {
        kind: GlooKind::ExternalService,
        meta: &es.metadata,
    }
}

fn es_name(es: &ExternalService) -> &str {
    es.metadata.name.as_deref().unwrap_or("")
}
fn es_ns(es: &ExternalService) -> &str {
    es.metadata.namespace.as_deref().unwrap_or("default")
}

/// One DestinationRule per host with a port-level TLS setting for every port that originates
/// TLS (`clientsideTls`, defaulted to SIMPLE on HTTPS/TLS ports; DISABLE originates nothing).
pub fn tls_origination(es: &ExternalService, opts: &Options) -> Vec<IstioObject> {
    let sans = strings(list(&es.spec.subject_alt_names));
    let mut out = Vec::new();
    for host in service_entry::hosts(es) {
        let mut settings = Vec::new();
        for p in list(&es.spec.ports) {
            let (Some(number), Some(tls)) =
                (p.number.filter(|n| syntax::is_port(*n)), &p.clientside_tls)
            else {
                continue;
            };
            let mode = match text(&tls.mode) {
                "" => "SIMPLE",
                "DISABLE" => continue,
                m => m,
            };
            if settings
                .iter()
                .any(|s: &PortTrafficPolicy| s.port.number == number)
            {
                continue;
            }
            let wildcard = host.starts_with('*');
            let sni = match text(&tls.sni) {
                "" if !wildcard => Some(host.clone()),
                "" => None,
                sni => Some(sni.to_string()),
            };
            let istio_mutual = mode == "ISTIO_MUTUAL";
            let nonempty = |v: &Option<Text>| {
                v.as_deref()
                    .filter(|s| !s.is_empty() && !istio_mutual)
                    .map(str::to_string)
            };
            settings.push(PortTrafficPolicy {
                port: PortSelector { number },
                tls: ClientTls {
                    mode: mode.to_string(),
                    client_certificate: nonempty(&tls.client_certificate),
                    private_key: nonempty(&tls.private_key),
                    // insecureSkipVerify excludes a CA (istiod rule): the user chose no verification.
                    ca_certificates: nonempty(&tls.ca_certificates)
                        .filter(|_| tls.insecure_skip_verify != Some(true)),
                    credential_name: nonempty(&tls.credential_name),
                    // insecureSkipVerify excludes SAN checks (istiod rule).
                    subject_alt_names: if tls.insecure_skip_verify == Some(true) || istio_mutual {
                        Vec::new()
                    } else {
                        sans.clone()
                    },
                    sni,
                    insecure_skip_verify: tls.insecure_skip_verify.filter(|v| *v),
                },
            });
        }
        if settings.is_empty() {
            continue;
        }
        let name = names::object_name(&["externalservice", es_name(es), es_ns(es), &host, "tls"]);
        let spec = DestinationRuleSpec {
            host: host.clone(),
            traffic_policy: Some(TrafficPolicy {
                port_level_settings: settings,
            }),
            subsets: Vec::new(),
            export_to: export_all(),
        };
        out.push(IstioObject::new(
            metadata(parent(es), es_ns(es), name, opts),
            Spec::DestinationRule(spec),
        ));
    }
    out
}

/// Subset of the gateway Service that carries traffic for one external host.
pub fn subset_name(es: &ExternalService, host: &str) -> String {
    names::object_name(&[es_name(es), es_ns(es), host])
}

/// One DestinationRule per (ExternalService, gateway Service), in the gateway namespace (on the
/// DestinationRule lookup path of every client, EGRESS.md §2), with a subset per host.
pub fn gateway_hops(
    es: &ExternalService,
    bindings: &[Binding<'_>],
    opts: &Options,
) -> Vec<IstioObject> {
    // (namespace, service) -> listener ports used
    let mut by_service: BTreeMap<(String, String), (String, Vec<u32>)> = BTreeMap::new();
    for b in bindings {
        let entry = by_service
            .entry((b.namespace().to_string(), b.service_name().to_string()))
            .or_insert_with(|| (b.service_host(), Vec::new()));
        if !entry.1.contains(&b.listener_port) {
            entry.1.push(b.listener_port);
        }
    }
    let mut out = Vec::new();
    for ((ns, svc), (svc_host, mut ports)) in by_service {
        ports.sort_unstable();
        let subsets = service_entry::hosts(es)
            .iter()
            .map(|h| Subset {
                name: subset_name(es, h),
                traffic_policy: TrafficPolicy {
                    port_level_settings: ports
                        .iter()
                        .map(|p| PortTrafficPolicy {
                            port: PortSelector { number: *p },
                            tls: ClientTls {
                                mode: "ISTIO_MUTUAL".to_string(),
                                sni: (!h.starts_with('*')).then(|| h.clone()),
                                ..Default::default()
                            },
                        })
                        .collect(),
                },
            })
            .collect();
        let name = names::object_name(&["externalservice", es_name(es), es_ns(es), &svc]);
        let spec = DestinationRuleSpec {
            host: svc_host,
            traffic_policy: None,
            subsets,
            export_to: export_all(),
        };
        out.push(IstioObject::new(
            metadata(parent(es), &ns, name, opts),
            Spec::DestinationRule(spec),
        ));
    }
    out
}

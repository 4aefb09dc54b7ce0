//! ServiceEntry: registers the external host (REGISTRY_ONLY meshes need it) with its declared
//! ports plus, for ports routed through a gateway, the `portMatch` port the mesh sends to.

use crate::api::{ExternalService, list, text, text::strings};
use crate::core::{Options, names, object::GlooKind, rules::syntax};
use crate::istio::{IstioObject, ServiceEntrySpec, ServicePort, Spec};

use super::bindings::Binding;
use super::metadata::{Parent, export_all, metadata};

pub fn name(es: &ExternalService) -> String {
    names::object_name(&["externalservice", es_name(es), es_ns(es)])
}

fn es_name(es: &ExternalService) -> &str {
    es.metadata.name.as_deref().unwrap_or("")
}
fn es_ns(es: &ExternalService) -> &str {
    es.metadata.namespace.as_deref().unwrap_or("default")
}

/// The hosts of the ServiceEntry (and of every other object keyed by host). An address-only
/// ExternalService has no host; Istio needs one, so it gets `<name>.<namespace>.external`.
pub fn hosts(es: &ExternalService) -> Vec<String> {
    let hosts = list(&es.spec.hosts);
    if hosts.is_empty() {
        vec![format!(
            "{}.{}.external",
            names::object_name(&[es_name(es)]),
            es_ns(es)
        )]
    } else {
        strings(hosts)
    }
}

/// DNS for FQDN hosts (the gateway leg must resolve the host, EGRESS.md §2); NONE for wildcard
/// hosts, for addresses (CIDRs need NONE), and for several hosts with non-HTTP, non-TLS ports
/// (istiod rejects DNS there).
fn resolution(es: &ExternalService) -> &'static str {
    let hosts = list(&es.spec.hosts);
    let has_wildcard = hosts.iter().any(|h| h.starts_with('*'));
    let opaque_port = list(&es.spec.ports).iter().any(|p| {
        !matches!(
            text(&p.protocol),
            "HTTP" | "HTTPS" | "HTTP2" | "GRPC" | "TLS"
        )
    });
    if hosts.is_empty() || has_wildcard || (hosts.len() > 1 && opaque_port) {
        "NONE"
    } else {
        "DNS"
    }
}

pub fn for_external_service(
    es: &ExternalService,
    bindings: &[Binding<'_>],
    opts: &Options,
) -> Vec<IstioObject> {
    let resolution = resolution(es);
    let mut ports: Vec<ServicePort> = Vec::new();
    for p in list(&es.spec.ports) {
        let Some(number) = p.number.filter(|n| syntax::is_port(*n)) else {
            continue;
        };
        if ports.iter().any(|x| x.number == number) {
            continue; // E7 reports duplicates; the CRD rejects them
        }
        let protocol = Some(text(&p.protocol).to_string()).filter(|s| !s.is_empty());
        let name = match text(&p.name) {
            n if names::is_dns1123_label(n) && !ports.iter().any(|x| x.name == n) => n.to_string(),
            _ => free_name(
                port_name(protocol.as_deref().unwrap_or("tcp"), number),
                &ports,
            ),
        };
        // targetPort has no effect with resolution NONE (istiod warns), so it is left out there.
        let target_port = match resolution {
            "NONE" => None,
            _ => p
                .target_port
                .as_ref()
                .and_then(|t| t.number)
                .filter(|n| syntax::is_port(*n)),
        };
        ports.push(ServicePort {
            number,
            protocol,
            name,
            target_port,
        });
    }
    for b in bindings {
        if ports.iter().any(|x| x.number == b.port_match) {
            continue; // E20 warns: portMatch is also a declared port
        }
        let mut name = port_name("http", b.port_match);
        if ports.iter().any(|x| x.name == name) {
            name = free_name(port_name("http-egress", b.port_match), &ports);
        }
        ports.push(ServicePort {
            number: b.port_match,
            protocol: Some("HTTP".to_string()),
            name,
            target_port: None,
        });
    }
    if ports.is_empty() {
        return Vec::new(); // E5: nothing to register
    }
    let spec = ServiceEntrySpec {
        hosts: hosts(es),
        addresses: strings(list(&es.spec.addresses)),
        ports,
        location: "MESH_EXTERNAL",
        resolution,
        export_to: export_all(),
    };
    let parent = Parent {
        kind: GlooKind::ExternalService,
        meta: &es.metadata,
    };
    vec![IstioObject::new(
        metadata(parent, es_ns(es), name(es), opts),
        Spec::ServiceEntry(spec),
    )]
}

fn port_name(prefix: &str, number: u32) -> String {
    format!("{}-{number}", prefix.to_ascii_lowercase())
}

/// `base`, or else `base-2`, `base-3`, ...: the first name no port in `ports` has. A generated
/// name can be one a user gave an earlier port (`tcp-3306` on port 80, and port 3306 unnamed:
/// found by tests/fuzz_core.rs), and istiod refuses a ServiceEntry with a name twice.
fn free_name(base: String, ports: &[ServicePort]) -> String {
    let taken = |n: &str| ports.iter().any(|x| x.name == n);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(json: &str) -> ExternalService {
        serde_json::from_str(json).unwrap()
    }

    /// Regression (tests/fuzz_core.rs, minimal case): a user's port name equal to the name
    /// generated for another port gave the ServiceEntry the name twice.
    #[test]
    fn a_generated_port_name_steps_aside_for_a_users_name() {
        let es = es(
            r#"{"apiVersion":"networking.gloo.solo.io/v2","kind":"ExternalService",
            "metadata":{"name":"httpbin.org","namespace":"global"},
            "spec":{"hosts":["example.com"],"ports":[{"number":80,"name":"tcp-3306"},{"number":3306}]}}"#,
        );
        let out = for_external_service(&es, &[], &Options::default());
        let Spec::ServiceEntry(se) = &out[0].spec else {
            panic!("{out:?}")
        };
        let names: Vec<&str> = se.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["tcp-3306", "tcp-3306-2"]);
    }
}

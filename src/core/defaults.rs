//! Defaults injected by the mutating webhook (API.md §7 rows marked D, DESIGN §4).
//!
//! Pure and idempotent: `default(default(x)) == default(x)`. Defaults only add or normalise
//! values; they never remove a field the user wrote.

use crate::api::{
    AccessPolicy, ExternalService, VirtualGateway, external_service::ClientsideTls, list, text,
};

use super::{Options, object::Object};

/// Port that the mesh sends egress traffic to when `portMatch` is absent or 0 (proto3 zero).
pub const DEFAULT_PORT_MATCH: u32 = 80;

/// Protocols that imply TLS origination when `clientsideTls` is absent (E13).
pub fn is_tls_protocol(protocol: &str) -> bool {
    matches!(protocol.to_ascii_uppercase().as_str(), "HTTPS" | "TLS")
}

pub fn is_wildcard_host(host: &str) -> bool {
    host.starts_with('*')
}

/// Default one object; kinds without defaults are returned unchanged.
pub fn default_object(obj: Object, opts: &Options) -> Object {
    match obj {
        Object::ExternalService(mut es) => {
            default_external_service(&mut es, opts);
            Object::ExternalService(es)
        }
        Object::VirtualGateway(mut vg) => {
            default_virtual_gateway(&mut vg);
            Object::VirtualGateway(vg)
        }
        Object::AccessPolicy(mut ap) => {
            default_access_policy(&mut ap);
            Object::AccessPolicy(ap)
        }
        other => other,
    }
}

pub fn default_external_service(es: &mut ExternalService, opts: &Options) {
    let own_namespace = es
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    // E13: the SNI is defaulted only from a single non-wildcard host (DESIGN §9).
    let single_host = match list(&es.spec.hosts) {
        [h] if !is_wildcard_host(h) && !h.is_empty() => Some(h.clone()),
        _ => None,
    };
    for port in es.spec.ports.iter_mut().flatten() {
        // E6 (D): protocols are matched without regard to case; store them upper-cased.
        if let Some(p) = port.protocol.as_mut() {
            let upper = p.to_ascii_uppercase();
            if *p != upper {
                *p = upper.into();
            }
        }
        // E9: targetPort defaults to the port number.
        if port.target_port.is_none()
            && let Some(n) = port.number
        {
            port.target_port = Some(crate::api::PortSelector {
                number: Some(n),
                name: None,
            });
        }
        // E13: HTTPS and TLS ports originate TLS even without `clientsideTls`.
        if port.clientside_tls.is_none() && is_tls_protocol(text(&port.protocol)) {
            port.clientside_tls = Some(ClientsideTls::default());
        }
        if let Some(tls) = port.clientside_tls.as_mut() {
            if tls.mode.is_none() {
                tls.mode = Some("SIMPLE".into());
            }
            if text(&tls.sni).is_empty()
                && text(&tls.mode) != "DISABLE"
                && let Some(h) = &single_host
            {
                tls.sni = Some(h.clone());
            }
        }
        if let Some(routes) = port.egress_gateway_routes.as_mut() {
            // E18: portMatch 0 cannot be told from absent (proto3), both mean 80.
            if routes.port_match.unwrap_or(0) == 0 {
                routes.port_match = Some(DEFAULT_PORT_MATCH);
            }
            // E21: a reference's namespace and cluster default to the ExternalService's own.
            for r in routes.virtual_gateway_refs.iter_mut().flatten() {
                if text(&r.namespace).is_empty() {
                    r.namespace = Some(own_namespace.as_str().into());
                }
                if text(&r.cluster).is_empty() {
                    r.cluster = Some(opts.cluster_name.as_str().into());
                }
            }
        }
    }
}

/// The appProtocol a listener gets when it has none (V8): http → HTTP/HTTPS, else TCP/TLS.
pub fn inferred_app_protocol(
    listener: &crate::api::virtual_gateway::Listener,
) -> Option<&'static str> {
    let has_tls = listener.tls.is_some();
    match (listener.http.is_some(), listener.tcp.is_some()) {
        (true, true) => None, // V3 reports it; nothing sensible to infer
        (true, false) => Some(if has_tls { "HTTPS" } else { "HTTP" }),
        (false, _) => Some(if has_tls { "TLS" } else { "TCP" }),
    }
}

pub fn default_virtual_gateway(vg: &mut VirtualGateway) {
    for listener in vg.spec.listeners.iter_mut().flatten() {
        match listener.app_protocol.as_mut() {
            // V4 compares upper-cased; store it the way it is compared.
            Some(p) if !p.is_empty() => {
                let upper = p.to_ascii_uppercase();
                if *p != upper {
                    *p = upper.into();
                }
            }
            _ => {
                if let Some(inferred) = inferred_app_protocol(listener) {
                    listener.app_protocol = Some(inferred.into());
                }
            }
        }
    }
}

pub fn default_access_policy(ap: &mut AccessPolicy) {
    // A2: destination kind defaults to SERVICE.
    for dest in ap.spec.apply_to_destinations.iter_mut().flatten() {
        if text(&dest.kind).is_empty() {
            dest.kind = Some("SERVICE".into());
        }
    }
    // A10: methods are matched case-sensitively by Istio; store them upper-cased.
    if let Some(config) = ap.spec.config.as_mut() {
        let entries = config
            .authz
            .as_deref_mut()
            .into_iter()
            .chain(config.authz_list.iter_mut().flatten());
        for authz in entries {
            for m in authz.allowed_methods.iter_mut().flatten() {
                let upper = m.to_ascii_uppercase();
                if *m != upper {
                    *m = upper.into();
                }
            }
        }
    }
}

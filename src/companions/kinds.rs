//! The Istio kinds we write, as kube `ApiResource`s (no Rust types needed to talk to the API).

use kube::core::{ApiResource, GroupVersionKind};

/// (group, version, kind, plural) of every kind the expansion can produce.
pub const KINDS: [(&str, &str, &str, &str); 6] = [
    (
        "networking.istio.io",
        "v1",
        "ServiceEntry",
        "serviceentries",
    ),
    ("networking.istio.io", "v1", "Gateway", "gateways"),
    (
        "networking.istio.io",
        "v1",
        "DestinationRule",
        "destinationrules",
    ),
    (
        "networking.istio.io",
        "v1",
        "VirtualService",
        "virtualservices",
    ),
    (
        "security.istio.io",
        "v1",
        "AuthorizationPolicy",
        "authorizationpolicies",
    ),
    (
        "security.istio.io",
        "v1",
        "PeerAuthentication",
        "peerauthentications",
    ),
];

pub fn api_resource(kind: &str) -> Option<ApiResource> {
    KINDS.iter().find(|k| k.2 == kind).map(|(g, v, k, plural)| {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural)
    })
}

pub fn all() -> Vec<ApiResource> {
    KINDS
        .iter()
        .map(|(g, v, k, plural)| {
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural)
        })
        .collect()
}

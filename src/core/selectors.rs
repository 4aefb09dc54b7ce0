//! Matching Gloo selectors against objects. Shared by rules and expansion so that a warning
//! ("matches nothing") and a generated object can never disagree.

use std::collections::BTreeMap;

use crate::api::{Labels, ObjectSelector, text};

/// Every selector label is present with the same value. An absent or empty selector matches all.
pub fn labels_match(selector: Option<&Labels>, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    selector.iter().all(|(k, v)| {
        labels
            .and_then(|l| l.get(k.as_str()))
            .is_some_and(|l| *v == *l)
    })
}

/// An empty cluster means "ours".
pub fn is_local_cluster(cluster: &str, local: &str) -> bool {
    cluster.is_empty() || cluster == local
}

/// Does `sel` select an object with these coordinates? `default_namespace` applies when the
/// selector leaves the namespace out and the caller's semantics say "same namespace"; pass
/// `None` for Gloo's "any namespace".
pub fn object_selector_matches(
    sel: &ObjectSelector,
    default_namespace: Option<&str>,
    namespace: &str,
    name: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let want_ns = match text(&sel.namespace) {
        "" => default_namespace,
        ns => Some(ns),
    };
    if want_ns.is_some_and(|ns| ns != namespace) {
        return false;
    }
    let want_name = text(&sel.name);
    if !want_name.is_empty() && want_name != name {
        return false;
    }
    labels_match(sel.labels.as_ref(), labels)
}

/// Does a port selector (number, else non-empty name) pick this Service port?
pub fn service_port_matches(
    sel: &crate::api::PortSelector,
    port: &k8s_openapi::api::core::v1::ServicePort,
) -> bool {
    match (sel.number, text(&sel.name)) {
        (Some(n), _) => i64::from(port.port) == i64::from(n),
        (None, name) => !name.is_empty() && port.name.as_deref() == Some(name),
    }
}

//! Labels, names and owner references of generated objects (DESIGN §5).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::core::{Options, names, object::GlooKind};

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "egress-webhook";
pub const PARENT_NAME: &str = "gloo.solo.io/parent_name";
pub const PARENT_NAMESPACE: &str = "gloo.solo.io/parent_namespace";
pub const PARENT_KIND: &str = "gloo.solo.io/parent_kind";
pub const PARENT_GROUP: &str = "gloo.solo.io/parent_group";
pub const PARENT_VERSION: &str = "gloo.solo.io/parent_version";
pub const PARENT_CLUSTER: &str = "gloo.solo.io/parent_cluster";

/// The Gloo object a generated object comes from.
#[derive(Clone, Copy, Debug)]
pub struct Parent<'a> {
    pub kind: GlooKind,
    pub meta: &'a crate::api::Meta,
}

impl Parent<'_> {
    pub fn name(&self) -> &str {
        self.meta.name.as_deref().unwrap_or("")
    }
    pub fn namespace(&self) -> &str {
        self.meta.namespace.as_deref().unwrap_or("default")
    }
}

/// Metadata for a generated object `name` in `namespace` made from `parent`: the managed-by and
/// parent labels on every object, and an ownerReference when the parent is in the same namespace
/// and has a uid (ownerReferences cannot cross namespaces; offline inputs often have no uid).
pub fn metadata(parent: Parent<'_>, namespace: &str, name: String, opts: &Options) -> ObjectMeta {
    let mut labels = BTreeMap::new();
    labels.insert(MANAGED_BY.to_string(), MANAGER.to_string());
    labels.insert(PARENT_NAME.to_string(), label_value(parent.name()));
    labels.insert(
        PARENT_NAMESPACE.to_string(),
        label_value(parent.namespace()),
    );
    labels.insert(PARENT_KIND.to_string(), parent.kind.as_str().to_string());
    labels.insert(PARENT_GROUP.to_string(), parent.kind.group().to_string());
    labels.insert(PARENT_VERSION.to_string(), crate::api::VERSION.to_string());
    labels.insert(PARENT_CLUSTER.to_string(), label_value(&opts.cluster_name));
    let owner_references = match (&parent.meta.uid, parent.namespace() == namespace) {
        (Some(uid), true) => Some(vec![OwnerReference {
            api_version: format!("{}/{}", parent.kind.group(), crate::api::VERSION),
            kind: parent.kind.as_str().to_string(),
            name: parent.name().to_string(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        _ => None,
    };
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(labels),
        owner_references,
        ..Default::default()
    }
}

/// A label value: ≤ 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends. Object names
/// can be longer (up to 253), so long ones are shortened with a hash like object names.
pub fn label_value(v: &str) -> String {
    let valid = v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && v.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
        && v.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric());
    if valid {
        v.to_string()
    } else {
        names::object_name(&[v])
    }
}

/// The `exportTo` of every generated object: visible to clients in any namespace and to the
/// gateway's namespace (EGRESS.md §2 placement rules).
pub fn export_all() -> Vec<String> {
    vec!["*".to_string()]
}

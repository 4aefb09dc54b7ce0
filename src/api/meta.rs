//! `metadata` of the three Gloo kinds as the core keeps them, and the kinds themselves.
//!
//! Why not k8s-openapi's `ObjectMeta`: it holds its fifteen fields inline, 360 bytes, three
//! quarters of an ExternalService or AccessPolicy in a file catalog, where an object has only a
//! name and a namespace (issue 12: the 41,000-object catalog must fit in 80 MB). [`Meta`] keeps
//! inline what the core reads on every object (name, namespace, labels, annotations) and what
//! every stored object has in a cluster (uid, resourceVersion, generation); the rest is boxed,
//! 8 bytes when absent. It reads and writes exactly the JSON of `ObjectMeta` (it is converted
//! from and to it), so no field is lost.
//!
//! The kinds: `#[derive(CustomResource)]` generates `ExternalServiceResource` (and the other
//! two) with an `ObjectMeta`, for the CRDs and kube's `Api`; the core's `ExternalService` is the
//! same object with a [`Meta`]. [`gloo_kind!`] writes the latter and the conversions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ManagedFieldsEntry, ObjectMeta, OwnerReference, Time,
};
use serde::{Deserialize, Serialize};

/// An object's `metadata` (see the module's doc). Field names and types are `ObjectMeta`'s.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "ObjectMeta", into = "ObjectMeta")]
pub struct Meta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    /// Everything else; `None` when all of it is absent.
    pub rest: Option<Box<MetaRest>>,
}

/// The fields of `ObjectMeta` that no rule reads and a file rarely has.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetaRest {
    pub creation_timestamp: Option<Time>,
    pub deletion_timestamp: Option<Time>,
    pub deletion_grace_period_seconds: Option<i64>,
    pub finalizers: Option<Vec<String>>,
    pub generate_name: Option<String>,
    pub managed_fields: Option<Vec<ManagedFieldsEntry>>,
    pub owner_references: Option<Vec<OwnerReference>>,
    pub self_link: Option<String>,
}

impl MetaRest {
    fn is_empty(&self) -> bool {
        *self == MetaRest::default()
    }
}

impl Meta {
    /// `deletionTimestamp`: set once the object is being deleted.
    pub fn deletion_timestamp(&self) -> Option<&Time> {
        self.rest.as_ref()?.deletion_timestamp.as_ref()
    }

    pub fn owner_references(&self) -> &[OwnerReference] {
        self.rest
            .as_ref()
            .and_then(|r| r.owner_references.as_deref())
            .unwrap_or(&[])
    }

    /// The boxed part, created empty when absent.
    pub fn rest_mut(&mut self) -> &mut MetaRest {
        self.rest.get_or_insert_with(Default::default)
    }
}

/// Namespace ("default" when absent) and name ("" when absent) of either metadata type: the
/// core keeps Services and ServiceAccounts with k8s-openapi's `ObjectMeta`.
pub trait NamespacedName {
    fn namespace_name(&self) -> (&str, &str);

    /// `namespace/name`, as messages and statuses name an object.
    fn qualified_name(&self) -> String {
        let (namespace, name) = self.namespace_name();
        format!("{namespace}/{name}")
    }
}

impl NamespacedName for Meta {
    fn namespace_name(&self) -> (&str, &str) {
        (
            self.namespace.as_deref().unwrap_or("default"),
            self.name.as_deref().unwrap_or(""),
        )
    }
}

impl NamespacedName for ObjectMeta {
    fn namespace_name(&self) -> (&str, &str) {
        (
            self.namespace.as_deref().unwrap_or("default"),
            self.name.as_deref().unwrap_or(""),
        )
    }
}

impl From<ObjectMeta> for Meta {
    fn from(m: ObjectMeta) -> Meta {
        let rest = MetaRest {
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            finalizers: m.finalizers,
            generate_name: m.generate_name,
            managed_fields: m.managed_fields,
            owner_references: m.owner_references,
            self_link: m.self_link,
        };
        Meta {
            name: m.name,
            namespace: m.namespace,
            labels: m.labels,
            annotations: m.annotations,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            rest: (!rest.is_empty()).then(|| Box::new(rest)),
        }
    }
}

impl From<Meta> for ObjectMeta {
    fn from(m: Meta) -> ObjectMeta {
        let rest = m.rest.map(|r| *r).unwrap_or_default();
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            labels: m.labels,
            annotations: m.annotations,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: rest.creation_timestamp,
            deletion_timestamp: rest.deletion_timestamp,
            deletion_grace_period_seconds: rest.deletion_grace_period_seconds,
            finalizers: rest.finalizers,
            generate_name: rest.generate_name,
            managed_fields: rest.managed_fields,
            owner_references: rest.owner_references,
            self_link: rest.self_link,
        }
    }
}

/// The core's type of a Gloo kind: `$name { metadata: Meta, spec: $spec, status }`, read as
/// kube's generated `$resource` is (apiVersion and kind ignored, `metadata` and `spec`
/// required) and written as it writes (apiVersion and kind first, `status` only when set),
/// and the conversions to and from `$resource`.
macro_rules! gloo_kind {
    ($(#[$doc:meta])* $name:ident, $resource:ident, $spec:ty, $status:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub metadata: $crate::api::meta::Meta,
            pub spec: $spec,
            pub status: Option<$status>,
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use kube::Resource as _;
                use serde::ser::SerializeStruct as _;
                let mut obj =
                    s.serialize_struct(stringify!($name), 4 + usize::from(self.status.is_some()))?;
                obj.serialize_field("apiVersion", &$resource::api_version(&()))?;
                obj.serialize_field("kind", &$resource::kind(&()))?;
                obj.serialize_field("metadata", &self.metadata)?;
                obj.serialize_field("spec", &self.spec)?;
                if let Some(status) = &self.status {
                    obj.serialize_field("status", status)?;
                }
                obj.end()
            }
        }

        impl From<$resource> for $name {
            fn from(r: $resource) -> $name {
                $name {
                    metadata: r.metadata.into(),
                    spec: r.spec,
                    status: r.status,
                }
            }
        }

        impl From<$name> for $resource {
            fn from(o: $name) -> $resource {
                $resource {
                    metadata: o.metadata.into(),
                    spec: o.spec,
                    status: o.status,
                }
            }
        }
    };
}
pub(crate) use gloo_kind;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_survives_the_round_trip() {
        let json = serde_json::json!({
            "name": "n", "namespace": "ns", "labels": {"a": "1"}, "annotations": {"b": "2"},
            "uid": "u", "resourceVersion": "7", "generation": 3,
            "creationTimestamp": "2026-12-02T05:00:00Z", "deletionTimestamp": "2026-12-02T06:00:00Z",
            "deletionGracePeriodSeconds": 30, "finalizers": ["f"], "generateName": "g-",
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o", "uid": "ou"}],
            "selfLink": "/x"
        });
        let meta: Meta = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&meta).unwrap(), json);
        assert_eq!(meta.owner_references().len(), 1);
        assert!(meta.deletion_timestamp().is_some());
    }

    #[test]
    fn a_file_object_has_nothing_boxed() {
        let meta: Meta = serde_json::from_value(serde_json::json!({"name": "n"})).unwrap();
        assert!(meta.rest.is_none());
        let (ours, theirs) = (
            std::mem::size_of::<Meta>(),
            std::mem::size_of::<ObjectMeta>(),
        );
        // Six inline strings and maps, the generation and the box: about half of ObjectMeta.
        assert!(ours <= 192, "Meta {ours} bytes, ObjectMeta {theirs}");
    }
}

//! One input object of any kind the core understands, decoded from raw JSON.

use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use serde_json::Value;
use thiserror::Error;

use crate::api::{AccessPolicy, ExternalService, VirtualGateway};

use super::findings::ObjectId;

/// The Gloo kinds we admit (the ones with rules and companions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GlooKind {
    ExternalService,
    VirtualGateway,
    AccessPolicy,
}

impl GlooKind {
    /// The kind named `name` (as [`GlooKind::as_str`]).
    pub fn from_name(name: &str) -> Option<GlooKind> {
        match name {
            "ExternalService" => Some(GlooKind::ExternalService),
            "VirtualGateway" => Some(GlooKind::VirtualGateway),
            "AccessPolicy" => Some(GlooKind::AccessPolicy),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            GlooKind::ExternalService => "ExternalService",
            GlooKind::VirtualGateway => "VirtualGateway",
            GlooKind::AccessPolicy => "AccessPolicy",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            GlooKind::ExternalService | GlooKind::VirtualGateway => crate::api::NETWORKING_GROUP,
            GlooKind::AccessPolicy => crate::api::SECURITY_GROUP,
        }
    }
}

// A value in passing (decoded, defaulted, then stored as its own `Arc<T>` in the snapshot):
// boxing the Service variant would add an allocation per object for no memory kept.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    ExternalService(ExternalService),
    VirtualGateway(VirtualGateway),
    AccessPolicy(AccessPolicy),
    Service(Service),
    ServiceAccount(ServiceAccount),
}

#[derive(Debug, Error)]
pub enum DecodeError {
    /// Not one of the kinds we read; callers skip it with a note.
    #[error("{api_version} {kind} is not a kind egress-webhook handles")]
    Unhandled { api_version: String, kind: String },
    #[error("{kind} {name}: {path}: {message}")]
    Invalid {
        kind: String,
        name: String,
        path: String,
        message: String,
    },
}

/// `value` as a `T`, or the error naming the field path. The path is tracked only once the
/// plain decode has failed: tracking it costs every field of every object a push and a pop,
/// and nearly every object decodes (each review's object at /validate, each catalog object at
/// start-up). Both decodes read the same tree, so the second fails where the first did.
fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, DecodeError> {
    T::deserialize(value).or_else(|_| {
        serde_path_to_error::deserialize(value).map_err(|e| DecodeError::Invalid {
            kind: value
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            name: value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("<unnamed>")
                .to_string(),
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })
    })
}

impl Object {
    /// Decode by `apiVersion` and `kind`. Type errors name the field path.
    pub fn from_value(value: Value) -> Result<Object, DecodeError> {
        Self::from_json(&value)
    }

    /// `from_value` without consuming the JSON: the admission path keeps the raw object (for
    /// the defaults patch) and must not copy a multi-megabyte tree to type it.
    pub fn from_json(value: &Value) -> Result<Object, DecodeError> {
        let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or("");
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        let obj = match (api_version, kind) {
            ("networking.gloo.solo.io/v2", "ExternalService") => {
                Object::ExternalService(typed(value)?)
            }
            ("networking.gloo.solo.io/v2", "VirtualGateway") => {
                Object::VirtualGateway(typed(value)?)
            }
            ("security.policy.gloo.solo.io/v2", "AccessPolicy") => {
                Object::AccessPolicy(typed(value)?)
            }
            ("v1", "Service") => Object::Service(typed(value)?),
            ("v1", "ServiceAccount") => Object::ServiceAccount(typed(value)?),
            _ => {
                return Err(DecodeError::Unhandled {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                });
            }
        };
        Ok(obj)
    }

    pub fn to_value(&self) -> Value {
        let v = match self {
            Object::ExternalService(o) => serde_json::to_value(o),
            Object::VirtualGateway(o) => serde_json::to_value(o),
            Object::AccessPolicy(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
            Object::ServiceAccount(o) => serde_json::to_value(o),
        };
        // Serializing plain data structures cannot fail.
        v.unwrap_or(Value::Null)
    }

    /// `metadata.namespace`, `.name`, `.uid` and `.generation` of either metadata type (the
    /// Gloo kinds keep `api::Meta`, Services and ServiceAccounts k8s-openapi's `ObjectMeta`).
    fn meta_fields(&self) -> (Option<&str>, Option<&str>, Option<&str>, Option<i64>) {
        macro_rules! fields {
            ($m:expr) => {
                (
                    $m.namespace.as_deref(),
                    $m.name.as_deref(),
                    $m.uid.as_deref(),
                    $m.generation,
                )
            };
        }
        match self {
            Object::ExternalService(o) => fields!(o.metadata),
            Object::VirtualGateway(o) => fields!(o.metadata),
            Object::AccessPolicy(o) => fields!(o.metadata),
            Object::Service(o) => fields!(o.metadata),
            Object::ServiceAccount(o) => fields!(o.metadata),
        }
    }

    pub fn uid(&self) -> Option<&str> {
        self.meta_fields().2
    }

    pub fn generation(&self) -> Option<i64> {
        self.meta_fields().3
    }

    /// Forget the uid (an object shown as it would be created).
    pub fn clear_uid(&mut self) {
        match self {
            Object::ExternalService(o) => o.metadata.uid = None,
            Object::VirtualGateway(o) => o.metadata.uid = None,
            Object::AccessPolicy(o) => o.metadata.uid = None,
            Object::Service(o) => o.metadata.uid = None,
            Object::ServiceAccount(o) => o.metadata.uid = None,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Object::ExternalService(_) => "ExternalService",
            Object::VirtualGateway(_) => "VirtualGateway",
            Object::AccessPolicy(_) => "AccessPolicy",
            Object::Service(_) => "Service",
            Object::ServiceAccount(_) => "ServiceAccount",
        }
    }

    pub fn gloo_kind(&self) -> Option<GlooKind> {
        match self {
            Object::ExternalService(_) => Some(GlooKind::ExternalService),
            Object::VirtualGateway(_) => Some(GlooKind::VirtualGateway),
            Object::AccessPolicy(_) => Some(GlooKind::AccessPolicy),
            _ => None,
        }
    }

    pub fn namespace(&self) -> &str {
        self.meta_fields().0.unwrap_or("default")
    }

    pub fn name(&self) -> &str {
        self.meta_fields().1.unwrap_or("")
    }

    pub fn id(&self) -> ObjectId {
        ObjectId {
            kind: self.kind_name().to_string(),
            namespace: self.namespace().to_string(),
            name: self.name().to_string(),
        }
    }
}

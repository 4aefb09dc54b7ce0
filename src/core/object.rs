//! One input object of any kind the core understands, decoded from raw JSON.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::api::{AccessPolicy, ExternalService, VirtualGateway, meta::Meta};

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

    /// The `apiVersion` of objects of this kind (the one version we read).
    pub const fn api_version(self) -> &'static str {
        match self {
            GlooKind::ExternalService | GlooKind::VirtualGateway => "networking.gloo.solo.io/v2",
            GlooKind::AccessPolicy => "security.policy.gloo.solo.io/v2",
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

/// A Gloo object's fields as its JSON text holds them, `apiVersion` and `kind` included (the
/// kinds' own types ignore them, as kube's generated ones do).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tagged<'a, S, St> {
    #[serde(borrow)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    metadata: Meta,
    spec: S,
    status: Option<St>,
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
        let gloo = GlooKind::from_name(kind).filter(|k| k.api_version() == api_version);
        let obj = match (gloo, api_version, kind) {
            (Some(GlooKind::ExternalService), ..) => Object::ExternalService(typed(value)?),
            (Some(GlooKind::VirtualGateway), ..) => Object::VirtualGateway(typed(value)?),
            (Some(GlooKind::AccessPolicy), ..) => Object::AccessPolicy(typed(value)?),
            (None, "v1", "Service") => Object::Service(typed(value)?),
            (None, "v1", "ServiceAccount") => Object::ServiceAccount(typed(value)?),
            _ => {
                return Err(DecodeError::Unhandled {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                });
            }
        };
        Ok(obj)
    }

    /// `from_json` of an object of the Gloo kind `kind` straight from its JSON text, without
    /// the generic tree (the admission path: building that tree cost more than typing, see
    /// `admission::bounded`). `None` when the text is not plainly such an object: another
    /// apiVersion or kind, a type error, a repeated field (which a tree would have collapsed
    /// to its last value). The caller then takes `from_json`'s path, which gives the same
    /// object or says what is wrong; when this gives `Some`, `from_json` gives the same
    /// object (tests/fuzz_admission.rs holds the two to it).
    pub fn gloo_from_text(text: &str, kind: GlooKind) -> Option<Object> {
        fn read<'a, S: Deserialize<'a>, St: Deserialize<'a>>(
            text: &'a str,
            kind: GlooKind,
        ) -> Option<(Meta, S, Option<St>)> {
            let t: Tagged<S, St> = serde_json::from_str(text).ok()?;
            (t.api_version.as_deref() == Some(kind.api_version())
                && t.kind.as_deref() == Some(kind.as_str()))
            .then_some((t.metadata, t.spec, t.status))
        }
        Some(match kind {
            GlooKind::ExternalService => {
                let (metadata, spec, status) = read(text, kind)?;
                Object::ExternalService(ExternalService {
                    metadata,
                    spec,
                    status,
                })
            }
            GlooKind::VirtualGateway => {
                let (metadata, spec, status) = read(text, kind)?;
                Object::VirtualGateway(VirtualGateway {
                    metadata,
                    spec,
                    status,
                })
            }
            GlooKind::AccessPolicy => {
                let (metadata, spec, status) = read(text, kind)?;
                Object::AccessPolicy(AccessPolicy {
                    metadata,
                    spec,
                    status,
                })
            }
        })
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

    /// `metadata.name` as written (`name` shows an absent one as "").
    pub fn meta_name(&self) -> Option<&str> {
        self.meta_fields().1
    }

    /// `metadata.namespace` as written (`namespace` shows an absent one as "default").
    pub fn meta_namespace(&self) -> Option<&str> {
        self.meta_fields().0
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

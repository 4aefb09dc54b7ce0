//! Reading, creating and updating the Secret, with every replica agreeing on its content:
//! creates that lose a race (409 AlreadyExists) and updates that lose one (409 Conflict on the
//! resourceVersion) re-read the Secret and use what the other replica wrote.
//!
//! Ownership decision: only a Secret labelled `app.kubernetes.io/managed-by=egress-webhook` is
//! used and rewritten; one that holds garbage (not PEM, a key that does not match, a leaf no CA
//! signed) is replaced by a fresh CA and leaf, and the reason is logged. A Secret by that name
//! without the label is somebody else's: start-up stops with an error naming the Secret and the
//! field, and the Secret is left alone.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

use super::plan::{self, Policy, Step};
use super::stored::{self, FieldError, MANAGED_BY, MANAGER, Stored};
use crate::certs::CertsError;

pub const SECRET_TYPE: &str = "kubernetes.io/tls";
/// Lost races in a row before giving up until the next poll.
const ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "Secret {namespace}/{name}: {source}; it is not labelled {MANAGED_BY}={MANAGER}, so the \
         self-signed mode leaves it alone: delete it, or name another Secret with --self-signed-secret"
    )]
    NotOursUnusable {
        namespace: String,
        name: String,
        source: FieldError,
    },
    #[error(
        "Secret {namespace}/{name}: metadata.labels[{MANAGED_BY}]: not {MANAGER}, so the \
         self-signed mode neither uses nor changes it: delete it, label it, or name another \
         Secret with --self-signed-secret"
    )]
    NotOurs { namespace: String, name: String },
    #[error(
        "Secret {namespace}/{name}: type: {found:?}, expected {SECRET_TYPE} (a type cannot be \
         changed: delete the Secret)"
    )]
    WrongType {
        namespace: String,
        name: String,
        found: String,
    },
    #[error("Secret {namespace}/{name}: {action}: {source}")]
    Api {
        namespace: String,
        name: String,
        action: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("Secret {namespace}/{name}: still changed by another writer after {ATTEMPTS} attempts")]
    Contended { namespace: String, name: String },
    #[error("issuing certificates: {0}")]
    Certs(#[from] CertsError),
}

/// What [`current`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    None,
    Created,
    /// The step applied (its reason in the log).
    Updated(Step),
    /// Garbage in a Secret of ours, replaced; the field and why.
    Regenerated(String),
}

fn is(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The Secret's content after whatever is due now: created if missing, rotated when the plan
/// says so, re-read when another replica wrote first.
pub async fn current(
    api: &Api<Secret>,
    namespace: &str,
    name: &str,
    policy: &Policy,
) -> Result<(Stored, Change), SecretError> {
    let api_err = |action, source| SecretError::Api {
        namespace: namespace.to_string(),
        name: name.to_string(),
        action,
        source,
    };
    for _ in 0..ATTEMPTS {
        let existing = api.get_opt(name).await.map_err(|e| api_err("reading", e))?;
        let now = unix_now();
        let Some(secret) = existing else {
            let fresh = plan::fresh(now, policy)?;
            match api
                .create(
                    &PostParams::default(),
                    &to_secret(namespace, name, &fresh, None),
                )
                .await
            {
                Ok(_) => return Ok((fresh, Change::Created)),
                // Another replica created it first: use theirs.
                Err(e) if is(&e, 409) => continue,
                Err(e) => return Err(api_err("creating", e)),
            }
        };
        let ours = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY))
            .is_some_and(|v| v == MANAGER);
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let annotations = secret.metadata.annotations.clone().unwrap_or_default();
        let parsed = stored::parse(&data, &annotations);
        if !ours {
            let (namespace, name) = (namespace.to_string(), name.to_string());
            return Err(match parsed {
                Ok(_) => SecretError::NotOurs { namespace, name },
                Err(source) => SecretError::NotOursUnusable {
                    namespace,
                    name,
                    source,
                },
            });
        }
        if secret.type_.as_deref() != Some(SECRET_TYPE) {
            return Err(SecretError::WrongType {
                namespace: namespace.to_string(),
                name: name.to_string(),
                found: secret.type_.clone().unwrap_or_default(),
            });
        }
        let (next, change) = match parsed {
            Ok(stored) => {
                let step = plan::plan(&stored, now, policy);
                match plan::apply(&stored, &step, now, policy)? {
                    None => return Ok((stored, Change::None)),
                    Some(next) => (next, Change::Updated(step)),
                }
            }
            Err(e) => (
                plan::fresh(now, policy)?,
                Change::Regenerated(e.to_string()),
            ),
        };
        // Optimistic concurrency: the replace carries the resourceVersion we read.
        match api
            .replace(
                name,
                &PostParams::default(),
                &to_secret(namespace, name, &next, Some(secret)),
            )
            .await
        {
            Ok(_) => return Ok((next, change)),
            Err(e) if is(&e, 409) => continue,
            Err(e) => return Err(api_err("updating", e)),
        }
    }
    Err(SecretError::Contended {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// The Secret holding `stored`: `base` (with its resourceVersion and other metadata) updated,
/// or a new one.
fn to_secret(namespace: &str, name: &str, stored: &Stored, base: Option<Secret>) -> Secret {
    let mut s = base.unwrap_or_default();
    s.metadata.name = Some(name.to_string());
    s.metadata.namespace = Some(namespace.to_string());
    s.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(MANAGED_BY.to_string(), MANAGER.to_string());
    if let Some(t) = stored.changed_at {
        s.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(stored::CHANGED_AT.to_string(), t.to_string());
    }
    s.type_ = Some(SECRET_TYPE.to_string());
    s.data = Some(
        stored::data_of(stored)
            .into_iter()
            .map(|(k, v)| (k, ByteString(v)))
            .collect(),
    );
    s.string_data = None;
    s
}

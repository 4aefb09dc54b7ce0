//! Sends the steps of a plan to the apiserver: server-side apply under our one field manager for
//! creates and updates, deletes last. Every request is counted in
//! `egress_webhook_companion_writes_total{kind,op}` and announced to [`Observed`] before it is
//! sent, so its echo is not mistaken for a foreign change.
//!
//! Undo: the caller may collect what it takes to put things back (admission does, and rolls back
//! when it is denied; the controller does not). A step's undo is recorded *before* its request is
//! awaited: a request that was sent and then timed out may have landed, and is undone too.

use std::sync::Arc;
use std::time::Duration;

use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, Patch, PatchParams},
    core::ApiResource,
};
use thiserror::Error;
use tokio::time::Instant;
use tracing::Instrument;

use crate::companions::{FIELD_MANAGER, kinds};
use crate::core::expand::metadata::MANAGED_BY;
use crate::istio::IstioObject;
use crate::metrics::Metrics;

use super::observed::{Observed, parent_from_labels, parent_of_labels};
use super::plan::{CompanionKey, Step, desired_spec};

/// No single request may hang a reconcile for longer than this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Error)]
pub enum WriteError {
    #[error(
        "{0} exists and is not managed by egress-webhook: rename or delete it (it is never overwritten)"
    )]
    Conflict(CompanionKey),
    #[error("writing {key}: namespace {} is being terminated", key.namespace)]
    Terminating { key: CompanionKey },
    #[error("writing {key}: {message}")]
    Api { key: CompanionKey, message: String },
    #[error("writing {0}: no answer in time")]
    Timeout(CompanionKey),
}

/// What was sent (for metrics and logs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty()
    }
}

/// One step to take back.
#[derive(Debug)]
pub enum Undo {
    /// We created it: delete it.
    Delete(CompanionKey),
    /// We changed or deleted it: apply this stored version again.
    Restore(CompanionKey, Arc<DynamicObject>),
}

#[derive(Clone)]
pub struct Writer {
    client: Client,
    metrics: Arc<Metrics>,
    observed: Arc<Observed>,
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// A stored object as something to apply again: server-set metadata removed.
fn restorable(o: &DynamicObject) -> DynamicObject {
    let mut o = o.clone();
    o.metadata.managed_fields = None;
    o.metadata.resource_version = None;
    o.metadata.uid = None;
    o.metadata.creation_timestamp = None;
    o.metadata.generation = None;
    o.metadata.deletion_timestamp = None;
    o
}

impl Writer {
    pub fn new(client: Client, metrics: Arc<Metrics>, observed: Arc<Observed>) -> Self {
        Writer {
            client,
            metrics,
            observed,
        }
    }

    fn api(&self, key: &CompanionKey) -> Result<(ApiResource, Api<DynamicObject>), WriteError> {
        let ar = kinds::api_resource(&key.kind).ok_or_else(|| WriteError::Api {
            key: key.clone(),
            message: "not a kind egress-webhook writes".into(),
        })?;
        let api = Api::namespaced_with(self.client.clone(), &key.namespace, &ar);
        Ok((ar, api))
    }

    fn error(key: &CompanionKey, e: kube::Error) -> WriteError {
        match &e {
            kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated") => {
                WriteError::Terminating { key: key.clone() }
            }
            _ => WriteError::Api {
                key: key.clone(),
                message: api_message(&e),
            },
        }
    }

    /// `fut` within the deadline (and never longer than [`REQUEST_TIMEOUT`]).
    async fn bounded<T>(
        key: &CompanionKey,
        deadline: Option<Instant>,
        fut: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, WriteError> {
        let limit = Instant::now() + REQUEST_TIMEOUT;
        let at = deadline.map_or(limit, |d| d.min(limit));
        match tokio::time::timeout_at(at, fut).await {
            Ok(r) => r.map_err(|e| Self::error(key, e)),
            Err(_) => Err(WriteError::Timeout(key.clone())),
        }
    }

    /// Send `steps` in order, stopping at the first failure. `undo` gets each step's undo
    /// before the step is sent.
    pub async fn run(
        &self,
        steps: &[Step],
        deadline: Option<Instant>,
        undo: &mut Vec<Undo>,
    ) -> Result<Report, WriteError> {
        let mut report = Report::default();
        for step in steps {
            let key = step.key();
            match step {
                Step::Create(d) => {
                    // Not ours by label in the cache: a foreign object must not have the name.
                    let (_, api) = self.api(&key)?;
                    self.metrics.controller_read("get");
                    let existing = Self::bounded(&key, deadline, api.get_opt(&key.name)).await?;
                    match existing {
                        // Not ours, or ours but another parent's (two parents whose names
                        // sanitize alike): never overwritten.
                        Some(o)
                            if !is_ours(&o)
                                || parent_from_labels(&o)
                                    != parent_of_labels(d.metadata.labels.as_ref()) =>
                        {
                            return Err(WriteError::Conflict(key));
                        }
                        Some(o) => {
                            // Ours, and our cache has not seen it yet.
                            undo.push(Undo::Restore(key.clone(), Arc::new(o)));
                            self.apply(&key, d, deadline, "update").await?;
                            report.updated.push(key.to_string());
                        }
                        None => {
                            undo.push(Undo::Delete(key.clone()));
                            self.apply(&key, d, deadline, "create").await?;
                            report.created.push(key.to_string());
                        }
                    }
                }
                Step::Update(d, prev) => {
                    undo.push(Undo::Restore(key.clone(), prev.clone()));
                    self.apply(&key, d, deadline, "update").await?;
                    report.updated.push(key.to_string());
                }
                Step::Delete(_, prev) => {
                    undo.push(Undo::Restore(key.clone(), prev.clone()));
                    self.delete(&key, deadline).await?;
                    report.deleted.push(key.to_string());
                }
            }
        }
        Ok(report)
    }

    async fn apply(
        &self,
        key: &CompanionKey,
        d: &IstioObject,
        deadline: Option<Instant>,
        op: &'static str,
    ) -> Result<(), WriteError> {
        let (_, api) = self.api(key)?;
        let params = PatchParams::apply(FIELD_MANAGER)
            .force()
            .validation_strict();
        self.observed.sending(key, Some(desired_spec(d)));
        self.metrics.companion_write(&key.kind, op);
        let span = tracing::info_span!("companion_write", kind = %key.kind, namespace = %key.namespace, name = %key.name, op);
        Self::bounded(
            key,
            deadline,
            api.patch(&key.name, &params, &Patch::Apply(d))
                .instrument(span),
        )
        .await
        .map(|_| ())
    }

    async fn delete(
        &self,
        key: &CompanionKey,
        deadline: Option<Instant>,
    ) -> Result<(), WriteError> {
        let (_, api) = self.api(key)?;
        self.observed.sending(key, None);
        self.metrics.companion_write(&key.kind, "delete");
        let span = tracing::info_span!("companion_write", kind = %key.kind, namespace = %key.namespace, name = %key.name, op = "delete");
        match Self::bounded(
            key,
            deadline,
            api.delete(&key.name, &DeleteParams::default())
                .instrument(span),
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(WriteError::Api { message, .. }) if message.contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Take back `undo`, last step first, within `budget` in all; what is left over is logged
    /// (the controller converges it: the caller has reverted the desired state too).
    pub async fn rollback(&self, undo: Vec<Undo>, budget: Duration) {
        let deadline = Instant::now() + budget;
        for step in undo.into_iter().rev() {
            let result = match &step {
                Undo::Delete(key) => self.delete(key, Some(deadline)).await,
                Undo::Restore(key, o) => {
                    let restored = restorable(o);
                    match self.api(key) {
                        Ok((_, api)) => {
                            self.observed
                                .sending(key, restored.data.get("spec").cloned());
                            self.metrics.companion_write(&key.kind, "update");
                            let params = PatchParams::apply(FIELD_MANAGER).force();
                            Self::bounded(
                                key,
                                Some(deadline),
                                api.patch(&key.name, &params, &Patch::Apply(&restored)),
                            )
                            .await
                            .map(|_| ())
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, undo = ?step, "rolling back a companion write failed; the controller converges it");
            }
        }
    }
}

fn is_ours(o: &DynamicObject) -> bool {
    o.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY))
        .map(String::as_str)
        == Some(FIELD_MANAGER)
}

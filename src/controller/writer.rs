//! Sends the steps of a plan to the apiserver: server-side apply under our one field manager for
//! creates and updates, deletes last. Every request is counted in
//! `egress_webhook_companion_writes_total{kind,op}` and announced to [`Observed`] before it is
//! sent, so its echo is not mistaken for a foreign change.
//!
//! Undo: the caller may collect what it takes to put things back (admission does, and rolls back
//! when it is denied; the controller does not). A step's undo is recorded *before* its request is
//! awaited: a request that was sent and then timed out may have landed, and is undone too.
//!
//! Optimistic concurrency: every write of an object that exists carries the resourceVersion it
//! was planned against (in the applied object for server-side apply, as a precondition for a
//! delete), so the apiserver refuses it with 409 ([`WriteError::Stale`]) when anyone wrote the
//! object in between, instead of overwriting that write. The caller re-plans against the live
//! object. A rollback does the same with the version it wrote: it never takes back a later write
//! of someone else (another admission that shares the parent), which the controller converges.

use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

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
    /// The object changed since the version the write was planned against (HTTP 409).
    #[error("writing {0}: it changed since it was read; re-planned against the stored version")]
    Stale(CompanionKey),
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

    /// Add what `other` sent to this report.
    pub fn extend(&mut self, other: Report) {
        self.created.extend(other.created);
        self.updated.extend(other.updated);
        self.deleted.extend(other.deleted);
    }
}

/// One step to take back, with the resourceVersion our write left (`None`: unknown, the request
/// did not answer, or the object is gone); the undo is sent only while the object is still at it.
#[derive(Debug)]
pub enum Undo {
    /// We created it: delete it.
    Delete(CompanionKey, Option<String>),
    /// We changed or deleted it: apply this stored version again.
    Restore(CompanionKey, Arc<DynamicObject>, Option<String>),
}

impl Undo {
    fn key(&self) -> &CompanionKey {
        match self {
            Undo::Delete(k, _) | Undo::Restore(k, _, _) => k,
        }
    }

    fn written(&mut self) -> &mut Option<String> {
        match self {
            Undo::Delete(_, w) | Undo::Restore(_, _, w) => w,
        }
    }
}

/// Record the undo of a write of `step.key()`, unless one is recorded already: a key written
/// twice (a write re-planned after a conflict) is put back to the state before the first write.
fn record(undo: &mut Vec<Undo>, step: Undo) {
    if !undo.iter().any(|u| u.key() == step.key()) {
        undo.push(step);
    }
}

/// After a write of `key` answered: the version it left (`None` after a delete).
fn wrote(undo: &mut [Undo], key: &CompanionKey, rv: Option<String>) {
    if let Some(u) = undo.iter_mut().find(|u| u.key() == key) {
        *u.written() = rv;
    }
}

/// Creates and updates of one plan in flight at once.
const MAKES_AT_ONCE: usize = 8;

/// What one step sent: its undo, its report, and what it left stored.
type Sent = (Vec<Undo>, Report, Result<Option<DynamicObject>, WriteError>);

/// Fold one step's outcome into the run's: its undo (unless the apiserver refused it as stale:
/// then it did not land, and its undo would put back a version that is gone), its report, what
/// it left, and the first error.
fn absorb(
    step: &Step,
    (step_undo, step_report, result): Sent,
    undo: &mut Vec<Undo>,
    fresh: &mut Fresh,
    report: &mut Report,
    failed: &mut Option<WriteError>,
) {
    let key = step.key();
    if !matches!(result, Err(WriteError::Stale(_))) {
        for u in step_undo {
            record(undo, u);
        }
    }
    report.extend(step_report);
    match result {
        Ok(written) => {
            wrote(
                undo,
                &key,
                written
                    .as_ref()
                    .and_then(|w| w.metadata.resource_version.clone()),
            );
            fresh.insert(key, written.map(Arc::new));
        }
        Err(e) => {
            failed.get_or_insert(e);
        }
    }
}

/// What this process's writes left, by key (`None`: deleted): fresher than the watch cache
/// until the watch delivers the same, so that a re-plan does not trip over its own writes.
pub type Fresh = std::collections::HashMap<CompanionKey, Option<Arc<DynamicObject>>>;

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
            // Our applies are forced, so a 409 is never a field-manager conflict: the
            // resourceVersion (or delete precondition) no longer matches.
            kube::Error::Api(s) if s.code == 409 => WriteError::Stale(key.clone()),
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
        self.run_fresh(steps, deadline, undo, &mut Fresh::new())
            .await
    }

    /// [`Writer::run`], also recording in `fresh` what each write left.
    pub async fn run_fresh(
        &self,
        steps: &[Step],
        deadline: Option<Instant>,
        undo: &mut Vec<Undo>,
        fresh: &mut Fresh,
    ) -> Result<Report, WriteError> {
        let mut report = Report::default();
        // Creates and updates go out at once (at most MAKES_AT_ONCE): none depends on another
        // being stored (Istio resolves references whenever they land), and one after the other
        // they made an admission that creates five companions wait for ten round trips, which
        // under load is seconds. Deletes follow one by one, once every create and update stood
        // (make-before-break).
        let (makes, breaks): (Vec<&Step>, Vec<&Step>) = steps.iter().partition(|s| !s.is_delete());
        let mut failed = None;
        for chunk in makes.chunks(MAKES_AT_ONCE) {
            // Boxed, in a loop: with the futures built by a closure, rustc cannot prove the
            // admission future `Send` for every lifetime (higher-ranked inference).
            let mut sends: Vec<Pin<Box<dyn Future<Output = Sent> + Send + '_>>> = Vec::new();
            for step in chunk {
                sends.push(Box::pin(self.send_alone(step, deadline)));
            }
            let made = futures::future::join_all(sends).await;
            for (step, sent) in chunk.iter().zip(made) {
                absorb(step, sent, undo, fresh, &mut report, &mut failed);
            }
        }
        for step in breaks {
            if failed.is_some() {
                break;
            }
            let sent = self.send_alone(step, deadline).await;
            absorb(step, sent, undo, fresh, &mut report, &mut failed);
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// One step with its own undo and report, so that several can be in flight.
    async fn send_alone(&self, step: &Step, deadline: Option<Instant>) -> Sent {
        let (mut undo, mut report) = (Vec::new(), Report::default());
        let result = self.send(step, deadline, &mut undo, &mut report).await;
        (undo, report, result)
    }

    /// One step: what it left stored (`None` after a delete).
    async fn send(
        &self,
        step: &Step,
        deadline: Option<Instant>,
        undo: &mut Vec<Undo>,
        report: &mut Report,
    ) -> Result<Option<DynamicObject>, WriteError> {
        let key = step.key();
        Ok(match step {
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
                        let rv = o.metadata.resource_version.clone();
                        record(undo, Undo::Restore(key.clone(), Arc::new(o), None));
                        let w = self.apply(&key, d, rv, deadline, "update").await?;
                        report.updated.push(key.to_string());
                        Some(w)
                    }
                    None => {
                        record(undo, Undo::Delete(key.clone(), None));
                        let w = self.apply(&key, d, None, deadline, "create").await?;
                        report.created.push(key.to_string());
                        Some(w)
                    }
                }
            }
            Step::Update(d, prev) => {
                record(undo, Undo::Restore(key.clone(), prev.clone(), None));
                let rv = prev.metadata.resource_version.clone();
                let w = self.apply(&key, d, rv, deadline, "update").await?;
                report.updated.push(key.to_string());
                Some(w)
            }
            Step::Delete(_, prev) => {
                record(undo, Undo::Restore(key.clone(), prev.clone(), None));
                let rv = prev.metadata.resource_version.clone();
                self.delete(&key, rv, deadline).await?;
                report.deleted.push(key.to_string());
                None
            }
        })
    }

    /// The object as stored now (`None`: absent), read live.
    pub async fn live(
        &self,
        key: &CompanionKey,
        deadline: Option<Instant>,
    ) -> Result<Option<DynamicObject>, WriteError> {
        let (_, api) = self.api(key)?;
        self.metrics.controller_read("get");
        let mut o = Self::bounded(key, deadline, api.get_opt(&key.name)).await?;
        if let Some(o) = o.as_mut() {
            o.metadata.managed_fields = None;
        }
        Ok(o)
    }

    /// Server-side apply of `d`; with `rv`, only onto that version of the object (the
    /// apiserver takes a resourceVersion in the applied object as a precondition). The stored
    /// object it left, managedFields dropped.
    async fn apply(
        &self,
        key: &CompanionKey,
        d: &IstioObject,
        rv: Option<String>,
        deadline: Option<Instant>,
        op: &'static str,
    ) -> Result<DynamicObject, WriteError> {
        let (_, api) = self.api(key)?;
        let params = PatchParams::apply(FIELD_MANAGER)
            .force()
            .validation_strict();
        self.observed.sending(key, Some(desired_spec(d)));
        self.metrics.companion_write(&key.kind, op);
        let span = tracing::info_span!("companion_write", kind = %key.kind, namespace = %key.namespace, name = %key.name, op);
        let pinned;
        let body = match rv {
            Some(rv) => {
                let mut d = d.clone();
                d.metadata.resource_version = Some(rv);
                pinned = d;
                &pinned
            }
            None => d,
        };
        let mut stored = Self::bounded(
            key,
            deadline,
            api.patch(&key.name, &params, &Patch::Apply(body))
                .instrument(span),
        )
        .await?;
        stored.metadata.managed_fields = None;
        Ok(stored)
    }

    /// Delete; with `rv`, only that version of the object. Gone already counts as done.
    async fn delete(
        &self,
        key: &CompanionKey,
        rv: Option<String>,
        deadline: Option<Instant>,
    ) -> Result<(), WriteError> {
        let (_, api) = self.api(key)?;
        self.observed.sending(key, None);
        self.metrics.companion_write(&key.kind, "delete");
        let span = tracing::info_span!("companion_write", kind = %key.kind, namespace = %key.namespace, name = %key.name, op = "delete");
        let params = DeleteParams {
            preconditions: rv.map(|rv| kube::api::Preconditions {
                resource_version: Some(rv),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match Self::bounded(
            key,
            deadline,
            api.delete(&key.name, &params).instrument(span),
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(WriteError::Api { message, .. }) if message.contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Take back `undo`, last step first, within `budget` in all; what is left over is logged
    /// (the controller converges it: the caller has reverted the desired state too). An object
    /// changed by someone else since our write is left as it is (`Stale`): taking our write back
    /// would take theirs too.
    pub async fn rollback(&self, undo: Vec<Undo>, budget: Duration) {
        let deadline = Instant::now() + budget;
        for step in undo.into_iter().rev() {
            let result = match &step {
                Undo::Delete(key, rv) => self.delete(key, rv.clone(), Some(deadline)).await,
                Undo::Restore(key, o, rv) => {
                    let mut restored = restorable(o);
                    restored.metadata.resource_version = rv.clone();
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
            match result {
                Ok(()) => {}
                Err(WriteError::Stale(key)) => {
                    tracing::info!(companion = %key, "not rolled back: written by someone else since; the controller converges it")
                }
                Err(e) => {
                    tracing::warn!(error = %e, undo = ?step, "rolling back a companion write failed; the controller converges it")
                }
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

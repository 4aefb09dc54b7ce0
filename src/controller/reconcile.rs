//! One parent's reconcile: compare its desired companions with the stored ones and send the
//! difference, under the parent's lock.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::{Api, Client};
use tokio::time::Instant;

use crate::core::{
    Object,
    defaults::default_object,
    expand::{ParentRef, expand_parents},
    object::GlooKind,
    status::Sync,
};

use super::Controller;
use super::events::Reason;
use super::plan::plan;
use super::runner::Outcome;
use super::writer::{Report, WriteError};

const AUTHORIZATION_POLICY: &str = "AuthorizationPolicy";

impl Controller {
    pub(super) async fn reconcile(&self, p: ParentRef) -> Outcome {
        if !self.is_leader() {
            return Outcome::Done;
        }
        let started = Instant::now();
        let outcome = self.reconcile_locked(&p).await;
        self.metrics
            .reconcile_duration
            .get_or_create(&crate::metrics::ParentKindLabels {
                parent_kind: p.kind.as_str().to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    async fn reconcile_locked(&self, p: &ParentRef) -> Outcome {
        let one: BTreeSet<ParentRef> = [p.clone()].into();
        let _held = self.locks.lock_all(&one).await;
        let (desired, known) = self
            .catalog
            .read(|s| (expand_parents(s, &self.opts, &one), s.has_parent(p)));
        let mut steps = plan(&desired, &self.observed.of_parent(p));
        if steps.is_empty() {
            if known {
                self.update_status(p, Sync::InPlace).await;
            }
            return Outcome::Done;
        }
        // Someone else changed one of these a moment ago: perhaps another replica's admission,
        // for a parent version our catalog has not seen yet. Not undone before the grace.
        if let Some(until) = steps
            .iter()
            .filter_map(|s| self.observed.foreign_until(&s.key()))
            .max()
        {
            return Outcome::Again(until.saturating_duration_since(std::time::Instant::now()));
        }
        if !known {
            // Companions of a parent we do not know: the apiserver, not the cache, decides
            // whether it exists.
            self.metrics.controller_read("get");
            match fetch_parent(&self.client, p).await {
                Ok(Some(obj)) => {
                    self.catalog.upsert(default_object(obj, &self.opts));
                    return Outcome::Again(Duration::ZERO);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(parent = ?p, error = %e, "looking up the parent of stored companions failed");
                    return Outcome::Failed {
                        min: Duration::from_secs(1),
                    };
                }
            }
        }
        let mut again = None;
        if p.kind == GlooKind::ExternalService
            && steps
                .iter()
                .any(|s| s.is_delete() && s.key().kind == AUTHORIZATION_POLICY)
        {
            let waiting = self.policies_not_in_place(p);
            if !waiting.is_empty() {
                // Make-before-break: the open rule stays until the policies replacing it stand.
                for ap in waiting {
                    self.queue.schedule(ap, Duration::ZERO);
                }
                steps.retain(|s| !(s.is_delete() && s.key().kind == AUTHORIZATION_POLICY));
                again = Some(Duration::from_millis(200));
            }
        }
        // What kind of work this is, for `reconcile_events_total{outcome}`: putting back what
        // someone else changed or deleted (drift), removing an orphan's companions, or following
        // a change of the inputs (a new or changed parent, Service or ServiceAccount).
        let outcome = if !known {
            "orphan"
        } else if steps
            .iter()
            .any(|s| self.observed.changed_by_others(&s.key()))
        {
            "repair"
        } else {
            "sync"
        };
        let mut no_undo = Vec::new();
        match self.writer.run(&steps, None, &mut no_undo).await {
            Ok(report) => {
                if !report.is_empty() {
                    self.metrics.reconcile_outcome(outcome);
                    self.announce(p, outcome, &report);
                    tracing::info!(
                        parent = %format!("{} {}/{}", p.kind.as_str(), p.namespace, p.name),
                        created = ?report.created,
                        updated = ?report.updated,
                        deleted = ?report.deleted,
                        "reconciled companions"
                    );
                }
                if known {
                    let sync = match again {
                        Some(_) => Sync::Waiting(
                            "the open rule of this ExternalService stays until the AccessPolicies selecting it are in place".into(),
                        ),
                        None => Sync::InPlace,
                    };
                    self.update_status(p, sync).await;
                }
                again.map_or(Outcome::Done, Outcome::Again)
            }
            // Written by someone else since our watch saw it (another replica's admission, or
            // an admission here that shares this parent): look again once the watch has it.
            Err(WriteError::Stale(key)) => {
                tracing::debug!(parent = ?p, companion = %key, "companion changed since it was read; reconciling again");
                Outcome::Again(Duration::from_millis(200))
            }
            Err(e) => {
                let (outcome, min) = match &e {
                    // A namespace being deleted takes its time; no point retrying hot.
                    WriteError::Terminating { .. } => ("error", Duration::from_secs(10)),
                    WriteError::Conflict(_) => ("conflict", Duration::from_secs(30)),
                    _ => ("error", Duration::ZERO),
                };
                self.metrics.reconcile_outcome(outcome);
                tracing::warn!(parent = ?p, error = %e, "reconcile failed; retrying with backoff");
                if known {
                    self.event(p, Reason::WriteRefused, e.to_string());
                    self.update_status(p, Sync::Failed(e.to_string())).await;
                }
                Outcome::Failed { min }
            }
        }
    }

    /// The event for what a reconcile wrote: `outcome` as counted in
    /// `reconcile_events_total` (repair, orphan, sync).
    fn announce(&self, p: &ParentRef, outcome: &str, report: &Report) {
        let list = |what: &str, keys: &[String]| {
            (!keys.is_empty()).then(|| format!("{what} {}", keys.join(", ")))
        };
        let note = [
            list("created", &report.created),
            list("updated", &report.updated),
            list("deleted", &report.deleted),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
        if outcome == "sync" && report.created.is_empty() && self.created.contains(p) {
            return;
        }
        let reason = match outcome {
            "repair" => Reason::Repaired,
            "orphan" => Reason::OrphanRemoved,
            _ if !report.created.is_empty() => Reason::CompanionsCreated,
            _ => Reason::CompanionsUpdated,
        };
        let note = match reason {
            Reason::Repaired => format!("put back what someone else changed or deleted: {note}"),
            Reason::OrphanRemoved => format!("the parent no longer exists: {note}"),
            _ => note,
        };
        self.event(p, reason, note);
    }

    /// AccessPolicies selecting the ExternalService `p` whose AuthorizationPolicies are not
    /// stored as desired yet.
    fn policies_not_in_place(&self, p: &ParentRef) -> Vec<ParentRef> {
        let policies: Vec<ParentRef> = self.catalog.read(|s| {
            s.external_service(&p.namespace, &p.name)
                .map(|es| {
                    s.access_policies_selecting(es)
                        .into_iter()
                        .map(|ap| {
                            ParentRef::new(
                                GlooKind::AccessPolicy,
                                ap.metadata.namespace.as_deref().unwrap_or("default"),
                                ap.metadata.name.as_deref().unwrap_or(""),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        });
        policies
            .into_iter()
            .filter(|ap| {
                let one: BTreeSet<ParentRef> = [ap.clone()].into();
                let desired = self.catalog.read(|s| expand_parents(s, &self.opts, &one));
                plan(&desired, &self.observed.of_parent(ap))
                    .iter()
                    .any(|s| !s.is_delete() && s.key().kind == AUTHORIZATION_POLICY)
            })
            .collect()
    }
}

/// The parent as the apiserver has it now (`None` when it does not exist).
pub(super) async fn fetch_parent(
    client: &Client,
    p: &ParentRef,
) -> Result<Option<Object>, kube::Error> {
    use crate::api::{AccessPolicyResource, ExternalServiceResource, VirtualGatewayResource};
    let ns = &p.namespace;
    Ok(match p.kind {
        GlooKind::ExternalService => Api::<ExternalServiceResource>::namespaced(client.clone(), ns)
            .get_opt(&p.name)
            .await?
            .map(|o| Object::ExternalService(o.into())),
        GlooKind::VirtualGateway => Api::<VirtualGatewayResource>::namespaced(client.clone(), ns)
            .get_opt(&p.name)
            .await?
            .map(|o| Object::VirtualGateway(o.into())),
        GlooKind::AccessPolicy => Api::<AccessPolicyResource>::namespaced(client.clone(), ns)
            .get_opt(&p.name)
            .await?
            .map(|o| Object::AccessPolicy(o.into())),
    })
}

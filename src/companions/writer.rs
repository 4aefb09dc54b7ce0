//! Apply a desired set of companions for some parents, all or nothing.
//!
//! 1. List what exists for those parents (by our labels, one list call per kind).
//! 2. Server-side apply each desired object (strict field validation). A name not in that list is
//!    first looked up: an object we do not manage is never overwritten (a conflict that names it).
//! 3. Delete the listed objects that are no longer desired.
//!
//! Any failure undoes what this call did (created objects deleted, changed ones restored, deleted
//! ones re-created), so a denied parent never leaves a half-written set behind.

use std::collections::BTreeSet;

use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    core::ApiResource,
};
use thiserror::Error;
use tracing::Instrument;

use crate::core::expand::{
    ParentRef,
    metadata::{MANAGED_BY, PARENT_KIND, PARENT_NAME, PARENT_NAMESPACE, label_value},
};
use crate::istio::IstioObject;

use super::{FIELD_MANAGER, kinds};

#[derive(Debug, Error)]
pub enum SyncError {
    #[error(
        "{kind} {namespace}/{name} exists and is not managed by egress-webhook: rename or delete it (it is never overwritten)"
    )]
    Conflict {
        kind: String,
        namespace: String,
        name: String,
    },
    #[error("writing {kind} {namespace}/{name}: {message}")]
    Write {
        kind: String,
        namespace: String,
        name: String,
        message: String,
    },
    #[error("listing the current {kind} companions: {message}")]
    List { kind: String, message: String },
    #[error("the companion writes did not finish within {0:?}")]
    Timeout(std::time::Duration),
}

/// What a sync did (for metrics and logs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
}

/// One step to take back.
enum Undo {
    Delete(ApiResource, String, String),
    Restore(ApiResource, Box<DynamicObject>),
}

#[derive(Clone)]
pub struct Writer {
    client: Client,
}

fn id(kind: &str, ns: &str, name: &str) -> String {
    format!("{kind} {ns}/{name}")
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// The parent a listed companion belongs to, from its labels.
fn parent_of(o: &DynamicObject) -> Option<(String, String, String)> {
    let l = o.metadata.labels.as_ref()?;
    Some((
        l.get(PARENT_KIND)?.clone(),
        l.get(PARENT_NAMESPACE)?.clone(),
        l.get(PARENT_NAME)?.clone(),
    ))
}

/// A previously stored object as something to apply again: server-set metadata removed.
fn restorable(mut o: DynamicObject) -> DynamicObject {
    o.metadata.managed_fields = None;
    o.metadata.resource_version = None;
    o.metadata.uid = None;
    o.metadata.creation_timestamp = None;
    o.metadata.generation = None;
    o
}

impl Writer {
    pub fn new(client: Client) -> Self {
        Writer { client }
    }

    fn api(&self, ar: &ApiResource, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, ar)
    }

    /// The companions that exist now for `parents`, in every namespace.
    pub async fn current(
        &self,
        parents: &BTreeSet<ParentRef>,
    ) -> Result<Vec<(ApiResource, DynamicObject)>, SyncError> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let names: BTreeSet<String> = parents.iter().map(|p| label_value(&p.name)).collect();
        let selector = format!(
            "{MANAGED_BY}={FIELD_MANAGER},{PARENT_NAME} in ({})",
            names.into_iter().collect::<Vec<_>>().join(",")
        );
        let wanted: BTreeSet<(String, String, String)> = parents
            .iter()
            .map(|p| {
                (
                    p.kind.as_str().to_string(),
                    label_value(&p.namespace),
                    label_value(&p.name),
                )
            })
            .collect();
        let mut out = Vec::new();
        for ar in kinds::all() {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
            let list = api
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| SyncError::List {
                    kind: ar.kind.clone(),
                    message: api_message(&e),
                })?;
            for o in list.items {
                if parent_of(&o).is_some_and(|p| wanted.contains(&p)) {
                    out.push((ar.clone(), o));
                }
            }
        }
        Ok(out)
    }

    /// Make the companions of `parents` exactly `desired`, within `deadline`; undo on failure.
    pub async fn sync(
        &self,
        desired: &[IstioObject],
        parents: &BTreeSet<ParentRef>,
        deadline: std::time::Duration,
    ) -> Result<SyncReport, SyncError> {
        let mut undo = Vec::new();
        let result = match tokio::time::timeout(
            deadline,
            self.sync_inner(desired, parents, &mut undo),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(SyncError::Timeout(deadline)),
        };
        if result.is_err() {
            self.rollback(undo).await;
        }
        result
    }

    async fn sync_inner(
        &self,
        desired: &[IstioObject],
        parents: &BTreeSet<ParentRef>,
        undo: &mut Vec<Undo>,
    ) -> Result<SyncReport, SyncError> {
        let current = self.current(parents).await?;
        let mut report = SyncReport::default();
        let apply = PatchParams::apply(FIELD_MANAGER)
            .force()
            .validation_strict();
        for d in desired {
            let Some(ar) = kinds::api_resource(d.kind) else {
                continue;
            };
            let (ns, name) = (d.namespace(), d.name());
            let api = self.api(&ar, ns);
            let existing = current
                .iter()
                .find(|(a, o)| {
                    a.kind == ar.kind
                        && o.metadata.namespace.as_deref() == Some(ns)
                        && o.metadata.name.as_deref() == Some(name)
                })
                .map(|(_, o)| o.clone());
            let write_err = |e: kube::Error| SyncError::Write {
                kind: d.kind.to_string(),
                namespace: ns.to_string(),
                name: name.to_string(),
                message: api_message(&e),
            };
            if existing.is_none() {
                // Not ours (by label): it must not exist at all.
                match api.get_opt(name).await.map_err(write_err)? {
                    None => {}
                    Some(o)
                        if o.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(MANAGED_BY))
                            .map(String::as_str)
                            == Some(FIELD_MANAGER) =>
                    {
                        // Ours, but for another parent (a name collision): treat as a conflict too.
                        return Err(SyncError::Conflict {
                            kind: d.kind.to_string(),
                            namespace: ns.to_string(),
                            name: name.to_string(),
                        });
                    }
                    Some(_) => {
                        return Err(SyncError::Conflict {
                            kind: d.kind.to_string(),
                            namespace: ns.to_string(),
                            name: name.to_string(),
                        });
                    }
                }
            }
            let op = if existing.is_some() {
                "update"
            } else {
                "create"
            };
            let span =
                tracing::info_span!("companion_write", kind = d.kind, namespace = ns, name, op);
            api.patch(name, &apply, &Patch::Apply(d))
                .instrument(span)
                .await
                .map_err(write_err)?;
            match existing {
                Some(prev) => {
                    undo.push(Undo::Restore(ar.clone(), Box::new(restorable(prev))));
                    report.updated.push(id(d.kind, ns, name));
                }
                None => {
                    undo.push(Undo::Delete(ar.clone(), ns.to_string(), name.to_string()));
                    report.created.push(id(d.kind, ns, name));
                }
            }
        }
        for (ar, o) in current {
            let (ns, name) = (
                o.metadata.namespace.clone().unwrap_or_default(),
                o.metadata.name.clone().unwrap_or_default(),
            );
            let still = desired
                .iter()
                .any(|d| d.kind == ar.kind && d.namespace() == ns && d.name() == name);
            if still {
                continue;
            }
            let span = tracing::info_span!("companion_write", kind = %ar.kind, namespace = %ns, name = %name, op = "delete");
            match self
                .api(&ar, &ns)
                .delete(&name, &DeleteParams::default())
                .instrument(span)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(SyncError::Write {
                        kind: ar.kind.clone(),
                        namespace: ns,
                        name,
                        message: api_message(&e),
                    });
                }
            }
            report.deleted.push(id(&ar.kind, &ns, &name));
            undo.push(Undo::Restore(ar, Box::new(restorable(o))));
        }
        Ok(report)
    }

    /// Best effort, in reverse order; failures are logged (the reconciler converges later).
    async fn rollback(&self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            let result = match step {
                Undo::Delete(ar, ns, name) => self
                    .api(&ar, &ns)
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ()),
                Undo::Restore(ar, o) => {
                    let (ns, name) = (
                        o.metadata.namespace.clone().unwrap_or_default(),
                        o.metadata.name.clone().unwrap_or_default(),
                    );
                    self.api(&ar, &ns)
                        .patch(
                            &name,
                            &PatchParams::apply(FIELD_MANAGER).force(),
                            &Patch::Apply(&o),
                        )
                        .await
                        .map(|_| ())
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "rolling back a companion write failed; the reconciler will converge");
            }
        }
    }
}

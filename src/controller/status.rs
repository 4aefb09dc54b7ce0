//! Writing a parent's status subresource after a reconcile, and the events that go with it.
//!
//! The status is computed by the pure core ([`crate::core::status`]) from the catalog, and
//! compared in memory with the stored status the catalog's watch delivered: an unchanged status
//! is not sent, so idle stays zero requests. The catalog does not announce a change that only
//! touches the status (`catalog::status_only`), so our own write triggers no reconcile.
//!
//! Only the parent as stored is given a status: an admission still pending (a create has no
//! `uid` yet, an update may still be refused after us) gets it once the watch delivers it.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::{Timestamp, Unit};
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::json;

use crate::companions::FIELD_MANAGER;
use crate::core::{
    expand::ParentRef,
    status::{Sync, desired_status, needs_write},
};

use super::Controller;
use super::events::Reason;

/// Companions created by an admission are announced (`CompanionsCreated`) by the first
/// reconcile that sees the parent stored; a record nobody takes (a follower's admission, a
/// denied one) is dropped after this long.
pub const CREATED_RECORD_TTL: Duration = Duration::from_secs(60);

/// Companions an admission created, per parent, until the parent is stored.
#[derive(Default)]
pub struct Created(std::sync::Mutex<HashMap<ParentRef, (Instant, BTreeSet<String>)>>);

impl Created {
    pub fn record(&self, p: ParentRef, companions: impl IntoIterator<Item = String>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (t, _)| t.elapsed() < CREATED_RECORD_TTL);
        let e = m
            .entry(p)
            .or_insert_with(|| (Instant::now(), BTreeSet::new()));
        e.1.extend(companions);
    }

    /// Is a `CompanionsCreated` event waiting for `p`? (Then the reconcile that adds the owner
    /// references is part of that creation, not an update worth its own event.)
    pub fn contains(&self, p: &ParentRef) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(p)
    }

    fn take(&self, p: &ParentRef) -> Option<BTreeSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(p)
            .map(|(_, s)| s)
    }
}

fn api_resource(p: &ParentRef) -> ApiResource {
    let plural = match p.kind {
        crate::core::GlooKind::ExternalService => "externalservices",
        crate::core::GlooKind::VirtualGateway => "virtualgateways",
        crate::core::GlooKind::AccessPolicy => "accesspolicies",
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(p.kind.group(), crate::api::VERSION, p.kind.as_str()),
        plural,
    )
}

impl Controller {
    /// An event on `p`, with its uid when the catalog has it stored.
    pub(super) fn event(&self, p: &ParentRef, reason: Reason, note: String) {
        let uid = self
            .catalog
            .stored_parent(p)
            .and_then(|o| o.uid().map(str::to_string));
        self.events.publish(p, uid, reason, note);
    }

    /// Bring `p`'s status to what `sync` and the catalog say, if it differs from the stored one;
    /// announce the companions an admission created for it, once it is stored.
    pub(super) async fn update_status(&self, p: &ParentRef, sync: Sync) {
        let Some(obj) = self.catalog.stored_parent(p) else {
            return;
        };
        let Some(uid) = obj.uid().map(str::to_string) else {
            return;
        };
        if let Some(created) = self.created.take(p) {
            self.events.publish(
                p,
                Some(uid.clone()),
                Reason::CompanionsCreated,
                format!(
                    "created {}",
                    created.into_iter().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let previous = obj.to_value().get("status").cloned();
        let now = Timestamp::now()
            .round(Unit::Second)
            .unwrap_or_else(|_| Timestamp::now())
            .to_string();
        let desired = self
            .catalog
            .read(|s| desired_status(&obj, s, &self.opts, &sync, previous.as_ref(), &now));
        if !needs_write(previous.as_ref(), &desired) {
            return;
        }
        let ar = api_resource(p);
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &p.namespace, &ar);
        // Server-side apply under our field manager: a field we no longer set (a message that
        // went away) is removed, fields others set are left alone. The uid precondition: never
        // the status of a same-named successor.
        let body = json!({
            "apiVersion": ar.api_version,
            "kind": ar.kind,
            "metadata": {"name": p.name, "namespace": p.namespace, "uid": uid},
            "status": desired,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let result = tokio::time::timeout(
            super::writer::REQUEST_TIMEOUT,
            api.patch_status(&p.name, &params, &Patch::Apply(&body)),
        )
        .await;
        match result {
            Ok(Ok(_)) => {
                self.metrics.status_write(p.kind.as_str(), "ok");
                tracing::debug!(parent = ?p, approval = %desired["common"]["State"]["approval"], "status written");
            }
            // Deleted (or replaced) meanwhile: its watch event follows.
            Ok(Err(kube::Error::Api(s))) if s.code == 404 || s.code == 409 => {
                self.metrics.status_write(p.kind.as_str(), "error");
            }
            Ok(Err(e)) => {
                self.metrics.status_write(p.kind.as_str(), "error");
                tracing::warn!(parent = ?p, error = %e, "writing the status failed; the next reconcile or resync retries");
            }
            Err(_) => {
                self.metrics.status_write(p.kind.as_str(), "error");
                tracing::warn!(parent = ?p, "writing the status: no answer in time");
            }
        }
    }
}

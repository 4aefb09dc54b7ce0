//! Lockdown NetworkPolicies in the cluster (issue 14 item 6; the policy itself is
//! `core::lockdown`). A watch of our NetworkPolicies (our managed-by label and the policy's
//! name) keeps what the cluster holds; the leader applies a namespace's desired policy only when
//! the observed one differs or is missing, and deletes ours where the lockdown label went. Any
//! event of that watch (a policy edited or deleted by hand) wakes the audit loop, which repairs
//! at once; on an idle cluster nothing is sent.
//!
//! kube-runtime's watcher and reflector store do the listing, watching, re-listing and backoff;
//! what is left here is the comparison. Not kube-runtime's `Controller`: the desired state is
//! computed from the catalog (namespace labels, gateways, Services), not from the watched
//! objects, and the audit loop already owns the leader check and the catalog's snapshot.
//!
//! The watch reports into the catalog's watch health (`/readyz` detail,
//! `egress_webhook_watch_connected{kind="NetworkPolicy"}`) like the catalog's own.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions},
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::catalog::Catalog;
use crate::companions::FIELD_MANAGER;
use crate::core::expand::metadata::{MANAGED_BY, MANAGER};
use crate::core::lockdown::{Desired, POLICY_NAME};
use crate::metrics::Metrics;

use super::own_writes::OwnWrites;

/// The watch's name in the catalog's watch health.
pub const HEALTH_NAME: &str = "NetworkPolicy";

/// Our policies only: by label, and by name (a NetworkPolicy someone else labelled as ours
/// under another name is not ours to delete).
fn watch_config() -> watcher::Config {
    watcher::Config::default()
        .labels(&format!("{MANAGED_BY}={MANAGER}"))
        .fields(&format!("metadata.name={POLICY_NAME}"))
        .any_semantic()
}

/// Does the apiserver answer a one-object list of our NetworkPolicies (the catalog's probe of a
/// failing watch)?
pub async fn answers(client: Client) -> bool {
    Api::<NetworkPolicy>::all(client)
        .list_metadata(&ListParams::default().limit(1))
        .await
        .is_ok()
}

/// The observed policies, what this replica sent and has not seen back yet, and the watch.
pub struct Lockdown {
    observed: Store<NetworkPolicy>,
    changed: Arc<Notify>,
    sent: OwnWrites<Value>,
    task: JoinHandle<()>,
}

impl Drop for Lockdown {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Lockdown {
    /// Start the watch (every replica watches, so that a new leader compares at once).
    pub fn start(client: Client, catalog: Arc<Catalog>) -> Lockdown {
        let (observed, writer) = reflector::store();
        let changed = Arc::new(Notify::new());
        let task = tokio::spawn(watch(client, catalog, writer, changed.clone()));
        Lockdown {
            observed,
            changed,
            sent: OwnWrites::default(),
            task,
        }
    }

    /// Resolves at the next change the watch saw (a policy added, edited, deleted; a re-list).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Has the watch listed once?
    fn ready(&self) -> bool {
        matches!(
            self.observed.wait_until_ready().now_or_never(),
            Some(Ok(()))
        )
    }

    /// Bring our policies in line with `want`; sends nothing when they already are.
    pub async fn sync(&mut self, client: &Client, want: &Desired, metrics: &Metrics) {
        if !self.ready() {
            return;
        }
        let observed: BTreeMap<String, Arc<NetworkPolicy>> = self
            .observed
            .state()
            .into_iter()
            .filter(|np| np.name_any() == POLICY_NAME)
            .filter_map(|np| np.namespace().map(|ns| (ns, np)))
            .collect();
        for ns in observed.keys().chain(want.policies.keys()) {
            let rv = observed.get(ns).and_then(|np| np.resource_version());
            self.sent.observe(ns, rv.as_deref());
        }
        for (ns, np) in &observed {
            if !want.unlocked.contains(ns) {
                continue;
            }
            let rv = np.resource_version();
            if self.sent.already_sent(ns, rv.as_deref(), None) {
                continue;
            }
            let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
            // The version we saw: if it changed since, the watch brings the change and the
            // next comparison decides again.
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: rv.clone(),
                    uid: np.uid(),
                }),
                ..DeleteParams::default()
            };
            metrics.guardrail_write("NetworkPolicy", "delete");
            match api.delete(POLICY_NAME, &params).await {
                Ok(_) => {
                    tracing::info!(namespace = %ns, "lockdown label gone: NetworkPolicy deleted");
                    self.sent.record(ns.clone(), rv, None);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.sent.record(ns.clone(), rv, None);
                }
                Err(e) => {
                    tracing::warn!(namespace = %ns, error = %e, "deleting the lockdown NetworkPolicy failed")
                }
            }
        }
        for (ns, np) in &want.policies {
            let seen = observed.get(ns);
            if seen.is_some_and(|o| matches(o, np)) {
                continue;
            }
            let rv = seen.and_then(|o| o.resource_version());
            if self.sent.already_sent(ns, rv.as_deref(), Some(np)) {
                continue;
            }
            let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
            let params = PatchParams::apply(FIELD_MANAGER).force();
            metrics.guardrail_write("NetworkPolicy", "apply");
            match api.patch(POLICY_NAME, &params, &Patch::Apply(np)).await {
                Ok(_) => {
                    let why = if seen.is_some() { "changed" } else { "missing" };
                    tracing::info!(namespace = %ns, was = why, "lockdown NetworkPolicy applied");
                    self.sent.record(ns.clone(), rv, Some(np.clone()));
                }
                Err(e) => {
                    tracing::warn!(namespace = %ns, error = %e, "applying the lockdown NetworkPolicy failed")
                }
            }
        }
        self.sent
            .retain(|ns| want.policies.contains_key(ns) || observed.contains_key(ns));
    }
}

/// Does the observed policy say what `desired` says (its spec, compared as typed values so that
/// the apiserver's serialization does not matter, and our label)?
fn matches(observed: &NetworkPolicy, desired: &Value) -> bool {
    let spec: Option<NetworkPolicySpec> = serde_json::from_value(desired["spec"].clone()).ok();
    let labelled = observed.labels().get(MANAGED_BY).map(String::as_str) == Some(MANAGER);
    labelled && spec.is_some() && observed.spec == spec
}

async fn watch(
    client: Client,
    catalog: Arc<Catalog>,
    writer: reflector::store::Writer<NetworkPolicy>,
    changed: Arc<Notify>,
) {
    let api: Api<NetworkPolicy> = Api::all(client);
    let stream = reflector::reflector(
        writer,
        watcher(api, watch_config()).backoff(super::watch_backoff()),
    );
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(e) => {
                catalog.health.ok(HEALTH_NAME);
                // A list in progress is not a state to compare with; its end is.
                if matches!(
                    e,
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone
                ) {
                    changed.notify_one();
                }
            }
            Err(e) => {
                catalog.health.failed(HEALTH_NAME);
                tracing::warn!(kind = HEALTH_NAME, error = %e, "watch failed; retrying with backoff");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Options;
    use crate::core::snapshot::Snapshot;

    #[test]
    fn a_policy_as_the_apiserver_returns_it_matches_and_an_edit_does_not() {
        let snap = Snapshot::new(Vec::new(), &Options::default());
        let desired = crate::core::lockdown::network_policy("a", &snap);
        let stored: NetworkPolicy = serde_json::from_value(desired.clone()).unwrap();
        assert!(matches(&stored, &desired));
        let mut edited = stored.clone();
        edited.spec.as_mut().unwrap().egress.as_mut().unwrap().pop();
        assert!(!matches(&edited, &desired));
        let mut unlabelled = stored;
        unlabelled.metadata.labels = None;
        assert!(!matches(&unlabelled, &desired));
    }
}

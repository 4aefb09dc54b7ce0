//! The cluster source of the Catalog: one watch per kind (ExternalService, VirtualGateway,
//! AccessPolicy, Service, ServiceAccount), every event applied to the Catalog, the mesh's
//! outbound policy (`mesh_watch`), and the live lookups ([`LiveRefresher`]) that stand between a
//! stale cache and a wrong denial.
//!
//! Events: an added or modified object is defaulted (as the mutating webhook would have) and
//! upserted; a deleted one is removed; a (re-)list replaces every object of its kind at once.
//! The catalog is marked synced (`/readyz` true) when the first list of every kind is in.
//!
//! Objects are watched as `DynamicObject`s and decoded one by one, not as typed lists: an object
//! that does not decode into our types is skipped with a warning instead of failing the whole
//! list (a typed watcher would retry that list forever and never sync).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Instant;

use futures::{FutureExt, StreamExt, future::BoxFuture};
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, ListParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::catalog::{Catalog, Reference, Refresher, placeholder};
use crate::cluster::fresh_list::FreshAfter;
use crate::core::{Object, Options, defaults::default_object};

/// The kinds the catalog watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ExternalService,
    VirtualGateway,
    AccessPolicy,
    Service,
    ServiceAccount,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::ExternalService,
        Kind::VirtualGateway,
        Kind::AccessPolicy,
        Kind::Service,
        Kind::ServiceAccount,
    ];

    /// As [`Object::kind_name`].
    pub fn name(self) -> &'static str {
        match self {
            Kind::ExternalService => "ExternalService",
            Kind::VirtualGateway => "VirtualGateway",
            Kind::AccessPolicy => "AccessPolicy",
            Kind::Service => "Service",
            Kind::ServiceAccount => "ServiceAccount",
        }
    }

    pub fn api_resource(self) -> ApiResource {
        match self {
            Kind::ExternalService => ApiResource::erase::<crate::api::ExternalServiceResource>(&()),
            Kind::VirtualGateway => ApiResource::erase::<crate::api::VirtualGatewayResource>(&()),
            Kind::AccessPolicy => ApiResource::erase::<crate::api::AccessPolicyResource>(&()),
            Kind::Service => ApiResource::erase::<Service>(&()),
            Kind::ServiceAccount => ApiResource::erase::<ServiceAccount>(&()),
        }
    }
}

/// A dynamic object as one of ours. List items of built-in kinds carry no apiVersion/kind, so
/// both are set from the resource; managedFields and the last-applied annotation are dropped
/// (no rule reads them, and they are most of an object's size).
pub fn decode(obj: DynamicObject, ar: &ApiResource) -> Result<Object, String> {
    let mut value = serde_json::to_value(&obj).map_err(|e| e.to_string())?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), Value::from(ar.api_version.clone()));
        map.insert("kind".into(), Value::from(ar.kind.clone()));
    }
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    Object::from_value(value).map_err(|e| e.to_string())
}

/// The running watches; dropping it stops them.
pub struct ClusterSource {
    tasks: Vec<JoinHandle<()>>,
}

impl ClusterSource {
    /// Stop every watch now.
    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for ClusterSource {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A catalog fed by watches on the cluster behind `client`, with live lookups, and the watches
/// (spawned on the current tokio runtime).
pub fn cluster_catalog(client: Client, opts: &Options) -> (Arc<Catalog>, ClusterSource) {
    let catalog =
        Arc::new(Catalog::new(opts).with_refresher(Arc::new(LiveRefresher::new(client.clone()))));
    let source = start(client, catalog.clone());
    (catalog, source)
}

/// Start one watch per kind and the mesh ConfigMaps' watch, feeding `catalog`.
pub fn start(client: Client, catalog: Arc<Catalog>) -> ClusterSource {
    // The kinds, the guardrails' watches and the mesh ConfigMaps' (`mesh_watch`).
    let pending = Arc::new(AtomicUsize::new(
        Kind::ALL.len() + super::guardrail_watch::WATCHES + 1,
    ));
    let mut tasks: Vec<JoinHandle<()>> = Kind::ALL
        .into_iter()
        .map(|kind| {
            tokio::spawn(watch(
                client.clone(),
                kind,
                catalog.clone(),
                pending.clone(),
            ))
        })
        .collect();
    tasks.extend(super::guardrail_watch::start(
        client.clone(),
        catalog.clone(),
        pending.clone(),
    ));
    tasks.push(tokio::spawn(super::mesh_watch::watch(
        client.clone(),
        catalog.clone(),
        pending,
    )));
    tasks.push(tokio::spawn(probe_failing(client, catalog)));
    ClusterSource { tasks }
}

/// While a watch fails, ask the apiserver every 2 s for one object of its kind; once it answers,
/// the kind counts as connected again. Needed because a watch that resumes after an outage
/// (kube-runtime re-watches from its last resourceVersion and replays what it missed) delivers
/// no event of its own when nothing changed, and a quiet kind would look down for ever. Sends
/// nothing while every watch is healthy.
async fn probe_failing(client: Client, catalog: Arc<Catalog>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (name, _) in catalog.health.failing() {
            if name == super::mesh_watch::HEALTH_NAME {
                if super::mesh_watch::answers(client.clone()).await {
                    catalog.health.ok(name);
                }
                continue;
            }
            if name == super::lockdown::HEALTH_NAME {
                if super::lockdown::answers(client.clone()).await {
                    catalog.health.ok(name);
                }
                continue;
            }
            if let Some(answered) = super::guardrail_watch::answers(client.clone(), name).await {
                if answered {
                    catalog.health.ok(name);
                }
                continue;
            }
            let Some(kind) = Kind::ALL.into_iter().find(|k| k.name() == name) else {
                continue;
            };
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
            if api
                .list_metadata(&ListParams::default().limit(1))
                .await
                .is_ok()
            {
                catalog.health.ok(name);
            }
        }
    }
}

/// Test-only: `EGRESS_WEBHOOK_TEST_WATCH_DELAY=VirtualGateway=3000` starts the watch of that kind
/// this many milliseconds late, the way a slow first list would (tests/e2e_restart.rs: nothing
/// may be written or deleted before every kind has listed).
pub const TEST_WATCH_DELAY_ENV: &str = "EGRESS_WEBHOOK_TEST_WATCH_DELAY";

fn test_watch_delay(kind: Kind) -> Option<std::time::Duration> {
    let v = std::env::var(TEST_WATCH_DELAY_ENV).ok()?;
    let (k, ms) = v.split_once('=')?;
    (k == kind.name())
        .then(|| ms.parse().ok())
        .flatten()
        .map(std::time::Duration::from_millis)
}

async fn watch(client: Client, kind: Kind, catalog: Arc<Catalog>, pending: Arc<AtomicUsize>) {
    if let Some(delay) = test_watch_delay(kind) {
        tracing::warn!(
            kind = kind.name(),
            ?delay,
            "test-only delay of this watch ({TEST_WATCH_DELAY_ENV})"
        );
        tokio::time::sleep(delay).await;
    }
    let ar = kind.api_resource();
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let opts = catalog.options().clone();
    let default = |o: Object| default_object(o, &opts);
    // `any_semantic`: the first list may come from the apiserver's watch cache (cheap); the watch
    // that follows brings it up to date.
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .backoff(crate::cluster::watch_backoff());
    let mut stream = std::pin::pin!(stream);
    let mut relist: Vec<Object> = Vec::new();
    let mut synced = false;
    while let Some(event) = stream.next().await {
        match &event {
            Ok(_) => catalog.health.ok(kind.name()),
            Err(_) => catalog.health.failed(kind.name()),
        }
        match event {
            Ok(watcher::Event::Init) => relist.clear(),
            Ok(watcher::Event::InitApply(o)) => {
                if let Some(obj) = decode_or_warn(o, &ar, kind) {
                    relist.push(default(obj));
                }
            }
            Ok(watcher::Event::InitDone) => {
                let n = relist.len();
                // A full list is tens of milliseconds of CPU at 20,000 objects (every object
                // compared with the stored one): on the blocking pool, so that the async worker
                // keeps answering reviews meanwhile (issue 13, item 4).
                let (shared, listed) = (catalog.clone(), std::mem::take(&mut relist));
                let replaced = tokio::task::spawn_blocking(move || {
                    shared.replace_kind(kind.name(), listed);
                    crate::memory::release_after_burst();
                })
                .await;
                if let Err(e) = replaced {
                    // Only a panic in replace_kind (a bug) or a runtime shutting down get here.
                    tracing::error!(kind = kind.name(), error = %e, "applying a full list failed");
                    continue;
                }
                tracing::debug!(kind = kind.name(), objects = n, "listed");
                if !synced {
                    synced = true;
                    if pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                        catalog.mark_synced();
                        tracing::info!(counts = ?catalog.counts(), "catalog synced with the cluster");
                    }
                }
            }
            Ok(watcher::Event::Apply(o)) => {
                let (ns, name) = (o.metadata.namespace.clone(), o.metadata.name.clone());
                match decode_or_warn(o, &ar, kind) {
                    Some(obj) => catalog.upsert(default(obj)),
                    // A stored version that no longer decodes must not linger as it was.
                    None => {
                        if let Some(gone) = placeholder(
                            kind.name(),
                            ns.as_deref().unwrap_or("default"),
                            name.as_deref().unwrap_or(""),
                        ) {
                            catalog.remove(&gone);
                        }
                    }
                }
            }
            Ok(watcher::Event::Delete(o)) => {
                if let Some(gone) = placeholder(
                    kind.name(),
                    o.metadata.namespace.as_deref().unwrap_or("default"),
                    o.metadata.name.as_deref().unwrap_or(""),
                ) {
                    catalog.remove(&gone);
                }
            }
            Err(e) => tracing::warn!(
                kind = kind.name(),
                error = %e,
                "watch failed; retrying with backoff"
            ),
        }
    }
}

fn decode_or_warn(o: DynamicObject, ar: &ApiResource, kind: Kind) -> Option<Object> {
    let id = format!(
        "{}/{}",
        o.metadata.namespace.as_deref().unwrap_or(""),
        o.metadata.name.as_deref().unwrap_or("")
    );
    match decode(o, ar) {
        Ok(obj) => Some(obj),
        Err(e) => {
            tracing::warn!(kind = kind.name(), object = %id, error = %e, "object skipped: it does not decode");
            None
        }
    }
}

/// Live lookups in the apiserver: GET by namespace and name, or a list by field selector for a
/// name in any namespace. Needs get and list on the kinds (the webhook's ClusterRole).
pub struct LiveRefresher {
    client: Client,
    /// G5's full AccessPolicy list, shared; see `access_policies`.
    access_policies: FreshAfter<Vec<Object>>,
}

impl LiveRefresher {
    pub fn new(client: Client) -> Self {
        LiveRefresher {
            client,
            access_policies: FreshAfter::default(),
        }
    }

    /// Every AccessPolicy in the apiserver, for a review that asked at `asked`. A G5 refusal
    /// lists them all (a policy in any namespace may select the ExternalService), and with
    /// thousands of policies a list is megabytes for the apiserver to read and send: a burst of
    /// refusals shares lists ([`FreshAfter`]: one at a time, each sent after its reviews asked,
    /// so it holds every policy created before they came).
    async fn access_policies(&self, asked: Instant) -> Result<Vec<Object>, String> {
        let items = self
            .access_policies
            .get(asked, || async {
                let ar = Kind::AccessPolicy.api_resource();
                let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
                let list = api
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| format!("LIST {}: {e}", Reference::AccessPolicies))?;
                // One policy that does not decode must not hide the others.
                Ok::<_, String>(
                    list.items
                        .into_iter()
                        .filter_map(|o| decode_or_warn(o, &ar, Kind::AccessPolicy))
                        .collect::<Vec<Object>>(),
                )
            })
            .await?;
        Ok(items.as_ref().clone())
    }

    async fn fetch_one(&self, r: &Reference, asked: Instant) -> Result<Vec<Object>, String> {
        let (kind, namespace, name) = match r {
            Reference::AccessPolicies => return self.access_policies(asked).await,
            Reference::VirtualGateway { namespace, name } => {
                (Kind::VirtualGateway, Some(namespace), name)
            }
            Reference::ExternalService { namespace, name } => {
                (Kind::ExternalService, namespace.as_ref(), name)
            }
        };
        let ar = kind.api_resource();
        let found = match namespace {
            Some(ns) => {
                let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
                api.get_opt(name)
                    .await
                    .map_err(|e| format!("GET {r}: {e}"))?
                    .into_iter()
                    .collect::<Vec<_>>()
            }
            None => {
                let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
                api.list(&ListParams::default().fields(&format!("metadata.name={name}")))
                    .await
                    .map_err(|e| format!("LIST {r}: {e}"))?
                    .items
            }
        };
        found.into_iter().map(|o| decode(o, &ar)).collect()
    }
}

impl Refresher for LiveRefresher {
    fn fetch<'a>(&'a self, refs: &'a [Reference]) -> BoxFuture<'a, Result<Vec<Object>, String>> {
        async move {
            let asked = Instant::now();
            let all =
                futures::future::join_all(refs.iter().map(|r| self.fetch_one(r, asked))).await;
            let mut out = Vec::new();
            for r in all {
                out.extend(r?);
            }
            Ok(out)
        }
        .boxed()
    }

    fn namespace_labels<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Option<std::collections::BTreeMap<String, String>>, String>> {
        async move {
            let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
            let found = api
                .get_metadata_opt(namespace)
                .await
                .map_err(|e| format!("GET namespace {namespace}: {e}"))?;
            Ok(found.map(|ns| ns.metadata.labels.unwrap_or_default()))
        }
        .boxed()
    }
}

//! The watches behind the guardrails (issue 14): EgressGuardrails, and the labels of every
//! Namespace (metadata only: a namespace's spec and status are of no use here). They feed the
//! catalog's [`Guardrails`](crate::core::guardrails::Guardrails) and count towards its first
//! sync like the watches of `catalog`: admission must not run before it knows the guardrails.
//!
//! A guardrail is a typed watch: its schema (all fields optional, strings and booleans) admits
//! no stored object our type cannot read.

use std::collections::BTreeMap;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};
use tokio::task::JoinHandle;

use crate::api::EgressGuardrail;
use crate::catalog::Catalog;

/// How many watches [`start`] spawns (each counts once towards the catalog's sync).
pub const WATCHES: usize = 2;

pub fn start(
    client: Client,
    catalog: Arc<Catalog>,
    pending: Arc<AtomicUsize>,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(guardrails(client.clone(), catalog.clone(), pending.clone())),
        tokio::spawn(namespaces(client, catalog, pending)),
    ]
}

/// The watches' names in the catalog's watch health (`/readyz` detail and
/// `egress_webhook_watch_connected{kind}`), like the other watches of the catalog.
pub const GUARDRAIL_HEALTH: &str = "EgressGuardrail";
pub const NAMESPACE_HEALTH: &str = "Namespace";

/// Does the apiserver answer a one-object list of the watch named `name` (one of the two
/// above)? How the catalog's probe tells that a quiet watch is connected again after an outage.
pub async fn answers(client: Client, name: &str) -> Option<bool> {
    let one = kube::api::ListParams::default().limit(1);
    Some(match name {
        GUARDRAIL_HEALTH => Api::<EgressGuardrail>::all(client)
            .list_metadata(&one)
            .await
            .is_ok(),
        NAMESPACE_HEALTH => Api::<Namespace>::all(client)
            .list_metadata(&one)
            .await
            .is_ok(),
        _ => return None,
    })
}

/// One of the catalog's watches has listed for the first time.
fn listed(catalog: &Catalog, pending: &AtomicUsize, synced: &mut bool) {
    if !*synced {
        *synced = true;
        if pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            catalog.mark_synced();
            tracing::info!(counts = ?catalog.counts(), "catalog synced with the cluster");
        }
    }
}

async fn guardrails(client: Client, catalog: Arc<Catalog>, pending: Arc<AtomicUsize>) {
    let api: Api<EgressGuardrail> = Api::all(client);
    let stream =
        watcher(api, watcher::Config::default().any_semantic()).backoff(super::watch_backoff());
    let mut stream = std::pin::pin!(stream);
    let mut relist = Vec::new();
    let mut synced = false;
    while let Some(event) = stream.next().await {
        match &event {
            Ok(_) => catalog.health.ok(GUARDRAIL_HEALTH),
            Err(_) => catalog.health.failed(GUARDRAIL_HEALTH),
        }
        match event {
            Ok(watcher::Event::Init) => relist.clear(),
            Ok(watcher::Event::InitApply(g)) => relist.push(g),
            Ok(watcher::Event::InitDone) => {
                let all = std::mem::take(&mut relist);
                tracing::debug!(guardrails = all.len(), "EgressGuardrails listed");
                catalog.update_guardrails(|g| g.replace_all(all));
                listed(&catalog, &pending, &mut synced);
            }
            Ok(watcher::Event::Apply(g)) => catalog.update_guardrails(|all| all.upsert(g)),
            Ok(watcher::Event::Delete(g)) => {
                let name = g.metadata.name.unwrap_or_default();
                catalog.update_guardrails(|all| all.remove(&name));
            }
            Err(e) => {
                tracing::warn!(kind = "EgressGuardrail", error = %e, "watch failed; retrying with backoff")
            }
        }
    }
}

async fn namespaces(client: Client, catalog: Arc<Catalog>, pending: Arc<AtomicUsize>) {
    // Metadata-only requests (kube 5 sends them for an Api of PartialObjectMeta).
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let stream =
        watcher(api, watcher::Config::default().any_semantic()).backoff(super::watch_backoff());
    let mut stream = std::pin::pin!(stream);
    let mut relist: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut relist_terminating: Vec<String> = Vec::new();
    let mut synced = false;
    let entry =
        |m: kube::core::ObjectMeta| (m.name.unwrap_or_default(), m.labels.unwrap_or_default());
    // Lockdown leaves a namespace alone once it is being deleted (src/cluster/lockdown.rs).
    let terminating = |m: &kube::core::ObjectMeta| m.deletion_timestamp.is_some();
    while let Some(event) = stream.next().await {
        match &event {
            Ok(_) => catalog.health.ok(NAMESPACE_HEALTH),
            Err(_) => catalog.health.failed(NAMESPACE_HEALTH),
        }
        match event {
            Ok(watcher::Event::Init) => {
                relist.clear();
                relist_terminating.clear();
            }
            Ok(watcher::Event::InitApply(ns)) => {
                if terminating(&ns.metadata) {
                    relist_terminating.push(ns.metadata.name.clone().unwrap_or_default());
                }
                relist.push(entry(ns.metadata));
            }
            Ok(watcher::Event::InitDone) => {
                let all = std::mem::take(&mut relist);
                let ending = std::mem::take(&mut relist_terminating);
                catalog.update_guardrails(|g| {
                    g.replace_namespaces(all.clone());
                    for (name, _) in &all {
                        g.set_terminating(name, ending.contains(name));
                    }
                });
                listed(&catalog, &pending, &mut synced);
            }
            Ok(watcher::Event::Apply(ns)) => {
                let ending = terminating(&ns.metadata);
                let (name, labels) = entry(ns.metadata);
                catalog.update_guardrails(|g| {
                    g.set_namespace(&name, labels);
                    g.set_terminating(&name, ending);
                });
            }
            Ok(watcher::Event::Delete(ns)) => {
                let name = ns.metadata.name.unwrap_or_default();
                catalog.update_guardrails(|g| g.remove_namespace(&name));
            }
            Err(e) => {
                tracing::warn!(kind = "Namespace", error = %e, "watch failed; retrying with backoff")
            }
        }
    }
}

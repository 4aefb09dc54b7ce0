//! The mesh's outbound traffic policy for M1: a watch of the ConfigMaps in `istio-system`
//! (Istio's `istio`, and `istio-<rev>` of revisioned control planes; key `mesh`), folded into one
//! [`Outbound`] on the catalog at every change (`mesh_config::outbound_of`: none at all is
//! Istio's default ALLOW_ANY). Its first list counts towards the catalog's sync, like the kinds'
//! watches, so that the first review already knows the policy. RBAC: the Role
//! `egress-webhook-mesh-config` in istio-system (manifests/base/rbac.yaml).

use std::collections::BTreeMap;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::ListParams,
    runtime::{WatchStreamExt, watcher},
};

use crate::catalog::Catalog;
use crate::core::mesh_config::{MeshConfig, from_mesh_key, outbound_of};

use super::live::{MESH_NAMESPACE, is_mesh_config_map};

/// The watch's name in the catalog's watch health (`egress_webhook_watch_connected{kind}`).
pub const HEALTH_NAME: &str = "ConfigMap";

fn api(client: Client) -> Api<ConfigMap> {
    Api::namespaced(client, MESH_NAMESPACE)
}

/// Does the apiserver answer a list of the ConfigMaps now (the catalog's probe of a failing
/// watch)?
pub async fn answers(client: Client) -> bool {
    api(client)
        .list_metadata(&ListParams::default().limit(1))
        .await
        .is_ok()
}

/// Watch until aborted; `pending` counts the watches whose first list is not in yet (the last
/// one marks the catalog synced).
pub async fn watch(client: Client, catalog: Arc<Catalog>, pending: Arc<AtomicUsize>) {
    let stream = watcher(api(client), watcher::Config::default().any_semantic())
        .backoff(super::watch_backoff());
    let mut stream = std::pin::pin!(stream);
    let mut configs: BTreeMap<String, MeshConfig> = BTreeMap::new();
    let mut relist: BTreeMap<String, MeshConfig> = BTreeMap::new();
    let mut synced = false;
    while let Some(event) = stream.next().await {
        match &event {
            Ok(_) => catalog.health.ok(HEALTH_NAME),
            Err(_) => catalog.health.failed(HEALTH_NAME),
        }
        match event {
            Ok(watcher::Event::Init) => relist.clear(),
            Ok(watcher::Event::InitApply(cm)) => {
                if let Some((name, Some(mesh))) = read(&cm) {
                    relist.insert(name, mesh);
                }
            }
            Ok(watcher::Event::InitDone) => {
                configs = std::mem::take(&mut relist);
                publish(&catalog, &configs);
                if !synced {
                    synced = true;
                    if pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                        catalog.mark_synced();
                        tracing::info!(counts = ?catalog.counts(), "catalog synced with the cluster");
                    }
                }
            }
            Ok(watcher::Event::Apply(cm)) => match read(&cm) {
                Some((name, Some(mesh))) => {
                    configs.insert(name, mesh);
                    publish(&catalog, &configs);
                }
                // A mesh config that does not parse: istiod keeps the one it had, and so do we.
                Some((_, None)) => {}
                None => {
                    // No longer a mesh config (its `mesh` key removed).
                    let name = cm.metadata.name.unwrap_or_default();
                    if configs.remove(&name).is_some() {
                        publish(&catalog, &configs);
                    }
                }
            },
            Ok(watcher::Event::Delete(cm)) => {
                if configs
                    .remove(cm.metadata.name.as_deref().unwrap_or(""))
                    .is_some()
                {
                    publish(&catalog, &configs);
                }
            }
            Err(e) => tracing::warn!(
                kind = HEALTH_NAME,
                namespace = MESH_NAMESPACE,
                error = %e,
                "watch of the mesh ConfigMaps failed; retrying with backoff"
            ),
        }
    }
}

/// A mesh ConfigMap's name and MeshConfig (`None`: its `mesh` does not parse, logged); `None`
/// for any other ConfigMap of the namespace (Istio keeps leader-election and CA ConfigMaps there).
fn read(cm: &ConfigMap) -> Option<(String, Option<MeshConfig>)> {
    let name = cm.metadata.name.clone()?;
    if !is_mesh_config_map(&name) {
        return None;
    }
    let text = cm.data.as_ref()?.get("mesh")?;
    let source = format!("ConfigMap {MESH_NAMESPACE}/{name}");
    match from_mesh_key(&source, text) {
        Ok(mesh) => Some((name, Some(mesh))),
        Err(e) => {
            tracing::warn!(error = %e, "mesh config skipped: it does not parse");
            Some((name, None))
        }
    }
}

fn publish(catalog: &Catalog, configs: &BTreeMap<String, MeshConfig>) {
    let list: Vec<(String, MeshConfig)> = configs
        .iter()
        .map(|(n, m)| (n.clone(), m.clone()))
        .collect();
    let outbound = outbound_of(MESH_NAMESPACE, &list);
    if catalog.outbound().as_ref() != Some(&outbound) {
        tracing::info!(
            mode = outbound.mode.as_str(),
            source = %outbound.source,
            "mesh outbound traffic policy"
        );
        catalog.set_outbound(Some(outbound));
    }
}

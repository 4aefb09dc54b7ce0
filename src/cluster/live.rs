//! One-shot reads of a live cluster for the offline commands (`check`, `render`, `access` with
//! `--kubeconfig`): the objects the catalog watches (the same kinds, decoded and defaulted the
//! same way, `catalog::decode`), the AuthorizationPolicies, Istio's mesh configuration, and the
//! EgressGuardrails with the Namespaces' labels (what `guardrail_watch` feeds the admission).
//! A list, not a watch: the commands answer once and exit.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams},
};
use serde_json::Value;

use crate::api::EgressGuardrail;
use crate::core::mesh_config::{self, MeshConfig};
use crate::core::{Object, Options, defaults::default_object};

use super::catalog::{Kind, decode};

/// Where the mesh configuration lives (Istio's install: ConfigMap `istio`, or `istio-<rev>` for
/// a revisioned control plane, key `mesh`).
pub const MESH_NAMESPACE: &str = "istio-system";

/// What a cluster holds, as the catalog would see it.
pub struct Listed {
    pub objects: Vec<Object>,
    /// `note:` lines: objects that do not decode (skipped, as the catalog skips them).
    pub notes: Vec<String>,
}

/// A client for the current context of `kubeconfig`, on the caller's runtime.
pub async fn client(kubeconfig: &Path) -> Result<Client, String> {
    super::client_from_kubeconfig(kubeconfig)
        .await
        .map_err(|e| e.to_string())
}

/// Every ExternalService, VirtualGateway, AccessPolicy, Service and ServiceAccount, defaulted.
pub async fn list_objects(client: &Client, opts: &Options) -> Result<Listed, String> {
    let mut out = Listed {
        objects: Vec::new(),
        notes: Vec::new(),
    };
    for kind in Kind::ALL {
        let ar = kind.api_resource();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing {}s: {e}", kind.name()))?;
        for o in list.items {
            let id = format!(
                "{}/{}",
                o.metadata.namespace.as_deref().unwrap_or(""),
                o.metadata.name.as_deref().unwrap_or("")
            );
            match decode(o, &ar) {
                Ok(obj) => out.objects.push(default_object(obj, opts)),
                Err(e) => out.notes.push(format!(
                    "note: cluster {} {id}: skipped, does not decode: {e}",
                    kind.name()
                )),
            }
        }
    }
    Ok(out)
}

/// Every `security.istio.io/v1` AuthorizationPolicy, as JSON documents; none when the Istio
/// CRDs are not installed.
pub async fn list_authorization_policies(client: &Client) -> Result<Vec<Value>, String> {
    let gvk = GroupVersionKind::gvk("security.istio.io", "v1", "AuthorizationPolicy");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "authorizationpolicies");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    match api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .map(|o| {
                let mut v = serde_json::to_value(&o).map_err(|e| e.to_string())?;
                v["apiVersion"] = Value::from(ar.api_version.clone());
                v["kind"] = Value::from(ar.kind.clone());
                Ok(v)
            })
            .collect(),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(format!("listing AuthorizationPolicies: {e}")),
    }
}

/// Every EgressGuardrail; `None` when their CRD is not installed (the apiserver answers 404 for
/// a resource it does not serve), which a cluster without platform guardrails may well be.
/// Any other failure (forbidden, say) is an error: the admission would apply guardrails this
/// read cannot see, and a check that silently skipped them would pass what apply refuses.
pub async fn list_guardrails(client: &Client) -> Result<Option<Vec<EgressGuardrail>>, String> {
    let api: Api<EgressGuardrail> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(format!("listing EgressGuardrails: {e}")),
    }
}

/// Every Namespace's name and labels (metadata only, as the webhook's watch reads them): the
/// guardrails' namespaceSelectors match these labels.
pub async fn namespace_labels(
    client: &Client,
) -> Result<Vec<(String, BTreeMap<String, String>)>, String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .map_err(|e| format!("listing Namespaces: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|ns| {
            (
                ns.metadata.name.unwrap_or_default(),
                ns.metadata.labels.unwrap_or_default(),
            )
        })
        .collect())
}

/// The mesh configurations in `istio-system`: ConfigMap `istio` and every `istio-<rev>` with a
/// `mesh` key, by name. Empty when there is none (Istio's defaults then apply).
pub async fn mesh_configs(client: &Client) -> Result<Vec<(String, MeshConfig)>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), MESH_NAMESPACE);
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(format!("listing ConfigMaps in {MESH_NAMESPACE}: {e}")),
    };
    let mut out = Vec::new();
    for cm in list.items {
        let name = cm.metadata.name.clone().unwrap_or_default();
        if !is_mesh_config_map(&name) {
            continue;
        }
        let Some(text) = cm.data.as_ref().and_then(|d| d.get("mesh")) else {
            continue;
        };
        let source = format!("ConfigMap {MESH_NAMESPACE}/{name}");
        out.push((name, mesh_config::from_mesh_key(&source, text)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `istio`, or `istio-<revision>` (not Istio's other ConfigMaps such as `istio-sidecar-injector`
/// or `istio-ca-root-cert`, which have no `mesh` key anyway).
pub fn is_mesh_config_map(name: &str) -> bool {
    name == "istio"
        || name.strip_prefix("istio-").is_some_and(|rev| {
            !rev.is_empty()
                && !rev.starts_with("sidecar-injector")
                && rev != "ca-root-cert"
                && !rev.starts_with("gateway-")
        })
}

//! `--kubeconfig` for `check`, `render` and `access`: read the live cluster once (the objects
//! the catalog watches, and for `access` the AuthorizationPolicies and the mesh configuration)
//! on a small runtime of its own; the commands stay synchronous.

use std::path::Path;

use serde_json::Value;

use crate::cluster::live;
use crate::core::{Object, Options, mesh_config::MeshConfig};

pub struct ClusterInput {
    pub objects: Vec<Object>,
    /// AuthorizationPolicies (only when asked for).
    pub policies: Vec<Value>,
    /// Mesh configurations by ConfigMap name, or why they could not be read (a kubeconfig
    /// without access to ConfigMaps in istio-system can still check objects).
    pub mesh: Result<Vec<(String, MeshConfig)>, String>,
    pub notes: Vec<String>,
}

/// Read the cluster of `kubeconfig`: the catalog's objects, the mesh configuration, and with
/// `for_access` the AuthorizationPolicies.
pub fn read(kubeconfig: &str, opts: &Options, for_access: bool) -> Result<ClusterInput, String> {
    // kube's TLS needs a process-wide crypto provider; ring, as everywhere else.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async {
        let client = live::client(Path::new(kubeconfig)).await?;
        let listed = live::list_objects(&client, opts).await?;
        let policies = if for_access {
            live::list_authorization_policies(&client).await?
        } else {
            Vec::new()
        };
        let mesh = live::mesh_configs(&client).await;
        Ok(ClusterInput {
            objects: listed.objects,
            policies,
            mesh,
            notes: listed.notes,
        })
    })
}

//! `--kubeconfig` for `check`, `render` and `access`: read the live cluster once (the objects
//! the catalog watches, and what each command asks for besides: AuthorizationPolicies for
//! `access`, guardrails and Namespaces for `check`) on a small runtime of its own; the commands
//! stay synchronous.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::api::EgressGuardrail;
use crate::cluster::live;
use crate::core::{Object, Options, mesh_config::MeshConfig};

/// What a command reads besides the catalog's objects and the mesh configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wanted {
    /// The AuthorizationPolicies (`access`).
    pub authorization_policies: bool,
    /// The EgressGuardrails (`check`, unless `--no-cluster-guardrails`).
    pub guardrails: bool,
    /// The Namespaces' labels, whatever the cluster holds (`check --guardrails FILE`); they are
    /// also read when the cluster has guardrails (their selectors match these labels), and
    /// otherwise not (a kubeconfig that may not list Namespaces can check a cluster without
    /// guardrails).
    pub namespaces: bool,
}

pub struct ClusterInput {
    pub objects: Vec<Object>,
    /// AuthorizationPolicies (only when asked for).
    pub policies: Vec<Value>,
    /// Mesh configurations by ConfigMap name, or why they could not be read (a kubeconfig
    /// without access to ConfigMaps in istio-system can still check objects).
    pub mesh: Result<Vec<(String, MeshConfig)>, String>,
    /// EgressGuardrails (only when asked for; `None`: their CRD is not installed).
    pub guardrails: Option<Vec<EgressGuardrail>>,
    /// Namespaces and their labels (only when asked for).
    pub namespaces: Vec<(String, BTreeMap<String, String>)>,
    pub notes: Vec<String>,
}

/// Read the cluster of `kubeconfig`: the catalog's objects, the mesh configuration, and what
/// `wanted` asks for.
pub fn read(kubeconfig: &str, opts: &Options, wanted: Wanted) -> Result<ClusterInput, String> {
    // kube's TLS needs a process-wide crypto provider; ring, as everywhere else.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async {
        let client = live::client(Path::new(kubeconfig)).await?;
        let listed = live::list_objects(&client, opts).await?;
        let policies = if wanted.authorization_policies {
            live::list_authorization_policies(&client).await?
        } else {
            Vec::new()
        };
        let guardrails = if wanted.guardrails {
            live::list_guardrails(&client)
                .await
                .map_err(|e| format!("{e} (--no-cluster-guardrails checks without them)"))?
        } else {
            None
        };
        let any_guardrail = guardrails.as_ref().is_some_and(|g| !g.is_empty());
        let namespaces = if wanted.namespaces || any_guardrail {
            live::namespace_labels(&client).await?
        } else {
            Vec::new()
        };
        let mesh = live::mesh_configs(&client).await;
        Ok(ClusterInput {
            objects: listed.objects,
            policies,
            mesh,
            guardrails,
            namespaces,
            notes: listed.notes,
        })
    })
}

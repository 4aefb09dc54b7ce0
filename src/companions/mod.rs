//! Companions in the cluster: the Istio objects the expansion wants, written with server-side
//! apply under one field manager, pruned when no longer wanted, rolled back when a write fails.
//! The pure side (what is wanted) is `core::expand`; this module only talks to the apiserver.

pub mod guard;
pub mod kinds;
pub mod reconcile;
pub mod writer;

pub use writer::{SyncError, SyncReport, Writer};

/// Our field manager for server-side apply, and the `app.kubernetes.io/managed-by` value.
pub const FIELD_MANAGER: &str = crate::core::expand::metadata::MANAGER;

/// The identity egress-webhook runs under in a cluster (manifests/deploy): its ServiceAccount.
pub const IN_CLUSTER_IDENTITY: &str = "system:serviceaccount:egress-webhook:egress-webhook";

/// Server settings that turn on companion writes, the guard and the reconcile loop, all with
/// `client` (which must be the webhook's own identity, listed in `identities`).
pub fn cluster_settings(
    client: kube::Client,
    identities: Vec<String>,
    write_deadline: std::time::Duration,
    resync: std::time::Duration,
) -> (
    std::sync::Arc<crate::admission::handlers::CompanionWrites>,
    crate::admission::server::ReconcileWith,
) {
    let writes = crate::admission::handlers::CompanionWrites {
        writer: Writer::new(client.clone()),
        guard_identities: identities,
        deadline: write_deadline,
    };
    (
        std::sync::Arc::new(writes),
        crate::admission::server::ReconcileWith { client, resync },
    )
}

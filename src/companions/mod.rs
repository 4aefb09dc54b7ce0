//! Companions: the Istio objects the expansion wants for a parent. What they are (kinds, field
//! manager, identity) and the guard that keeps others from editing them. The pure side (what is
//! wanted) is `core::expand`; writing them is `crate::controller`.

pub mod guard;
pub mod kinds;

/// Our field manager for server-side apply, and the `app.kubernetes.io/managed-by` value.
pub const FIELD_MANAGER: &str = crate::core::expand::metadata::MANAGER;

/// The identity egress-webhook runs under in a cluster (manifests/base): its ServiceAccount.
pub const IN_CLUSTER_IDENTITY: &str = "system:serviceaccount:egress-webhook:egress-webhook";

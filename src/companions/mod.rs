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

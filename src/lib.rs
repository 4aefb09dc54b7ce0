//! egress-webhook: Gloo Mesh v2 egress kinds (ExternalService, VirtualGateway, AccessPolicy)
//! admitted, defaulted, validated and expanded into Istio objects.
//!
//! `api` holds the types, `core` the pure logic (no I/O), `istio` the generated Istio objects,
//! `load` the reading of input files, `controller` the companions in the cluster, `metrics` the
//! process's metrics, `watch_health` whether the catalog's watches are connected, `cli` the commands (the top: nothing else imports it).

pub mod admission;
pub mod api;
pub mod catalog;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod companions;
pub mod controller;
pub mod controlplane;
pub mod core;
pub mod crds;
pub mod istio;
pub mod load;
pub mod memory;
pub mod metrics;
pub mod watch_health;

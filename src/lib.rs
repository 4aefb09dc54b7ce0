//! egress-webhook: Gloo Mesh v2 egress kinds (ExternalService, VirtualGateway, AccessPolicy)
//! admitted, defaulted, validated and expanded into Istio objects.
//!
//! `api` holds the types, `core` the pure logic (no I/O), `istio` the generated Istio objects,
//! `cli` the offline commands.

pub mod admission;
pub mod api;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod companions;
pub mod controlplane;
pub mod core;
pub mod istio;

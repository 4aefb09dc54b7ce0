//! The Gloo Mesh v2 kinds we accept, and our own EgressGuardrail, as Rust types. Nothing else
//! lives here.
//!
//! Every field of the 2.14 CRDs is present, each `Option`al so that an object read and written
//! back keeps exactly the fields the user wrote (`clientsideTls: {}` stays `{}`, an absent list
//! stays absent). Enum-valued fields are plain strings: an unknown value must reach the rules
//! (and become a finding with a field path), not fail deserialization.

pub mod access_policy;
pub mod common;
pub mod egress_guardrail;
pub mod external_service;
pub mod labels;
pub mod meta;
pub mod text;
pub mod virtual_gateway;

pub use access_policy::{AccessPolicy, AccessPolicyResource, AccessPolicySpec};
pub use common::*;
pub use egress_guardrail::{EgressGuardrail, EgressGuardrailSpec};
pub use external_service::{ExternalService, ExternalServiceResource, ExternalServiceSpec};
pub use labels::Labels;
pub use meta::Meta;
pub use text::Text;
pub use virtual_gateway::{VirtualGateway, VirtualGatewayResource, VirtualGatewaySpec};

/// API group of ExternalService and VirtualGateway.
pub const NETWORKING_GROUP: &str = "networking.gloo.solo.io";
/// API group of AccessPolicy.
pub const SECURITY_GROUP: &str = "security.policy.gloo.solo.io";
/// The only version of the three kinds.
pub const VERSION: &str = "v2";

/// An empty slice for an absent list, so that rules can iterate without unwrapping.
pub fn list<T>(v: &Option<Vec<T>>) -> &[T] {
    v.as_deref().unwrap_or(&[])
}

/// The string, or "" when absent (proto3 zero value).
pub fn text<S: AsRef<str>>(v: &Option<S>) -> &str {
    v.as_ref().map_or("", AsRef::as_ref)
}

//! EgressGuardrail (`policy.egress-webhook.dev/v1alpha1`): our own, cluster-scoped kind with
//! which a platform team limits, per namespace selector, what ExternalServices teams may declare
//! (DESIGN §7, issue 14). Evaluated in `core::guardrails`.
//!
//! As for the Gloo kinds, every field is an `Option` and enum-like fields are plain strings: a
//! bad value must reach the rules (G6-G8, a finding with a field path), not fail decoding.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Condition;

/// The API group of our own kinds.
pub const POLICY_GROUP: &str = "policy.egress-webhook.dev";
pub const POLICY_VERSION: &str = "v1alpha1";
/// At most this many violations are listed in `status.violations`; `totalViolations` counts all
/// (an object's status must stay far below etcd's 1.5 MB limit whatever a cluster holds).
pub const MAX_LISTED_VIOLATIONS: usize = 100;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "policy.egress-webhook.dev",
    version = "v1alpha1",
    kind = "EgressGuardrail",
    derive = "PartialEq",
    derive = "Default",
    status = "EgressGuardrailStatus",
    shortname = "egr",
    category = "egress-webhook",
    printcolumn = r#"{"name":"Action","type":"string","jsonPath":".spec.enforcementAction"}"#,
    printcolumn = r#"{"name":"Violations","type":"integer","jsonPath":".status.totalViolations"}"#,
    printcolumn = r#"{"name":"Changed","type":"date","jsonPath":".status.lastAuditTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EgressGuardrailSpec {
    /// The namespaces whose objects this guardrail governs (a Kubernetes label selector on the
    /// Namespace's labels); omitted selects every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<NamespaceSelector>,
    /// DNS globs (`api.example.com`, `*.example.com`, `*`): every host of an ExternalService must
    /// fall within one. Omitted or empty: any host (but `deniedHosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
    /// DNS globs no host of an ExternalService may reach (deny wins over `allowedHosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_hosts: Option<Vec<String>>,
    /// Every ExternalService port must have `egressGatewayRoutes` (no direct egress from sidecars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_egress_gateway: Option<bool>,
    /// The VirtualGateways ExternalServices may route through. Omitted or empty: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_gateways: Option<Vec<GatewayReference>>,
    /// Every ExternalService must be selected by an AccessPolicy (also checked when an
    /// AccessPolicy is deleted or changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_access_policy: Option<bool>,
    /// `deny` (default): refused; `warn`: admitted with a warning; `audit`: admitted, reported in
    /// the status only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["deny", "warn", "audit"]))]
    pub enforcement_action: Option<String>,
}

/// `metav1.LabelSelector`, as our own type (k8s-openapi's has no JSON schema here).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[schemars(extend("enum" = ["In", "NotIn", "Exists", "DoesNotExist"]))]
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// A VirtualGateway by name and namespace (both required: the guardrail has no namespace of its own).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressGuardrailStatus {
    /// The first violations found by the last audit (at most 100), sorted by object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<Violation>>,
    /// Every violation the last audit found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_violations: Option<i64>,
    /// When the audit pass ran that found the results in this status (RFC 3339). The status is
    /// written only when its results change, so on a quiet cluster this is the time of the last
    /// change, not of the last pass: the audit runs every `--audit-interval` all the same, which
    /// the metric `egress_webhook_guardrail_last_audit_timestamp_seconds` shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_audit_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub object: ViolatingObject,
    /// The rule id (G1…).
    pub rule: String,
    pub message: String,
}

#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ViolatingObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

//! Types shared by the three kinds (`common.gloo.solo.io/v2`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::text::Text;

pub use super::labels::Labels;

/// A reference to another object by name; namespace and cluster default to the parent's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Text>,
}

/// Selects objects by labels and/or name, namespace, cluster, workspace; an omitted field means "any".
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Text>,
}

/// A port by number (1..65535) or by name; the CRD allows exactly one or neither.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
}

/// Selects gateway (or other) workloads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<ObjectSelector>,
    /// `KUBE` (default) or `VM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["KUBE", "VM"]))]
    pub kind: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// Selects destinations (Services, VirtualDestinations or ExternalServices) and optionally a port.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<ObjectSelector>,
    /// `SERVICE` (default), `VIRTUAL_DESTINATION` or `EXTERNAL_SERVICE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["SERVICE", "VIRTUAL_DESTINATION", "EXTERNAL_SERVICE"]))]
    pub kind: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// A client identity: a ServiceAccount, an external workload, or JWT request principals.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_selector: Option<ObjectSelector>,
    // The two rarer ones boxed: 8 bytes each when absent, not 120 and 48 (issue 12, memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_workload_selector: Option<Box<ObjectSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_identity_matcher: Option<Box<RequestIdentityMatcher>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestIdentityMatcher {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_principals: Option<Vec<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_request_principals: Option<Vec<Text>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnforcementLayers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<bool>,
}

/// `status.common` of every kind. The JSON key of the state is literally `State`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    #[serde(rename = "State", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_conditions: Option<BTreeMap<String, u32>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct State {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["PENDING", "ACCEPTED", "INVALID", "WARNING", "FAILED", "UNLICENSED"]))]
    pub approval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

// Our own type in the standard shape (`metav1.Condition`): k8s-openapi's has no JSON schema to
// generate the CRD from. Gloo's status has no conditions; ours adds them so that
// `kubectl wait --for=condition=Ready` works (the README says so, and why).
/// A standard condition (the shape of `metav1.Condition`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready` or `CompanionsSynced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339: when `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

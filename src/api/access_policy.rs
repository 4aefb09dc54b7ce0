//! AccessPolicy (`security.policy.gloo.solo.io/v2`): who may reach a destination.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::text::Text;

use super::common::{
    CommonStatus, Condition, DestinationSelector, EnforcementLayers, IdentitySelector, Labels,
};
use std::collections::BTreeMap;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "security.policy.gloo.solo.io",
    version = "v2",
    kind = "AccessPolicy",
    // kube's type (ObjectMeta), for the CRD and `Api`; the core's `AccessPolicy` is below.
    root = "AccessPolicyResource",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    // Boxed: 8 bytes in an object without status, not the whole struct (issue 12, memory).
    status = "Box<AccessPolicyStatus>",
    shortname = "ap",
    category = "solo-io",
    printcolumn = r#"{"name":"Destinations","type":"string","jsonPath":".spec.applyToDestinations[*].selector.name"}"#,
    printcolumn = r#"{"name":"Kinds","type":"string","jsonPath":".spec.applyToDestinations[*].kind"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.common.State.approval"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.common.State.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_to_destinations: Option<Vec<DestinationSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_to_workloads: Option<Vec<NamespaceWorkloadSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<AccessPolicyConfig>,
}

super::meta::gloo_kind!(
    /// A AccessPolicy as the core keeps it: [`AccessPolicyResource`] with a compact `metadata`
    /// (`api::meta`).
    AccessPolicy,
    AccessPolicyResource,
    AccessPolicySpec,
    Box<AccessPolicyStatus>
);

/// `applyToWorkloads[]`: a selector without `name`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceWorkloadSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadLabelSelector>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadLabelSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Text>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authn: Option<Authentication>,
    /// Deprecated; ignored when `authzList` is set.
    // Boxed: usually absent, and 8 bytes then rather than 160 (issue 12, memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authz: Option<Box<Authorization>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement_layers: Option<EnforcementLayers>,
    /// Entries are OR-ed; the requirements inside one entry are AND-ed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authz_list: Option<Vec<Authorization>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// `DISABLE` (zero value), `PERMISSIVE`, `STRICT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["DISABLE", "PERMISSIVE", "STRICT"]))]
    pub tls_mode: Option<Text>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_clients: Option<Vec<IdentitySelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_paths: Option<Vec<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_methods: Option<Vec<Text>>,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<MatchSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_ip_blocks: Option<Vec<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_remote_ip_blocks: Option<Vec<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, HeaderValues>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_values: Option<Vec<Text>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common: Option<CommonStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_selected_destination_ports: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_selected_namespaces: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_allowed_service_accounts: Option<u32>,
    /// `Ready` and `CompanionsSynced` (for `kubectl wait --for=condition=Ready`); an addition to
    /// Gloo's schema, which has no conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

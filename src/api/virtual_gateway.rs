//! VirtualGateway (`networking.gloo.solo.io/v2`): listeners on Istio gateway workloads.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::text::Text;

use super::common::{CommonStatus, Condition, ObjectSelector, PortSelector, WorkloadSelector};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "networking.gloo.solo.io",
    version = "v2",
    kind = "VirtualGateway",
    // kube's type (ObjectMeta), for the CRD and `Api`; the core's `VirtualGateway` is below.
    root = "VirtualGatewayResource",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    // Boxed: 8 bytes in an object without status, not the whole struct (issue 12, memory).
    status = "Box<VirtualGatewayStatus>",
    shortname = "vg",
    category = "solo-io",
    printcolumn = r#"{"name":"Ports","type":"string","jsonPath":".spec.listeners[*].port.number"}"#,
    printcolumn = r#"{"name":"Protocols","type":"string","jsonPath":".spec.listeners[*].appProtocol"}"#,
    printcolumn = r#"{"name":"Exposed","type":"string","jsonPath":".spec.listeners[*].exposedExternalServices[*].host"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.common.State.approval"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.common.State.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualGatewaySpec {
    /// Gateway workloads; absent means every gateway workload in the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<Vec<WorkloadSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(required, length(min = 1, max = 300000))]
    pub listeners: Option<Vec<Listener>>,
}

super::meta::gloo_kind!(
    /// A VirtualGateway as the core keeps it: [`VirtualGatewayResource`] with a compact `metadata`
    /// (`api::meta`).
    VirtualGateway,
    VirtualGatewayResource,
    VirtualGatewaySpec,
    Box<VirtualGatewayStatus>
);

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(required)]
    pub port: Option<PortSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// `http: {}` makes an HTTP listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Empty>,
    /// `tcp: {}` (or neither) makes a TCP listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Empty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_route_tables: Option<Vec<RouteTableFilter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_external_services: Option<Vec<ExternalServiceFilter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10))]
    pub app_protocol: Option<Text>,
}

/// An object with no fields (`http: {}`, `tcp: {}`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Empty {}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// `PASSTHROUGH` is the zero value: `tls: {}` means passthrough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"]))]
    pub mode: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<TlsFiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_subject_alt_name: Option<Vec<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<TlsParameters>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsFiles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cert: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<Text>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"]))]
    pub minimum_protocol_version: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"]))]
    pub maximum_protocol_version: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suites: Option<Vec<Text>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteTableFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(required)]
    pub host: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<ObjectSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<Vec<RouteFilter>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_provider: Option<CloudProviderFilter>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudProviderFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsFilter>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ids: Option<Vec<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_roles: Option<Vec<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_functions: Option<Vec<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<Text>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalServiceFilter {
    /// `[namespace/]dnsName`; required by the CRD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(required)]
    pub host: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<ObjectSelector>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualGatewayStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common: Option<CommonStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_tables_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_workloads_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_services_count: Option<u32>,
    /// `Ready` and `CompanionsSynced` (for `kubectl wait --for=condition=Ready`); an addition to
    /// Gloo's schema, which has no conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

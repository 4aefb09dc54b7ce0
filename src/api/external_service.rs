//! ExternalService (`networking.gloo.solo.io/v2`): a host or address outside the mesh.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::text::Text;

use super::common::{CommonStatus, Condition, Labels, ObjectReference, PortSelector};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "networking.gloo.solo.io",
    version = "v2",
    kind = "ExternalService",
    // kube's type (ObjectMeta), for the CRD and `Api`; the core's `ExternalService` is below.
    root = "ExternalServiceResource",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    // Boxed: 8 bytes in an object without status, not the whole struct (issue 12, memory).
    status = "Box<ExternalServiceStatus>",
    shortname = "es",
    category = "solo-io",
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hosts"}"#,
    printcolumn = r#"{"name":"Addresses","type":"string","jsonPath":".spec.addresses","priority":1}"#,
    printcolumn = r#"{"name":"Ports","type":"string","jsonPath":".spec.ports[*].number"}"#,
    printcolumn = r#"{"name":"Gateways","type":"string","jsonPath":".spec.ports[*].egressGatewayRoutes.virtualGatewayRefs[*].name"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.common.State.approval"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.common.State.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ExternalServiceSpec {
    /// FQDNs or wildcard-prefix domains; mutually exclusive with `addresses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<Text>>,
    /// IPs or CIDRs; mutually exclusive with `hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ExternalServicePort>>,
    /// Labels of the ExternalEndpoints that back this service; empty selects none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_alt_names: Option<Vec<Text>>,
}

super::meta::gloo_kind!(
    /// A ExternalService as the core keeps it: [`ExternalServiceResource`] with a compact `metadata`
    /// (`api::meta`).
    ExternalService,
    ExternalServiceResource,
    ExternalServiceSpec,
    Box<ExternalServiceStatus>
);

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalServicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<PortSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
    /// One of HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS (not a schema enum upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clientside_tls: Option<ClientsideTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_gateway_routes: Option<EgressGatewayRoutes>,
}

/// TLS originated toward the external service (becomes a DestinationRule `tls`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientsideTls {
    /// `SIMPLE` (zero value), `DISABLE`, `MUTUAL`, `ISTIO_MUTUAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["SIMPLE", "DISABLE", "MUTUAL", "ISTIO_MUTUAL"]))]
    pub mode: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<Text>,
    /// A nullable BoolValue upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressGatewayRoutes {
    /// Port the mesh sends to; defaults to 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295u32))]
    pub port_match: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_gateway_refs: Option<Vec<ObjectReference>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalServiceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common: Option<CommonStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_applied_destination_policies: Option<BTreeMap<String, u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_selected_external_endpoints: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by_workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_selected_virtual_gateways: Option<u32>,
    /// `Ready` and `CompanionsSynced` (for `kubectl wait --for=condition=Ready`); an addition to
    /// Gloo's schema, which has no conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

//! The Istio objects we generate, as typed structs: only the fields the expansion sets, in
//! Istio's camelCase. `networking.istio.io/v1` and `security.istio.io/v1` (DESIGN §5).
//! tests/istio_valid.rs checks every generated object against the real 1.24.6 CRD schemas.

pub mod networking;
pub mod security;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

pub use networking::*;
pub use security::*;

pub const NETWORKING_V1: &str = "networking.istio.io/v1";
pub const SECURITY_V1: &str = "security.istio.io/v1";

/// One generated Istio object.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IstioObject {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: Spec,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Spec {
    ServiceEntry(ServiceEntrySpec),
    Gateway(GatewaySpec),
    DestinationRule(DestinationRuleSpec),
    VirtualService(VirtualServiceSpec),
    AuthorizationPolicy(AuthorizationPolicySpec),
    PeerAuthentication(PeerAuthenticationSpec),
}

impl Spec {
    pub fn kind(&self) -> &'static str {
        match self {
            Spec::ServiceEntry(_) => "ServiceEntry",
            Spec::Gateway(_) => "Gateway",
            Spec::DestinationRule(_) => "DestinationRule",
            Spec::VirtualService(_) => "VirtualService",
            Spec::AuthorizationPolicy(_) => "AuthorizationPolicy",
            Spec::PeerAuthentication(_) => "PeerAuthentication",
        }
    }

    pub fn api_version(&self) -> &'static str {
        match self {
            Spec::AuthorizationPolicy(_) | Spec::PeerAuthentication(_) => SECURITY_V1,
            _ => NETWORKING_V1,
        }
    }

    /// Order of kinds in rendered output: what is referenced comes first.
    pub fn rank(&self) -> u8 {
        match self {
            Spec::ServiceEntry(_) => 0,
            Spec::Gateway(_) => 1,
            Spec::DestinationRule(_) => 2,
            Spec::VirtualService(_) => 3,
            Spec::AuthorizationPolicy(_) => 4,
            Spec::PeerAuthentication(_) => 5,
        }
    }
}

impl IstioObject {
    pub fn new(metadata: ObjectMeta, spec: Spec) -> Self {
        IstioObject {
            api_version: spec.api_version(),
            kind: spec.kind(),
            metadata,
            spec,
        }
    }

    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// The identity used for sorting and de-duplication.
    pub fn sort_key(&self) -> (u8, String, String) {
        (
            self.spec.rank(),
            self.namespace().to_string(),
            self.name().to_string(),
        )
    }
}

//! The CustomResourceDefinitions of the three Gloo kinds and our EgressGuardrail, generated from the Rust types in `api`.
//!
//! A module of its own, not part of `cli`, because the text is used beyond `egress-webhook crds`
//! (which prints it): the dev cluster installs it, and a test keeps manifests/crds/ equal to it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::api::{
    AccessPolicyResource, EgressGuardrail, ExternalServiceResource, VirtualGatewayResource,
};

/// All four CRDs as one multi-document YAML text (the content of manifests/crds/).
pub fn render() -> Result<String, serde_saphyr::SerializeError> {
    let mut text = String::new();
    for crd in [
        ExternalServiceResource::crd(),
        VirtualGatewayResource::crd(),
        AccessPolicyResource::crd(),
        EgressGuardrail::crd(),
    ] {
        let crd = titled_by_kind(crd);
        text.push_str("---\n");
        text.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(text)
}

/// The schema's title is the Rust type's name: the Gloo kinds' CRD types are
/// `ExternalServiceResource` and so on (`api::meta`), and the title stays the kind, as upstream.
fn titled_by_kind(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let kind = crd.spec.names.kind.clone();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema.title = Some(kind.clone());
        }
    }
    crd
}

//! The CustomResourceDefinitions of the three Gloo kinds and our EgressGuardrail, generated from the Rust types in `api`.
//!
//! A module of its own, not part of `cli`, because the text is used beyond `egress-webhook crds`
//! (which prints it): the dev cluster installs it, and a test keeps manifests/crds/ equal to it.

use kube::CustomResourceExt;

use crate::api::{AccessPolicy, EgressGuardrail, ExternalService, VirtualGateway};

/// All four CRDs as one multi-document YAML text (the content of manifests/crds/).
pub fn render() -> Result<String, serde_saphyr::SerializeError> {
    let mut text = String::new();
    for crd in [
        ExternalService::crd(),
        VirtualGateway::crd(),
        AccessPolicy::crd(),
        EgressGuardrail::crd(),
    ] {
        text.push_str("---\n");
        text.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(text)
}

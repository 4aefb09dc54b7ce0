//! `egress-webhook webhook-config`: print the Mutating- and ValidatingWebhookConfiguration.
//! Without flags it prints `manifests/base/webhook-configurations.yaml` (`make manifests`).

use std::path::PathBuf;

use crate::cluster::webhook::{self, Endpoint, Registration};

#[derive(clap::Args, Debug)]
pub struct WebhookConfigArgs {
    /// Namespace the webhook runs in: the Service's namespace, excluded from review.
    #[arg(long, default_value = webhook::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Call the webhook at this base URL (e.g. https://127.0.0.1:8443) instead of the Service.
    #[arg(long)]
    pub url: Option<String>,
    /// Set caBundle from this PEM file (the ca.crt written by `certs`).
    #[arg(long)]
    pub ca_bundle: Option<PathBuf>,
}

pub fn run(args: &WebhookConfigArgs) -> Result<String, String> {
    if args.url.is_none()
        && args.ca_bundle.is_none()
        && args.namespace == webhook::DEFAULT_NAMESPACE
    {
        return webhook::manifest_yaml().map_err(|e| e.to_string());
    }
    let mut reg = Registration::in_cluster(&args.namespace);
    if let Some(url) = &args.url {
        if !url.starts_with("https://") {
            return Err(format!(
                "--url {url}: the apiserver calls webhooks over https only"
            ));
        }
        reg.endpoint = Endpoint::Url(url.clone());
    }
    if let Some(path) = &args.ca_bundle {
        reg.ca_bundle_pem =
            Some(std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    webhook::to_yaml(&reg).map_err(|e| e.to_string())
}

//! `serve --self-signed-secret NAME`: the webhook keeps its own CA and serving certificate in a
//! Secret of its namespace, serves it, and keeps the caBundle of its webhook configurations equal
//! to the Secret's CAs.
//!
//! Start-up (before serving): the Secret is read, created (a new CA and leaf) when missing, or
//! rotated when due (`secret::current`); the pair is written to `--tls-cert`/`--tls-key`
//! (`files`), where the server's file watcher finds it; the caBundles are patched (`ca_bundle`).
//! Configurations that do not exist yet (installed after the Deployment) are not an error: a
//! warning, and the next poll patches them, so the order of `kubectl apply` does not matter.
//! Any other failure (no RBAC, a Secret that is somebody else's) stops start-up with the reason.
//!
//! Then every `--cert-poll-interval` each replica does the same again with a GET: it renews what
//! is due, and picks up a Secret that another replica created or rotated, so every replica
//! serves the same pair within one poll plus one certificate-file poll. Polling, not a watch:
//! the RBAC stays get/create/update/patch on the one Secret (a watch needs list and watch).
//! Errors in the loop are logged and retried at the next poll; the old pair keeps serving.
//!
//! The decisions (what is due, what the next content is) are the pure `plan`; parsing and
//! checking the Secret's data is the pure `stored`.

pub mod ca_bundle;
pub mod files;
pub mod plan;
pub mod secret;
pub mod stored;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::admission::tls::CertFiles;
use plan::Policy;
use secret::{Change, SecretError};
use stored::Stored;

/// Where the Secret lives, which configurations to patch, where to write the pair.
#[derive(Clone, Debug)]
pub struct Settings {
    pub namespace: String,
    pub secret: String,
    /// Name of the Mutating- and the ValidatingWebhookConfiguration.
    pub configurations: String,
    pub files: CertFiles,
    pub policy: Policy,
    pub poll: Duration,
}

/// DNS names of `<service>` in `<namespace>`, as the apiserver calls a Service endpoint.
pub fn service_hosts(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum SelfSignedError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("writing the serving certificate to {0}: {1}")]
    Write(String, #[source] std::io::Error),
    #[error(transparent)]
    Bundle(#[from] ca_bundle::BundleError),
    #[error("self-signed settings: {0}")]
    Settings(String),
}

/// One pass: the Secret's current content, the files, the caBundles.
async fn sync(client: &kube::Client, s: &Settings) -> Result<Stored, SelfSignedError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let (stored, change) = secret::current(&api, &s.namespace, &s.secret, &s.policy).await?;
    let at = format!("{}/{}", s.namespace, s.secret);
    match &change {
        Change::None => {}
        Change::Created => {
            tracing::info!(secret = %at, not_after = stored.leaf.not_after, "created the self-signed CA and serving certificate")
        }
        Change::Updated(step) => {
            tracing::info!(secret = %at, ?step, not_after = stored.leaf.not_after, "rotated the self-signed certificates")
        }
        Change::Regenerated(why) => {
            tracing::warn!(secret = %at, reason = %why, "the Secret held unusable data: replaced it with a new CA and serving certificate")
        }
    }
    let files = s.files.clone();
    let (cert, key) = (stored.leaf.pem.clone(), stored.leaf_key.clone());
    let written = tokio::task::spawn_blocking(move || files::write_pair(&files, &cert, &key))
        .await
        .map_err(|e| {
            SelfSignedError::Write(s.files.cert.display().to_string(), std::io::Error::other(e))
        })?
        .map_err(|(path, e)| SelfSignedError::Write(path, e))?;
    if written {
        tracing::info!(cert = %s.files.cert.display(), not_after = stored.leaf.not_after, "wrote the serving certificate from the Secret");
    }
    let bundle = stored::ca_bundle(&stored);
    let outcome = ca_bundle::ensure(client, &s.configurations, bundle.as_bytes()).await?;
    if !outcome.patched.is_empty() {
        tracing::info!(webhooks = ?outcome.patched, cas = stored.cas.len(), "caBundle set to the Secret's CAs");
    }
    if !outcome.missing.is_empty() {
        tracing::warn!(configurations = ?outcome.missing, name = %s.configurations, "webhook configurations not found: their caBundle is set at a later poll, once they exist");
    }
    Ok(stored)
}

/// Start-up: the Secret, the files and the caBundles, before the server loads the files.
pub async fn bootstrap(client: &kube::Client, s: &Settings) -> Result<(), SelfSignedError> {
    s.policy.check().map_err(SelfSignedError::Settings)?;
    sync(client, s).await.map(|_| ())
}

/// Every `poll`: the same as start-up; failures are logged and retried.
pub async fn keep_current(client: kube::Client, s: Settings) {
    let mut tick = tokio::time::interval(s.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_error: Option<String> = None;
    loop {
        tick.tick().await;
        match sync(&client, &s).await {
            Ok(_) => last_error = None,
            Err(e) => {
                // Once per distinct error: the same failure every poll would bury the first.
                let text = e.to_string();
                if last_error.as_ref() != Some(&text) {
                    tracing::warn!(error = %text, "self-signed certificate check failed; retrying at the next poll, the current pair keeps serving");
                    last_error = Some(text);
                }
            }
        }
    }
}

//! Everything that talks to a Kubernetes apiserver: the catalog's watch caches and live lookups
//! (`catalog`), the webhook configurations and RBAC the webhook is registered with (`webhook`),
//! the local development cluster used by `egress-webhook dev` and the end-to-end tests (`dev`),
//! and the webhook's ServiceAccount identity there (`identity`).

pub mod catalog;
pub mod config;
pub mod dev;
pub mod fresh_list;
pub mod guardrail_audit;
pub mod guardrail_reports;
pub mod guardrail_watch;
pub mod identity;
pub mod live;
pub mod lockdown;
pub mod mesh_watch;
pub mod own_writes;
pub mod report_watch;
pub mod self_signed;
pub mod webhook;

use std::path::Path;
use std::time::Duration;

use kube::runtime::{utils::ResetTimerBackoff, watcher::ExponentialBackoff};

/// Retry policy of every watch (the catalog's and the controller's): kube-runtime's default
/// (0.8 s doubling to 30 s, client-go's) but capped at 5 s. After a 30 s apiserver outage the
/// default left a watch in a 25-30 s wait after the apiserver was back, and a hand-deleted
/// companion unrepaired for that long (tests/e2e_outage.rs); a retry every 5 s per watch while
/// the apiserver is down costs it nothing. Reset after 2 minutes without errors, as the default.
pub fn watch_backoff() -> ResetTimerBackoff<ExponentialBackoff> {
    let exp = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(800))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    ResetTimerBackoff::new(ExponentialBackoff::from(exp), Duration::from_secs(120))
}

/// A client for the identity in a kubeconfig file (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, ClientError> {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(path).map_err(|e| ClientError::Kubeconfig {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| ClientError::Kubeconfig {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    kube::Client::try_from(config).map_err(ClientError::Client)
}

/// The in-cluster configuration (service account token), else `$KUBECONFIG` / `~/.kube/config`,
/// and which of them it was (see [`config`] for why in-cluster comes first).
pub async fn default_client() -> Result<(kube::Client, config::ConfigSource), ClientError> {
    let (config, source) = config::default_config().await?;
    Ok((
        kube::Client::try_from(config).map_err(ClientError::Client)?,
        source,
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("in-cluster configuration: {message}")]
    InCluster { message: String },
    #[error("no Kubernetes configuration: not in a cluster ({in_cluster}); {kubeconfig}")]
    NoConfiguration {
        in_cluster: String,
        kubeconfig: String,
    },
    #[error("building a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

//! Which Kubernetes client configuration `serve` uses when `--kubeconfig` is not given.
//!
//! In a pod, the service account wins: the kubelet sets `KUBERNETES_SERVICE_HOST`/`_PORT` and
//! mounts the token, and those say who the webhook is. kube's own `Config::infer` (behind
//! `Client::try_default`) reads `$KUBECONFIG` / `~/.kube/config` first, so a kubeconfig that
//! happens to be in the image or in `$KUBECONFIG` would silently replace the pod's identity and
//! its RBAC. Outside a pod (no token), the kubeconfig is used as kubectl would.
//!
//! To run with a kubeconfig inside a pod anyway, pass `--kubeconfig` explicitly.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::ClientError;

/// Where kube reads the pod's service-account token (its path is fixed in kube-client).
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const HOST_ENV: &str = "KUBERNETES_SERVICE_HOST";
const PORT_ENV: &str = "KUBERNETES_SERVICE_PORT";

/// The configuration a client was built from, for the start-up log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// The pod's service account (token, CA and namespace under /var/run/secrets), and the
    /// apiserver URL made from `KUBERNETES_SERVICE_HOST`/`_PORT`.
    InCluster { server: String },
    /// A kubeconfig file: `--kubeconfig`, `$KUBECONFIG` or `~/.kube/config`.
    Kubeconfig(String),
}

impl ConfigSource {
    /// The kubeconfig of `--kubeconfig`.
    pub fn flag(path: &Path) -> Self {
        ConfigSource::Kubeconfig(format!("{} (--kubeconfig)", path.display()))
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::InCluster { server } => write!(
                f,
                "in-cluster configuration (service account token {SERVICE_ACCOUNT_TOKEN}, apiserver {server})"
            ),
            ConfigSource::Kubeconfig(which) => write!(f, "kubeconfig {which}"),
        }
    }
}

/// `Ok` when the in-cluster configuration is there to be used, else why not (for the log).
/// Both variables and the token are required, as client-go requires them: the variables alone
/// are also set for containers that have no service account mounted.
pub fn in_cluster_present(
    env: impl Fn(&str) -> Option<OsString>,
    token: &Path,
) -> Result<(), String> {
    for var in [HOST_ENV, PORT_ENV] {
        if env(var).is_none_or(|v| v.is_empty()) {
            return Err(format!("{var} is not set"));
        }
    }
    if !token.is_file() {
        return Err(format!("no service account token at {}", token.display()));
    }
    Ok(())
}

/// The in-cluster configuration when present, otherwise `$KUBECONFIG` / `~/.kube/config`.
/// When the in-cluster signs are present but its files are unusable (no ca.crt, say), that is
/// an error, not a reason to fall back: falling back would run under another identity.
pub async fn default_config() -> Result<(kube::Config, ConfigSource), ClientError> {
    let not_in_cluster =
        match in_cluster_present(|k| std::env::var_os(k), Path::new(SERVICE_ACCOUNT_TOKEN)) {
            Ok(()) => {
                let mut config = kube::Config::incluster().map_err(|e| ClientError::InCluster {
                    message: e.to_string(),
                })?;
                // As `Config::infer` does: the KUBE_RS_DEBUG_* variables still apply.
                config.apply_debug_overrides();
                let server = config.cluster_url.to_string();
                return Ok((config, ConfigSource::InCluster { server }));
            }
            Err(why) => why,
        };
    let which = kubeconfig_description();
    let mut config = kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| ClientError::NoConfiguration {
            in_cluster: not_in_cluster.clone(),
            kubeconfig: format!("{which}: {e}"),
        })?;
    config.apply_debug_overrides();
    tracing::debug!(reason = %not_in_cluster, "no in-cluster configuration");
    Ok((config, ConfigSource::Kubeconfig(which)))
}

/// The file(s) kube's loader reads: `$KUBECONFIG` when set, else `~/.kube/config`.
fn kubeconfig_description() -> String {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(v) => format!("$KUBECONFIG={}", PathBuf::from(v).display()),
        None => "~/.kube/config".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(
        vars: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<OsString> {
        move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    const POD_ENV: &[(&str, &str)] = &[(HOST_ENV, "10.0.0.1"), (PORT_ENV, "443")];

    #[test]
    fn in_cluster_needs_the_variables_and_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "a-token").unwrap();
        assert_eq!(in_cluster_present(env_with(POD_ENV), &token), Ok(()));

        let missing = dir.path().join("absent");
        let err = in_cluster_present(env_with(POD_ENV), &missing).unwrap_err();
        assert!(err.contains("no service account token"), "{err}");

        let err = in_cluster_present(env_with(&[(PORT_ENV, "443")]), &token).unwrap_err();
        assert!(err.contains(HOST_ENV), "{err}");
        let err = in_cluster_present(env_with(&[(HOST_ENV, "10.0.0.1"), (PORT_ENV, "")]), &token)
            .unwrap_err();
        assert!(err.contains(PORT_ENV), "{err}");
    }

    #[test]
    fn the_log_names_the_source() {
        assert!(
            ConfigSource::InCluster {
                server: "https://10.0.0.1/".into()
            }
            .to_string()
            .starts_with("in-cluster configuration")
        );
        assert_eq!(
            ConfigSource::Kubeconfig("~/.kube/config".into()).to_string(),
            "kubeconfig ~/.kube/config"
        );
    }
}

//! Serving certificate (and, with client authentication, the client CA): load, hot reload by
//! polling the files, expiry for metrics.
//!
//! Polling (rather than inotify) survives the `..data` symlink swap of Kubernetes Secret volumes.
//! A new pair that does not load keeps the old one serving, and the reason is logged.

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum_server::tls_rustls::RustlsConfig;
use rustls::{ServerConfig, pki_types::CertificateDer};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::client_auth::{self, ClientCa, OnReject};

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: String },
    #[error("{path}: no PEM private key found")]
    NoKey { path: String },
    #[error("{path}: {message}")]
    Pem { path: String, message: String },
    #[error("certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A loaded pair: the rustls configuration, the certificate's notAfter, and a digest of the
/// file contents to notice changes.
pub struct Loaded {
    pub config: Arc<ServerConfig>,
    pub not_after: Option<i64>,
    pub digest: Vec<u8>,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn digest(cert: &[u8], key: &[u8], client_ca: Option<&[u8]>) -> Vec<u8> {
    let mut h = Sha256::new();
    // Lengths first: the same bytes split differently between the files are another input.
    for part in [cert, key, client_ca.unwrap_or_default()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().to_vec()
}

/// What the TLS configuration is made of besides the serving pair: the client CA, when clients
/// must present a certificate, and who hears of refused certificates.
#[derive(Clone, Default)]
pub struct ClientVerification {
    pub ca: Option<ClientCa>,
    pub on_reject: Option<OnReject>,
}

impl std::fmt::Debug for ClientVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientVerification")
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

/// Load and check a certificate/key pair: TLS 1.2 and 1.3 with the ring provider only, ALPN
/// h2 and http/1.1 (the apiserver speaks HTTP/1.1 to in-cluster webhooks, h2 is for clients that can).
pub fn load(files: &CertFiles) -> Result<Loaded, TlsError> {
    load_with(files, &ClientVerification::default())
}

/// `load`, plus client certificate verification when `client.ca` is set.
pub fn load_with(files: &CertFiles, client: &ClientVerification) -> Result<Loaded, TlsError> {
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let ca_pem = client.ca.as_ref().map(|c| read(&c.ca_file)).transpose()?;
    load_pems(files, client, &cert_pem, &key_pem, ca_pem.as_deref())
}

/// `load_with` on contents already read (`files` and `client` name them in errors).
fn load_pems(
    files: &CertFiles,
    client: &ClientVerification,
    cert_pem: &[u8],
    key_pem: &[u8],
    ca_pem: Option<&[u8]>,
) -> Result<Loaded, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert_path.clone(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path });
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: key_path.clone(),
        },
        other => TlsError::Pem {
            path: key_path.clone(),
            message: other.to_string(),
        },
    })?;
    let not_after = certs.first().and_then(|c| {
        x509_parser::parse_x509_certificate(c.as_ref())
            .ok()
            .map(|(_, x)| x.validity().not_after.timestamp())
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match (&client.ca, ca_pem) {
        (Some(ca), Some(pem)) => builder.with_client_cert_verifier(client_auth::verifier(
            ca,
            pem,
            client.on_reject.clone(),
        )?),
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        not_after,
        digest: digest(cert_pem, key_pem, ca_pem),
    })
}

/// What one poll of the certificate files came to (for metrics).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reload {
    /// A new pair is serving new handshakes; its notAfter.
    Loaded { not_after: Option<i64> },
    /// New files that do not load; the previous pair stays in use.
    Failed,
}

/// Poll the files (the client CA's too) every `interval`; on a change, load the new pair and
/// swap it in for new handshakes, or keep the old one and log why. `on_reload` hears of every swap and failure.
///
/// A pair that failed is not retried (nor logged again) until the files change once more: the
/// same bytes fail the same way, and a warning every interval would bury the first one. A file
/// that cannot be read (missing for a moment in the middle of an update) is retried each poll.
pub async fn watch(
    files: CertFiles,
    client: ClientVerification,
    config: RustlsConfig,
    current_digest: Vec<u8>,
    interval: Duration,
    on_reload: impl Fn(Reload) + Send + 'static,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Digests of the pair serving now and of the last pair that failed to load.
    let mut serving = current_digest;
    let mut failed: Option<Vec<u8>> = None;
    let mut last_read_error: Option<String> = None;
    loop {
        tick.tick().await;
        let (files, client) = (files.clone(), client.clone());
        let (skip_a, skip_b) = (serving.clone(), failed.clone());
        // Reading and parsing is blocking file I/O: keep it off the async workers.
        let result = tokio::task::spawn_blocking(move || -> Poll {
            let ca = client.ca.as_ref().map(|c| std::fs::read(&c.ca_file));
            let (c, k, ca) = match (std::fs::read(&files.cert), std::fs::read(&files.key), ca) {
                (Ok(c), Ok(k), None) => (c, k, None),
                (Ok(c), Ok(k), Some(Ok(ca))) => (c, k, Some(ca)),
                _ => return Poll::Unreadable(load_with(&files, &client).err()),
            };
            let d = digest(&c, &k, ca.as_deref());
            if d == skip_a || Some(&d) == skip_b.as_ref() {
                return Poll::Unchanged;
            }
            match load_pems(&files, &client, &c, &k, ca.as_deref()) {
                Ok(loaded) => Poll::Loaded(Box::new(loaded)),
                Err(e) => Poll::Broken(d, e),
            }
        })
        .await;
        match result {
            Ok(Poll::Unchanged) => {}
            Ok(Poll::Loaded(loaded)) => {
                config.reload_from_config(loaded.config);
                serving = loaded.digest;
                failed = None;
                last_read_error = None;
                on_reload(Reload::Loaded {
                    not_after: loaded.not_after,
                });
                tracing::info!(not_after = loaded.not_after, "serving certificate reloaded");
            }
            Ok(Poll::Broken(d, e)) => {
                failed = Some(d);
                on_reload(Reload::Failed);
                tracing::warn!(error = %e, "new serving certificate not loaded; the previous one stays in use");
            }
            Ok(Poll::Unreadable(e)) => {
                let text =
                    e.map_or_else(|| "files changed while read".to_string(), |e| e.to_string());
                if last_read_error.as_ref() != Some(&text) {
                    tracing::warn!(error = %text, "serving certificate files unreadable; the previous pair stays in use");
                    last_read_error = Some(text);
                }
            }
            Err(e) => tracing::warn!(error = %e, "certificate watcher task failed"),
        }
    }
}

enum Poll {
    Unchanged,
    Loaded(Box<Loaded>),
    Broken(Vec<u8>, TlsError),
    Unreadable(Option<TlsError>),
}

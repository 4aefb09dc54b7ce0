//! Serving certificate: load, hot reload by polling the files, expiry for metrics.
//!
//! Polling (rather than inotify) survives the `..data` symlink swap of Kubernetes Secret volumes.
//! A new pair that does not load keeps the old one serving, and the reason is logged.

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum_server::tls_rustls::RustlsConfig;
use rustls::{ServerConfig, pki_types::CertificateDer};
use sha2::{Digest, Sha256};
use thiserror::Error;

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

fn digest(cert: &[u8], key: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(cert);
    h.update(key);
    h.finalize().to_vec()
}

/// Load and check a certificate/key pair: TLS 1.2 and 1.3 with the ring provider only, ALPN
/// h2 and http/1.1 (the apiserver speaks HTTP/1.1 to in-cluster webhooks, h2 is for clients that can).
pub fn load(files: &CertFiles) -> Result<Loaded, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert_path.clone(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path });
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
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
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        not_after,
        digest: digest(&cert_pem, &key_pem),
    })
}

/// Poll the files every `interval`; on a change, load the new pair and swap it in for new
/// handshakes, or keep the old one and log why. `on_reload` gets the new notAfter.
pub async fn watch(
    files: CertFiles,
    config: RustlsConfig,
    mut current_digest: Vec<u8>,
    interval: Duration,
    on_reload: impl Fn(Option<i64>) + Send + 'static,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let files = files.clone();
        // Reading and parsing is blocking file I/O: keep it off the async workers.
        let unchanged = current_digest.clone();
        let result = tokio::task::spawn_blocking(move || -> Option<Result<Loaded, TlsError>> {
            let (Ok(c), Ok(k)) = (std::fs::read(&files.cert), std::fs::read(&files.key)) else {
                return Some(load(&files)); // report the read error
            };
            (digest(&c, &k) != unchanged).then(|| load(&files))
        })
        .await;
        match result {
            Ok(None) => {}
            Ok(Some(Ok(loaded))) => {
                config.reload_from_config(loaded.config);
                current_digest = loaded.digest;
                on_reload(loaded.not_after);
                tracing::info!(not_after = loaded.not_after, "serving certificate reloaded");
            }
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "new serving certificate not loaded; the previous one stays in use");
            }
            Err(e) => tracing::warn!(error = %e, "certificate watcher task failed"),
        }
    }
}

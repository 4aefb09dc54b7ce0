//! The HTTPS server: router, limits, TLS with hot reload, a plain-HTTP metrics listener, and
//! graceful shutdown (`/readyz` false at once, new connections for `shutdown_delay` more so that
//! endpoints can drop us, then new connections refused, and after `shutdown_settle` the open
//! connections shut down once their reviews in flight are answered, within `shutdown_grace`).

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use axum_server::{Handle, tls_rustls::RustlsConfig};
use thiserror::Error;
use tokio::sync::oneshot;
use tower_http::catch_panic::CatchPanicLayer;

use crate::catalog::Catalog;
use crate::core::Options;
use crate::metrics::Metrics;

use super::{
    budget::{ByteBudget, default_max_inflight_bytes},
    client_auth::ClientAuth,
    conn_buffers,
    handlers::{self, AppState},
    limits::ConnectionLimit,
    tls::{self, CertFiles},
};

/// How long the apiserver keeps an idle connection to a webhook: Go's `http.DefaultTransport`
/// value, which `k8s.io/apimachinery/pkg/util/net.SetOldTransportDefaults` copies into a
/// client-go transport that sets none; the webhook client's (client-go `transport/cache.go`,
/// v0.34.4, what kube-apiserver 1.34 is built from) sets none.
pub const IDLE_TIMEOUT_OF_THE_APISERVER: Duration = Duration::from_secs(90);

/// `ServeConfig::idle_timeout` by default: half a minute past the apiserver's, so that its
/// close always comes first, timer slack and a loaded machine included.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub cert: CertFiles,
    /// Bodies above this get 413. The apiserver sends at most 3 MiB of object, and an UPDATE
    /// review carries the object and the old object: the default leaves room for both.
    pub max_body_bytes: usize,
    /// A new connection's first request must arrive (its headers read) this soon.
    pub header_read_timeout: Duration,
    /// A kept-alive HTTP/1.1 connection waits this long for its next request. It must outlast
    /// the client's own idle timeout (the apiserver's: 90 s, `IDLE_TIMEOUT_OF_THE_APISERVER`), so
    /// that the client is the one that closes an idle connection: when the server closes it, a
    /// review the client sends on it at that moment fails with EOF, and under
    /// `failurePolicy: Fail` the user's write is refused (linkerd2#14096: hyper's 2 s header
    /// timeout, which is also its idle timeout, did this to its webhook; knative/pkg#1509 the
    /// same at shutdown).
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub review_timeout: Duration,
    /// Connections at once; each may hold `conn_buffers::PER_CONNECTION_BYTES`.
    pub max_connections: usize,
    /// Memory of the reviews in flight across all connections (`budget`); a review past it
    /// gets 429 with Retry-After. `None`: `budget::default_max_inflight_bytes` (two of the
    /// largest reviews).
    pub max_inflight_bytes: Option<usize>,
    pub shutdown_delay: Duration,
    /// After the delay, new connections are refused at once, but connections are shut down
    /// only this much later: those accepted just before get to finish their handshake and send
    /// their first request (milliseconds, unless the machine is overloaded).
    pub shutdown_settle: Duration,
    pub shutdown_grace: Duration,
    pub cert_poll_interval: Duration,
    /// An HTTP/2 connection idle this long is pinged, and closed if the ping is not answered
    /// within `h2_keepalive_timeout`: a dead peer must not hold a connection slot for ever.
    pub h2_keepalive_interval: Duration,
    pub h2_keepalive_timeout: Duration,
    /// Write (and guard) companions: set when the catalog comes from the cluster.
    pub companions: Option<Arc<handlers::CompanionWrites>>,
    /// The registry to record into (shared with the controller); a new one when `None`.
    pub metrics: Option<Arc<Metrics>>,
    /// Who may call the admission port (see `client_auth`).
    pub client_auth: ClientAuth,
}

impl ServeConfig {
    pub fn new(listen: SocketAddr, cert: CertFiles) -> Self {
        ServeConfig {
            listen,
            metrics_listen: None,
            cert,
            max_body_bytes: 7 << 20,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            handshake_timeout: Duration::from_secs(5),
            review_timeout: Duration::from_secs(8),
            max_connections: 1024,
            max_inflight_bytes: None,
            shutdown_delay: Duration::from_secs(5),
            shutdown_settle: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(20),
            cert_poll_interval: Duration::from_secs(10),
            h2_keepalive_interval: Duration::from_secs(30),
            h2_keepalive_timeout: Duration::from_secs(10),
            companions: None,
            metrics: None,
            client_auth: ClientAuth::None,
        }
    }
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("serving certificate: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("{what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The handlers share one `Arc` of the state: axum clones the state for every request, and
/// a clone of `AppState` itself is a reference count per field plus the options' strings.
pub fn router(state: AppState) -> Router {
    let state = Arc::new(state);
    let reviews = Router::new()
        .route("/mutate", post(handlers::mutate))
        .route("/validate", post(handlers::validate))
        // The review handlers read their bodies themselves, with `max_body_bytes`.
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(reviews)
        .merge(probes(state.clone()))
        .layer(CatchPanicLayer::custom(handlers::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            handlers::close_when_draining,
        ))
        .with_state(state)
}

fn probes(_state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
}

/// Stop accepting: new connection attempts are refused from now on (the kernel answers RST),
/// while accepted connections are untouched. `shutdown(2)` on a listening socket does this on
/// Linux; elsewhere it may fail, and the graceful shutdown that follows closes the listener.
fn stop_accepting(listener: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: shutdown(2) on a descriptor we own (our clone of the listener), alive for the
    // whole call; it changes the socket's state and touches no memory.
    let rc = unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RD) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "could not stop the listener early; it closes with the graceful shutdown"
        );
    }
}

/// A running server: its addresses, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Begin the graceful shutdown (as SIGTERM does); await `done` for the end.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Load the certificate, bind, and serve in the background until `shutdown()` (or the returned
/// sender is dropped).
pub async fn start(
    cfg: ServeConfig,
    catalog: Arc<Catalog>,
    opts: Options,
) -> Result<Running, ServeError> {
    let metrics = cfg.metrics.clone().unwrap_or_default();
    let client = tls::ClientVerification {
        ca: cfg.client_auth.client_ca().cloned(),
        on_reject: Some({
            let metrics = metrics.clone();
            Arc::new(move |reason| metrics.client_certificate_rejected(reason))
        }),
    };
    let loaded = tls::load_with(&cfg.cert, &client)?;
    metrics.set_client_auth(cfg.client_auth.mode(), &ClientAuth::MODES);
    match &cfg.client_auth {
        ClientAuth::Mtls(ca) if ca.allowed_names.is_empty() => tracing::info!(
            client_ca = %ca.ca_file.display(),
            "admission port: client certificates required, any name the client CA signed"
        ),
        ClientAuth::Mtls(ca) => tracing::info!(
            client_ca = %ca.ca_file.display(),
            allowed_names = ?ca.allowed_names,
            "admission port: client certificates required"
        ),
        ClientAuth::Network => tracing::info!(
            "admission port: no client certificates; a NetworkPolicy is said to admit only the apiserver (--ingress-restricted)"
        ),
        ClientAuth::None => tracing::warn!(
            "admission port: callers are not authenticated (no --client-ca, no --ingress-restricted): anyone who reaches it can send a review, and an admitted review makes this webhook write Istio objects (AuthorizationPolicies included) with its own rights"
        ),
    }
    if let Some(t) = loaded.not_after {
        metrics.cert_expiry.set(t);
    }
    let state = AppState {
        catalog,
        opts,
        metrics: metrics.clone(),
        cert_loaded: Arc::new(AtomicBool::new(true)),
        shutting_down: Arc::new(AtomicBool::new(false)),
        review_timeout: cfg.review_timeout,
        max_body_bytes: cfg.max_body_bytes,
        inflight: ByteBudget::new(
            cfg.max_inflight_bytes
                .unwrap_or_else(|| default_max_inflight_bytes(cfg.max_body_bytes)),
        ),
        companions: cfg.companions.clone(),
    };
    let rustls = RustlsConfig::from_config(loaded.config);
    let watcher = tokio::spawn(tls::watch(
        cfg.cert.clone(),
        client,
        rustls.clone(),
        loaded.digest,
        cfg.cert_poll_interval,
        {
            let metrics = metrics.clone();
            move |event| {
                metrics.cert_reloaded(match event {
                    tls::Reload::Loaded { not_after } => Some(not_after),
                    tls::Reload::Failed => None,
                })
            }
        },
    ));

    let handle: Handle<SocketAddr> = Handle::new();
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls)
        .handshake_timeout(cfg.handshake_timeout)
        .acceptor(ConnectionLimit::new(cfg.max_connections));
    // Bind here rather than inside `serve`, so that "address in use" reaches the caller as is.
    let bind_err = |source| ServeError::Bind {
        what: "listen on",
        addr: cfg.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(cfg.listen).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    // Our own handle on the listening socket, to stop accepting before the connections are
    // told to shut down (see `stop_accepting`).
    let accepting = listener.try_clone().map_err(bind_err)?;
    let mut server = axum_server::from_tcp(listener)
        .map_err(bind_err)?
        .acceptor(acceptor)
        .handle(handle.clone())
        .first_request_timeout(cfg.header_read_timeout)
        .accept_error_handler(|addr: Option<&SocketAddr>, e: &std::io::Error| {
            tracing::debug!(peer = ?addr, error = %e, "connection not accepted");
        });
    // A new connection's slow or stalled first request (one byte a second) is cut off after
    // `header_read_timeout` (first_request_timeout above); a kept-alive HTTP/1.1 connection's
    // wait for its next request after `idle_timeout`; idle HTTP/2 connections are pinged; every
    // per-connection buffer is bounded.
    conn_buffers::configure(
        server.http_builder(),
        cfg.idle_timeout,
        cfg.h2_keepalive_interval,
        cfg.h2_keepalive_timeout,
    );
    let app = router(state.clone());
    let serve = tokio::spawn({
        let app = app.clone();
        async move {
            if let Err(e) = server.serve(app.into_make_service()).await {
                tracing::error!(error = %e, "admission server stopped with an error");
            }
        }
    });

    let (metrics_handle, metrics_addr, metrics_task) = match cfg.metrics_listen {
        Some(maddr) => {
            let listener = tokio::net::TcpListener::bind(maddr)
                .await
                .map_err(|source| ServeError::Bind {
                    what: "metrics listen on",
                    addr: maddr,
                    source,
                })?;
            let bound = listener.local_addr().ok();
            let h: Handle<SocketAddr> = Handle::new();
            let shared = Arc::new(state.clone());
            let probes_app = probes(shared.clone()).with_state(shared);
            let std_listener = listener.into_std().map_err(|source| ServeError::Bind {
                what: "metrics listen on",
                addr: maddr,
                source,
            })?;
            let srv = axum_server::from_tcp(std_listener)
                .map_err(|source| ServeError::Bind {
                    what: "metrics listen on",
                    addr: maddr,
                    source,
                })?
                .handle(h.clone());
            let task = tokio::spawn(async move {
                let _ = srv.serve(probes_app.into_make_service()).await;
            });
            (Some(h), bound, Some(task))
        }
        None => (None, None, None),
    };

    let (tx, rx) = oneshot::channel::<()>();
    let shutting_down = state.shutting_down.clone();
    let (delay, settle, grace) = (cfg.shutdown_delay, cfg.shutdown_settle, cfg.shutdown_grace);
    let done = tokio::spawn(async move {
        // A dropped sender also stops the server: nothing may outlive its owner.
        let _ = rx.await;
        shutting_down.store(true, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "shutdown: /readyz is false; accepting connections a little longer"
        );
        tokio::time::sleep(delay).await;
        // First refuse new connections, then give the ones accepted just before a moment to
        // finish their handshake and send their first request, and only then shut connections
        // down. A graceful shutdown at once drops a connection still in its TLS handshake and
        // closes one that has not sent its request yet: the client (TLS 1.3 finishes its side
        // first) has often written that request already and sees a reset instead of an answer.
        stop_accepting(&accepting);
        tokio::time::sleep(settle.min(grace)).await;
        handle.graceful_shutdown(Some(grace));
        let _ = serve.await;
        if let Some(h) = metrics_handle {
            h.graceful_shutdown(Some(Duration::from_secs(1)));
        }
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        watcher.abort();
        tracing::info!("shutdown complete");
    });
    Ok(Running {
        addr,
        metrics_addr,
        state,
        shutdown: Some(tx),
        done,
    })
}

//! The benchmark floor (issue 12): the least any admission webhook must do, over the same stack
//! as `serve`. It reads the body, decodes the AdmissionReview and answers `allowed: true`.
//! Nothing else: no rules, no catalog, no metrics, no tracing.
//!
//! What it shares with `serve`, so that the difference between the two is our work and nothing
//! else: the rustls configuration (built by the same `tls::load_with`: ring, TLS 1.2/1.3, ALPN
//! h2 + http/1.1, the same client-certificate verifier with the same allowed names), axum-server
//! with hyper-util's auto HTTP/1.1 + HTTP/2 builder, a multi-thread tokio runtime with one
//! worker per core, and the global allocator (mimalloc, as `src/main.rs`). Until 2026-12-02 the
//! floor ran on glibc's malloc: callgrind counted about 20,000 more instructions per review in
//! its malloc and free than `serve` spent in mimalloc (`bench/instructions_ab.py`), a handicap
//! that flattered every ratio to it.
//!
//! One thing it does not share by default: `serve`'s per-connection buffer bounds
//! (`conn_buffers::configure`: HTTP/2 windows, frame and send-buffer sizes, 8 streams). They are
//! a choice of `serve` with a cost, so the floor has hyper's defaults; `--conn-buffers serve`
//! gives it `serve`'s, to measure that cost apart.
//!
//! usage: bench_floor --listen ADDR --tls-cert F --tls-key F [--client-ca F --client-allowed-names a,b]
//!        [--conn-buffers hyper|serve]

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::DefaultBodyLimit,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use axum_server::tls_rustls::RustlsConfig;
use egress_webhook::admission::{
    ServeConfig,
    client_auth::ClientCa,
    conn_buffers,
    tls::{CertFiles, ClientVerification, load_with},
};
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview},
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Decode, allow, encode.
async fn allow(body: Bytes) -> Response {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    Json(AdmissionResponse::from(&request).into_review()).into_response()
}

struct Args {
    listen: SocketAddr,
    cert: CertFiles,
    client_ca: Option<ClientCa>,
    serve_buffers: bool,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "bench_floor: {why}\nusage: bench_floor --listen ADDR --tls-cert F --tls-key F [--client-ca F --client-allowed-names a,b] [--conn-buffers hyper|serve]"
    );
    std::process::exit(2)
}

fn args() -> Args {
    let mut listen = None;
    let (mut cert, mut key, mut ca, mut names) = (None, None, None, Vec::new());
    let mut serve_buffers = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--listen" => {
                listen = Some(value.parse().unwrap_or_else(|e| usage(&format!("{e}"))));
            }
            "--tls-cert" => cert = Some(PathBuf::from(value)),
            "--tls-key" => key = Some(PathBuf::from(value)),
            "--client-ca" => ca = Some(PathBuf::from(value)),
            "--client-allowed-names" => {
                names = value.split(',').map(str::to_string).collect();
            }
            "--conn-buffers" => {
                serve_buffers = match value.as_str() {
                    "hyper" => false,
                    "serve" => true,
                    v => usage(&format!("--conn-buffers is hyper or serve, not {v}")),
                }
            }
            other => usage(&format!("unknown flag {other}")),
        }
    }
    Args {
        listen: listen.unwrap_or_else(|| usage("--listen is required")),
        cert: CertFiles {
            cert: cert.unwrap_or_else(|| usage("--tls-cert is required")),
            key: key.unwrap_or_else(|| usage("--tls-key is required")),
        },
        client_ca: ca.map(|ca_file| ClientCa {
            ca_file,
            allowed_names: names,
        }),
        serve_buffers,
    }
}

fn main() {
    let args = args();
    let loaded = load_with(
        &args.cert,
        &ClientVerification {
            ca: args.client_ca,
            on_reject: None,
        },
    )
    .unwrap_or_else(|e| usage(&e.to_string()));
    let app = Router::new()
        .route("/validate", post(allow))
        .route("/mutate", post(allow))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        // `serve` accepts reviews up to 7 MiB (an UPDATE carries two 3 MiB objects).
        .layer(DefaultBodyLimit::max(7 << 20));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let config = RustlsConfig::from_config(Arc::clone(&loaded.config));
        eprintln!("bench_floor listening on {}", args.listen);
        let mut server = axum_server::bind_rustls(args.listen, config);
        if args.serve_buffers {
            let d = ServeConfig::new(args.listen, args.cert.clone());
            conn_buffers::configure(
                server.http_builder(),
                d.idle_timeout,
                d.h2_keepalive_interval,
                d.h2_keepalive_timeout,
            );
        }
        if let Err(e) = server.serve(app.into_make_service()).await {
            usage(&format!("serving: {e}"));
        }
    });
}

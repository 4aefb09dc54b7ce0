//! Load generator for bench/admission-latency.sh: POSTs one AdmissionReview body `N` times over
//! `C` HTTP/1.1 connections (as the apiserver does) to a running `serve`, and GETs `/healthz` the
//! same way as the baseline. Prints one Markdown table row per target: count, errors,
//! throughput, p50, p99, max.
//!
//! usage: review_load BASE_URL CA_PEM REVIEW_JSON N C

use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(
    client: reqwest::Client,
    url: String,
    body: Option<Vec<u8>>,
    n: usize,
    c: usize,
) -> (Vec<Duration>, usize, Duration) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..c {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        let share = n / c + usize::from(w < n % c);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(share);
            let mut errors = 0;
            for _ in 0..share {
                let t = Instant::now();
                let req = match &body {
                    Some(b) => client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(b.clone()),
                    None => client.get(&url),
                };
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        // Read the whole answer: the apiserver does.
                        if r.bytes().await.is_err() {
                            errors += 1;
                        }
                    }
                    _ => errors += 1,
                }
                lat.push(t.elapsed());
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::with_capacity(n);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("worker");
        all.extend(l);
        errors += e;
    }
    all.sort();
    (all, errors, started.elapsed())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, ca, review, n, c] = args.as_slice() else {
        eprintln!("usage: review_load BASE_URL CA_PEM REVIEW_JSON N C");
        std::process::exit(2);
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = n.parse().expect("N");
    let c: usize = c.parse().expect("C");
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).expect("CA file");
    {
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.expect("CA PEM")).expect("CA cert");
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .http1_only()
        .pool_max_idle_per_host(c)
        .build()
        .expect("client");
    let body = std::fs::read(review).expect("review file");
    // Warm-up: connections and TLS sessions, as a long-lived apiserver has them.
    let _ = run(client.clone(), format!("{base}/healthz"), None, c * 10, c).await;
    for (name, url, body) in [
        ("baseline: GET /healthz", format!("{base}/healthz"), None),
        (
            "POST /validate (ExternalService review)",
            format!("{base}/validate?timeout=10s"),
            Some(body.clone()),
        ),
        (
            "POST /mutate (ExternalService review)",
            format!("{base}/mutate?timeout=10s"),
            Some(body.clone()),
        ),
    ] {
        let (lat, errors, wall) = run(client.clone(), url, body, n, c).await;
        println!(
            "| {name} | {n} | {errors} | {:.0}/s | {:.2} ms | {:.2} ms | {:.2} ms |",
            n as f64 / wall.as_secs_f64(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
}

//! Certificate hot reload: replace the files under a running server while clients send reviews;
//! the next handshake presents the new certificate, no request fails, and a broken new pair
//! keeps the current one serving.

mod support;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use support::server::{
    Http, Pki, TestServer, client_with, handshake_leaf, leaf_der, post, replace_file, valid_review,
    wait_for,
};

const POLL: Duration = Duration::from_millis(200);

/// Reviews in a loop until stopped: every answer must be a 200 review. Returns the number of
/// answers and the leaf certificates seen, in order.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Vec<u8>>>>,
}

impl Load {
    fn start(srv: &TestServer, cas: &[&str]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        // Kept-alive connections (h1, h2) and a new connection per request (h1): the last one
        // is the client that meets the new certificate.
        for (http, fresh) in [(Http::H1, false), (Http::H2, false), (Http::H1, true)] {
            let client = client_with(cas, http, fresh);
            let url = srv.url("/validate?timeout=10s");
            let (stop, answered) = (stop.clone(), answered.clone());
            tasks.push(tokio::spawn(async move {
                let mut seen: Vec<Vec<u8>> = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let (id, r) = valid_review("reload");
                    let a = post(&client, &url, serde_json::to_vec(&r).unwrap())
                        .await
                        .unwrap_or_else(|e| {
                            panic!("a review failed during reload ({http:?}, fresh {fresh}): {e:?}")
                        });
                    a.assert_answers(&id);
                    if let Some(c) = a.peer_cert
                        && seen.last() != Some(&c)
                    {
                        seen.push(c);
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                seen
            }));
        }
        Load {
            stop,
            answered,
            tasks,
        }
    }

    async fn wait_answers(&self, more: usize) {
        let target = self.answered.load(Ordering::SeqCst) + more;
        let answered = self.answered.clone();
        wait_for(
            "reviews keep being answered",
            Duration::from_secs(30),
            || {
                let n = answered.load(Ordering::SeqCst);
                async move { n >= target }
            },
        )
        .await;
    }

    async fn finish(self) -> Vec<Vec<Vec<u8>>> {
        self.stop.store(true, Ordering::SeqCst);
        let mut out = Vec::new();
        for t in self.tasks {
            out.push(t.await.expect("no review failed"));
        }
        out
    }
}

/// The server's own clients (used for /metrics) must trust both CAs across the swap.
fn trust(srv: &mut TestServer, cas: &[&str]) {
    srv.h1 = client_with(cas, Http::H1, false);
    srv.h2 = client_with(cas, Http::H2, false);
}

async fn metrics(srv: &TestServer) -> String {
    let (status, text) = srv.get("/metrics").await;
    assert_eq!(status, 200);
    text
}

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn reloads(srv: &TestServer, result: &str) -> f64 {
    let m = metrics(srv).await;
    sample(
        &m,
        &format!("egress_webhook_certificate_reloads_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(0.0)
}

fn not_after(pem: &str) -> i64 {
    let der = leaf_der(pem);
    let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
    x.validity().not_after.timestamp()
}

async fn wait_failed_reloads(srv: &TestServer, at_least: f64) {
    wait_for(
        "the watcher rejects the broken pair",
        Duration::from_secs(10),
        || async move { reloads(srv, "failed").await >= at_least },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_files_are_served_on_the_next_handshake_without_failing_a_request() {
    // Two CAs; notAfter differs so that the expiry metric tells the two apart.
    let a = Pki::with_days(30);
    let b = Pki::with_days(90);
    let (cert_a, cert_b) = (a.leaf_der(), b.leaf_der());
    assert_ne!(cert_a, cert_b);
    let mut srv =
        TestServer::start_with_pki(a, support::seed(), |c| c.cert_poll_interval = POLL).await;
    let cas = [srv.pki.bundle.ca_cert.clone(), b.bundle.ca_cert.clone()];
    let cas: Vec<&str> = cas.iter().map(String::as_str).collect();
    trust(&mut srv, &cas);
    let addr = srv.addr();
    assert_eq!(handshake_leaf(addr, &cas).await.unwrap(), cert_a);
    let m = metrics(&srv).await;
    assert_eq!(
        sample(&m, "egress_webhook_certificate_expiry_timestamp_seconds "),
        Some(not_after(&srv.pki.bundle.cert) as f64),
        "{m}"
    );

    let load = Load::start(&srv, &cas);
    load.wait_answers(20).await;

    // Half an update: B's certificate with A's key. It cannot load: A keeps serving.
    replace_file(&srv.pki.files.cert, &b.bundle.cert);
    wait_failed_reloads(&srv, 1.0).await;
    assert_eq!(handshake_leaf(addr, &cas).await.unwrap(), cert_a);
    load.wait_answers(20).await;

    // The other half: now B is a pair, and the next new handshake presents it.
    replace_file(&srv.pki.files.key, &b.bundle.key);
    wait_for(
        "the next handshake presents B",
        Duration::from_secs(10),
        || {
            let cas = cas.clone();
            let cert_b = cert_b.clone();
            async move { handshake_leaf(addr, &cas).await.ok() == Some(cert_b) }
        },
    )
    .await;
    for _ in 0..5 {
        assert_eq!(
            handshake_leaf(addr, &cas).await.unwrap(),
            cert_b,
            "B, and only B"
        );
    }
    let m = metrics(&srv).await;
    assert_eq!(
        sample(&m, "egress_webhook_certificate_expiry_timestamp_seconds "),
        Some(not_after(&b.bundle.cert) as f64),
        "{m}"
    );
    assert_eq!(reloads(&srv, "loaded").await, 1.0);
    load.wait_answers(30).await;

    // A broken pair (garbage key): B keeps serving, the server keeps answering.
    let failed = reloads(&srv, "failed").await;
    replace_file(
        &srv.pki.files.key,
        "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n",
    );
    wait_failed_reloads(&srv, failed + 1.0).await;
    assert_eq!(handshake_leaf(addr, &cas).await.unwrap(), cert_b);
    // Not a key at all, and then no key file: the same.
    replace_file(&srv.pki.files.key, "not PEM at all");
    wait_failed_reloads(&srv, failed + 2.0).await;
    std::fs::remove_file(&srv.pki.files.key).unwrap();
    load.wait_answers(30).await;
    assert_eq!(handshake_leaf(addr, &cas).await.unwrap(), cert_b);
    let m = metrics(&srv).await;
    assert_eq!(
        sample(&m, "egress_webhook_certificate_expiry_timestamp_seconds "),
        Some(not_after(&b.bundle.cert) as f64),
        "a failed reload leaves the expiry of the certificate in use: {m}"
    );

    let seen = load.finish().await;
    // The new-connection-per-request client went from A to B, never back.
    assert_eq!(
        seen[2],
        vec![cert_a.clone(), cert_b.clone()],
        "certificates seen in order"
    );
    // Kept-alive connections stay on the certificate of their handshake.
    for s in &seen[..2] {
        assert_eq!(s.first(), Some(&cert_a));
    }
    srv.stop().await;
}

/// A Kubernetes Secret volume: `tls.crt -> ..data/tls.crt`, `..data -> ..<timestamp>`, and an
/// update swaps the `..data` symlink in one rename: both files change at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_volume_update_is_picked_up() {
    use std::os::unix::fs::symlink;
    let a = Pki::with_days(30);
    let b = Pki::with_days(90);
    let vol = tempfile::tempdir().unwrap();
    let write_version = |dir: &Path, name: &str, pki: &Pki| {
        let v = dir.join(name);
        std::fs::create_dir(&v).unwrap();
        std::fs::write(v.join("tls.crt"), &pki.bundle.cert).unwrap();
        std::fs::write(v.join("tls.key"), &pki.bundle.key).unwrap();
    };
    write_version(vol.path(), "..2026_11_25_10_00_00.1", &a);
    symlink("..2026_11_25_10_00_00.1", vol.path().join("..data")).unwrap();
    symlink("..data/tls.crt", vol.path().join("tls.crt")).unwrap();
    symlink("..data/tls.key", vol.path().join("tls.key")).unwrap();

    let mut pki = Pki::with_days(1);
    pki.bundle = a.bundle;
    pki.files.cert = vol.path().join("tls.crt");
    pki.files.key = vol.path().join("tls.key");
    let mut srv =
        TestServer::start_with_pki(pki, support::seed(), |c| c.cert_poll_interval = POLL).await;
    let cas = [srv.pki.bundle.ca_cert.clone(), b.bundle.ca_cert.clone()];
    let cas: Vec<&str> = cas.iter().map(String::as_str).collect();
    trust(&mut srv, &cas);
    let addr = srv.addr();
    assert_eq!(
        handshake_leaf(addr, &cas).await.unwrap(),
        leaf_der(&srv.pki.bundle.cert)
    );

    let load = Load::start(&srv, &cas);
    load.wait_answers(20).await;
    // What the kubelet's atomic writer does.
    write_version(vol.path(), "..2026_11_25_11_00_00.2", &b);
    symlink("..2026_11_25_11_00_00.2", vol.path().join("..data_tmp")).unwrap();
    std::fs::rename(vol.path().join("..data_tmp"), vol.path().join("..data")).unwrap();
    std::fs::remove_dir_all(vol.path().join("..2026_11_25_10_00_00.1")).unwrap();

    let cert_b = b.leaf_der();
    wait_for(
        "the next handshake presents B",
        Duration::from_secs(10),
        || {
            let cas = cas.clone();
            let cert_b = cert_b.clone();
            async move { handshake_leaf(addr, &cas).await.ok() == Some(cert_b) }
        },
    )
    .await;
    load.wait_answers(20).await;
    let seen = load.finish().await;
    assert_eq!(seen[2].last(), Some(&cert_b));
    assert_eq!(
        reloads(&srv, "failed").await,
        0.0,
        "an atomic swap never shows half a pair"
    );
    srv.stop().await;
}

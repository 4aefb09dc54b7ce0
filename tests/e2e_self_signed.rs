//! `serve --self-signed-secret` on the real control plane, with the webhook as its own process
//! (the binary under test, authenticated as the webhook's ServiceAccount with the RBAC of
//! manifests/base plus manifests/overlays/self-signed/rbac.yaml, nothing more):
//! 1. against a cluster with no certificate it creates the Secret, sets the caBundle of the
//!    mutating, validate and guard webhooks, and the apiserver calls it over the new CA;
//! 2. with a serving certificate 1 minute from expiry in the Secret, a replica that starts
//!    rotates it at start-up, the replica already serving picks the new pair up, and a loop of
//!    admissions through the serving replica sees no failure;
//! 3. with 90 s left and `--cert-renew-before=60s` the serving webhook rotates while serving:
//!    no failed admission, and a TLS client sees the new certificate;
//! 4. two replicas starting at once against an empty namespace: one Secret, one certificate;
//! 5. a Secret of that name that is not ours and holds garbage stops start-up with an error
//!    naming the Secret and the field.
//!
//! Its own cluster: the test re-registers and stops webhooks, which would break any test sharing
//! one.

mod e2e;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use e2e::{eventually, kubectl, kubectl_in, repo, skip_cluster_tests};
use egress_webhook::admission::tls::CertFiles;
use egress_webhook::certs;
use egress_webhook::cluster::dev::{DevCluster, DevOptions, Replica, ReplicaOptions, WebhookMode};
use serde_json::{Value, json};

const NS: &str = "egress-webhook";
const SECRET: &str = "egress-webhook-tls";
const DAY: i64 = 86_400;

/// The hosts serve puts in the certificate with `--self-signed-host=127.0.0.1`.
fn hosts() -> Vec<String> {
    vec![
        "egress-webhook.egress-webhook.svc".into(),
        "egress-webhook.egress-webhook.svc.cluster.local".into(),
        "127.0.0.1".into(),
    ]
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("base64 {text:?}: {e}"))
}

/// The Secret's data (decoded), or None when it does not exist.
fn secret(dev: &DevCluster) -> Option<(Value, std::collections::BTreeMap<String, Vec<u8>>)> {
    let out = kubectl(dev, &["get", "secret", "-n", NS, SECRET, "-o", "json"]);
    if !out.ok {
        assert!(out.stderr.contains("NotFound"), "{out:?}");
        return None;
    }
    let s = out.json();
    let data = s["data"]
        .as_object()
        .expect("data")
        .iter()
        .map(|(k, v)| (k.clone(), unb64(v.as_str().unwrap())))
        .collect();
    Some((s, data))
}

/// The caBundle of every webhook of both configurations, by webhook name.
fn ca_bundles(dev: &DevCluster) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in [
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
    ] {
        let c = kubectl(dev, &["get", kind, "egress-webhook", "-o", "json"])
            .expect_ok(kind)
            .json();
        for w in c["webhooks"].as_array().expect("webhooks") {
            let bundle = w["clientConfig"]["caBundle"].as_str().map(unb64);
            out.push((
                w["name"].as_str().unwrap().to_string(),
                bundle.unwrap_or_default(),
            ));
        }
    }
    out
}

fn der_of(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem)
        .expect("PEM certificate")
        .to_vec()
}

/// The certificate `addr` serves, verified against `ca_pem` for IP 127.0.0.1.
fn served(addr: SocketAddr, ca_pem: &[u8]) -> Result<Vec<u8>, String> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no peer certificate")?
        .to_vec())
}

/// notAfter (Unix s) of a DER certificate.
fn not_after(der: &[u8]) -> i64 {
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(der)
        .expect("X.509")
        .1
        .validity()
        .not_after
        .timestamp()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// Replace the Secret with a long-lived CA and a leaf of ours that expires at `leaf_until`,
/// as an earlier installation would have left it; returns the CA PEM.
fn seed_secret(dev: &DevCluster, leaf_until: i64) -> String {
    let ca = certs::issue_ca("seeded CA", at(now() - DAY), at(now() + 3650 * DAY)).unwrap();
    let leaf =
        certs::issue_leaf(&ca.cert, &ca.key, &hosts(), at(now() - DAY), at(leaf_until)).unwrap();
    kubectl(
        dev,
        &["delete", "secret", "-n", NS, SECRET, "--ignore-not-found"],
    )
    .expect_ok("delete the Secret");
    let s = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": SECRET, "namespace": NS,
                     "labels": {"app.kubernetes.io/managed-by": "egress-webhook"}},
        "data": {"tls.crt": b64(leaf.cert.as_bytes()), "tls.key": b64(leaf.key.as_bytes()),
                 "ca.crt": b64(ca.cert.as_bytes()), "ca.key": b64(ca.key.as_bytes())}
    });
    kubectl_in(dev, &["create", "-f", "-"], &s.to_string()).expect_ok("seed the Secret");
    ca.cert
}

/// A self-signed webhook process writing its pair under `dir`.
fn self_signed(
    dev: &DevCluster,
    dir: &std::path::Path,
    addr: Option<SocketAddr>,
    extra: &[&str],
) -> Result<Replica, String> {
    let mut args = vec![
        format!("--self-signed-secret={SECRET}"),
        "--self-signed-host=127.0.0.1".into(),
        "--cert-poll-interval=1s".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    dev.start_replica_with(ReplicaOptions {
        args,
        tls: Some(CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }),
        addr,
        ..ReplicaOptions::default()
    })
    .map_err(|e| e.to_string())
}

/// Server-side dry-run creates of an ExternalService, one after another, until stopped: each
/// goes through the mutating and the validating webhook.
struct AdmissionLoop {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl AdmissionLoop {
    fn start(dev: &Arc<DevCluster>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (dev, flag) = (dev.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            dev.block_on(async {
                use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
                let client = dev.admin_client().await.expect("admin client");
                let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
                    "networking.gloo.solo.io",
                    "v2",
                    "ExternalService",
                ));
                let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
                let dry = PostParams {
                    dry_run: true,
                    ..Default::default()
                };
                let (mut n, mut failures) = (0usize, Vec::new());
                while !flag.load(Ordering::Relaxed) {
                    let obj: DynamicObject = serde_json::from_value(json!({
                        "apiVersion": "networking.gloo.solo.io/v2", "kind": "ExternalService",
                        "metadata": {"name": format!("rotation-probe-{n}"), "namespace": "default"},
                        "spec": {"hosts": ["probe.example.com"],
                                 "ports": [{"name": "http", "number": 80, "protocol": "HTTP"}]}
                    }))
                    .unwrap();
                    n += 1;
                    match api.create(&dry, &obj).await {
                        // The mutating webhook defaulted it: both webhooks answered.
                        Ok(o) if o.data.pointer("/spec/ports/0/targetPort").is_some() => {}
                        Ok(o) => failures.push(format!("not defaulted: {:?}", o.data)),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                (n, failures)
            })
        });
        AdmissionLoop { stop, handle }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("admission loop")
    }
}

fn free_addr() -> SocketAddr {
    // Bound and released: the webhook binds it a moment later (as the dev cluster does).
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    l.local_addr().unwrap()
}

fn log_of(r: &Replica) -> String {
    std::fs::read_to_string(r.log()).unwrap_or_default()
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn self_signed_creates_rotates_and_shares_its_certificate() {
    if skip_cluster_tests() {
        return;
    }
    let mut dev = DevCluster::start(DevOptions {
        webhook: WebhookMode::Process(PathBuf::from(env!("CARGO_BIN_EXE_egress-webhook"))),
        ..DevOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // The committed RBAC of the overlay, for the ServiceAccount the dev webhook runs as.
    assert_eq!(dev.webhook_user().namespace, NS);
    let rbac = repo("manifests/overlays/self-signed/rbac.yaml");
    kubectl(&dev, &["apply", "-f", rbac.to_str().unwrap()]).expect_ok("self-signed RBAC");
    // Only the self-signed processes admit from now on.
    dev.stop_webhook().unwrap_or_else(|e| panic!("{e}"));
    let work = tempfile::tempdir().unwrap();

    // 1. No certificate anywhere: the configurations point at A without a caBundle.
    let a = free_addr();
    dev.register_with(a, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(secret(&dev).is_none(), "no Secret before");
    assert!(ca_bundles(&dev).iter().all(|(_, b)| b.is_empty()));
    let mut first = self_signed(&dev, &work.path().join("first"), Some(a), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let (s, data) = secret(&dev).expect("the Secret was created");
    assert_eq!(s["type"], "kubernetes.io/tls");
    assert_eq!(
        s["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "egress-webhook"
    );
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    let bundles = ca_bundles(&dev);
    let names: Vec<&str> = bundles.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "mutate.egress-webhook.io",
            "validate.egress-webhook.io",
            "guard.egress-webhook.io"
        ]
    );
    for (name, bundle) in &bundles {
        assert_eq!(bundle, &data["ca.crt"], "caBundle of {name}");
    }
    assert_eq!(
        served(a, &data["ca.crt"]).unwrap(),
        der_of(&data["tls.crt"]),
        "serves the Secret's pair"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let key = work.path().join("first/tls.key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode");
    }
    // The apiserver trusts the new CA: the running example through all three webhooks.
    for f in [
        "00-namespaces.yaml",
        "10-egress-gateway-service.yaml",
        "20-service-accounts.yaml",
        "30-virtualgateway.yaml",
    ] {
        kubectl(
            &dev,
            &[
                "apply",
                "-f",
                repo(&format!("manifests/examples/{f}")).to_str().unwrap(),
            ],
        )
        .expect_ok(f);
    }
    let es = repo("manifests/examples/40-externalservice.yaml");
    let dry = kubectl(
        &dev,
        &[
            "apply",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            es.to_str().unwrap(),
        ],
    )
    .expect_ok("dry-run apply of the ExternalService")
    .json();
    assert_eq!(
        dry["spec"]["ports"][0]["targetPort"]["number"], 443,
        "defaulted by the mutating webhook: {dry}"
    );
    kubectl(&dev, &["apply", "-f", es.to_str().unwrap()]).expect_ok("apply the ExternalService");
    let se = kubectl(
        &dev,
        &[
            "get",
            "serviceentries",
            "-n",
            "global",
            "-l",
            "gloo.solo.io/parent_name=httpbin.org",
            "-o",
            "name",
        ],
    )
    .expect_ok("companion ServiceEntry")
    .stdout;
    let guarded = kubectl(
        &dev,
        &[
            "annotate",
            "-n",
            "global",
            se.trim(),
            "by-hand=1",
            "--dry-run=server",
        ],
    )
    .expect_err("the guard denies a hand edit");
    assert!(
        guarded
            .stderr
            .contains("admission webhook \"guard.egress-webhook.io\" denied"),
        "the guard answered over the new CA: {guarded:?}"
    );
    first.stop();

    // 2. A leaf 1 minute from expiry. `old` serves it (its own renew-before is shorter, so it
    //    does not rotate it itself); `new` starts with the default renew-before and rotates it
    //    at start-up; `old` picks the new pair up from the Secret. Admissions go to `old`.
    let seeded_ca = seed_secret(&dev, now() + 60);
    let seeded_leaf = der_of(&secret(&dev).unwrap().1["tls.crt"]);
    let old = self_signed(
        &dev,
        &work.path().join("old"),
        Some(a),
        &["--cert-renew-before=10s"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        served(a, seeded_ca.as_bytes()).unwrap(),
        seeded_leaf,
        "old serves the seeded leaf"
    );
    assert!(
        ca_bundles(&dev)
            .iter()
            .all(|(_, b)| b == seeded_ca.as_bytes()),
        "caBundle = the seeded CA"
    );
    let dev = Arc::new(dev);
    let admissions = AdmissionLoop::start(&dev);
    let new =
        self_signed(&dev, &work.path().join("new"), None, &[]).unwrap_or_else(|e| panic!("{e}"));
    let (_, data) = secret(&dev).unwrap();
    let rotated = der_of(&data["tls.crt"]);
    assert_ne!(
        rotated,
        seeded_leaf,
        "rotated at start-up; log:\n{}",
        log_of(&new)
    );
    assert!(not_after(&rotated) > now() + 300 * DAY, "a year ahead");
    assert_eq!(
        data["ca.crt"],
        seeded_ca.as_bytes(),
        "a leaf renewal keeps the CA"
    );
    assert_eq!(served(new.addr, seeded_ca.as_bytes()).unwrap(), rotated);
    assert!(
        eventually(Duration::from_secs(20), || served(a, seeded_ca.as_bytes())
            .is_ok_and(|c| c == rotated)),
        "the serving replica did not pick the rotated Secret up; log:\n{}",
        log_of(&old)
    );
    // A few more admissions on the new pair.
    std::thread::sleep(Duration::from_secs(2));
    let (n, failures) = admissions.finish();
    eprintln!(
        "start-up rotation: {n} admissions, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {n} admissions failed: {failures:?}",
        failures.len()
    );
    assert!(n >= 10, "only {n} admissions");
    drop(new);
    drop(old);

    // 3. Rotation while serving: 90 s left, renewed with 60 s left.
    let seeded_ca = seed_secret(&dev, now() + 90);
    let seeded_leaf = der_of(&secret(&dev).unwrap().1["tls.crt"]);
    let serving = self_signed(
        &dev,
        &work.path().join("serving"),
        Some(a),
        &["--cert-renew-before=60s"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(served(a, seeded_ca.as_bytes()).unwrap(), seeded_leaf);
    let admissions = AdmissionLoop::start(&dev);
    let mut now_served = seeded_leaf.clone();
    assert!(
        eventually(Duration::from_secs(90), || {
            now_served = served(a, seeded_ca.as_bytes()).unwrap_or_default();
            !now_served.is_empty() && now_served != seeded_leaf
        }),
        "the served certificate never changed; log:\n{}",
        log_of(&serving)
    );
    std::thread::sleep(Duration::from_secs(2));
    let (n, failures) = admissions.finish();
    eprintln!(
        "rotation while serving: {n} admissions, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {n} admissions failed: {failures:?}",
        failures.len()
    );
    assert!(n >= 10, "only {n} admissions");
    assert_eq!(
        now_served,
        der_of(&secret(&dev).unwrap().1["tls.crt"]),
        "serves the Secret's new leaf"
    );
    assert!(not_after(&now_served) > now() + 300 * DAY);
    drop(serving);

    // 4. Two replicas at once against an empty namespace.
    kubectl(&dev, &["delete", "secret", "-n", NS, SECRET]).expect_ok("delete the Secret");
    let (r1, r2) = std::thread::scope(|s| {
        let one = s.spawn(|| self_signed(&dev, &work.path().join("r1"), None, &[]));
        let two = s.spawn(|| self_signed(&dev, &work.path().join("r2"), None, &[]));
        (one.join().unwrap().unwrap(), two.join().unwrap().unwrap())
    });
    let listed = kubectl(
        &dev,
        &[
            "get",
            "secrets",
            "-n",
            NS,
            "-l",
            "app.kubernetes.io/managed-by=egress-webhook",
            "-o",
            "name",
        ],
    )
    .expect_ok("list Secrets");
    assert_eq!(listed.stdout.trim(), format!("secret/{SECRET}"));
    let (_, data) = secret(&dev).unwrap();
    let leaf = der_of(&data["tls.crt"]);
    assert_eq!(served(r1.addr, &data["ca.crt"]).unwrap(), leaf, "replica 1");
    assert_eq!(served(r2.addr, &data["ca.crt"]).unwrap(), leaf, "replica 2");
    let created = [&r1, &r2]
        .iter()
        .filter(|r| log_of(r).contains("created the self-signed CA"))
        .count();
    assert_eq!(created, 1, "exactly one replica created the Secret");
    drop((r1, r2));

    // 5. Somebody else's Secret by that name, holding garbage: refused, and left alone.
    kubectl(&dev, &["delete", "secret", "-n", NS, SECRET]).expect_ok("delete the Secret");
    kubectl(
        &dev,
        &[
            "create",
            "secret",
            "generic",
            "-n",
            NS,
            SECRET,
            "--from-literal=tls.crt=garbage",
        ],
    )
    .expect_ok("someone else's Secret");
    let err = match self_signed(&dev, &work.path().join("refused"), None, &[]) {
        Ok(r) => panic!("started on somebody else's Secret; log:\n{}", log_of(&r)),
        Err(e) => e,
    };
    assert!(
        err.contains(&format!("Secret {NS}/{SECRET}: data[tls.crt]"))
            && err.contains("leaves it alone"),
        "{err}"
    );
    assert_eq!(secret(&dev).unwrap().1["tls.crt"], b"garbage", "left alone");
}

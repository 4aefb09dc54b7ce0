//! Client authentication of the admission port, without a cluster: `--client-ca` with and
//! without allowed names (refused in the handshake, answered with the right certificate), a
//! rotated client CA picked up from the file, the `none` mode's start-up warning and gauge,
//! `--ingress-restricted`, and `--client-ca` refused without a plain-HTTP probe port.

mod support;

use std::{path::Path, sync::Arc, time::Duration};

use egress_webhook::admission::client_auth::{ClientAuth, ClientCa};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use support::server::{ServeProcess, TestServer, valid_review, wait_for};

struct ClientCaFiles {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl ClientCaFiles {
    fn new(cn: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        ClientCaFiles {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A client certificate with this CN: (cert PEM, key PEM).
    fn client(&self, cn: &str) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// An HTTP/1.1 client trusting the server's CA, presenting `identity` when given.
fn client(server_ca: &str, identity: Option<&(String, String)>) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(server_ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut cfg = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(cfg)
        .no_proxy()
        .http1_only()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// POST a valid review to /validate: Ok(uid answered) or Err(why not).
async fn review(c: &reqwest::Client, srv: &TestServer) -> Result<String, String> {
    let (uid, body) = valid_review("client-auth");
    let r = c
        .post(srv.url("/validate"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    assert_eq!(v["response"]["uid"], uid.as_str());
    Ok(uid)
}

fn write(path: &Path, text: &str) {
    // Rename into place: the watcher must never read a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_checked_by_ca_and_name_and_the_ca_file_reloads() {
    support::server::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("client-ca.crt");
    let (ca, other_ca) = (
        ClientCaFiles::new("client CA"),
        ClientCaFiles::new("other CA"),
    );
    write(&ca_file, &ca.pem());
    let srv = TestServer::start_with(support::seed(), |cfg| {
        cfg.cert_poll_interval = Duration::from_millis(100);
        cfg.client_auth = ClientAuth::Mtls(ClientCa {
            ca_file: ca_file.clone(),
            allowed_names: vec!["kube-apiserver".into(), "apiserver-2".into()],
        });
    })
    .await;
    let server_ca = srv.pki.bundle.ca_cert.clone();
    let apiserver = ca.client("kube-apiserver");
    let second = ca.client("apiserver-2");
    let stranger = ca.client("someone-else");
    let forged = other_ca.client("kube-apiserver");

    assert!(
        review(&client(&server_ca, Some(&apiserver)), &srv)
            .await
            .is_ok()
    );
    assert!(
        review(&client(&server_ca, Some(&second)), &srv)
            .await
            .is_ok()
    );
    for (what, identity) in [
        ("no certificate", None),
        ("a name not allowed", Some(&stranger)),
        ("the right name from another CA", Some(&forged)),
    ] {
        let err = review(&client(&server_ca, identity), &srv)
            .await
            .expect_err(what);
        assert!(!err.starts_with("HTTP"), "{what}: an HTTP answer: {err}");
    }
    let (_, m) = srv
        .get_with(&client(&server_ca, Some(&apiserver)), "/metrics")
        .await;
    assert!(
        m.contains("egress_webhook_client_auth{mode=\"mtls\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("egress_webhook_client_certificates_rejected_total{reason=\"name\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("egress_webhook_client_certificates_rejected_total{reason=\"untrusted\"} 1\n"),
        "{m}"
    );

    // The client CA rotates: the file now holds the other CA as well, then only it.
    write(&ca_file, &format!("{}{}", ca.pem(), other_ca.pem()));
    let both = client(&server_ca, Some(&forged));
    wait_for(
        "the added CA is trusted",
        Duration::from_secs(10),
        || async { review(&both, &srv).await.is_ok() },
    )
    .await;
    assert!(
        review(&client(&server_ca, Some(&apiserver)), &srv)
            .await
            .is_ok()
    );
    write(&ca_file, &other_ca.pem());
    let old = client(&server_ca, Some(&apiserver));
    wait_for(
        "the removed CA is refused",
        Duration::from_secs(10),
        || async { review(&old, &srv).await.is_err() },
    )
    .await;
    assert!(
        review(&client(&server_ca, Some(&forged)), &srv)
            .await
            .is_ok()
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_client_authentication_the_server_warns_once_and_says_none() {
    support::server::init_crypto();
    let serve = ServeProcess::spawn_logging("text", &[]);
    let log = serve.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("callers are not authenticated"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("write Istio objects"),
        "names the risk: {}",
        warnings[0]
    );
    let m = serve.get_text("/metrics").await;
    assert!(
        m.contains("egress_webhook_client_auth{mode=\"none\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("egress_webhook_client_auth{mode=\"mtls\"} 0\n"),
        "{m}"
    );

    let restricted = ServeProcess::spawn_logging("text", &["--ingress-restricted"]);
    let log = restricted.log_text();
    assert!(!log.contains("WARN"), "{log}");
    let m = restricted.get_text("/metrics").await;
    assert!(
        m.contains("egress_webhook_client_auth{mode=\"network\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("egress_webhook_client_auth{mode=\"none\"} 0\n"),
        "{m}"
    );
}

#[test]
fn client_ca_needs_a_probe_port() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .args([
            "serve",
            "--tls-cert=x",
            "--tls-key=y",
            "--objects=manifests/examples",
            "--client-ca=ca.crt",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics-listen"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .args([
            "serve",
            "--tls-cert=x",
            "--tls-key=y",
            "--objects=manifests/examples",
            "--client-ca=ca.crt",
            "--metrics-listen=127.0.0.1:0",
            "--ingress-restricted",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--ingress-restricted") && err.contains("--client-ca"),
        "{err}"
    );
}

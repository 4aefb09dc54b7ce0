//! Admission server test helpers: certificates from `certs`, the real server on 127.0.0.1:0,
//! TLS clients (reqwest for ordinary requests, tokio-rustls for raw bytes), and AdmissionReviews
//! shaped exactly as kube-apiserver sends them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine;
use egress_webhook::{
    admission::{Running, ServeConfig, start, tls::CertFiles},
    catalog::Catalog,
    certs::{self, Bundle},
    core::{Object, Options, defaults::default_object},
};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::repo_path;

/// The process-wide crypto provider, as `main` installs it (a second install is refused: fine).
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A CA and a serving certificate written by `certs` into a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub bundle: Bundle,
    pub files: CertFiles,
}

impl Pki {
    pub fn new() -> Self {
        Self::with_days(365)
    }

    /// `days` sets notAfter: tests tell two certificates apart by it.
    pub fn with_days(days: u32) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bundle = certs::generate(&certs::default_hosts("egress-webhook"), days).expect("certs");
        certs::write(dir.path(), &bundle).expect("write certs");
        let files = CertFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        Pki { dir, bundle, files }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// DER of the serving (leaf) certificate.
    pub fn leaf_der(&self) -> Vec<u8> {
        leaf_der(&self.bundle.cert)
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

pub fn leaf_der(pem: &str) -> Vec<u8> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .expect("a certificate")
        .expect("PEM")
        .as_ref()
        .to_vec()
}

/// A rustls client trusting `cas` (PEM), offering `alpn`.
pub fn client_tls(cas: &[&str], alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(c.expect("CA PEM")).expect("CA certificate");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http {
    H1,
    H2,
}

impl Http {
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Http::H1 => b"http/1.1",
            Http::H2 => b"h2",
        }
    }

    pub fn version(self) -> reqwest::Version {
        match self {
            Http::H1 => reqwest::Version::HTTP_11,
            Http::H2 => reqwest::Version::HTTP_2,
        }
    }
}

/// A reqwest client over TLS trusting `cas`, that can speak only `http` (ALPN offers only it, so
/// the version the test asserts is the one the server negotiated, not a client preference).
pub fn client_with(cas: &[&str], http: Http, fresh_connections: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured(client_tls(cas, &[http.alpn()]))
        .tls_info(true)
        .no_proxy()
        .timeout(Duration::from_secs(30));
    if http == Http::H1 {
        b = b.http1_only();
    }
    if fresh_connections {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().expect("client")
}

pub fn client(ca: &str, http: Http) -> reqwest::Client {
    client_with(&[ca], http, false)
}

/// A server started in-process on 127.0.0.1:0 with the seed catalog (or another one).
pub struct TestServer {
    pub running: Running,
    pub pki: Pki,
    pub h1: reqwest::Client,
    pub h2: reqwest::Client,
}

pub fn seed_catalog(opts: &Options) -> Catalog {
    Catalog::from_objects(super::seed(), opts)
}

impl TestServer {
    /// The seed catalog and the default configuration.
    pub async fn start() -> Self {
        Self::start_with(super::seed(), |_| {}).await
    }

    pub async fn start_with(objects: Vec<Object>, tweak: impl FnOnce(&mut ServeConfig)) -> Self {
        Self::start_with_pki(Pki::new(), objects, tweak).await
    }

    pub async fn start_with_pki(
        pki: Pki,
        objects: Vec<Object>,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        init_crypto();
        let opts = Options::default();
        let mut cfg = ServeConfig::new("127.0.0.1:0".parse().unwrap(), pki.files.clone());
        // Tests stop servers often: no load balancer needs time to drop them.
        cfg.shutdown_delay = Duration::ZERO;
        cfg.shutdown_settle = Duration::ZERO;
        tweak(&mut cfg);
        let catalog = Arc::new(Catalog::from_objects(objects, &opts));
        let running = start(cfg, catalog, opts).await.expect("server starts");
        let h1 = client(&pki.bundle.ca_cert, Http::H1);
        let h2 = client(&pki.bundle.ca_cert, Http::H2);
        TestServer {
            running,
            pki,
            h1,
            h2,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// `https://localhost:PORT{path}`: the certificate names localhost and 127.0.0.1.
    pub fn url(&self, path: &str) -> String {
        url(self.addr(), path)
    }

    pub fn client(&self, http: Http) -> &reqwest::Client {
        match http {
            Http::H1 => &self.h1,
            Http::H2 => &self.h2,
        }
    }

    /// POST a review to `/mutate?timeout=10s` or `/validate?timeout=10s`.
    pub async fn review(&self, http: Http, endpoint: &str, review: &Value) -> Answer {
        post(
            self.client(http),
            &self.url(&format!("/{endpoint}?timeout=10s")),
            serde_json::to_vec(review).unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("POST /{endpoint} over {http:?}: {e:?}"))
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        self.get_with(&self.h1, path).await
    }

    /// GET `path` with another client (one presenting a client certificate, say).
    pub async fn get_with(&self, client: &reqwest::Client, path: &str) -> (u16, String) {
        let r = client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e:?}"));
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// Graceful shutdown with no delay; returns once the server is gone.
    pub async fn stop(mut self) {
        self.running.shutdown();
        tokio::time::timeout(Duration::from_secs(30), &mut self.running.done)
            .await
            .expect("server stops within 30 s")
            .expect("server task");
    }
}

pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

/// One HTTP answer: status, negotiated version, body (parsed when it is JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub version: reqwest::Version,
    pub text: String,
    pub json: Option<Value>,
    /// DER of the leaf certificate the server presented on this connection.
    pub peer_cert: Option<Vec<u8>>,
}

impl Answer {
    pub fn json(&self) -> &Value {
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("not a JSON body (HTTP {}): {}", self.status, self.text))
    }

    pub fn response(&self) -> &Value {
        let j = self.json();
        assert_eq!(j["apiVersion"], "admission.k8s.io/v1", "{j}");
        assert_eq!(j["kind"], "AdmissionReview", "{j}");
        &j["response"]
    }

    pub fn allowed(&self) -> bool {
        self.response()["allowed"]
            .as_bool()
            .unwrap_or_else(|| panic!("no allowed: {}", self.text))
    }

    pub fn message(&self) -> String {
        self.response()["status"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn warnings(&self) -> Vec<String> {
        self.response()["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .map(|s| s.as_str().expect("warning string").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The JSONPatch, if any (`patchType: JSONPatch`, base64 as the apiserver's Go decoder
    /// reads a `[]byte`).
    pub fn patch(&self) -> Option<json_patch::Patch> {
        let r = self.response();
        let b64 = r["patch"].as_str()?;
        assert_eq!(r["patchType"], "JSONPatch", "{r}");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("patch is base64");
        Some(serde_json::from_slice(&bytes).expect("patch is a JSONPatch"))
    }

    /// A 200 with a complete review answering `uid`.
    pub fn assert_answers(&self, uid: &str) {
        assert_eq!(self.status, 200, "{}", self.text);
        assert_eq!(self.response()["uid"], uid, "{}", self.text);
        assert!(self.response()["allowed"].is_boolean(), "{}", self.text);
        assert_clean(&self.text);
    }
}

/// A body must never leak a panic or a backtrace.
pub fn assert_clean(text: &str) {
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!text.contains(bad), "response leaks {bad:?}: {text}");
    }
}

pub async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::Result<Answer> {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, */*")
        .body(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let version = r.version();
    let peer_cert = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate().map(<[u8]>::to_vec));
    let text = r.text().await?;
    let json = serde_json::from_str(&text).ok();
    Ok(Answer {
        status,
        version,
        text,
        json,
        peer_cert,
    })
}

// ---------------------------------------------------------------------------------------------
// Objects and reviews

/// A seed object's raw JSON, from its YAML file under manifests/examples.
pub fn seed_raw(file: &str) -> Value {
    let text = std::fs::read_to_string(repo_path(&format!("manifests/examples/{file}")))
        .expect("seed file");
    serde_saphyr::from_str(&text).expect("seed YAML")
}

pub fn es_raw() -> Value {
    seed_raw("40-externalservice.yaml")
}

pub fn vg_raw() -> Value {
    seed_raw("30-virtualgateway.yaml")
}

pub fn ap_raw() -> Value {
    seed_raw("50-accesspolicy.yaml")
}

/// What the apiserver has added to an object by the time it calls admission on a create:
/// uid, creationTimestamp, generation, and the managedFields of a client-side apply.
pub fn as_stored(mut obj: Value, uid: &str) -> Value {
    let api_version = obj["apiVersion"].clone();
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    meta.insert("uid".into(), json!(uid));
    meta.insert("creationTimestamp".into(), json!("2026-11-25T10:00:00Z"));
    meta.insert("generation".into(), json!(1));
    meta.insert(
        "annotations".into(),
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"x\"}\n"}),
    );
    meta.insert(
        "managedFields".into(),
        json!([{
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": api_version,
            "time": "2026-11-25T10:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {".": {}}}
        }]),
    );
    obj
}

/// The core's defaulting of `raw`, as JSON: what the patched object must equal.
pub fn core_default(raw: &Value) -> Value {
    let obj = Object::from_value(raw.clone()).expect("object decodes");
    default_object(obj, &Options::default()).to_value()
}

pub fn apply(raw: &Value, patch: Option<&json_patch::Patch>) -> Value {
    let mut doc = raw.clone();
    if let Some(p) = patch {
        json_patch::patch(&mut doc, p).expect("the patch applies to the raw object");
    }
    doc
}

/// (group, version, kind, resource) of an object's apiVersion/kind.
fn gvr(obj: &Value) -> (String, String, String, String) {
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = obj["kind"].as_str().unwrap_or("").to_string();
    let resource = format!("{}s", kind.to_lowercase());
    (group.to_string(), version.to_string(), kind, resource)
}

/// An `admission.k8s.io/v1` AdmissionReview as kube-apiserver 1.33 sends it: `object` for
/// CREATE/UPDATE, `oldObject` for UPDATE/DELETE (null otherwise), the options kind of the
/// operation, `userInfo` of a kubectl user.
pub fn review(uid: &str, operation: &str, object: Option<&Value>, old: Option<&Value>) -> Value {
    review_dry(uid, operation, object, old, false)
}

pub fn review_dry(
    uid: &str,
    operation: &str,
    object: Option<&Value>,
    old: Option<&Value>,
    dry_run: bool,
) -> Value {
    let any = object.or(old).expect("an object or an old object");
    let (group, version, kind, resource) = gvr(any);
    let options_kind = match operation {
        "CREATE" => "CreateOptions",
        "UPDATE" => "UpdateOptions",
        "DELETE" => "DeleteOptions",
        other => panic!("operation {other}"),
    };
    let mut options = json!({"kind": options_kind, "apiVersion": "meta.k8s.io/v1"});
    if operation == "DELETE" {
        options["propagationPolicy"] = json!("Background");
    } else {
        options["fieldManager"] = json!("kubectl-client-side-apply");
        options["fieldValidation"] = json!("Strict");
    }
    if dry_run {
        options["dryRun"] = json!(["All"]);
    }
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": any["metadata"]["name"],
            "namespace": any["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {
                "username": "kubernetes-admin",
                "uid": "aaf5a3e1-7f04-4b8b-9b3a-3c2f0e8f1b11",
                "groups": ["kubeadm:cluster-admins", "system:authenticated"]
            },
            "object": object.cloned().unwrap_or(Value::Null),
            "oldObject": old.cloned().unwrap_or(Value::Null),
            "dryRun": dry_run,
            "options": options
        }
    })
}

/// A fresh uid per review (the apiserver's are UUIDs; uniqueness is what matters here).
pub fn uid(tag: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}-{:08}-0000-4000-8000-{:012}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A valid CREATE review of the seed ExternalService.
pub fn valid_review(tag: &str) -> (String, Value) {
    let id = uid(tag);
    let r = review(&id, "CREATE", Some(&as_stored(es_raw(), &id)), None);
    (id, r)
}

// ---------------------------------------------------------------------------------------------
// Raw TLS

pub async fn tls_connect(
    addr: SocketAddr,
    cas: &[&str],
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let connector = TlsConnector::from(Arc::new(client_tls(cas, alpn)));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// The leaf certificate a new handshake presents.
pub async fn handshake_leaf(addr: SocketAddr, cas: &[&str]) -> std::io::Result<Vec<u8>> {
    let tls = tls_connect(addr, cas, &[b"http/1.1"]).await?;
    let (_, conn) = tls.get_ref();
    Ok(conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default())
}

/// The bytes of an HTTP/1.1 POST with `Connection: close`.
pub fn http1_post(path: &str, body: &[u8], close: bool) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Read one HTTP/1.1 response with a Content-Length body: (status, body).
pub async fn read_http1_response<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
) -> std::io::Result<(u16, String)> {
    read_http1(s).await.map(|(status, _, body)| (status, body))
}

/// Read one HTTP/1.1 response with a Content-Length body: (status, head, body).
pub async fn read_http1<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
) -> std::io::Result<(u16, String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((
        status,
        head,
        String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string(),
    ))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One review over a raw TLS HTTP/1.1 connection (to check a server from below reqwest).
pub async fn raw_review<S>(s: &mut S, body: &[u8], close: bool) -> std::io::Result<(u16, String)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    s.write_all(&http1_post("/validate?timeout=10s", body, close))
        .await?;
    s.flush().await?;
    read_http1_response(s).await
}

/// Wait until `cond` holds, polling every 20 ms, or panic with `what` after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Replace `path` atomically with `content` (write a temporary file, then rename), as a
/// Secret volume update does.
pub fn replace_file(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp-new");
    std::fs::write(&tmp, content).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}

// ---------------------------------------------------------------------------------------------
// The real binary

/// `egress-webhook serve` as a child process, killed (by its pid) if the test ends early.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub pki: Pki,
    /// stderr goes to a file: a pipe nobody reads would fill up and block the server's logging.
    pub log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl ServeProcess {
    /// Start with `--listen 127.0.0.1:0 --log-format json --objects manifests/examples` and
    /// `extra` flags; the bound address is read from the startup log line.
    pub fn spawn(extra: &[&str]) -> Self {
        Self::spawn_logging("json", extra)
    }

    /// `spawn` with `--log-format format` (json or text).
    pub fn spawn_logging(format: &str, extra: &[&str]) -> Self {
        Self::spawn_filtered(format, "info", extra)
    }

    /// `spawn_logging` with `RUST_LOG=filter`.
    pub fn spawn_filtered(format: &str, filter: &str, extra: &[&str]) -> Self {
        let pki = Pki::new();
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("stderr.log");
        let stderr = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
            .arg("serve")
            .arg("--tls-cert")
            .arg(&pki.files.cert)
            .arg("--tls-key")
            .arg(&pki.files.key)
            .args(["--listen", "127.0.0.1:0", "--log-format", format])
            .arg("--objects")
            .arg(repo_path("manifests/examples"))
            .args(extra)
            .env("RUST_LOG", filter)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the binary starts");
        let mut p = ServeProcess {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            pki,
            log,
            _logdir: logdir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = p.startup_addr() {
                p.addr = addr;
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("serve exited with {status}: {}", p.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "serve did not start: {}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address in the startup line, in either log format.
    fn startup_addr(&self) -> Option<SocketAddr> {
        let text = self.log_text();
        let line = text
            .lines()
            .find(|l| l.contains("serving /mutate and /validate"))?;
        match serde_json::from_str::<Value>(line) {
            Ok(v) => v["addr"].as_str()?.parse().ok(),
            Err(_) => line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))?
                .parse()
                .ok(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet (we hold the
        // Child and have not waited on it successfully), so the pid cannot have been reused.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines so far (a line being written is skipped).
    pub fn log_lines(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        url(self.addr, path)
    }

    /// Wait for the exit, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve still running {limit:?} later: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GET `path` over TLS: the body (panics unless 200).
    pub async fn get_text(&self, path: &str) -> String {
        let c = client_with(&[&self.pki.bundle.ca_cert], Http::H1, true);
        let r = c.get(self.url(path)).send().await.expect("GET");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.text().await.unwrap()
    }

    /// GET `/readyz` on a new connection: its status.
    pub async fn readyz(&self) -> reqwest::Result<u16> {
        let c = client_with(&[&self.pki.bundle.ca_cert], Http::H1, true);
        Ok(c.get(self.url("/readyz")).send().await?.status().as_u16())
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

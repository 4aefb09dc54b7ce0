//! Support for the end-to-end tests: one local cluster (control plane + webhook, from
//! `egress_webhook::cluster::dev`) per test binary, kubectl helpers and polling.
//!
//! The shared cluster lives in a static and is torn down by an `atexit` handler when the test
//! binary exits (the harness returns from main, or exits after a failure). If the process is
//! killed, the control-plane children get SIGKILL from the kernel (PR_SET_PDEATHSIG).
//!
//! Tests that share a cluster run one at a time ([`Shared::serial`]): some list every object in
//! every namespace, which a concurrent test would disturb; on 2 cores nothing is lost.
#![allow(dead_code)]

pub mod direct;
pub mod expected;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use egress_webhook::cluster::dev::{DevCluster, DevOptions};

pub fn skip_cluster_tests() -> bool {
    let skip = std::env::var("EGRESS_SKIP_CLUSTER_TESTS").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("SKIPPED: EGRESS_SKIP_CLUSTER_TESTS=1, so no control plane is started");
    }
    skip
}

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

pub fn repo_text(p: &str) -> String {
    std::fs::read_to_string(repo(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The shared cluster, started on first use. `None` when cluster tests are skipped.
pub struct Shared {
    pub dev: Arc<DevCluster>,
}

static SHARED: Mutex<Option<Result<Arc<DevCluster>, String>>> = Mutex::new(None);
static SERIAL: Mutex<()> = Mutex::new(());

extern "C" fn teardown() {
    let taken = SHARED.lock().ok().and_then(|mut g| g.take());
    if let Some(Ok(dev)) = taken {
        // A panic must not cross the C boundary.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(dev)));
    }
}

/// The one cluster of this test binary, and the lock that runs its tests one at a time.
pub fn shared() -> Option<(Arc<DevCluster>, MutexGuard<'static, ()>)> {
    if skip_cluster_tests() {
        return None;
    }
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        // The in-process webhook's log on stderr, when asked for (`EGRESS_TEST_LOG=debug`, any
        // tracing filter): what a failing cluster test did, without rebuilding it.
        if let Ok(filter) = std::env::var("EGRESS_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .try_init();
        }
        let started = Instant::now();
        let result = DevCluster::start(DevOptions::default())
            .map(Arc::new)
            .map_err(|e| e.to_string());
        if let Ok(dev) = &result {
            let t = dev.timings();
            eprintln!(
                "cluster up in {:.1?} (control plane {:.1?}, CRDs {:.1?}, webhook {:.1?}, live {:.1?})",
                started.elapsed(),
                t.control_plane,
                t.crds,
                t.webhook,
                t.live
            );
            // SAFETY: registering a plain extern "C" fn; it runs once at exit.
            unsafe {
                libc::atexit(teardown);
            }
        }
        *slot = Some(result);
    }
    match slot.as_ref() {
        Some(Ok(dev)) => Some((dev.clone(), serial)),
        Some(Err(e)) => panic!("starting the cluster failed: {e}"),
        None => unreachable!(),
    }
}

/// kubectl's result, as text.
#[derive(Debug)]
pub struct Kubectl {
    pub ok: bool,
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Kubectl {
    fn from(o: Output) -> Self {
        Kubectl {
            ok: o.status.success(),
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Kubectl {
    /// Panics with both streams unless kubectl succeeded.
    pub fn expect_ok(self, what: &str) -> Self {
        assert!(
            self.ok,
            "{what}: kubectl failed\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless kubectl failed.
    pub fn expect_err(self, what: &str) -> Self {
        assert!(
            !self.ok,
            "{what}: kubectl succeeded but should not have\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("kubectl printed invalid JSON ({e}): {}", self.stdout))
    }
}

/// kubectl as admin.
pub fn kubectl(dev: &DevCluster, args: &[&str]) -> Kubectl {
    dev.cp().kubectl(args).expect("run kubectl").into()
}

/// kubectl as admin with `stdin`.
pub fn kubectl_in(dev: &DevCluster, args: &[&str], stdin: &str) -> Kubectl {
    dev.kubectl_stdin(args, stdin).expect("run kubectl").into()
}

/// `kubectl apply -f -` of `yaml` (extra args appended).
pub fn apply(dev: &DevCluster, yaml: &str, extra: &[&str]) -> Kubectl {
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(extra);
    kubectl_in(dev, &args, yaml)
}

/// Creates a namespace (fails the test if it exists: every test owns its namespaces).
pub fn namespace(dev: &DevCluster, name: &str) {
    kubectl(dev, &["create", "namespace", name]).expect_ok("create namespace");
}

/// Polls `f` every 50 ms until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every object of the three Gloo kinds and of every Istio kind (all CRDs of *.istio.io groups),
/// in all namespaces, as sorted `kind/namespace/name@resourceVersion` lines.
pub fn inventory(dev: &DevCluster) -> Vec<String> {
    let crds = kubectl(dev, &["get", "crd", "-o", "json"])
        .expect_ok("list CRDs")
        .json();
    let mut kinds: Vec<String> = crds["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .filter(|n| n.ends_with(".istio.io") || n.ends_with(".gloo.solo.io"))
        .map(str::to_string)
        .collect();
    kinds.sort();
    assert!(
        kinds.len() >= 3 + 14,
        "expected our 3 CRDs and the Istio ones: {kinds:?}"
    );
    let list = kubectl(dev, &["get", &kinds.join(","), "-A", "-o", "json"])
        .expect_ok("list every Gloo and Istio object")
        .json();
    let mut out: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| {
            format!(
                "{}/{}/{}@{}",
                o["kind"].as_str().unwrap_or(""),
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or(""),
                o["metadata"]["resourceVersion"].as_str().unwrap_or("")
            )
        })
        .collect();
    out.sort();
    out
}

/// The one line of `text` that starts with `prefix` (panics on none or several).
pub fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "one line starting {prefix:?} in:\n{text}");
    lines[0]
}

/// Sum over every label set of a metric in Prometheus text (0 when absent: callers first show
/// that the metric is counted at all).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && !l[name.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `to` relative to the directory `from`, both absolute (kustomize refuses absolute paths).
pub fn relative(from: &Path, to: &Path) -> PathBuf {
    let mut p: PathBuf = from
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .map(|_| "..")
        .collect();
    p.push(to.strip_prefix("/").expect("an absolute path"));
    p
}

/// Writes into `dir` a user's overlay: `resource` (a directory of the repository) with the
/// client-ca component and the CA `ca_pem` from a configMapGenerator, as the component's
/// comment tells users to.
pub fn write_client_ca_overlay(dir: &Path, resource: &str, ca_pem: &str) {
    let dir = dir.canonicalize().expect("overlay dir");
    let rel = |p: &str| relative(&dir, &repo(p).canonicalize().expect(p));
    let text = format!(
        "resources: [{}]\ncomponents: [{}]\nconfigMapGenerator:\n\
         - name: egress-webhook-client-ca\n  namespace: egress-webhook\n  files: [ca.crt=client-ca.pem]\n",
        rel(resource).display(),
        rel("manifests/components/client-ca").display()
    );
    std::fs::write(dir.join("kustomization.yaml"), text).expect("write kustomization.yaml");
    std::fs::write(dir.join("client-ca.pem"), ca_pem).expect("write client-ca.pem");
}

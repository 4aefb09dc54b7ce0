//! `egress-webhook serve` without `--kubeconfig` on the real control plane: in a pod (the
//! service-account files and `KUBERNETES_SERVICE_HOST`/`_PORT` present) it runs as the pod's
//! ServiceAccount even when `$KUBECONFIG` and `~/.kube/config` name someone else; without the
//! files it uses the kubeconfig.
//!
//! The "pod" is a user + mount namespace (`unshare -rm`) in which a directory is bind-mounted
//! over /run (/var/run links there), holding `secrets/kubernetes.io/serviceaccount/` with a
//! real token from the TokenRequest API for a ServiceAccount bound by the committed RBAC
//! manifest, the control plane's ca.crt and a namespace file. The kubeconfig names a user with
//! no rights at all, so a ready webhook proves that the ServiceAccount was used.

mod e2e;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use egress_webhook::cluster::dev::http_get_text;
use egress_webhook::cluster::webhook::{DEFAULT_NAMESPACE, RBAC_MANIFEST};
use egress_webhook::controlplane::{ControlPlane, Options};

const SA: &str = "egress-webhook";

/// A `serve` child, SIGKILLed on drop unless it already exited.
struct Serve {
    child: Child,
    log: PathBuf,
    metrics: SocketAddr,
}

impl Serve {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls /readyz (plain HTTP) until it answers 200; panics with the log if the process
    /// exits or the budget runs out.
    fn wait_ready(&mut self, budget: Duration) {
        let deadline = Instant::now() + budget;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("serve exited ({status}):\n{}", self.log_text());
            }
            match http_get_text(self.metrics, "/readyz") {
                Ok(_) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "/readyz not 200 within {budget:?} (last: {last}):\n{}",
            self.log_text()
        );
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// `serve` in a mount namespace whose /run is `run_dir`, with exactly `env` as environment
/// (plus PATH, for `mount`).
fn spawn_serve(run_dir: &Path, env: &[(&str, String)], tls: &Path, log: PathBuf) -> Serve {
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", r#"mount --bind "$0" /run && exec "$@""#])
        .arg(run_dir)
        .arg(env!("CARGO_BIN_EXE_egress-webhook"))
        .arg("serve")
        .arg(format!("--tls-cert={}", tls.join("tls.crt").display()))
        .arg(format!("--tls-key={}", tls.join("tls.key").display()))
        .arg(format!("--listen=127.0.0.1:{}", free_port()))
        .arg(format!("--metrics-listen={metrics}"))
        .arg("--leader-elect=false")
        .arg("--shutdown-delay=0s")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let child = cmd.spawn().expect("unshare runs");
    Serve {
        child,
        log,
        metrics,
    }
}

/// The user + mount namespace the test needs, or why it is unavailable.
fn mount_namespace_available() -> Result<(), String> {
    let out = Command::new("unshare")
        .args(["-rm", "true"])
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn serve_prefers_the_service_account_and_falls_back_to_the_kubeconfig() {
    if e2e::skip_cluster_tests() {
        return;
    }
    if let Err(why) = mount_namespace_available() {
        eprintln!("SKIPPED: `unshare -rm` does not work here ({why}); no namespace to fake a pod");
        return;
    }
    let cp = ControlPlane::start(Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // The kinds the catalog watches, and the ServiceAccount with the committed RBAC.
    let ours = egress_webhook::crds::render().unwrap();
    write(&dir.join("crds/gloo.yaml"), &ours);
    write(
        &dir.join("crds/istio.yaml"),
        egress_webhook::cluster::dev::ISTIO_CRDS,
    );
    cp.install_crds(&[dir.join("crds/gloo.yaml"), dir.join("crds/istio.yaml")])
        .unwrap();
    cp.kubectl_ok(&["create", "namespace", DEFAULT_NAMESPACE])
        .unwrap();
    // Istio's namespace, where the manifest's Role for the mesh ConfigMaps lives.
    cp.kubectl_ok(&["create", "namespace", "istio-system"])
        .unwrap();
    let applied = cp
        .kubectl_with_stdin(&["apply", "-f", "-"], RBAC_MANIFEST)
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    // The manifest holds the ServiceAccount today; create it should it move elsewhere.
    if cp
        .kubectl(&["get", "serviceaccount", SA, "-n", DEFAULT_NAMESPACE])
        .unwrap()
        .status
        .code()
        != Some(0)
    {
        cp.kubectl_ok(&["create", "serviceaccount", SA, "-n", DEFAULT_NAMESPACE])
            .unwrap();
    }
    let token = cp
        .kubectl_ok(&[
            "create",
            "token",
            SA,
            "-n",
            DEFAULT_NAMESPACE,
            "--duration=1h",
        ])
        .unwrap();

    // Someone else in $KUBECONFIG and ~/.kube/config: a user with no rights.
    let stranger = cp.mint_user("stranger", &[]).unwrap();
    let can = cp
        .kubectl_command_for(&stranger.kubeconfig)
        .args([
            "auth",
            "can-i",
            "list",
            "externalservices.networking.gloo.solo.io",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&can.stdout).trim(),
        "no",
        "the stranger must not be able to run the catalog"
    );
    let home = dir.join("home");
    write(
        &home.join(".kube/config"),
        &std::fs::read_to_string(&stranger.kubeconfig).unwrap(),
    );

    let pod_run = dir.join("pod-run");
    let sa_dir = pod_run.join("secrets/kubernetes.io/serviceaccount");
    write(&sa_dir.join("token"), token.trim());
    write(&sa_dir.join("ca.crt"), cp.ca_pem());
    write(&sa_dir.join("namespace"), DEFAULT_NAMESPACE);

    let tls = dir.join("tls");
    let bundle = egress_webhook::certs::generate(&["127.0.0.1".to_string()], 1).unwrap();
    egress_webhook::certs::write(&tls, &bundle).unwrap();

    let port = cp
        .server_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {}", cp.server_url()));
    let env = vec![
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1".to_string()),
        ("KUBERNETES_SERVICE_PORT", port.to_string()),
        ("HOME", home.display().to_string()),
        ("KUBECONFIG", stranger.kubeconfig.display().to_string()),
        ("RUST_LOG", "info".to_string()),
    ];

    // In a "pod": the ServiceAccount, though $KUBECONFIG names the stranger.
    let mut pod = spawn_serve(&pod_run, &env, &tls, dir.join("pod.log"));
    pod.wait_ready(Duration::from_secs(90));
    let log = pod.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("Kubernetes client"))
        .unwrap_or_else(|| panic!("no configuration line in the log:\n{log}"));
    eprintln!("in a pod: {line}");
    assert!(line.contains("in-cluster configuration"), "{line}");
    assert!(
        line.contains(&format!("https://127.0.0.1:{port}")),
        "{line}"
    );
    drop(pod);

    // Not in a pod (no service-account files; the variables alone do not count): the
    // kubeconfig, here the admin's, so that readiness shows it was really used.
    let bare_run = dir.join("bare-run");
    std::fs::create_dir_all(&bare_run).unwrap();
    let mut env = env;
    env.retain(|(k, _)| *k != "KUBECONFIG");
    env.push(("KUBECONFIG", cp.kubeconfig().display().to_string()));
    let mut bare = spawn_serve(&bare_run, &env, &tls, dir.join("bare.log"));
    bare.wait_ready(Duration::from_secs(90));
    let log = bare.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("Kubernetes client"))
        .unwrap_or_else(|| panic!("no configuration line in the log:\n{log}"));
    eprintln!("outside a pod: {line}");
    assert!(
        line.contains(&format!(
            "kubeconfig $KUBECONFIG={}",
            cp.kubeconfig().display()
        )),
        "{line}"
    );
    drop(bare);
    cp.stop().unwrap();
}

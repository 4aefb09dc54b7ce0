//! `egress-webhook dev --detach` / `--down` (what `make dev-up` / `make dev-down` run): the
//! background instance comes up with the running example applied, answers kubectl through the
//! kubeconfig it writes, refuses a second start, and `--down` stops every process it started.

mod e2e;

use std::process::Command;

use e2e::skip_cluster_tests;

fn dev(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .arg("dev")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CLUSTER_NAME")
        .output()
        .expect("run egress-webhook dev")
}

/// Running (not gone, not a zombie waiting for its reaper).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Pids of live processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn detached_dev_comes_up_with_the_example_and_goes_down_cleanly() {
    if skip_cluster_tests() {
        return;
    }
    let state = tempfile::tempdir().expect("temp dir");
    let dir = state.path().join(".dev");
    let dir_arg = dir.display().to_string();
    let up = dev(&[
        "--detach",
        "--state-dir",
        &dir_arg,
        "--cluster-name",
        "cluster1",
        "--apply",
        "manifests/examples",
    ]);
    let stdout = text(&up.stdout);
    assert!(
        up.status.success(),
        "dev --detach failed\nstdout: {stdout}\nstderr: {}",
        text(&up.stderr)
    );
    let kubeconfig = dir.canonicalize().unwrap().join("kubeconfig");
    for expected in [
        "$ kubectl apply -f manifests/examples/30-virtualgateway.yaml\nvirtualgateway.networking.gloo.solo.io/egress-vg created\n".to_string(),
        "externalservice.networking.gloo.solo.io/httpbin.org created\n".to_string(),
        "accesspolicy.security.policy.gloo.solo.io/egress-access-policy created\n".to_string(),
        "Warning: ExternalService global/httpbin.org: ".to_string(),
        // The companions the webhook wrote, read back from the cluster.
        "virtualservice.networking.istio.io/externalservice-httpbin-org-global-httpbin-org".to_string(),
        "authorizationpolicy.security.istio.io/accesspolicy-egress-access-policy-istio-egressgateway".to_string(),
        format!("export KUBECONFIG={}\n", kubeconfig.display()),
        "running in the background (pid ".to_string(),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} missing in:\n{stdout}");
    }
    let ready: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ready")).unwrap()).unwrap();
    let pid = ready["pid"].as_u64().unwrap() as u32;
    let kubectl = ready["kubectl"].as_str().unwrap().to_string();
    // The metrics URL: plain HTTP, with the companion writes of the running example counted.
    let metrics_url = ready["metrics"]
        .as_str()
        .expect("`metrics` in ready")
        .to_string();
    let addr: std::net::SocketAddr = metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap_or_else(|e| panic!("{metrics_url}: {e}"));
    let metrics = egress_webhook::cluster::dev::http_get_text(addr, "/metrics").unwrap();
    assert!(
        metrics.contains(
            "egress_webhook_companion_writes_total{kind=\"ServiceEntry\",op=\"create\"} 1"
        ),
        "{metrics}"
    );

    // kubectl with the written kubeconfig reaches the cluster, and the webhook answers.
    let get = Command::new(&kubectl)
        .args(["get", "es", "httpbin.org", "-n", "global", "-o"])
        .arg("jsonpath={.spec.ports[0].clientsideTls.sni}")
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_eq!(text(&get.stdout), "httpbin.org", "{}", text(&get.stderr));

    // A second instance on the same state dir is refused.
    let again = dev(&["--detach", "--state-dir", &dir_arg]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains(&format!(
            "already running in {}",
            dir.canonicalize().unwrap().display()
        )),
        "{}",
        text(&again.stderr)
    );

    // The control plane's processes run from the state dir's run directory.
    let run_dir = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("egress-cp-"))
        .expect("run dir")
        .path();
    let children = processes_with(&run_dir.display().to_string());
    assert!(
        children.len() >= 3,
        "etcd, apiserver, controller manager: {children:?}"
    );

    let down = dev(&["--down", "--state-dir", &dir_arg]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert!(
        text(&down.stdout).starts_with(&format!("stopped (pid {pid})")),
        "{}",
        text(&down.stdout)
    );
    assert!(!alive(pid), "the background dev process is gone");
    assert_eq!(
        processes_with(&run_dir.display().to_string()),
        Vec::<u32>::new()
    );
    assert!(!run_dir.exists(), "the run directory is removed");
    for f in ["pid", "ready", "kubeconfig"] {
        assert!(!dir.join(f).exists(), "{f} left behind");
    }
    // Down again: nothing to do.
    let twice = dev(&["--down", "--state-dir", &dir_arg]);
    assert!(twice.status.success());
    assert!(text(&twice.stdout).starts_with("nothing running"));
}

//! README "Install" and "Uninstall", run as written against a fresh control plane: the first
//! install command applies the self-signed overlay for real; with no webhook pod behind them (this
//! control plane has no nodes) the configurations show what a leftover does, refusing
//! ExternalServices and writes to generated Istio objects; then the uninstall commands, in their
//! order, leave no webhook configuration, RBAC, namespace or CRD of ours behind, and nothing is
//! refused any more.

use std::process::Command;
use std::time::{Duration, Instant};

mod e2e;

use e2e::{repo, skip_cluster_tests};
use egress_webhook::controlplane::{ControlPlane, Options};

/// The `kubectl ...` lines of a README block (comments after `#` dropped).
fn commands(readme: &str, name: &str) -> Vec<Vec<String>> {
    let start = format!("<!-- {name} -->\n```sh\n");
    let from = readme
        .find(&start)
        .unwrap_or_else(|| panic!("README has no {name} block"))
        + start.len();
    let to = from + readme[from..].find("```").expect("block end");
    readme[from..to]
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

struct Run {
    ok: bool,
    out: String,
}

fn kubectl(cp: &ControlPlane, args: &[String], stdin: Option<&str>) -> Run {
    let mut cmd: Command = cp.kubectl_command();
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = match stdin {
        None => cmd.output().unwrap(),
        Some(text) => {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
    };
    Run {
        ok: out.status.success(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn k(cp: &ControlPlane, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    kubectl(cp, &args, None)
}

/// Run one README command line (it starts with `kubectl`).
fn run_line(cp: &ControlPlane, line: &[String]) -> Run {
    assert_eq!(
        line[0], "kubectl",
        "README commands are kubectl commands: {line:?}"
    );
    kubectl(cp, &line[1..], None)
}

const ES: &str = r#"{"apiVersion":"networking.gloo.solo.io/v2","kind":"ExternalService",
 "metadata":{"name":"httpbin","namespace":"default"},
 "spec":{"hosts":["httpbin.org"],"ports":[{"name":"https","number":443,"protocol":"HTTPS"}]}}"#;

const MANAGED_SE: &str = r#"{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry",
 "metadata":{"name":"left-behind","namespace":"default",
   "labels":{"app.kubernetes.io/managed-by":"egress-webhook"}},
 "spec":{"hosts":["left.example.com"],"ports":[{"name":"https","number":443,"protocol":"HTTPS"}],
   "resolution":"DNS","location":"MESH_EXTERNAL"}}"#;

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn readme_install_and_uninstall_leave_nothing_behind() {
    if skip_cluster_tests() {
        return;
    }
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let install = commands(&readme, "install-commands");
    let uninstall = commands(&readme, "uninstall-commands");
    assert_eq!(install.len(), 3, "three commands from nothing to enforcing");
    assert_eq!(
        install[0][..2],
        ["kubectl".to_string(), "apply".to_string()],
        "{install:?}"
    );

    let cp = ControlPlane::start(Options::default()).unwrap_or_else(|e| panic!("{e}"));
    // Istio installed: its CRDs and its namespace (the webhook reads the mesh ConfigMaps there,
    // with a Role of its own in it).
    cp.install_crds(&[repo("manifests/istio/crds-1.24.6.yaml")])
        .expect("Istio CRDs");
    assert!(k(&cp, &["create", "namespace", "istio-system"]).ok);
    let first = run_line(&cp, &install[0]);
    assert!(first.ok, "{:?}: {}", install[0], first.out);
    for kind in [
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
    ] {
        assert!(
            k(&cp, &["get", kind, "egress-webhook"]).ok,
            "{kind} installed"
        );
    }
    // No pod serves (no nodes here): the configurations refuse what they cover, exactly as a
    // configuration left behind by an uninstall in the wrong order would.
    let es = kubectl(&cp, &["apply".into(), "-f".into(), "-".into()], Some(ES));
    assert!(
        !es.ok,
        "an ExternalService got past a webhook that is not running: {}",
        es.out
    );
    assert!(es.out.contains("failed calling webhook"), "{}", es.out);
    let se = kubectl(
        &cp,
        &["apply".into(), "-f".into(), "-".into()],
        Some(MANAGED_SE),
    );
    assert!(!se.ok, "{}", se.out);
    assert!(se.out.contains("guard.egress-webhook.io"), "{}", se.out);

    for line in &uninstall {
        let r = run_line(&cp, line);
        assert!(r.ok, "{line:?}: {}", r.out);
    }
    for (what, args) in [
        (
            "webhook configurations",
            vec![
                "get",
                "mutatingwebhookconfigurations,validatingwebhookconfigurations",
                "-o",
                "name",
            ],
        ),
        (
            "our cluster RBAC",
            vec![
                "get",
                "clusterroles,clusterrolebindings",
                "-l",
                "app.kubernetes.io/name=egress-webhook",
                "-o",
                "name",
            ],
        ),
        (
            "our RBAC in istio-system",
            vec![
                "get",
                "roles,rolebindings",
                "-n",
                "istio-system",
                "-l",
                "app.kubernetes.io/name=egress-webhook",
                "-o",
                "name",
            ],
        ),
        ("our CRDs", vec!["get", "crd", "-o", "name"]),
    ] {
        let r = k(&cp, &args);
        assert!(r.ok, "{what}: {}", r.out);
        let ours: Vec<&str> = r
            .out
            .lines()
            .filter(|l| l.contains("egress-webhook") || l.contains("gloo.solo.io"))
            .collect();
        assert!(ours.is_empty(), "{what} left behind: {ours:?}");
    }
    // The namespace goes (the namespace controller finishes it).
    let deadline = Instant::now() + Duration::from_secs(60);
    while k(&cp, &["get", "namespace", "egress-webhook"]).ok {
        assert!(
            Instant::now() < deadline,
            "namespace egress-webhook still there"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Nothing refuses a write any more.
    let se = kubectl(
        &cp,
        &["apply".into(), "-f".into(), "-".into()],
        Some(MANAGED_SE),
    );
    assert!(se.ok, "after the uninstall: {}", se.out);
    cp.stop().unwrap();
}

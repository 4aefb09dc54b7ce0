//! `check --kubeconfig` against a cluster that has the Gloo kinds but not our EgressGuardrail
//! CRD (a cluster without platform guardrails, or before they are installed): one `note:` line,
//! and the check goes on, with the guardrails of `--guardrails` files if any. A real
//! kube-apiserver of its own (no webhook: objects are stored as written), since every other
//! cluster test installs the guardrail CRD.

mod e2e;

use std::path::Path;
use std::process::{Command, Output};

use egress_webhook::controlplane::{ControlPlane, Options};

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .arg("check")
        .args(args)
        .output()
        .expect("egress-webhook check runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const NOTE: &str = "note: the cluster has no EgressGuardrail CRD: no cluster guardrails apply";

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn without_the_guardrail_crd_check_says_so_once_and_goes_on() {
    if e2e::skip_cluster_tests() {
        return;
    }
    let cp = ControlPlane::start(Options {
        // Only the apiserver's storage is needed here.
        controller_manager: false,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("control plane ready in {:.2?}", cp.startup_time());
    // The project's CRD file without the EgressGuardrail document.
    let dir = tempfile::tempdir().unwrap();
    let all = e2e::repo_text("manifests/crds/gloo-egress-crds.yaml");
    let gloo: Vec<&str> = all
        .split("\n---\n")
        .filter(|doc| !doc.contains("name: egressguardrails.policy.egress-webhook.dev"))
        .collect();
    assert_eq!(gloo.len(), 3, "the three Gloo CRDs");
    let crds = dir.path().join("gloo-crds.yaml");
    std::fs::write(&crds, gloo.join("\n---\n")).unwrap();
    cp.install_crds(&[&crds]).unwrap_or_else(|e| panic!("{e}"));
    let examples = e2e::repo("manifests/examples");
    cp.kubectl_ok(&["create", "-f", &examples.display().to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = cp.kubeconfig().display().to_string();
    let es = Path::new(&examples)
        .join("40-externalservice.yaml")
        .display()
        .to_string();

    let out = check(&["--kubeconfig", &kubeconfig, &es]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(stdout.lines().filter(|l| *l == NOTE).count(), 1, "{stdout}");
    assert!(!stdout.contains("[G"), "{stdout}");

    // A file's guardrail still applies (the cluster's Namespaces are read for it).
    let guardrail = dir.path().join("guardrail.yaml");
    std::fs::write(
        &guardrail,
        "apiVersion: policy.egress-webhook.dev/v1alpha1\nkind: EgressGuardrail\nmetadata: {name: example-only}\nspec: {allowedHosts: [\"*.example.com\"]}\n",
    )
    .unwrap();
    let out = check(&[
        "--kubeconfig",
        &kubeconfig,
        "--guardrails",
        &guardrail.display().to_string(),
        &es,
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.lines().any(|l| l == NOTE), "{stdout}");
    assert!(
        stdout.lines().any(|l| l
            == "error: ExternalService global/httpbin.org: spec.hosts[0]: host \"httpbin.org\" is not within allowedHosts of EgressGuardrail example-only (*.example.com) [G1]"),
        "{stdout}"
    );

    // Not asked for: no note.
    let out = check(&["--kubeconfig", &kubeconfig, "--no-cluster-guardrails", &es]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains(NOTE), "{}", text(&out.stdout));
    cp.stop().unwrap_or_else(|e| panic!("{e}"));
}

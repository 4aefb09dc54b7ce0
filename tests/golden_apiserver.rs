//! An oracle for the golden files that is not our own code: every tests/golden/*/expected.yaml
//! goes to a real kube-apiserver with the real Istio 1.24.6 CRDs, as
//! `kubectl apply --dry-run=server --validate=strict`: the apiserver runs the CRDs' OpenAPI
//! schemas, their CEL rules and strict field validation (an unknown or duplicate field is an
//! error) and stores nothing. No webhook is registered: this checks the objects, not admission.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use egress_webhook::controlplane::{ControlPlane, Options};
use serde_json::Value;

fn skip_cluster_tests() -> bool {
    let skip = std::env::var("EGRESS_SKIP_CLUSTER_TESTS").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("SKIPPED: EGRESS_SKIP_CLUSTER_TESTS=1, so no control plane is started");
    }
    skip
}

/// The documents of a multi-document YAML file as `render` writes it (`---` lines between).
fn documents(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|d| d.strip_prefix("---\n").unwrap_or(d))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{e}:\n{d}")))
        .collect()
}

/// `kubectl apply --dry-run=server --validate=strict -f path`: the names it would apply, or its
/// error output.
fn dry_run(cp: &ControlPlane, path: &Path) -> Result<Vec<String>, String> {
    let file = path.display().to_string();
    let out = cp
        .kubectl(&[
            "apply",
            "--dry-run=server",
            "--validate=strict",
            "-o",
            "name",
            "-f",
            file.as_str(),
        ])
        .unwrap_or_else(|e| panic!("kubectl: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.success() {
        Ok(stdout.lines().map(str::to_string).collect())
    } else {
        Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn every_golden_expected_yaml_passes_server_side_strict_validation() {
    if skip_cluster_tests() {
        return;
    }
    let cp = ControlPlane::start(Options {
        controller_manager: false,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    cp.install_crds(&[support::repo_path("manifests/istio/crds-1.24.6.yaml")])
        .unwrap_or_else(|e| panic!("{e}"));

    // The oracle can say no: a field the CRD does not have is refused under strict validation
    // (without --validate=strict the apiserver would only warn and drop it).
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("unknown-field.yaml");
    std::fs::write(
        &bad,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: bad\n  \
         namespace: default\nspec:\n  hosts: [example.com]\n  resolution: DNS\n  \
         ports: [{number: 443, protocol: HTTPS, name: https, nmae: typo}]\n",
    )
    .unwrap();
    let refused = dry_run(&cp, &bad).expect_err("an unknown field is refused");
    assert!(refused.contains("nmae"), "{refused}");

    let cases = support::golden_cases();
    assert!(cases.len() >= 10, "{cases:?}");
    let mut namespaces = BTreeSet::new();
    let mut per_case = Vec::new();
    for dir in &cases {
        let path = dir.join("expected.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = documents(&text);
        for d in &docs {
            namespaces.insert(d["metadata"]["namespace"].as_str().unwrap().to_string());
        }
        per_case.push((path, docs.len()));
    }
    // A dry-run create is still checked against the namespace's existence.
    for ns in &namespaces {
        cp.kubectl_ok(&["create", "namespace", ns])
            .unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
    }
    let mut applied = 0;
    let mut failures = Vec::new();
    for (path, expected) in per_case {
        if expected == 0 {
            continue;
        }
        match dry_run(&cp, &path) {
            Ok(names) => {
                assert_eq!(names.len(), expected, "{}: {names:?}", path.display());
                applied += names.len();
            }
            Err(e) => failures.push(format!("{}:\n{e}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!(
        "{applied} objects of {} golden files accepted by kube-apiserver (dry run, strict)",
        cases.len()
    );
    assert!(applied > 50, "only {applied} objects applied");
}

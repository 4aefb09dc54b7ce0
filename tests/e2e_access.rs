//! `access`, `check` and `render` with `--kubeconfig` against a real control plane with the
//! webhook: the running example applied through kubectl first (issue 15's "must show", live half).

mod e2e;
mod support;

use std::process::{Command, Output};

use e2e::{apply, kubectl, repo};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn squeeze(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn line_of<'a>(stdout: &'a str, account: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{account} ")))
        .unwrap_or_else(|| panic!("no line for {account}:\n{stdout}"))
}

/// The running example's ExternalService under another name, routed through `vg`.
fn external_service(name: &str, vg: &str) -> String {
    e2e::repo_text("manifests/examples/40-externalservice.yaml")
        .replace("name: httpbin.org", &format!("name: {name}"))
        .replace("- httpbin.org", &format!("- {name}"))
        .replace("name: egress-vg", &format!("name: {vg}"))
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn access_check_and_render_against_the_live_cluster() {
    let Some((dev, _serial)) = e2e::shared() else {
        return;
    };
    kubectl(
        &dev,
        &["apply", "-f", repo("manifests/examples").to_str().unwrap()],
    )
    .expect_ok("apply the running example");
    let kubeconfig = dev.kubeconfig().display().to_string();

    // Who can reach httpbin.org, from the cluster alone.
    let out = cli(&[
        "access",
        "--kubeconfig",
        &kubeconfig,
        "--host",
        "httpbin.org",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        squeeze(line_of(&stdout, "bookinfo/bookinfo-productpage")),
        "bookinfo/bookinfo-productpage allowed by ALLOW AuthorizationPolicy istio-egress/accesspolicy-egress-access-policy-istio-egressgateway rule 0"
    );
    assert!(
        line_of(&stdout, "bookinfo/bookinfo-reviews").ends_with(": 403 RBAC: access denied"),
        "{stdout}"
    );
    // Kubernetes' own namespaces are out of scope (their `default` ServiceAccounts exist).
    assert!(!stdout.contains("kube-system/"), "{stdout}");
    let reviews = cli(&[
        "access",
        "--kubeconfig",
        &kubeconfig,
        "--host",
        "httpbin.org",
        "--from",
        "bookinfo/bookinfo-reviews",
    ]);
    assert_eq!(reviews.status.code(), Some(1), "{}", text(&reviews.stdout));

    // A user's DENY applied to the cluster is listed live and named.
    kubectl(
        &dev,
        &[
            "apply",
            "-f",
            repo("tests/fixtures/access/deny-reviews.yaml")
                .to_str()
                .unwrap(),
        ],
    )
    .expect_ok("apply the user DENY");
    let out = cli(&[
        "access",
        "--kubeconfig",
        &kubeconfig,
        "--host",
        "httpbin.org",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        squeeze(line_of(&stdout, "bookinfo/bookinfo-reviews")),
        "bookinfo/bookinfo-reviews denied by DENY AuthorizationPolicy istio-egress/deny-reviews-egress rule 0: 403 RBAC: access denied",
        "{stdout}"
    );

    // check: a file naming a VirtualGateway that exists only in the cluster passes ...
    let dir = tempfile::tempdir().unwrap();
    let ok_file = dir.path().join("es-ok.yaml");
    std::fs::write(&ok_file, external_service("api.example.com", "egress-vg")).unwrap();
    let ok_path = ok_file.display().to_string();
    let ok = cli(&["check", "--kubeconfig", &kubeconfig, &ok_path]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    assert!(!text(&ok.stdout).contains("error:"));
    let offline = cli(&["check", &ok_path]);
    assert_eq!(
        offline.status.code(),
        Some(1),
        "offline the gateway is missing"
    );

    // ... one naming a missing gateway fails with the line kubectl shows.
    let bad_yaml = external_service("api.example.com", "missing-vg");
    let bad_file = dir.path().join("es-bad.yaml");
    std::fs::write(&bad_file, &bad_yaml).unwrap();
    let bad = cli(&[
        "check",
        "--kubeconfig",
        &kubeconfig,
        &bad_file.display().to_string(),
    ]);
    let stdout = text(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    let line = e2e::line_starting(&stdout, "error: ExternalService global/api.example.com: ");
    assert!(line.ends_with("[E22]"), "{line}");
    let kubectl_says = apply(&dev, &bad_yaml, &["--dry-run=server"]).expect_err("missing gateway");
    assert!(
        kubectl_says
            .stderr
            .contains(&format!("denied the request: {line}")),
        "check printed\n{line}\nkubectl printed\n{}",
        kubectl_says.stderr
    );

    // render: the companions the admission of the file would write into this cluster.
    let rendered = cli(&["render", "--kubeconfig", &kubeconfig, &ok_path]);
    let yaml = text(&rendered.stdout);
    assert_eq!(
        rendered.status.code(),
        Some(0),
        "{}",
        text(&rendered.stderr)
    );
    assert!(
        yaml.contains("name: externalservice-api-example-com-global\n"),
        "{yaml}"
    );
    // egress-vg exposes only httpbin.org (E23 warns), so no gateway leg; httpbin.org's
    // companions are not affected by this file and are not printed.
    assert!(
        !yaml.contains("gloo.solo.io/parent_name: httpbin.org"),
        "only the parents the file affects:\n{yaml}"
    );
}

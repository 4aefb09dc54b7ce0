//! `egress-webhook access` as a user runs it on the running example: the real binary, real files
//! (issue 15's "must show", offline half).

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::{seed_files_except, text};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn access(extra: &[&str], files: &[String]) -> Output {
    let mut args = vec!["access"];
    args.extend(extra);
    args.extend(files.iter().map(String::as_str));
    run(&args)
}

/// The line for one ServiceAccount.
fn line_of<'a>(stdout: &'a str, account: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{account} ")))
        .unwrap_or_else(|| panic!("no line for {account}:\n{stdout}"))
}

const GENERATED: &str =
    "ALLOW AuthorizationPolicy istio-egress/accesspolicy-egress-access-policy-istio-egressgateway";
const OPEN: &str = "ALLOW AuthorizationPolicy istio-egress/externalservice-httpbin-org-global-istio-egressgateway-open";

#[test]
fn productpage_is_allowed_by_the_generated_policy_and_reviews_gets_403() {
    let out = access(&["--host", "httpbin.org"], &seed_files_except("-none-"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("httpbin.org port 80 (ExternalService global/httpbin.org): through egress gateway istio-egress/istio-egressgateway port 443 (pod port 8443, VirtualGateway istio-egress/egress-vg), Host header httpbin.org\n"),
        "{stdout}"
    );
    assert_eq!(
        line_of(&stdout, "bookinfo/bookinfo-productpage")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        format!("bookinfo/bookinfo-productpage allowed by {GENERATED} rule 0")
    );
    for denied in ["bookinfo/bookinfo-reviews", "bookinfo/bookinfo-ratings"] {
        let line = line_of(&stdout, denied);
        assert!(line.contains(" denied "), "{line}");
        assert!(
            line.contains(&format!("no rule of {GENERATED} matches")),
            "{line}"
        );
        assert!(line.ends_with(": 403 RBAC: access denied"), "{line}");
    }
    // The declared port 443 is not routed through the gateway: said, not hidden.
    assert!(stdout.contains("httpbin.org port 443: declared by ExternalService global/httpbin.org but not routed through an egress gateway"), "{stdout}");
}

#[test]
fn from_gives_one_answer_and_the_exit_code() {
    let files = seed_files_except("-none-");
    let reviews = access(
        &[
            "--host",
            "httpbin.org",
            "--from",
            "bookinfo/bookinfo-reviews",
        ],
        &files,
    );
    let stdout = text(&reviews.stdout);
    assert_eq!(reviews.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        2,
        "a header and one answer:\n{stdout}"
    );
    assert!(line_of(&stdout, "bookinfo/bookinfo-reviews").ends_with("403 RBAC: access denied"));
    let productpage = access(
        &[
            "--host",
            "httpbin.org",
            "--from",
            "bookinfo/bookinfo-productpage",
        ],
        &files,
    );
    assert_eq!(
        productpage.status.code(),
        Some(0),
        "{}",
        text(&productpage.stdout)
    );
    let bad = access(&["--host", "httpbin.org", "--from", "reviews"], &files);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("error: --from: \"reviews\" is not NAMESPACE/SERVICEACCOUNT")
    );
}

#[test]
fn without_the_access_policy_every_service_account_goes_through_the_open_rule() {
    let out = access(
        &["--host", "httpbin.org"],
        &seed_files_except("50-accesspolicy.yaml"),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for sa in [
        "bookinfo/bookinfo-productpage",
        "bookinfo/bookinfo-reviews",
        "bookinfo/bookinfo-ratings",
    ] {
        let line = line_of(&stdout, sa)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(line, format!("{sa} allowed by {OPEN} rule 0"));
    }
}

#[test]
fn a_user_written_deny_for_reviews_decides_and_is_named() {
    let mut files = seed_files_except("-none-");
    files.push(support::repo_path(
        "tests/fixtures/access/deny-reviews.yaml",
    ));
    let out = access(&["--host", "httpbin.org"], &files);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        line_of(&stdout, "bookinfo/bookinfo-reviews")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        "bookinfo/bookinfo-reviews denied by DENY AuthorizationPolicy istio-egress/deny-reviews-egress rule 0: 403 RBAC: access denied"
    );
    assert!(line_of(&stdout, "bookinfo/bookinfo-productpage").contains(" allowed "));
    // Without the AccessPolicy the open rule would allow reviews; the DENY still wins.
    let mut files = seed_files_except("50-accesspolicy.yaml");
    files.push(support::repo_path(
        "tests/fixtures/access/deny-reviews.yaml",
    ));
    let out = access(
        &[
            "--host",
            "httpbin.org",
            "--from",
            "bookinfo/bookinfo-reviews",
        ],
        &files,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout)
            .contains("by DENY AuthorizationPolicy istio-egress/deny-reviews-egress rule 0")
    );
}

#[test]
fn undeclared_hosts_follow_the_outbound_traffic_policy() {
    let files = seed_files_except("-none-");
    let open = access(
        &[
            "--host",
            "example.com",
            "--from",
            "bookinfo/bookinfo-reviews",
        ],
        &files,
    );
    let stdout = text(&open.stdout);
    assert_eq!(open.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("example.com: allowed, bypassing the egress gateway: outbound traffic policy ALLOW_ANY (Istio's default"), "{stdout}");
    let cm = support::repo_path("tests/fixtures/access/registry-only-configmap.yaml");
    let blocked = access(
        &[
            "--host",
            "example.com",
            "--from",
            "bookinfo/bookinfo-reviews",
            "--mesh-config",
            &cm,
        ],
        &files,
    );
    let stdout = text(&blocked.stdout);
    assert_eq!(blocked.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("example.com: blocked: outbound traffic policy REGISTRY_ONLY:"),
        "{stdout}"
    );
}

#[test]
fn json_output_carries_the_decisions() {
    let out = access(
        &["--host", "httpbin.org", "--output", "json"],
        &seed_files_except("-none-"),
    );
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let answers = &doc["routes"][0]["gateways"][0]["answers"];
    let reviews = answers
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["service_account"] == "bookinfo/bookinfo-reviews")
        .expect("reviews answered");
    assert_eq!(reviews["decision"]["verdict"], "denied");
    assert_eq!(
        reviews["principal"],
        "cluster.local/ns/bookinfo/sa/bookinfo-reviews"
    );
    assert_eq!(
        reviews["decision"]["reason"]["kind"],
        "no_allow_rule_matched"
    );
}

#[test]
fn a_bad_authorization_policy_is_an_error_naming_file_object_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: bad, namespace: istio-egress}\nspec:\n  rules:\n  - to:\n    - operation: {ports: [https]}\n",
    )
    .unwrap();
    let mut files = seed_files_except("-none-");
    files.push(bad.display().to_string());
    let out = access(&["--host", "httpbin.org"], &files);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("error: {}:1: AuthorizationPolicy istio-egress/bad: spec.rules[0].to[0].operation.ports[0]: \"https\" is not a port number (0-65535)", bad.display())),
        "{stderr}"
    );
}

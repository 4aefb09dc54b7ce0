//! The `check` and `render` commands as a user runs them: the real binary, real files.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{seed_files_except, text};

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

#[test]
fn check_of_the_seed_exits_0() {
    let out = run(&["check", &support::repo_path("manifests/examples")], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("error:"));
}

#[test]
fn check_without_the_virtual_gateway_exits_1_naming_the_reference() {
    let files = seed_files_except("30-virtualgateway.yaml");
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args, None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("error: ExternalService global/httpbin.org: "))
        .unwrap_or_else(|| panic!("no error line for the ExternalService:\n{stdout}"));
    assert!(
        line.contains("virtualGatewayRefs")
            && line.contains("egress-vg")
            && line.ends_with("[E22]"),
        "{line}"
    );
}

#[test]
fn check_output_json_is_machine_readable() {
    let files = seed_files_except("30-virtualgateway.yaml");
    let mut args = vec!["check", "--output", "json"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args, None);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert!(doc["errors"].as_u64().unwrap() >= 1);
    let f = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "E22")
        .expect("E22 finding");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["object"]["kind"], "ExternalService");
    assert_eq!(
        f["path"],
        "spec.ports[0].egressGatewayRoutes.virtualGatewayRefs[0]"
    );
}

#[test]
fn render_prints_the_running_example_companions() {
    let out = run(&["render", &support::repo_path("manifests/examples")], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let docs: Vec<Value> = text(&out.stdout)
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    let of_kind = |k: &'static str| docs.iter().filter(move |d| d["kind"] == k);

    let vs: Vec<&Value> = of_kind("VirtualService").collect();
    assert_eq!(vs.len(), 1);
    let vs = vs[0];
    assert_eq!(vs["metadata"]["namespace"], "istio-egress");
    assert_eq!(
        vs["metadata"]["labels"]["gloo.solo.io/parent_name"],
        "httpbin.org"
    );
    let gateways: Vec<&str> = vs["spec"]["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(gateways.len(), 2);
    assert_eq!(gateways[1], "mesh");
    let (gw_ns, gw_name) = gateways[0].split_once('/').unwrap();
    assert!(
        of_kind("Gateway")
            .any(|g| g["metadata"]["namespace"] == gw_ns && g["metadata"]["name"] == gw_name),
        "the Gateway {} is rendered too",
        gateways[0]
    );
    let http = vs["spec"]["http"].as_array().unwrap();
    assert!(
        http.iter()
            .any(|r| r["match"][0]["gateways"][0] == "mesh" && r["match"][0]["port"] == 80),
        "mesh leg on 80"
    );
    assert!(
        http.iter()
            .any(|r| r["route"][0]["destination"]["host"] == "httpbin.org"
                && r["route"][0]["destination"]["port"]["number"] == 443),
        "route to httpbin.org:443"
    );

    assert!(
        of_kind("DestinationRule").any(|d| d["spec"]["host"] == "httpbin.org"
            && d["spec"]["trafficPolicy"]["portLevelSettings"][0]["port"]["number"] == 443
            && d["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["mode"] == "SIMPLE")
    );

    let aps: Vec<&Value> = of_kind("AuthorizationPolicy").collect();
    assert_eq!(aps.len(), 1);
    assert_eq!(aps[0]["spec"]["action"], "ALLOW");
    let principals: Vec<&Value> = aps[0]["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["from"].as_array().unwrap().iter())
        .flat_map(|f| f["source"]["principals"].as_array().unwrap().iter())
        .collect();
    assert_eq!(
        principals,
        [&Value::from(
            "cluster.local/ns/bookinfo/sa/bookinfo-productpage"
        )]
    );
}

#[test]
fn render_of_invalid_input_prints_the_errors_and_nothing_else() {
    let files = seed_files_except("30-virtualgateway.yaml");
    let mut args = vec!["render"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("[E22]"));
}

#[test]
fn stdin_json_and_lists_are_read() {
    let es = std::fs::read_to_string(support::repo_path(
        "manifests/examples/40-externalservice.yaml",
    ))
    .unwrap();
    let es: Value = serde_saphyr::from_str(&es).unwrap();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [es]});
    let out = run(&["check", "-"], Some(&list.to_string()));
    // Without its VirtualGateway the ExternalService is denied: proof that the List item was read.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("[E22]"));
}

#[test]
fn parse_errors_exit_2_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\nkind: [unclosed\n",
    )
    .unwrap();
    let out = run(&["check", &bad.display().to_string()], None);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}:5", bad.display())), "{err}");

    let typed = dir.path().join("typed.yaml");
    std::fs::write(
        &typed,
        "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {name: x, namespace: ns1}\nspec:\n  ports:\n    - number: not-a-number\n",
    )
    .unwrap();
    let out = run(&["check", &typed.display().to_string()], None);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}:1", typed.display())) && err.contains("spec.ports[0].number"),
        "{err}"
    );

    let out = run(&["check", "/nonexistent/file.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["check"], None);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn unknown_kinds_are_skipped_with_a_note() {
    let out = run(
        &["check", "-"],
        Some("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).starts_with("note: <stdin>:1: skipped apps/v1 Deployment"),
        "{}",
        text(&out.stdout)
    );
}

/// `check --guardrails`: the admission's verdicts offline. The guardrail file labels the
/// running example's namespace `global` team=a (a Namespace there replaces the inputs' own).
#[test]
fn check_with_guardrails_follows_the_enforcement_action() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("guardrails.yaml");
    let g1 = "ExternalService global/httpbin.org: spec.hosts[0]: host \"httpbin.org\" is not within allowedHosts of EgressGuardrail team-a (*.example.com) [G1]";
    let examples = support::repo_path("manifests/examples");
    for (action, code, line) in [
        ("deny", 1, Some(format!("error: {g1}"))),
        ("warn", 0, Some(format!("warning: {g1}"))),
        ("audit", 0, None),
    ] {
        std::fs::write(
            &file,
            format!(
                "apiVersion: policy.egress-webhook.dev/v1alpha1\nkind: EgressGuardrail\nmetadata: {{name: team-a}}\nspec:\n  namespaceSelector: {{matchLabels: {{team: a}}}}\n  allowedHosts: [\"*.example.com\"]\n  enforcementAction: {action}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: global, labels: {{team: a}}}}\n"
            ),
        )
        .unwrap();
        let out = run(
            &[
                "check",
                &examples,
                "--guardrails",
                &file.display().to_string(),
            ],
            None,
        );
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{action}: {stdout}");
        let g_lines: Vec<&str> = stdout.lines().filter(|l| l.contains("[G")).collect();
        assert_eq!(
            g_lines,
            line.iter().map(String::as_str).collect::<Vec<_>>(),
            "{action}"
        );
    }
    // Without the label the guardrail governs nothing.
    std::fs::write(
        &file,
        "apiVersion: policy.egress-webhook.dev/v1alpha1\nkind: EgressGuardrail\nmetadata: {name: team-a}\nspec:\n  namespaceSelector: {matchLabels: {team: a}}\n  allowedHosts: [\"*.example.com\"]\n",
    )
    .unwrap();
    let out = run(
        &[
            "check",
            &examples,
            "--guardrails",
            &file.display().to_string(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("[G"));
    // A bad guardrail is an error naming its field (G6), and a missing file a usage error.
    std::fs::write(
        &file,
        "apiVersion: policy.egress-webhook.dev/v1alpha1\nkind: EgressGuardrail\nmetadata: {name: bad}\nspec:\n  deniedHosts: [\"foo.*.com\"]\n",
    )
    .unwrap();
    let out = run(
        &[
            "check",
            &examples,
            "--guardrails",
            &file.display().to_string(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("error: EgressGuardrail bad: spec.deniedHosts[0]: \"foo.*.com\" has a `*` other than as the whole first label"),
        "{}",
        text(&out.stdout)
    );
    let out = run(
        &[
            "check",
            &examples,
            "--guardrails",
            "/nonexistent/guardrails.yaml",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/guardrails.yaml"));
}

/// The guardrail flags with `--kubeconfig`, as far as no cluster is needed: `--guardrails` is
/// accepted with it (the cluster is then read, here one that refuses the connection: a usage
/// error naming the kubeconfig, not a flag conflict), `--no-cluster-guardrails` needs it, and a
/// bad guardrail file is reported before any cluster is contacted. (Against a real cluster:
/// `tests/e2e_guardrails.rs`.)
#[test]
fn guardrail_flags_with_and_without_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    )
    .unwrap();
    let kubeconfig = kubeconfig.display().to_string();
    let guardrails = dir.path().join("guardrails.yaml");
    std::fs::write(
        &guardrails,
        "apiVersion: policy.egress-webhook.dev/v1alpha1\nkind: EgressGuardrail\nmetadata: {name: team-a}\nspec: {allowedHosts: [\"*.example.com\"]}\n",
    )
    .unwrap();
    let guardrails = guardrails.display().to_string();
    let examples = support::repo_path("manifests/examples");

    let out = run(
        &[
            "check",
            "--kubeconfig",
            &kubeconfig,
            "--guardrails",
            &guardrails,
            &examples,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).starts_with(&format!("error: --kubeconfig {kubeconfig}: ")),
        "{}",
        text(&out.stderr)
    );

    let out = run(&["check", "--no-cluster-guardrails", &examples], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--kubeconfig <FILE>"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        &[
            "check",
            "--kubeconfig",
            &kubeconfig,
            "--guardrails",
            "/nonexistent/guardrails.yaml",
            &examples,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: ")
            && text(&out.stderr).contains("/nonexistent/guardrails.yaml"),
        "{}",
        text(&out.stderr)
    );
}

/// `check --mesh-config`: M1 under ALLOW_ANY (a warning: exit 0), none under REGISTRY_ONLY or
/// without the flag; a mesh config that does not parse is a usage error naming file and field.
#[test]
fn check_with_a_mesh_config_reports_m1_under_allow_any_only() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let open = write("open.yaml", "outboundTrafficPolicy: {mode: ALLOW_ANY}\n");
    let closed = write(
        "closed.yaml",
        "meshConfig:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
    );
    let bad = write("bad.yaml", "outboundTrafficPolicy: {mode: BLOCK}\n");
    let seed = support::repo_path("manifests/examples");
    let m1 = |out: &Output| -> Vec<String> {
        text(&out.stdout)
            .lines()
            .filter(|l| l.ends_with("[M1]"))
            .map(str::to_string)
            .collect()
    };

    let out = run(&["check", "--mesh-config", &open, &seed], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        m1(&out),
        [format!(
            "warning: ExternalService global/httpbin.org: spec.ports[0].egressGatewayRoutes: the mesh's outbound traffic policy is ALLOW_ANY ({open}): this host goes through the egress gateway, but workloads still reach every external host no ServiceEntry declares directly from their sidecars, bypassing it; set outboundTrafficPolicy.mode: REGISTRY_ONLY in the mesh config (key mesh of ConfigMap istio-system/istio, meshConfig in Istio's install values) [M1]"
        )]
    );
    let out = run(&["check", "--mesh-config", &closed, &seed], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(m1(&out).is_empty(), "{}", text(&out.stdout));
    let out = run(&["check", &seed], None);
    assert!(m1(&out).is_empty(), "{}", text(&out.stdout));
    let out = run(&["check", "--mesh-config", &bad, &seed], None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: --mesh-config: {bad}: outboundTrafficPolicy.mode: \"BLOCK\" is not ALLOW_ANY or REGISTRY_ONLY\n"
        )
    );
}

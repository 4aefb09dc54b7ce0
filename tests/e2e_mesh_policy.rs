//! M1 through the real kubectl and kube-apiserver: the webhook watches Istio's mesh ConfigMaps in
//! istio-system; while the outbound traffic policy is ALLOW_ANY (no ConfigMap at all, or one that
//! says so) applying an ExternalService routed through an egress gateway prints the M1 warning
//! naming the setting to change, with REGISTRY_ONLY it does not. The gauge
//! `egress_webhook_mesh_outbound_policy{mode}` follows, and `check --kubeconfig` prints the
//! same line as kubectl.

mod e2e;

use std::process::Command;
use std::time::Duration;

use e2e::{apply, eventually, kubectl, kubectl_in, namespace, repo_text, shared};
use egress_webhook::cluster::dev::DevCluster;

const NS: &str = "mesh-m1";

/// The running example's VirtualGateway and ExternalService, in `NS`; `label` changes the
/// ExternalService so that each apply is an update the webhook reviews.
fn objects(label: &str) -> String {
    let vg = repo_text("manifests/examples/30-virtualgateway.yaml");
    let es = repo_text("manifests/examples/40-externalservice.yaml").replace(
        "  namespace: global\n",
        &format!("  namespace: global\n  labels: {{step: {label}}}\n"),
    );
    format!("{vg}\n---\n{es}")
        .replace("namespace: global", &format!("namespace: {NS}"))
        .replace("namespace: istio-egress", &format!("namespace: {NS}"))
}

fn mesh_config_map(mesh: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\n\
         data:\n  mesh: |-\n{}\n",
        mesh.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// The M1 lines of kubectl's stderr.
fn m1_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.ends_with("[M1]"))
        .map(str::to_string)
        .collect()
}

/// Wait until the webhook's gauge says `mode` is in force (the watch has the ConfigMap).
fn wait_for_mode(dev: &DevCluster, mode: &str) {
    let want = format!("egress_webhook_mesh_outbound_policy{{mode=\"{mode}\"}} 1");
    let mut last = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            last = dev.webhook_metrics_text().unwrap_or_default();
            last.lines().any(|l| l == want)
        }),
        "{want} not in the metrics:\n{}",
        last.lines()
            .filter(|l| l.contains("mesh_outbound"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn m1_warns_while_the_mesh_lets_other_hosts_out_and_not_under_registry_only() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    namespace(&dev, NS);

    // No mesh ConfigMap: Istio's default, ALLOW_ANY.
    wait_for_mode(&dev, "ALLOW_ANY");
    let out = apply(&dev, &objects("one"), &[]).expect_ok("apply without a mesh ConfigMap");
    let expected = format!(
        "Warning: ExternalService {NS}/httpbin.org: spec.ports[0].egressGatewayRoutes: the mesh's \
         outbound traffic policy is ALLOW_ANY (no ConfigMap istio-system/istio: Istio's default): \
         this host goes through the egress gateway, but workloads still reach every external host \
         no ServiceEntry declares directly from their sidecars, bypassing it; set \
         outboundTrafficPolicy.mode: REGISTRY_ONLY in the mesh config (key mesh of ConfigMap \
         istio-system/istio, meshConfig in Istio's install values) [M1]"
    );
    assert_eq!(m1_lines(&out.stderr), [expected], "{}", out.stderr);

    // REGISTRY_ONLY: the next apply has no M1, and its other warnings still come.
    kubectl_in(
        &dev,
        &["apply", "-f", "-"],
        &mesh_config_map("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY"),
    )
    .expect_ok("the mesh ConfigMap, REGISTRY_ONLY");
    wait_for_mode(&dev, "REGISTRY_ONLY");
    let out = apply(&dev, &objects("two"), &[]).expect_ok("apply under REGISTRY_ONLY");
    assert!(
        out.stdout.contains("httpbin.org configured"),
        "{}",
        out.stdout
    );
    assert_eq!(
        m1_lines(&out.stderr),
        Vec::<String>::new(),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("[E26]"), "{}", out.stderr);

    // ALLOW_ANY written in the ConfigMap: M1 again, naming that ConfigMap.
    kubectl_in(
        &dev,
        &["apply", "-f", "-"],
        &mesh_config_map("outboundTrafficPolicy:\n  mode: ALLOW_ANY"),
    )
    .expect_ok("the mesh ConfigMap, ALLOW_ANY");
    wait_for_mode(&dev, "ALLOW_ANY");
    let yaml = objects("three");
    let out = apply(&dev, &yaml, &[]).expect_ok("apply under ALLOW_ANY");
    let lines = m1_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].contains("is ALLOW_ANY (ConfigMap istio-system/istio): "),
        "{}",
        lines[0]
    );

    // `check --kubeconfig` reads the same ConfigMap and prints the same line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("es.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .args(["check", "--kubeconfig"])
        .arg(dev.kubeconfig())
        .arg(&file)
        .output()
        .expect("check runs");
    let stdout = String::from_utf8_lossy(&check.stdout);
    let from_check: Vec<&str> = stdout.lines().filter(|l| l.ends_with("[M1]")).collect();
    assert_eq!(
        from_check,
        [lines[0].replacen("Warning: ", "warning: ", 1)],
        "{stdout}"
    );

    kubectl(
        &dev,
        &["delete", "configmap", "istio", "-n", "istio-system"],
    )
    .expect_ok("remove the mesh ConfigMap");
}

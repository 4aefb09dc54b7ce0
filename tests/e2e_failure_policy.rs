//! failurePolicy Fail, end to end: the webhook runs as its own process (`egress-webhook serve
//! --kubeconfig <its own user's kubeconfig>`, the binary under test), serves the running example,
//! and is then stopped with SIGTERM. From then on the apiserver refuses ExternalServices with its
//! own error, while the namespaces the namespaceSelector leaves out keep working. Dropping the
//! cluster leaves no process and no listening port behind.
//!
//! Its own cluster: stopping the webhook would break any test sharing one.

mod e2e;

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use e2e::{apply, kubectl, repo_text, skip_cluster_tests};
use egress_webhook::cluster::dev::{DevCluster, DevOptions, WebhookMode};

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

fn listening(addr: std::net::SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn with_the_webhook_stopped_the_apiserver_refuses_external_services() {
    if skip_cluster_tests() {
        return;
    }
    let mut dev = DevCluster::start(DevOptions {
        webhook: WebhookMode::Process(PathBuf::from(env!("CARGO_BIN_EXE_egress-webhook"))),
        ..DevOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let pid = dev.webhook_pid().expect("a webhook process");
    let addr = dev.webhook_addr();
    let server = dev.cp().server_url().to_string();
    let cp_pids: Vec<u32> = dev.cp().pids().into_iter().map(|(_, p)| p).collect();
    assert!(alive(pid) && listening(addr));

    // The process serves: the running example goes in, defaulted.
    for f in [
        "00-namespaces.yaml",
        "10-egress-gateway-service.yaml",
        "20-service-accounts.yaml",
        "30-virtualgateway.yaml",
        "40-externalservice.yaml",
    ] {
        apply(&dev, &repo_text(&format!("manifests/examples/{f}")), &[]).expect_ok(f);
    }
    let target_port = kubectl(
        &dev,
        &[
            "get",
            "es",
            "httpbin.org",
            "-n",
            "global",
            "-o",
            "jsonpath={.spec.ports[0].targetPort.number}",
        ],
    )
    .expect_ok("get");
    assert_eq!(target_port.stdout, "443");
    apply(&dev, &repo_text("manifests/base/namespace.yaml"), &[])
        .expect_ok("the webhook's namespace");

    dev.stop_webhook().expect("stop the webhook");
    assert!(!alive(pid), "the webhook process is gone");
    assert!(!listening(addr), "nothing listens on {addr} any more");

    let es = repo_text("manifests/examples/40-externalservice.yaml")
        .replace("name: httpbin.org\n", "name: other.example.com\n")
        .replace("- httpbin.org", "- other.example.com");
    let refused = apply(&dev, &es, &[]).expect_err("apply with the webhook down");
    assert_eq!(
        refused.stderr.lines().collect::<Vec<_>>(),
        [format!(
            "Error from server (InternalError): error when creating \"STDIN\": Internal error occurred: failed calling webhook \"mutate.egress-webhook.io\": failed to call webhook: Post \"https://{addr}/mutate?timeout=10s\": dial tcp {addr}: connect: connection refused"
        )]
    );
    let none = kubectl(&dev, &["get", "es", "other.example.com", "-n", "global"]);
    assert!(none.stderr.contains("NotFound"), "{none:?}");
    // Server-side dry-run is refused the same way.
    let dry = apply(&dev, &es, &["--dry-run=server"]).expect_err("dry-run with the webhook down");
    assert!(
        dry.stderr
            .contains("failed calling webhook \"mutate.egress-webhook.io\""),
        "{dry:?}"
    );
    // Deleting a VirtualGateway goes through the validating webhook: refused too.
    let del = kubectl(&dev, &["delete", "vg", "egress-vg", "-n", "istio-egress"])
        .expect_err("delete with the webhook down");
    assert!(
        del.stderr
            .contains("failed calling webhook \"validate.egress-webhook.io\""),
        "{del:?}"
    );

    // Other kinds are not the webhook's business, and the excluded namespaces stay writable,
    // so the webhook itself can always be repaired.
    apply(
        &dev,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unaffected, namespace: global}\ndata: {a: \"b\"}\n",
        &[],
    )
    .expect_ok("a ConfigMap");
    let own = es.replace("namespace: global", "namespace: egress-webhook");
    let out = apply(&dev, &own, &[]).expect_ok("an ExternalService in the webhook's namespace");
    assert_eq!(
        out.stdout,
        "externalservice.networking.gloo.solo.io/other.example.com created\n"
    );

    // Teardown leaves nothing behind.
    drop(dev);
    for p in cp_pids {
        assert!(!alive(p), "control-plane process {p} survived");
    }
    let apiserver: std::net::SocketAddr = server
        .trim_start_matches("https://")
        .parse()
        .expect("server address");
    assert!(!listening(apiserver), "the apiserver port is still open");
}

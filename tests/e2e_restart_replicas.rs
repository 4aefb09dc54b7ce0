//! The controller across restarts and with two replicas, with the webhook as its own process
//! (`egress-webhook serve`, the binary under test):
//! - restarted with its parents stored and their companions right, it sends nothing, also when
//!   the VirtualGateway watch lists seconds after the ExternalService one (a test-only delay);
//! - with two replicas one reconciles; when it stops, the other takes over and repairs a
//!   companion deleted by hand.
//!
//! Its own cluster: restarting the webhook would break any test sharing one.

mod e2e;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::{apply, eventually, inventory, kubectl, repo, skip_cluster_tests};
use egress_webhook::cluster::catalog::TEST_WATCH_DELAY_ENV;
use egress_webhook::cluster::dev::{DevCluster, DevOptions, WebhookMode, http_get_text};

/// Sum over the label sets of a metric, read from a webhook process's metrics listener.
fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let text = http_get_text(addr, "/metrics").unwrap_or_else(|e| panic!("metrics of {addr}: {e}"));
    e2e::metric_sum(&text, name)
}

const WRITES: &str = "egress_webhook_companion_writes_total";
const READS: &str = "egress_webhook_controller_reads_total";
const LEADER: &str = "egress_webhook_controller_leader";

/// Companions, as `kind/namespace/name@resourceVersion` (a write changes the resourceVersion).
fn companions(dev: &DevCluster) -> Vec<String> {
    inventory(dev)
        .into_iter()
        .filter(|l| {
            [
                "ServiceEntry/",
                "Gateway/",
                "DestinationRule/",
                "VirtualService/",
                "AuthorizationPolicy/",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .collect()
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn restarts_send_nothing_and_a_second_replica_takes_over() {
    if skip_cluster_tests() {
        return;
    }
    let mut dev = DevCluster::start(DevOptions {
        webhook: WebhookMode::Process(PathBuf::from(env!("CARGO_BIN_EXE_egress-webhook"))),
        ..DevOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    kubectl(
        &dev,
        &["apply", "-f", repo("manifests/examples").to_str().unwrap()],
    )
    .expect_ok("the running example");
    // A second ExternalService on the gateway, so that more than one parent is at stake.
    apply(
        &dev,
        "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {name: api.example.com, namespace: global}\nspec:\n  hosts: [api.example.com]\n  ports:\n  - {name: https, number: 443, protocol: HTTPS, clientsideTls: {}}\n",
        &[],
    )
    .expect_ok("second ExternalService");
    let metrics = dev.webhook_metrics_addr().expect("process mode");
    // Settled: the owner references of just-created parents are added once they are stored.
    assert!(
        eventually(Duration::from_secs(20), || {
            let before = companions(&dev);
            std::thread::sleep(Duration::from_secs(3));
            before == companions(&dev)
        }),
        "companions never settled"
    );
    let settled = companions(&dev);
    assert!(settled.len() >= 6, "{settled:?}");
    // The counters read below are the right ones: this process wrote and looked up companions.
    assert!(
        metric(metrics, WRITES) >= settled.len() as f64,
        "writes not counted"
    );
    assert!(metric(metrics, READS) >= 1.0, "reads not counted");

    // 1. Restart: nothing sent.
    dev.restart_webhook(&[]).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(metric(metrics, WRITES), 0.0, "writes after a restart");
    assert_eq!(metric(metrics, READS), 0.0, "reads after a restart");
    assert_eq!(companions(&dev), settled, "companions changed by a restart");

    // 2. Restart with the VirtualGateways listed 3 s after everything else: without them the
    //    ExternalService's gateway routes would expand to nothing; nothing may be deleted.
    dev.restart_webhook(&[(TEST_WATCH_DELAY_ENV, "VirtualGateway=3000")])
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        metric(metrics, WRITES),
        0.0,
        "writes after a restart with a late watch"
    );
    assert_eq!(
        companions(&dev),
        settled,
        "companions changed by a late watch"
    );

    // 3. A second replica: it admits but does not reconcile while the first holds the Lease.
    let mut replica = dev.start_replica(&[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(metric(metrics, LEADER), 1.0, "the first is the leader");
    assert_eq!(
        metric(replica.metrics_addr, LEADER),
        0.0,
        "the second is not"
    );
    // The apiserver calls the replica from now on; the first stops (and gives the Lease up).
    dev.register(replica.addr).unwrap_or_else(|e| panic!("{e}"));
    dev.stop_webhook().unwrap_or_else(|e| panic!("{e}"));
    let stopped = Instant::now();
    assert!(
        eventually(Duration::from_secs(15), || metric(
            replica.metrics_addr,
            LEADER
        ) == 1.0),
        "the replica did not take over within 15 s"
    );
    eprintln!(
        "replica took over {:?} after the leader stopped",
        stopped.elapsed()
    );
    // A companion deleted by hand is back within 20 s.
    let vs = kubectl(
        &dev,
        &[
            "get",
            "virtualservices",
            "-n",
            "istio-egress",
            "-l",
            "gloo.solo.io/parent_name=httpbin.org",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
    )
    .expect_ok("find the VirtualService")
    .stdout;
    kubectl(
        &dev,
        &["delete", "virtualservice", "-n", "istio-egress", &vs],
    )
    .expect_ok("delete by hand");
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(20), || {
            kubectl(
                &dev,
                &[
                    "get",
                    "virtualservice",
                    "-n",
                    "istio-egress",
                    &vs,
                    "-o",
                    "name",
                ],
            )
            .ok
        }),
        "the replica did not put the VirtualService back within 20 s; its log:\n{}",
        std::fs::read_to_string(replica.log()).unwrap_or_default()
    );
    eprintln!("deleted VirtualService back after {:?}", t.elapsed());
    assert_eq!(
        metric(
            replica.metrics_addr,
            "egress_webhook_reconcile_events_total{outcome=\"repair\"}"
        ),
        1.0,
        "the put-back counted as one repair"
    );
    // And it admits and writes: a new parent's companions are there when apply returns.
    apply(
        &dev,
        "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {name: third.example.com, namespace: global}\nspec:\n  hosts: [third.example.com]\n  ports:\n  - {name: https, number: 443, protocol: HTTPS, clientsideTls: {}}\n",
        &[],
    )
    .expect_ok("third ExternalService through the replica");
    let se = kubectl(
        &dev,
        &[
            "get",
            "serviceentries",
            "-n",
            "global",
            "-l",
            "gloo.solo.io/parent_name=third.example.com",
            "-o",
            "name",
        ],
    );
    assert_eq!(se.stdout.lines().count(), 1, "{se:?}");
    replica.stop();
}

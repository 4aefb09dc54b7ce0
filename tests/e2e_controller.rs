//! The companion controller on the real control plane, as a busy cluster uses it: companions
//! right the moment `kubectl apply` returns while other namespaces come and go, no work for
//! objects nothing selects, one failing parent never holding up the others.

mod e2e;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2e::expected::companions_match_render;
use e2e::{apply, eventually, kubectl, namespace, repo, shared};
use egress_webhook::cluster::dev::DevCluster;

/// Sum of a metric in the in-process webhook's metrics (all label sets).
fn metric_sum(dev: &DevCluster, name: &str) -> f64 {
    e2e::metric_sum(
        &dev.webhook_metrics_text().expect("in-process webhook"),
        name,
    )
}

fn writes(dev: &DevCluster) -> f64 {
    metric_sum(dev, "egress_webhook_companion_writes_total")
}

fn reads(dev: &DevCluster) -> f64 {
    metric_sum(dev, "egress_webhook_controller_reads_total")
}

/// The running example (once per cluster: every test here needs its gateway).
fn running_example(dev: &DevCluster) {
    let out = kubectl(
        dev,
        &[
            "get",
            "vg",
            "-n",
            "istio-egress",
            "egress-vg",
            "--ignore-not-found",
            "-o",
            "name",
        ],
    );
    if out.stdout.trim().is_empty() {
        kubectl(
            dev,
            &["apply", "-f", repo("manifests/examples").to_str().unwrap()],
        )
        .expect_ok("the running example");
    }
}

/// A VirtualGateway that exposes every host, for the parents these tests create.
const OPEN_VG: &str = "apiVersion: networking.gloo.solo.io/v2\nkind: VirtualGateway\nmetadata: {name: open-vg, namespace: istio-egress}\nspec:\n  listeners:\n  - port: {number: 443}\n    http: {}\n    tls: {mode: ISTIO_MUTUAL}\n  workloads:\n  - selector: {labels: {app: istio-egressgateway, istio: egressgateway}}\n";

/// An ExternalService routed through `open-vg`, an AccessPolicy for it and the ServiceAccount it
/// allows, all in `ns`.
fn parents_in(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: app, namespace: {ns}, labels: {{account: app}}}}\n---\n\
apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: api, namespace: {ns}}}\nspec:\n  hosts: [{ns}.example.com]\n  ports:\n  - name: https\n    number: 443\n    protocol: HTTPS\n    clientsideTls: {{}}\n    egressGatewayRoutes:\n      virtualGatewayRefs: [{{name: open-vg, namespace: istio-egress}}]\n---\n\
apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {{name: only-app, namespace: {ns}}}\nspec:\n  applyToDestinations:\n  - kind: EXTERNAL_SERVICE\n    selector: {{name: api, namespace: {ns}}}\n  config:\n    authzList:\n    - allowedClients:\n      - serviceAccountSelector: {{namespace: {ns}, labels: {{account: app}}}}\n"
    )
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn companions_are_right_when_apply_returns_while_namespaces_churn() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    running_example(&dev);
    apply(&dev, OPEN_VG, &[]).expect_ok("open-vg");
    // Churn: namespaces with the same kind of parents created and deleted in a loop.
    let stop = Arc::new(AtomicBool::new(false));
    let churner = {
        let (dev, stop) = (dev.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(Ordering::SeqCst) {
                let ns = format!("churn-{rounds}");
                kubectl(&dev, &["create", "namespace", &ns]).expect_ok("churn namespace");
                apply(&dev, &parents_in(&ns), &[]).expect_ok("churn parents");
                kubectl(&dev, &["delete", "namespace", &ns, "--wait=false"])
                    .expect_ok("churn delete");
                rounds += 1;
            }
            rounds
        })
    };
    for i in 0..10 {
        let ns = format!("fresh-{i}");
        namespace(&dev, &ns);
        apply(&dev, &parents_in(&ns), &[]).expect_ok("fresh parents");
        // Read at once: the companions are there and right the moment apply returns.
        if let Err(e) = companions_match_render(&dev, &ns, 2) {
            stop.store(true, Ordering::SeqCst);
            let _ = churner.join();
            panic!("run {i}: {e}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    let rounds = churner.join().expect("churner");
    eprintln!("10 fresh namespaces right at once while {rounds} others churned");
    assert!(rounds >= 3, "the churn did not run: {rounds} rounds");
    // Hundreds of companion writes, and not one guard review for them: the apiserver skips the
    // guard for the webhook's own identity (matchConditions).
    assert!(writes(&dev) > 100.0, "writes {}", writes(&dev));
    let guard_reviews = metric_sum(
        &dev,
        "egress_webhook_admission_requests_total{kind=\"ServiceEntry\"",
    );
    assert_eq!(guard_reviews, 0.0, "guard reviews of our own writes");
    // And they stay right once the churn has settled.
    std::thread::sleep(Duration::from_secs(3));
    for i in 0..10 {
        companions_match_render(&dev, &format!("fresh-{i}"), 2)
            .unwrap_or_else(|e| panic!("later: {e}"));
    }
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn objects_nothing_selects_cause_no_requests() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    running_example(&dev);
    // Namespaces other tests deleted must be gone (their content going is real work)...
    assert!(
        eventually(Duration::from_secs(90), || {
            !kubectl(
                &dev,
                &[
                    "get",
                    "namespaces",
                    "-o",
                    "jsonpath={.items[*].status.phase}",
                ],
            )
            .stdout
            .contains("Terminating")
        }),
        "namespaces still terminating"
    );
    // ...and whatever else is in flight settled: the counters must stand still first.
    assert!(
        eventually(Duration::from_secs(20), || {
            let before = (writes(&dev), reads(&dev));
            std::thread::sleep(Duration::from_secs(3));
            before == (writes(&dev), reads(&dev))
        }),
        "the controller never went idle"
    );
    let (w0, r0) = (writes(&dev), reads(&dev));
    // The counters are the right ones: the running example's companions were written and
    // looked up by this webhook.
    assert!(w0 > 0.0 && r0 > 0.0, "writes {w0}, reads {r0}: not counted");
    namespace(&dev, "unrelated");
    let mut docs = Vec::new();
    for i in 0..100 {
        docs.push(format!("apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: sa-{i}, namespace: unrelated, labels: {{account: other-{i}}}}}\n"));
    }
    for i in 0..50 {
        docs.push(format!("apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: unrelated}}\nspec:\n  selector: {{app: svc-{i}}}\n  ports: [{{port: 80}}]\n"));
    }
    apply(&dev, &docs.join("---\n"), &[]).expect_ok("150 unrelated objects");
    // Past the controller's foreign-change grace and a resync tick's worth of events.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        writes(&dev),
        w0,
        "companion writes for objects nothing selects:\n{}",
        dev.webhook_metrics_text().unwrap_or_default()
    );
    assert_eq!(
        reads(&dev),
        r0,
        "apiserver reads for objects nothing selects"
    );
    // Idle: nothing changes, nothing is sent.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!((writes(&dev), reads(&dev)), (w0, r0), "requests while idle");
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn a_parent_that_cannot_be_written_holds_up_no_other() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    running_example(&dev);
    apply(&dev, OPEN_VG, &[]).expect_ok("open-vg");
    // An AccessPolicy whose workload policy lives in namespace `doomed`, kept terminating by a
    // finalizer on a ConfigMap there.
    namespace(&dev, "doomed");
    namespace(&dev, "healthy");
    apply(&dev, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hold, namespace: doomed, finalizers: [egress-webhook.test/hold]}\n", &[]).expect_ok("held configmap");
    apply(
        &dev,
        "apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {name: doomed-workloads, namespace: healthy}\nspec:\n  applyToWorkloads:\n  - selector: {namespace: doomed, labels: {app: x}}\n  config:\n    authzList:\n    - allowedClients:\n      - serviceAccountSelector: {namespace: healthy, name: client}\n",
        &[],
    )
    .expect_ok("policy on doomed workloads");
    let count = |ns: &str| {
        kubectl(
            &dev,
            &[
                "get",
                "authorizationpolicies",
                "-n",
                ns,
                "-l",
                "app.kubernetes.io/managed-by=egress-webhook",
                "-o",
                "name",
            ],
        )
        .stdout
        .lines()
        .count()
    };
    assert!(
        eventually(Duration::from_secs(5), || count("doomed") == 1),
        "workload policy not written"
    );
    // The namespace terminates: its companion is deleted and cannot be written back.
    kubectl(&dev, &["delete", "namespace", "doomed", "--wait=false"]).expect_ok("delete doomed");
    assert!(
        eventually(Duration::from_secs(20), || count("doomed") == 0),
        "namespace content not deleted"
    );
    let errors_before = metric_sum(
        &dev,
        "egress_webhook_reconcile_events_total{outcome=\"error\"",
    );
    // A healthy parent's change lands within 2 s meanwhile.
    for i in 0..3 {
        let ns = "healthy";
        let t = Instant::now();
        apply(&dev, &format!("apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: client-{i}, namespace: {ns}, labels: {{account: app}}}}\n"), &[]).expect_ok("sa");
        apply(&dev, &parents_in(ns), &[]).expect_ok("healthy parents");
        let principal = format!("cluster.local/ns/{ns}/sa/client-{i}");
        assert!(
            eventually(Duration::from_secs(2), || {
                kubectl(
                    &dev,
                    &[
                        "get",
                        "authorizationpolicies",
                        "-n",
                        "istio-egress",
                        "-l",
                        &format!("gloo.solo.io/parent_namespace={ns}"),
                        "-o",
                        "json",
                    ],
                )
                .stdout
                .contains(&principal)
            }),
            "the healthy parent's change did not land within 2 s (round {i})"
        );
        eprintln!("healthy change {i} landed after {:?}", t.elapsed());
    }
    // The doomed parent is retried with backoff, not hot: a handful of attempts over this time.
    std::thread::sleep(Duration::from_secs(5));
    let errors = metric_sum(
        &dev,
        "egress_webhook_reconcile_events_total{outcome=\"error\"",
    ) - errors_before;
    assert!(
        errors <= 3.0,
        "the failing parent was retried {errors} times in a few seconds"
    );
    // Clean up: the policy (it would go on failing for a namespace that is gone) and the namespace.
    kubectl(
        &dev,
        &[
            "delete",
            "accesspolicy",
            "-n",
            "healthy",
            "doomed-workloads",
        ],
    )
    .expect_ok("delete policy");
    kubectl(
        &dev,
        &[
            "patch",
            "configmap",
            "hold",
            "-n",
            "doomed",
            "--type",
            "merge",
            "-p",
            "{\"metadata\":{\"finalizers\":null}}",
        ],
    )
    .expect_ok("release");
}

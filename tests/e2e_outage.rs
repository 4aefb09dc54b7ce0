//! Apiserver and etcd outages (issue 13, item 6) on the real control plane: kube-apiserver is
//! killed for 30 s, later etcd for 30 s. Meanwhile the webhook keeps answering reviews from its
//! caches (sent to it directly with the apiserver's client certificate, since the apiserver is
//! what is down), `/readyz` stays 200 and says which watches fail, and
//! `egress_webhook_watch_connected` drops to 0. Afterwards the watches are connected again, every
//! companion of every parent admitted before the outage equals the expansion, a hand-deleted
//! companion is put back (the controller's watches reconnected) and a new object is admitted with
//! its companions (the admission path works).

mod e2e;

use std::time::{Duration, Instant};

use e2e::direct::{client, post};
use e2e::expected::companions_match_render;
use e2e::{apply, eventually, kubectl, metric_sum, repo, skip_cluster_tests};
use egress_webhook::cluster::dev::{DevCluster, DevOptions, http_get_text};
use egress_webhook::controlplane::WEBHOOK_CLIENT_NAME;
use serde_json::{Value, json};

const OUTAGE: Duration = Duration::from_secs(30);
const OPEN_VG: &str = "apiVersion: networking.gloo.solo.io/v2\nkind: VirtualGateway\nmetadata: {name: open-vg, namespace: istio-egress}\nspec:\n  listeners:\n  - port: {number: 443}\n    http: {}\n    tls: {mode: ISTIO_MUTUAL}\n  workloads:\n  - selector: {labels: {app: istio-egressgateway, istio: egressgateway}}\n";

/// An ExternalService through `open-vg`, an AccessPolicy for it and its client, in `ns`.
fn parents_in(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: app, namespace: {ns}, labels: {{account: app}}}}\n---\n\
apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: api, namespace: {ns}}}\nspec:\n  hosts: [{ns}.example.com]\n  ports:\n  - name: https\n    number: 443\n    protocol: HTTPS\n    clientsideTls: {{}}\n    egressGatewayRoutes:\n      virtualGatewayRefs: [{{name: open-vg, namespace: istio-egress}}]\n---\n\
apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {{name: only-app, namespace: {ns}}}\nspec:\n  applyToDestinations:\n  - kind: EXTERNAL_SERVICE\n    selector: {{name: api, namespace: {ns}}}\n  config:\n    authzList:\n    - allowedClients:\n      - serviceAccountSelector: {{namespace: {ns}, labels: {{account: app}}}}\n"
    )
}

/// A CREATE review of an ExternalService routed through `vg`, as the apiserver would send it.
fn review(uid: &str, vg: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "networking.gloo.solo.io", "version": "v2", "kind": "ExternalService"},
            "resource": {"group": "networking.gloo.solo.io", "version": "v2", "resource": "externalservices"},
            "name": "during",
            "namespace": "outage-0",
            "operation": "CREATE",
            "userInfo": {"username": "admin"},
            "object": {
                "apiVersion": "networking.gloo.solo.io/v2",
                "kind": "ExternalService",
                "metadata": {"name": "during", "namespace": "outage-0"},
                "spec": {"hosts": ["during.example.com"], "ports": [{
                    "name": "https", "number": 443, "protocol": "HTTPS", "clientsideTls": {},
                    "egressGatewayRoutes": {"virtualGatewayRefs": [{"name": vg, "namespace": "istio-egress"}]}
                }]}
            },
            "dryRun": true
        }
    })
}

fn all_right(dev: &DevCluster, namespaces: &[String]) -> Result<(), String> {
    namespaces
        .iter()
        .try_for_each(|ns| companions_match_render(dev, ns, 2))
}

/// The catalog's watches: the five kinds, the mesh ConfigMaps (src/cluster/mesh_watch.rs), the
/// EgressGuardrails and Namespaces (src/cluster/guardrail_watch.rs), and the lockdown
/// NetworkPolicies (src/cluster/lockdown.rs).
const WATCHES: f64 = 9.0;

fn watches_connected(dev: &DevCluster) -> f64 {
    metric_sum(
        &dev.webhook_metrics_text().expect("in-process webhook"),
        "egress_webhook_watch_connected",
    )
}

/// Kill `process` for [`OUTAGE`], reviewing all the while; returns what the reviews and
/// `/readyz` said.
fn outage(dev: &mut DevCluster, process: &str) -> (usize, usize, Vec<String>) {
    let ca = dev.webhook_ca_pem().to_string();
    let (cert, key) = dev.cp().webhook_client_cert(WEBHOOK_CLIENT_NAME).unwrap();
    let http = client(&ca, Some((&cert, &key)));
    let url = format!("{}/validate", dev.webhook_url());
    let probe = dev.webhook_metrics_addr().expect("plain-HTTP port");
    dev.cp_mut().kill_process(process).unwrap();
    let started = Instant::now();
    let (mut answered, mut failed, mut readyz) = (0, 0, Vec::new());
    while started.elapsed() < OUTAGE {
        let n = answered + failed;
        let (allowed, denied) = dev.block_on(async {
            (
                post(&http, &url, &review(&format!("ok-{n}"), "open-vg")).await,
                post(&http, &url, &review(&format!("no-{n}"), "missing-vg")).await,
            )
        });
        match (allowed, denied) {
            (Ok(a), Ok(d))
                if a["response"]["allowed"] == true && d["response"]["allowed"] == false =>
            {
                answered += 2
            }
            other => {
                eprintln!("{process} down {:?}: {other:?}", started.elapsed());
                failed += 2
            }
        }
        match http_get_text(probe, "/readyz") {
            Ok(text) => readyz.push(text),
            Err(e) => readyz.push(format!("ERROR {e}")),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    dev.cp_mut()
        .restart_process(process, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{process} back: {e}"));
    eprintln!(
        "{process} down {:.1?}: {answered} reviews answered, {failed} not",
        started.elapsed()
    );
    (answered, failed, readyz)
}

/// After an outage: watches reconnect, companions are right, a hand-deleted one comes back, a
/// new object is admitted with its companions.
fn recovered(dev: &DevCluster, namespaces: &mut Vec<String>, round: &str) {
    assert!(
        eventually(Duration::from_secs(60), || watches_connected(dev)
            == WATCHES),
        "{round}: watches not connected again: {}",
        watches_connected(dev)
    );
    let mut last = Ok(());
    assert!(
        eventually(Duration::from_secs(60), || {
            last = all_right(dev, namespaces);
            last.is_ok()
        }),
        "{round}: companions after the outage: {last:?}"
    );
    let vs = kubectl(
        dev,
        &[
            "get",
            "virtualservices",
            "-A",
            "-l",
            "gloo.solo.io/parent_namespace=outage-0",
            "-o",
            "jsonpath={.items[0].metadata.namespace}/{.items[0].metadata.name}",
        ],
    )
    .expect_ok("the VirtualService of outage-0")
    .stdout;
    let (vs_ns, vs_name) = vs.split_once('/').expect("namespace/name");
    kubectl(dev, &["delete", "virtualservice", "-n", vs_ns, vs_name]).expect_ok("hand delete");
    assert!(
        eventually(Duration::from_secs(30), || kubectl(
            dev,
            &["get", "virtualservice", "-n", vs_ns, vs_name]
        )
        .ok),
        "{round}: the hand-deleted VirtualService {vs} was not put back; metrics:\n{}",
        dev.webhook_metrics_text()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("leader")
                || l.contains("watch_connected")
                || l.contains("reconcile_events"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let ns = format!("after-{round}");
    apply(dev, &parents_in(&ns), &[]).expect_ok("parents after the outage");
    // Eventually rather than at once: a watch resumes within its retry (≤ 5 s) after the
    // apiserver is back, and until then an object created with the parents (the ServiceAccount)
    // reaches the catalog only through the watch; the controller then completes the policy.
    let mut last = Ok(());
    assert!(
        eventually(Duration::from_secs(30), || {
            last = companions_match_render(dev, &ns, 2);
            last.is_ok()
        }),
        "{round}: parents applied after the outage: {last:?}"
    );
    namespaces.push(ns);
}

#[test]
fn outages_of_the_apiserver_and_etcd_lose_nothing() {
    if skip_cluster_tests() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut dev = DevCluster::start(DevOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    kubectl(
        &dev,
        &["apply", "-f", repo("manifests/examples").to_str().unwrap()],
    )
    .expect_ok("the running example");
    apply(&dev, OPEN_VG, &[]).expect_ok("open-vg");
    let mut namespaces: Vec<String> = (0..5).map(|i| format!("outage-{i}")).collect();
    for ns in &namespaces {
        apply(&dev, &parents_in(ns), &[]).expect_ok("parents before the outage");
    }
    all_right(&dev, &namespaces).expect("companions before the outage");
    assert_eq!(watches_connected(&dev), WATCHES, "every watch connected");

    let (answered, failed, readyz) = outage(&mut dev, "kube-apiserver");
    assert_eq!(
        failed, 0,
        "reviews not answered while the apiserver was down"
    );
    assert!(answered >= 4, "only {answered} reviews in {OUTAGE:?}");
    assert!(
        readyz.iter().all(|r| r.starts_with("ok")),
        "/readyz during the outage: {readyz:?}"
    );
    assert!(
        readyz.iter().any(|r| r.contains("watches failing")),
        "/readyz never said the watches fail: {readyz:?}"
    );
    recovered(&dev, &mut namespaces, "apiserver");

    let (answered, failed, readyz) = outage(&mut dev, "etcd");
    assert_eq!(failed, 0, "reviews not answered while etcd was down");
    assert!(answered >= 4, "only {answered} reviews in {OUTAGE:?}");
    assert!(
        readyz.iter().all(|r| r.starts_with("ok")),
        "/readyz during the etcd outage: {readyz:?}"
    );
    recovered(&dev, &mut namespaces, "etcd");
}

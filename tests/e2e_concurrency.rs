//! Concurrent applies (issue 13, item 7): 50 `kubectl apply` of distinct ExternalServices routed
//! through one VirtualGateway and 20 AccessPolicies that select them by label, all started at
//! once and in a shuffled order, so that a policy is often admitted before the services it selects
//! and several admissions and reconciles touch the same policy's companions at the same moment.
//!
//! Every companion belongs to exactly one parent (the Gateway to the VirtualGateway, an
//! AuthorizationPolicy to its AccessPolicy), so a lost update shows as a companion that lacks a
//! host: the AuthorizationPolicy of `ap-3` must allow exactly the hosts of `es-3`, `es-23` and
//! `es-43`, whichever was admitted first. The oracle is the pure expansion of the stored parents.

mod e2e;

use std::time::{Duration, Instant};

use e2e::expected::companions_match_render;
use e2e::{apply, kubectl, namespace, shared};

const NS: &str = "concurrent";
const SERVICES: usize = 50;
const POLICIES: usize = 20;

/// The gateway the VirtualGateway selects (its Service, as the Istio chart makes it), the
/// VirtualGateway, and the ServiceAccounts the policies allow: applied before the race.
fn setup() -> String {
    let mut docs = vec![
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: concurrent-gw, namespace: {NS}}}\nspec:\n  selector: {{app: concurrent-gw}}\n  ports:\n  - {{name: https, port: 443, targetPort: 8443, protocol: TCP}}\n"
        ),
        format!(
            "apiVersion: networking.gloo.solo.io/v2\nkind: VirtualGateway\nmetadata: {{name: shared-vg, namespace: {NS}}}\nspec:\n  listeners:\n  - port: {{number: 443}}\n    http: {{}}\n    tls: {{mode: ISTIO_MUTUAL}}\n  workloads:\n  - selector: {{labels: {{app: concurrent-gw}}}}\n"
        ),
    ];
    docs.extend((0..POLICIES).map(|j| {
        format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: client-{j}, namespace: {NS}, labels: {{account: client-{j}}}}}\n"
        )
    }));
    docs.join("---\n")
}

fn service(i: usize) -> String {
    format!(
        "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: es-{i}, namespace: {NS}, labels: {{team: t{}}}}}\nspec:\n  hosts: [h{i}.concurrent.example.com]\n  ports:\n  - name: https\n    number: 443\n    protocol: HTTPS\n    clientsideTls: {{}}\n    egressGatewayRoutes:\n      virtualGatewayRefs: [{{name: shared-vg, namespace: {NS}}}]\n",
        i % POLICIES
    )
}

fn policy(j: usize) -> String {
    format!(
        "apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {{name: ap-{j}, namespace: {NS}}}\nspec:\n  applyToDestinations:\n  - kind: EXTERNAL_SERVICE\n    selector: {{namespace: {NS}, labels: {{team: t{j}}}}}\n  config:\n    authz:\n      allowedClients:\n      - serviceAccountSelector: {{namespace: {NS}, labels: {{account: client-{j}}}}}\n"
    )
}

/// A fixed shuffle (no randomness in tests): index `k` of 70 goes to `(k * 31) % 70`, which is a
/// permutation because 31 and 70 are coprime. Services and policies end up interleaved.
fn shuffled(docs: Vec<String>) -> Vec<String> {
    let n = docs.len();
    let mut out = vec![String::new(); n];
    for (k, d) in docs.into_iter().enumerate() {
        out[(k * 31) % n] = d;
    }
    out
}

// Passes on a quiet machine, and passed 3 of 4 runs at load average 16 with two other builds
// running; the failures were applies refused after waiting out the 6 s companion budget, because
// every ExternalService routed through the VirtualGateway also locks that gateway's parent (its
// Gateway may depend on them), so the 50 admissions are serialized. Narrowing that lock to parents
// whose companions actually change is open work (issue 13, item 7); until then this test would
// make `make test` flaky, so it runs on demand: `cargo test --test e2e_concurrency -- --ignored`.
#[test]
#[ignore = "serialized on the shared VirtualGateway's lock; flaky under heavy load (issue 13, item 7)"]
fn parallel_applies_lose_no_update() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    namespace(&dev, NS);
    apply(&dev, &setup(), &[]).expect_ok("gateway, VirtualGateway, ServiceAccounts");
    let mut docs: Vec<String> = (0..SERVICES).map(service).collect();
    docs.extend((0..POLICIES).map(policy));
    let docs = shuffled(docs);

    let started = Instant::now();
    let threads: Vec<_> = docs
        .into_iter()
        .map(|doc| {
            let dev = dev.clone();
            std::thread::spawn(move || {
                let out = apply(&dev, &doc, &[]);
                (out.ok, format!("{}{}", out.stdout, out.stderr), doc)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let applied = started.elapsed();
    let failed: Vec<&(bool, String, String)> = results.iter().filter(|r| !r.0).collect();
    assert!(failed.is_empty(), "applies failed: {failed:#?}");

    // Right the moment the last apply returned, or within the controller's next passes.
    let mut last = Err(String::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        last = companions_match_render(&dev, NS, 1 + SERVICES + POLICIES);
        if last.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let converged = started.elapsed();
    last.unwrap_or_else(|e| panic!("companions after {converged:?}: {e}"));
    eprintln!(
        "{} parallel applies returned in {applied:.1?}; companions equal the expansion after {converged:.1?}",
        SERVICES + POLICIES
    );
    // Each policy's AuthorizationPolicy names the hosts of exactly its services: the oracle
    // above compares whole specs; this says it in the test's own terms for one policy.
    let ap = kubectl(
        &dev,
        &[
            "get",
            "authorizationpolicies",
            "-A",
            "-l",
            &format!("gloo.solo.io/parent_namespace={NS},gloo.solo.io/parent_name=ap-3"),
            "-o",
            "json",
        ],
    )
    .expect_ok("ap-3's AuthorizationPolicy")
    .json();
    let text = ap.to_string();
    for i in [3, 23, 43] {
        assert!(
            text.contains(&format!("h{i}.concurrent.example.com")),
            "es-{i} missing: {text}"
        );
    }
    assert!(
        !text.contains("h4.concurrent"),
        "another team's host: {text}"
    );
    kubectl(&dev, &["delete", "namespace", NS, "--wait=false"]).expect_ok("cleanup");
}

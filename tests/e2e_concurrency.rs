//! Concurrent applies (issue 13, item 7): 50 `kubectl apply` of distinct ExternalServices routed
//! through one VirtualGateway and 20 AccessPolicies that select them by label, all started at
//! once and in a shuffled order, so that a policy is often admitted before the services it selects
//! and several admissions and reconciles touch the same policy's companions at the same moment.
//!
//! Meanwhile another namespace churns: ExternalServices routed through a VirtualGateway of its
//! own are created and deleted in a loop, with an AccessPolicy selecting them, so the race runs
//! next to unrelated admissions, reconciles and deletions.
//!
//! Every companion belongs to exactly one parent (the Gateway to the VirtualGateway, an
//! AuthorizationPolicy to its AccessPolicy), so a lost update shows as a companion that lacks a
//! host: the AuthorizationPolicy of `ap-3` must allow exactly the hosts of `es-3`, `es-23` and
//! `es-43`, whichever was admitted first. The oracle is the pure expansion of the stored parents.
//!
//! An apply the webhook refuses because its companions could not be written within its budget
//! (HTTP 429, "retry": nothing was changed) is applied again, as a user or a CD tool does; on a
//! 2-core machine running 70 kubectl processes, the control plane and other builds at once, a
//! few of them are (see the figures each run records). What may not happen is an apply
//! refused for another reason, a retry that is refused as often as we try, or an update lost.

mod e2e;
mod support;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use std::time::{Duration, Instant};

use e2e::expected::companions_match_render;
use e2e::{apply, kubectl, namespace, shared};
use egress_webhook::cluster::dev::DevCluster;

const NS: &str = "concurrent";
const SERVICES: usize = 50;
const POLICIES: usize = 20;
const CHURN_NS: &str = "concurrent-churn";
/// ExternalServices the churn cycles through (created, then deleted, in turn).
const CHURN_SERVICES: usize = 3;
/// Attempts per apply, the first included, when the webhook says "retry".
const ATTEMPTS: u32 = 5;

/// Apply `doc`, again (after 1, 2, 3... s) while the webhook refuses it with 429 "retry":
/// the last result and the number of attempts.
fn apply_retrying(dev: &DevCluster, doc: &str) -> (e2e::Kubectl, u32) {
    let mut attempt = 1;
    loop {
        let out = apply(dev, doc, &[]);
        let refused_retry =
            !out.ok && out.stderr.contains("TooManyRequests") && out.stderr.contains("retry");
        if !refused_retry || attempt == ATTEMPTS {
            return (out, attempt);
        }
        std::thread::sleep(Duration::from_secs(attempt.into()));
        attempt += 1;
    }
}

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

/// The churn namespace's gateway, VirtualGateway and an AccessPolicy selecting every churned
/// ExternalService.
fn churn_setup() -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: churn-gw, namespace: {CHURN_NS}}}\nspec:\n  selector: {{app: churn-gw}}\n  ports:\n  - {{name: https, port: 443, targetPort: 8443, protocol: TCP}}\n---\napiVersion: networking.gloo.solo.io/v2\nkind: VirtualGateway\nmetadata: {{name: churn-vg, namespace: {CHURN_NS}}}\nspec:\n  listeners:\n  - port: {{number: 443}}\n    http: {{}}\n    tls: {{mode: ISTIO_MUTUAL}}\n  workloads:\n  - selector: {{labels: {{app: churn-gw}}}}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: churner, namespace: {CHURN_NS}, labels: {{account: churner}}}}\n---\napiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {{name: churn-ap, namespace: {CHURN_NS}}}\nspec:\n  applyToDestinations:\n  - kind: EXTERNAL_SERVICE\n    selector: {{namespace: {CHURN_NS}, labels: {{team: churn}}}}\n  config:\n    authz:\n      allowedClients:\n      - serviceAccountSelector: {{namespace: {CHURN_NS}, labels: {{account: churner}}}}\n"
    )
}

fn churn_service(k: usize) -> String {
    format!(
        "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: churn-{k}, namespace: {CHURN_NS}, labels: {{team: churn}}}}\nspec:\n  hosts: [c{k}.churn.example.com]\n  ports:\n  - name: https\n    number: 443\n    protocol: HTTPS\n    clientsideTls: {{}}\n    egressGatewayRoutes:\n      virtualGatewayRefs: [{{name: churn-vg, namespace: {CHURN_NS}}}]\n"
    )
}

/// Create and delete the churn ExternalServices in turn until `stop`; the number of kubectl
/// calls, and the ones that failed (with their output).
fn churn(dev: &DevCluster, stop: &AtomicBool) -> (usize, Vec<String>) {
    let (mut calls, mut failed) = (0, Vec::new());
    let mut k = 0;
    while !stop.load(Ordering::SeqCst) {
        let created = apply(dev, &churn_service(k % CHURN_SERVICES), &[]);
        let gone = format!("churn-{}", (k + 1) % CHURN_SERVICES);
        let deleted = kubectl(
            dev,
            &[
                "delete",
                "externalservice",
                "-n",
                CHURN_NS,
                &gone,
                "--ignore-not-found",
            ],
        );
        for out in [created, deleted] {
            calls += 1;
            if !out.ok {
                failed.push(format!("{}{}", out.stdout, out.stderr));
            }
        }
        k += 1;
    }
    (calls, failed)
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

#[test]
fn parallel_applies_lose_no_update() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    namespace(&dev, NS);
    namespace(&dev, CHURN_NS);
    apply(&dev, &setup(), &[]).expect_ok("gateway, VirtualGateway, ServiceAccounts");
    apply(&dev, &churn_setup(), &[]).expect_ok("the churn namespace's VirtualGateway and policy");
    let mut docs: Vec<String> = (0..SERVICES).map(service).collect();
    docs.extend((0..POLICIES).map(policy));
    let docs = shuffled(docs);

    let stop = Arc::new(AtomicBool::new(false));
    let churner = {
        let (dev, stop) = (dev.clone(), stop.clone());
        std::thread::spawn(move || churn(&dev, &stop))
    };
    // The churn is under way before the race starts.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let threads: Vec<_> = docs
        .into_iter()
        .map(|doc| {
            let dev = dev.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                let (out, attempts) = apply_retrying(&dev, &doc);
                (
                    out.ok,
                    format!("{}{}", out.stdout, out.stderr),
                    doc,
                    t.elapsed(),
                    attempts,
                )
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let applied = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (churn_calls, churn_failed) = churner.join().unwrap();
    let slowest = results.iter().map(|r| r.3).max().unwrap_or_default();
    let retried = results.iter().filter(|r| r.4 > 1).count();
    let retries: u32 = results.iter().map(|r| r.4 - 1).sum();
    let failed: Vec<_> = results.iter().filter(|r| !r.0).collect();
    assert!(failed.is_empty(), "applies failed: {failed:#?}");
    assert!(churn_calls >= 2, "the churn ran: {churn_calls} calls");
    assert!(
        churn_failed.is_empty(),
        "churn calls failed: {churn_failed:#?}"
    );

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
        "{} parallel applies returned in {applied:.1?} (slowest {slowest:.1?}; {retried} refused with \"retry\" and applied again, {retries} retries) next to {churn_calls} churn calls; companions equal the expansion after {converged:.1?}",
        SERVICES + POLICIES
    );
    support::reliability::record(
        "e2e_concurrency::parallel_applies_lose_no_update",
        "parallel applies through one VirtualGateway",
        serde_json::json!({
            "what": format!("{SERVICES} ExternalServices sharing a VirtualGateway + {POLICIES} AccessPolicies, one kubectl apply each, all at once, next to a churning namespace"),
            "applies": SERVICES + POLICIES, "failed": failed.len(), "lost": 0,
            "refused_with_retry_then_applied": retried, "retries": retries,
            "applies_returned_s": applied.as_secs_f64(), "slowest_apply_s": slowest.as_secs_f64(),
            "companions_right_after_s": converged.as_secs_f64(), "churn_calls": churn_calls,
            "load_average": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').next().unwrap_or("").to_string(),
        }),
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
    // The churn left nothing behind: with its ExternalServices gone, only the VirtualGateway and
    // the policy remain, and neither has companions without them.
    kubectl(
        &dev,
        &["delete", "externalservices", "-n", CHURN_NS, "--all"],
    )
    .expect_ok("churn cleanup");
    let mut churn_left = Err(String::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        churn_left = companions_match_render(&dev, CHURN_NS, 2);
        if churn_left.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    churn_left.unwrap_or_else(|e| panic!("churn namespace after its deletes: {e}"));
    for ns in [NS, CHURN_NS] {
        kubectl(&dev, &["delete", "namespace", ns, "--wait=false"]).expect_ok("cleanup");
    }
}

//! Shared by the property tests (tests/fuzz_*.rs): the case budget, a runner that reports its
//! count and time, random AdmissionReviews, and the real router on an in-memory state.
//!
//! Cases per property: `PROPTEST_CASES` (proptest's own variable), 256 when unset. `make test`
//! runs the default; `make fuzz` sets it so that all properties together run 1,000,000+ cases.
#![allow(dead_code)]

pub mod objects;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};
use std::time::{Duration, Instant};

use axum::{body::Body, http::Request};
use egress_webhook::admission::{budget::ByteBudget, handlers::AppState, server::router};
use egress_webhook::core::Options;
use egress_webhook::metrics::Metrics;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Run `test` on `PROPTEST_CASES` inputs of `strategy` (shrinking a failure to a small input),
/// and print how many ran and how long it took.
pub fn check<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        // No regression files: a failure prints the shrunk input, which becomes a unit test.
        failure_persistence: None,
        ..Config::default()
    };
    let cases = config.cases;
    let ran = AtomicU64::new(0);
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        ran.fetch_add(1, Ordering::Relaxed);
        test(input)
    });
    let elapsed = started.elapsed();
    eprintln!(
        "fuzz {name}: {} cases run ({cases} asked) in {:.1} s",
        ran.load(Ordering::Relaxed),
        elapsed.as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// The real router (`/mutate`, `/validate`, limits, panic catcher) on the seed catalog, without
/// TLS and without companions: what every review goes through after the handshake.
pub fn app() -> axum::Router {
    let opts = Options::default();
    let state = AppState {
        catalog: Arc::new(crate::support::server::seed_catalog(&opts)),
        opts,
        metrics: Arc::new(Metrics::new()),
        cert_loaded: Arc::new(AtomicBool::new(true)),
        shutting_down: Arc::new(AtomicBool::new(false)),
        review_timeout: Duration::from_secs(8),
        max_body_bytes: 7 << 20,
        inflight: ByteBudget::new(28 << 20),
        companions: None,
    };
    router(state)
}

/// A single-threaded runtime to drive the router from a synchronous property.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// POST `body` to `path`; the HTTP status and the body of the answer.
pub fn post(
    rt: &tokio::runtime::Runtime,
    app: &axum::Router,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    rt.block_on(async {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec())
    })
}

/// Catalog: the Istio kinds a review may name (the guard's kinds), Gloo kinds, other kinds.
const REQUEST_KINDS: &[(&str, &str, &str)] = &[
    ("networking.gloo.solo.io", "v2", "ExternalService"),
    ("networking.gloo.solo.io", "v2", "VirtualGateway"),
    ("security.policy.gloo.solo.io", "v2", "AccessPolicy"),
    ("networking.istio.io", "v1", "ServiceEntry"),
    ("security.istio.io", "v1", "AuthorizationPolicy"),
    ("", "v1", "ConfigMap"),
    ("networking.gloo.solo.io", "v2", "RouteTable"),
];

/// A review as the apiserver sends it (`support::server::review`'s shape) for a random object:
/// the request's kind usually the object's own, sometimes another; any operation, including
/// ones the apiserver never sends; object and old object present or absent whatever the
/// operation; uid usually set.
pub fn review() -> BoxedStrategy<(String, Value)> {
    (
        objects::wild_object(),
        proptest::option::weighted(0.3, objects::wild_object()),
        prop_oneof![
            6 => Just(None),
            1 => proptest::sample::select(REQUEST_KINDS).prop_map(Some),
        ],
        proptest::sample::select(&["CREATE", "UPDATE", "DELETE", "CONNECT", "", "PATCH"][..]),
        prop_oneof![9 => "[a-f0-9-]{1,36}", 1 => Just(String::new())],
        any::<bool>(),
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(object, old, kind, op, uid, dry_run, flip_object, flip_old)| {
            let (group, version, kind) = kind.unwrap_or_else(|| {
                let kind = object["kind"].as_str().unwrap_or("");
                let api_version = object["apiVersion"].as_str().unwrap_or("");
                let (g, v) = api_version.rsplit_once('/').unwrap_or(("", api_version));
                REQUEST_KINDS
                    .iter()
                    .copied()
                    .find(|(kg, kv, kk)| *kg == g && *kv == v && *kk == kind)
                    .unwrap_or(("x", "v0", "Unknown"))
            });
            let old = old.unwrap_or_else(|| object.clone());
            let mut request = json!({
                "uid": uid,
                "kind": {"group": group, "version": version, "kind": kind},
                "resource": {"group": group, "version": version, "resource": "things"},
                // The envelope stays well-typed (the apiserver writes it); only objects are wild.
                "name": object["metadata"]["name"].as_str().unwrap_or(""),
                "namespace": object["metadata"]["namespace"].as_str().unwrap_or(""),
                "operation": op,
                "userInfo": {"username": "kubernetes-admin", "groups": ["system:authenticated"]},
                "dryRun": dry_run,
            });
            // What the apiserver sends, one time in ten the other way round.
            if matches!(op, "CREATE" | "UPDATE") != flip_object {
                request["object"] = object;
            }
            if matches!(op, "UPDATE" | "DELETE") != flip_old {
                request["oldObject"] = old;
            }
            let review = json!({
                "kind": "AdmissionReview",
                "apiVersion": "admission.k8s.io/v1",
                "request": request,
            });
            (uid, review)
        })
        .boxed()
}

/// The answer must be a complete AdmissionReview for `uid` (HTTP 200), or a 4xx that is one
/// too (what the apiserver shows); never a 5xx, never an internal error inside a 200.
pub fn assert_answer(status: u16, body: &[u8], uid: Option<&str>) -> Result<Value, TestCaseError> {
    let text = String::from_utf8_lossy(body);
    prop_assert!(
        status == 200 || (400..500).contains(&status),
        "HTTP {status}: {text}"
    );
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TestCaseError::fail(format!("HTTP {status}, not JSON ({e}): {text}")))?;
    prop_assert_eq!(&v["apiVersion"], "admission.k8s.io/v1", "{}", text);
    prop_assert_eq!(&v["kind"], "AdmissionReview", "{}", text);
    let r = &v["response"];
    prop_assert!(r["allowed"].is_boolean(), "{}", text);
    if status == 200 {
        if let Some(uid) = uid {
            prop_assert_eq!(&r["uid"], uid, "{}", text);
        }
        let code = r["status"]["code"].as_u64().unwrap_or(200);
        prop_assert!(code < 500, "an internal error inside a 200: {}", text);
    } else {
        prop_assert_eq!(&r["allowed"], false, "{}", text);
    }
    for bad in ["panicked", "backtrace"] {
        prop_assert!(!text.contains(bad), "{}", text);
    }
    Ok(v)
}

/// The JSONPatch of an answer, if any.
pub fn patch_of(answer: &Value) -> Option<json_patch::Patch> {
    use base64::Engine;
    let b64 = answer["response"]["patch"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    serde_json::from_slice(&bytes).ok()
}

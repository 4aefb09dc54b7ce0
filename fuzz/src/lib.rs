//! Shared by the cargo-fuzz targets (fuzz_targets/): the running example they run against, and
//! the contract every admission answer must keep, the same one tests/fuzz/mod.rs
//! `assert_answer` checks through the router.

use std::sync::LazyLock;

use egress_webhook::admission::review::Outcome;
use egress_webhook::core::Object;
use egress_webhook::load::load_inputs;
use serde_json::Value;

/// The running example (manifests/examples), loaded once per process: read from the
/// repository at run time, so that a new example file is fuzzed against without a change here.
pub static RUNNING_EXAMPLE: LazyLock<Vec<Object>> = LazyLock::new(|| {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/examples");
    let loaded = load_inputs(&[dir.to_string()]).expect("manifests/examples loads");
    loaded.objects.into_iter().map(|l| l.object).collect()
});

/// Panic (a crash for libFuzzer) unless `outcome` is an answer the apiserver can use: HTTP 200
/// with an AdmissionReview for `uid` and no internal error inside it, or a 4xx whose
/// AdmissionReview denies. Returns the answer as the handler sends it, parsed back.
///
/// Unlike the proptest, the text is not searched for "panicked": libFuzzer learns the strings
/// the program compares against, would write that word into a name, and the message quotes
/// names; a real panic is caught by libFuzzer itself.
pub fn assert_answer(outcome: &Outcome, uid: Option<&str>) -> Value {
    let status = outcome.http_status;
    let bytes = serde_json::to_vec(&outcome.review).expect("an answer encodes");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        status == 200 || (400..500).contains(&status),
        "HTTP {status}: {text}"
    );
    let v: Value = serde_json::from_slice(&bytes).expect("an answer is JSON");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1", "{text}");
    assert_eq!(v["kind"], "AdmissionReview", "{text}");
    let r = &v["response"];
    assert!(r["allowed"].is_boolean(), "{text}");
    if status == 200 {
        if let Some(uid) = uid {
            assert_eq!(r["uid"], uid, "{text}");
        }
        let code = r["status"]["code"].as_u64().unwrap_or(200);
        assert!(code < 500, "an internal error inside a 200: {text}");
    } else {
        assert_eq!(r["allowed"], false, "{text}");
    }
    v
}

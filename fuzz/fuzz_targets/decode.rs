//! `decode`: arbitrary bytes as a review body, through the decoder (`review::decode`) and the
//! decision (`review::decide`) at /validate, with the guard of generated objects as `serve`
//! runs it, and at /mutate, on the running example's catalog: what every review goes through
//! after TLS and the HTTP limits. The properties of tests/fuzz_admission.rs: no panic; every
//! answer a 200 AdmissionReview for the request's uid or a 4xx that denies (`assert_answer`);
//! a defaults patch only at /mutate, applying to the object as written, and a second /mutate
//! of the patched object patches nothing (defaulting is idempotent).
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use egress_webhook::admission::review::{Endpoint, Outcome, decide, decode};
use egress_webhook::catalog::Catalog;
use egress_webhook::companions::IN_CLUSTER_IDENTITY;
use egress_webhook::core::Options;
use egress_webhook_fuzz::{RUNNING_EXAMPLE, assert_answer};
use libfuzzer_sys::fuzz_target;

static OPTS: LazyLock<Options> = LazyLock::new(Options::default);
static CATALOG: LazyLock<Catalog> =
    LazyLock::new(|| Catalog::from_objects(RUNNING_EXAMPLE.clone(), &OPTS));
/// The identities allowed to change generated objects: the in-cluster default of `serve`.
static GUARD: LazyLock<Vec<String>> = LazyLock::new(|| vec![IN_CLUSTER_IDENTITY.to_string()]);

fn patch_of(outcome: &Outcome) -> Option<json_patch::Patch> {
    let b64 = outcome.review.response.patch.as_ref()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("the patch is base64");
    Some(serde_json::from_slice(&bytes).expect("the patch is a JSONPatch"))
}

fn run(endpoint: Endpoint, req: &mut egress_webhook::admission::review::RequestIn) -> Outcome {
    let guard = Some(GUARD.as_slice());
    CATALOG.read(|snap| decide(endpoint, req, snap, &OPTS, guard))
}

fuzz_target!(|body: &[u8]| {
    let mut req = match decode(body) {
        Ok(req) => req,
        Err(outcome) => {
            assert_eq!(outcome.http_status, 400);
            assert_answer(&outcome, None);
            return;
        }
    };
    let uid = req.uid.clone().expect("a decoded request has a uid");
    // /validate leaves the request as it was: the same one goes to /mutate next.
    let validated = run(Endpoint::Validate, &mut req);
    assert_answer(&validated, Some(&uid));
    assert!(patch_of(&validated).is_none(), "a patch from /validate");

    let written = req.object_json().cloned();
    let mutated = run(Endpoint::Mutate, &mut req);
    assert_answer(&mutated, Some(&uid));
    let Some(patch) = patch_of(&mutated) else {
        return;
    };
    // `mutate` applied the patch to the request's object in place: the same patch on the
    // object as written gives the same result, and deciding again on it patches nothing.
    let mut patched = written.expect("a patch without an object");
    json_patch::patch(&mut patched, &patch).expect("the patch applies to the written object");
    assert_eq!(Some(&patched), req.object_json());
    let again = run(Endpoint::Mutate, &mut req);
    assert_answer(&again, Some(&uid));
    assert!(
        patch_of(&again).is_none(),
        "a second /mutate patches again: {:?}\nafter {patched}",
        again.review.response.patch
    );
});

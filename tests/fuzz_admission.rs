//! Property tests of the admission path through the real router: arbitrary bytes, reviews
//! whose bytes were damaged, and structurally valid reviews of random objects of the three
//! kinds (and of other kinds), at /mutate and /validate. Every answer must be an AdmissionReview
//! (HTTP 200 for the request's uid, or a 4xx saying why), never a panic or a 5xx; and
//! defaulting must be idempotent: the object patched by /mutate gets no further patch.
//! `PROPTEST_CASES` sets the cases per property (see tests/fuzz/mod.rs).

mod fuzz;
mod support;

use egress_webhook::core::{Object, Options, defaults::default_object};
use fuzz::{app, assert_answer, check, objects, patch_of, post, review, runtime};
use proptest::prelude::*;

const ENDPOINTS: &[&str] = &["/mutate", "/validate"];

/// Damage to a valid review's bytes: cut it short, overwrite a byte, or insert some.
#[derive(Clone, Debug)]
enum Damage {
    Truncate(usize),
    Overwrite(usize, u8),
    Insert(usize, Vec<u8>),
}

fn damaged(mut bytes: Vec<u8>, damage: &[Damage]) -> Vec<u8> {
    for d in damage {
        let len = bytes.len().max(1);
        match d {
            Damage::Truncate(at) => bytes.truncate(at % len),
            Damage::Overwrite(at, b) => {
                if !bytes.is_empty() {
                    bytes[at % len] = *b;
                }
            }
            Damage::Insert(at, more) => {
                let at = (at % len).min(bytes.len());
                bytes.splice(at..at, more.iter().copied());
            }
        }
    }
    bytes
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Damage::Overwrite(a, b)),
        (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..8),
                proptest::sample::select(&["{", "}", "[", "\"", "\\u0000", "null", ",", ":"][..])
                    .prop_map(|s| s.as_bytes().to_vec()),
            ]
        )
            .prop_map(|(a, b)| Damage::Insert(a, b)),
    ]
}

#[test]
fn arbitrary_and_damaged_bytes_get_a_review_or_a_4xx() {
    let rt = runtime();
    let app = app();
    let bodies = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (review(), proptest::collection::vec(damage(), 1..4))
            .prop_map(|((_, r), d)| { damaged(serde_json::to_vec(&r).unwrap(), &d) }),
    ];
    check(
        "arbitrary_and_damaged_bytes",
        (bodies, proptest::sample::select(ENDPOINTS)),
        |(body, path)| {
            let (status, answer) = post(&rt, &app, path, body);
            assert_answer(status, &answer, None)?;
            Ok(())
        },
    );
}

#[test]
fn random_reviews_of_every_kind_get_an_answer_for_their_uid() {
    let rt = runtime();
    let app = app();
    check(
        "random_reviews",
        (review(), proptest::sample::select(ENDPOINTS)),
        |((uid, review), path)| {
            let (status, answer) = post(&rt, &app, path, serde_json::to_vec(&review).unwrap());
            if uid.is_empty() {
                prop_assert_eq!(status, 400);
                assert_answer(status, &answer, None)?;
                return Ok(());
            }
            prop_assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
            let v = assert_answer(status, &answer, Some(&uid))?;
            if let Some(p) = patch_of(&v) {
                prop_assert_eq!(path, "/mutate");
                let mut object = review["request"]["object"].clone();
                prop_assert!(
                    json_patch::patch(&mut object, &p).is_ok(),
                    "the patch does not apply to the object: {}",
                    String::from_utf8_lossy(&answer)
                );
            }
            Ok(())
        },
    );
}

#[test]
fn defaulting_is_idempotent_and_keeps_unknown_fields() {
    let rt = runtime();
    let app = app();
    let opts = Options::default();
    check("defaulting_idempotent", objects::gloo_object(), |object| {
        let mutate = |obj: &serde_json::Value| {
            let uid = support::server::uid("fuzz");
            let r = support::server::review(&uid, "CREATE", Some(obj), None);
            let (status, answer) = post(&rt, &app, "/mutate", serde_json::to_vec(&r).unwrap());
            assert_answer(status, &answer, Some(&uid))
        };
        let first = mutate(&object)?;
        let Some(patch) = patch_of(&first) else {
            return Ok(());
        };
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &patch)
            .map_err(|e| TestCaseError::fail(format!("the patch does not apply: {e}")))?;
        let second = mutate(&patched)?;
        prop_assert!(
            patch_of(&second).is_none(),
            "a second /mutate patches again: {}\nafter {}",
            second,
            patched
        );
        // The patch is exactly the core's defaults, and what our types do not know survives.
        let typed = Object::from_json(&object).unwrap();
        prop_assert_eq!(
            Object::from_json(&patched).unwrap(),
            default_object(typed, &opts)
        );
        prop_assert_eq!(
            &patched["spec"]["futureField"],
            &object["spec"]["futureField"]
        );
        Ok(())
    });
}

/// Regression (found by `random_reviews_of_every_kind_get_an_answer_for_their_uid`, issue 13):
/// a listener written as a list. serde decodes a struct from a sequence, so `[]` became a
/// listener with no fields, defaulting gave it `appProtocol: TCP`, and the patch
/// `add /spec/listeners/0/appProtocol` could not apply to the list: /mutate answered an
/// internal error. Now the object is refused, naming the field.
#[test]
fn a_listener_written_as_a_list_is_refused_naming_it() {
    let rt = runtime();
    let app = app();
    let object = serde_json::json!({
        "apiVersion": "networking.gloo.solo.io/v2",
        "kind": "VirtualGateway",
        "metadata": {"name": "vg", "namespace": "istio-egress"},
        "spec": {"listeners": [{"port": {"number": 443}, "http": {}}, []]}
    });
    let uid = support::server::uid("fuzz");
    let r = support::server::review(&uid, "CREATE", Some(&object), None);
    let (status, answer) = post(&rt, &app, "/mutate", serde_json::to_vec(&r).unwrap());
    let v = assert_answer(status, &answer, Some(&uid)).unwrap();
    assert_eq!(status, 200);
    assert_eq!(v["response"]["allowed"], false, "{v}");
    assert_eq!(v["response"]["status"]["code"], 422, "{v}");
    let message = v["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("VirtualGateway istio-egress/vg: spec.listeners[1]: is a list"),
        "{message}"
    );
}

//! Property tests of the admission path through the real router: arbitrary bytes, reviews
//! whose bytes were damaged, and structurally valid reviews of random objects of the three
//! kinds (and of other kinds), at /mutate and /validate. Every answer must be an AdmissionReview
//! (HTTP 200 for the request's uid, or a 4xx saying why), never a panic or a 5xx; and
//! defaulting must be idempotent: the object patched by /mutate gets no further patch.
//! `PROPTEST_CASES` sets the cases per property (see tests/fuzz/mod.rs).

mod fuzz;
mod support;

use egress_webhook::core::{GlooKind, Object, Options, defaults::default_object};
use fuzz::{app, assert_answer, check, objects, patch_of, post, review, runtime};
use proptest::prelude::*;

const ENDPOINTS: &[&str] = &["/mutate", "/validate"];

const KINDS: [GlooKind; 3] = [
    GlooKind::ExternalService,
    GlooKind::VirtualGateway,
    GlooKind::AccessPolicy,
];

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

/// The admission path types a Gloo object straight from its JSON text
/// (`Object::gloo_from_text`) and falls back to the JSON tree's path when that gives nothing.
/// For random objects of the three kinds, with nodes of any type put in: whenever the text
/// gives an object, the tree gives the same one; and whenever the tree gives an object of a
/// Gloo kind, so does the text (a serialized tree repeats no field), so the fast path is the
/// one taken.
#[test]
fn typing_from_text_agrees_with_typing_the_tree() {
    check("typed_from_text", objects::wild_object(), |object| {
        let text = serde_json::to_string(&object).unwrap();
        let tree = Object::from_json(&object).ok();
        for kind in KINDS {
            let fast = Object::gloo_from_text(&text, kind);
            let expected = tree.clone().filter(|o| o.gloo_kind() == Some(kind));
            prop_assert_eq!(fast, expected, "{} as {:?}", text, kind);
        }
        Ok(())
    });
}

/// A repeated field is where the two paths part: the text's typed decode refuses it, the tree
/// keeps the last value. The answer must not change: a review whose object (and old object)
/// repeats `spec`, the last one the object's own, gets exactly the answer of the review
/// without the repetition, at both endpoints, on CREATE and UPDATE.
#[test]
fn an_object_with_a_repeated_field_gets_the_answer_of_its_last_value() {
    let rt = runtime();
    let app = app();
    let cases = (
        objects::wild_object(),
        proptest::sample::select(ENDPOINTS),
        proptest::sample::select(&["CREATE", "UPDATE"][..]),
    );
    check("repeated_field", cases, |(object, path, operation)| {
        let uid = support::server::uid("fuzz");
        let old = (operation == "UPDATE").then_some(&object);
        let plain = serde_json::to_string(&support::server::review(
            &uid,
            operation,
            Some(&object),
            old,
        ))
        .unwrap();
        // The repeat just before the object's own `spec`, so that the tree, which keeps a
        // repeated key where it first stood, keeps the fields in their order (the first error
        // of an invalid object is named).
        let text = serde_json::to_string(&object).unwrap();
        let repeated_object = text.replacen(
            "\"spec\":",
            "\"spec\":{\"hosts\":[\"dup.example\"],\"ports\":[]},\"spec\":",
            1,
        );
        let repeated = plain.replace(&text, &repeated_object);
        // The repeat sends the review down the tree's path.
        if repeated_object != text {
            for kind in KINDS {
                prop_assert!(Object::gloo_from_text(&repeated_object, kind).is_none());
            }
        }
        let (s1, a1) = post(&rt, &app, path, plain.into_bytes());
        let (s2, a2) = post(&rt, &app, path, repeated.into_bytes());
        prop_assert_eq!(s1, s2);
        prop_assert_eq!(
            String::from_utf8_lossy(&a1),
            String::from_utf8_lossy(&a2),
            "{} {} of {}",
            path,
            operation,
            object
        );
        Ok(())
    });
}

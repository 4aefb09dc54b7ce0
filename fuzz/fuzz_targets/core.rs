//! `core`: bytes as a file of `egress-webhook check`/`render` (JSON or multi-document YAML,
//! through the library's loader), its objects laid over the running example, then defaulting,
//! validation (`check`) and expansion, as `render` does. The properties of tests/fuzz_core.rs
//! and tests/fuzz_admission.rs: no panic; defaulting is idempotent, and a defaulted object
//! survives its JSON (what the /mutate patch is computed from); the Istio objects of a snapshot
//! without errors encode as YAML.
//!
//! Text rather than `arbitrary`-derived structs: the seeds are the real files
//! (manifests/examples, tests/golden), and the fuzzer reaches fields our types do not know,
//! wrong types and duplicate keys, which a derived struct could never hold.
#![no_main]

use egress_webhook::cli::render::to_yaml;
use egress_webhook::core::{
    Object, Options, Snapshot, check, defaults::default_object, expand::expand,
    findings::has_errors,
};
use egress_webhook::load::{LoadResult, load_text};
use egress_webhook_fuzz::RUNNING_EXAMPLE;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut loaded = LoadResult::default();
    // A file the loader refuses is the end of `check` and `render` too (exit 2).
    if load_text("fuzz", text, &mut loaded).is_err() {
        return;
    }
    let opts = Options::default();
    let mut objects = RUNNING_EXAMPLE.clone();
    objects.extend(loaded.objects.into_iter().map(|l| l.object));

    let defaulted: Vec<Object> = objects
        .iter()
        .map(|o| {
            let once = default_object(o.clone(), &opts);
            assert_eq!(
                default_object(once.clone(), &opts),
                once,
                "defaulting twice changes the object"
            );
            let json = once.to_value();
            let back = Object::from_json(&json)
                .unwrap_or_else(|e| panic!("a defaulted object does not decode: {e}\n{json}"));
            assert_eq!(
                back, once,
                "a defaulted object changes through its JSON: {json}"
            );
            once
        })
        .collect();

    let findings = check(&objects, &opts);
    let generated = expand(&Snapshot::new(defaulted, &opts), &opts);
    if !has_errors(&findings) {
        to_yaml(&generated).expect("the rendered objects encode as YAML");
    }
});

//! Property test of the pure core: random Snapshots (the running example plus random Gloo
//! objects of the three kinds, most of them referring to each other) are checked, defaulted and
//! expanded. Expansion never panics, and whenever `check` finds no error (what `render` and the
//! webhook require before writing anything), every generated object passes the Istio 1.24.6
//! CRD schemas with strict validation and istiod's webhook rules (tests/support).

mod fuzz;
mod support;

use std::sync::atomic::{AtomicU64, Ordering};

use egress_webhook::core::{
    Object, Options, Snapshot, check, defaults::default_object, expand::expand,
    findings::has_errors,
};
use fuzz::objects;
use proptest::prelude::*;
use support::{istio_schema::check_schema, istiod_rules::check_istiod};

#[test]
fn rendered_objects_of_random_snapshots_pass_the_istio_schemas() {
    let opts = Options::default();
    let seed = support::seed();
    let clean = AtomicU64::new(0);
    let rendered = AtomicU64::new(0);
    let cases = AtomicU64::new(0);
    fuzz::check(
        "render_schema",
        proptest::collection::vec(objects::gloo_object(), 1..6),
        |raw| {
            cases.fetch_add(1, Ordering::Relaxed);
            let mut objects = seed.clone();
            objects.extend(raw.iter().map(|v| Object::from_json(v).unwrap()));
            let findings = check(&objects, &opts);
            let snap = Snapshot::new(objects.into_iter().map(|o| default_object(o, &opts)), &opts);
            let generated = expand(&snap, &opts);
            if has_errors(&findings) {
                return Ok(());
            }
            clean.fetch_add(1, Ordering::Relaxed);
            for obj in generated {
                let v = serde_json::to_value(&obj).unwrap();
                let mut problems = check_schema(&v);
                problems.extend(check_istiod(&v));
                prop_assert!(
                    problems.is_empty(),
                    "{} {}/{}: {}\nfrom {}",
                    obj.kind,
                    obj.namespace(),
                    obj.name(),
                    problems.join("\n"),
                    serde_json::to_string(&raw).unwrap()
                );
                rendered.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        },
    );
    let (cases, clean, rendered) = (
        cases.into_inner(),
        clean.into_inner(),
        rendered.into_inner(),
    );
    eprintln!("render_schema: {clean} of {cases} snapshots without errors, {rendered} objects checked");
    // Without this the property could pass by never meeting a valid snapshot.
    assert!(
        clean * 10 >= cases,
        "only {clean} of {cases} random snapshots were free of errors: the generator is too wild"
    );
}

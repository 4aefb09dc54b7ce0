//! Micro-benchmarks of the pure core for one review (issue 12, item 7): decode, default, validate,
//! expand and the whole /validate and /mutate decision, each against two snapshots in the same
//! run: the running example alone (the baseline: the same work with nothing else to look at) and
//! the running example plus the scale catalog (20,000 ExternalServices, 1,000 VirtualGateways,
//! 20,000 AccessPolicies by default). A cost that grows with the catalog shows as the gap.
//!
//! The catalog file comes from `bench/gen_scale.py` (`make bench` writes it first); its path is
//! `BENCH_CATALOG` (default `bench/out/catalog-41k.yaml`). The review is `hack/reviews/es-create.json`.
//! Run: `cargo bench --bench core` (criterion writes target/criterion/*/new/estimates.json).

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use egress_webhook::admission::review::{self, Endpoint};
use egress_webhook::core::{
    GlooKind, Object, Operation, Options, Snapshot, defaults::default_object, expand, rules,
};
use egress_webhook::load::load_inputs;

const REVIEW: &str = "hack/reviews/es-create.json";

fn snapshot(inputs: &[String], opts: &Options) -> Snapshot {
    let loaded = load_inputs(inputs).unwrap_or_else(|e| panic!("loading {inputs:?}: {e}"));
    Snapshot::new(
        loaded
            .objects
            .into_iter()
            .map(|l| default_object(l.object, opts)),
        opts,
    )
}

fn core(c: &mut Criterion) {
    let opts = Options::default();
    let catalog =
        std::env::var("BENCH_CATALOG").unwrap_or_else(|_| "bench/out/catalog-41k.yaml".into());
    if !std::path::Path::new(&catalog).exists() {
        panic!(
            "{catalog} does not exist: write it with `python3 bench/gen_scale.py {catalog} 20000 1000 20000` (make bench does)"
        );
    }
    let body = std::fs::read(REVIEW).unwrap_or_else(|e| panic!("{REVIEW}: {e}"));
    let object = {
        let req = review::decode(&body).unwrap_or_else(|_| panic!("{REVIEW} does not decode"));
        let raw = req.object.expect("the review has an object");
        Object::from_json(raw.value()).expect("an ExternalService")
    };
    let defaulted = default_object(object.clone(), &opts);
    let snapshots = [
        (
            "example",
            snapshot(&["manifests/examples".to_string()], &opts),
        ),
        (
            "catalog",
            snapshot(&["manifests/examples".to_string(), catalog.clone()], &opts),
        ),
    ];

    // The review read and its object typed, as /validate does (from the object's text).
    c.bench_function("decode", |b| {
        b.iter(|| {
            review::decode(black_box(&body))
                .ok()
                .and_then(|r| r.object)
                .and_then(|o| Object::gloo_from_text(o.text(), GlooKind::ExternalService))
                .is_some()
        })
    });
    c.bench_function("default", |b| {
        b.iter(|| default_object(black_box(object.clone()), &opts))
    });
    for (name, snap) in &snapshots {
        let mut with = snap.clone();
        with.insert(defaulted.clone());
        let parents: BTreeSet<_> = expand::affected_parents(&with, &defaulted);
        c.bench_function(&format!("validate/{name}"), |b| {
            b.iter(|| {
                rules::validate_defaulted(
                    black_box(&object),
                    &defaulted,
                    snap,
                    &opts,
                    Operation::Create,
                )
            })
        });
        c.bench_function(&format!("expand/{name}"), |b| {
            b.iter(|| expand::expand_parents(black_box(&with), &opts, &parents))
        });
        c.bench_function(&format!("review-validate/{name}"), |b| {
            b.iter(|| review::handle(Endpoint::Validate, black_box(&body), snap, &opts))
        });
        c.bench_function(&format!("review-mutate/{name}"), |b| {
            b.iter(|| review::handle(Endpoint::Mutate, black_box(&body), snap, &opts))
        });
    }
}

criterion_group!(benches, core);
criterion_main!(benches);

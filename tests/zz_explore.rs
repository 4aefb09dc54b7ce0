mod fuzz;
mod support;
use egress_webhook::core::{Object, Options, Snapshot, check, defaults::default_object, expand::expand, findings::has_errors};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use support::{istio_schema::check_schema, istiod_rules::check_istiod};
#[test]
fn explore() {
    let opts = Options::default();
    let seed = support::seed();
    let mut runner = TestRunner::deterministic();
    let strat = proptest::collection::vec(fuzz::objects::gloo_object(), 1..6);
    let mut seen = std::collections::BTreeMap::<String, (usize, String)>::new();
    let mut clean = 0;
    for _ in 0..20000 {
        let raw = strat.new_tree(&mut runner).unwrap().current();
        let mut objects = seed.clone();
        objects.extend(raw.iter().map(|v| Object::from_json(v).unwrap()));
        let findings = check(&objects, &opts);
        let snap = Snapshot::new(objects.into_iter().map(|o| default_object(o, &opts)), &opts);
        let generated = expand(&snap, &opts);
        let errs = has_errors(&findings);
        if !errs { clean += 1; }
        for obj in generated {
            let v = serde_json::to_value(&obj).unwrap();
            let mut problems = check_schema(&v);
            problems.extend(check_istiod(&v));
            for p in problems {
                let key: String = format!("{} {} {}", if errs {"E"} else {"CLEAN"}, obj.kind, p.chars().filter(|c| !c.is_ascii_digit()).take(90).collect::<String>());
                let e = seen.entry(key).or_insert((0, serde_json::to_string(&raw).unwrap()));
                e.0 += 1;
                if e.1.len() > raw.len() * 0 + serde_json::to_string(&raw).unwrap().len() { e.1 = serde_json::to_string(&raw).unwrap(); }
            }
        }
    }
    eprintln!("clean {clean}/20000");
    for (k, (n, ex)) in &seen { eprintln!("{n:6} {k}\n        {}", ex.chars().take(500).collect::<String>()); }
}

//! Issue 14: the audit's work is proportional to what changed, measured at 20,000
//! ExternalServices. The counts are asserted; the times are printed (`--nocapture`), measured in
//! whatever profile the test runs in.

use std::collections::BTreeMap;
use std::time::Instant;

use egress_webhook::core::{
    Object, Options, Snapshot, defaults::default_object, guardrails::audit::Auditor,
};

const OBJECTS: usize = 20_000;
const NAMESPACES: usize = 200;

fn es(ns: usize, i: usize, host: &str) -> Object {
    let v = serde_json::json!({
        "apiVersion": "networking.gloo.solo.io/v2", "kind": "ExternalService",
        "metadata": {"name": format!("es-{i}"), "namespace": format!("ns-{ns}")},
        "spec": {"hosts": [host], "ports": [{"name": "https", "number": 443, "protocol": "HTTPS"}]}
    });
    default_object(Object::from_value(v).unwrap(), &Options::default())
}

#[test]
fn audit_passes_at_20000_external_services_evaluate_only_what_changed() {
    let per_ns = OBJECTS / NAMESPACES;
    let objects = (0..OBJECTS).map(|i| {
        let host = if i % 2 == 0 {
            format!("h{i}.example.com")
        } else {
            format!("h{i}.org")
        };
        es(i / per_ns, i, &host)
    });
    let mut snap = Snapshot::new(objects, &Options::default());
    for n in 0..NAMESPACES {
        let team = if n % 2 == 0 { "a" } else { "b" };
        snap.guardrails_mut().set_namespace(
            &format!("ns-{n}"),
            BTreeMap::from([("team".to_string(), team.to_string())]),
        );
    }
    snap.guardrails_mut().upsert(
        serde_json::from_value(serde_json::json!({
            "apiVersion": "policy.egress-webhook.dev/v1alpha1", "kind": "EgressGuardrail",
            "metadata": {"name": "team-a"},
            "spec": {"namespaceSelector": {"matchLabels": {"team": "a"}},
                     "allowedHosts": ["*.example.com"], "enforcementAction": "audit"}
        }))
        .unwrap(),
    );
    let violations = |a: &Auditor| a.results()["team-a"].violations.len();
    let mut a = Auditor::new();

    let t = Instant::now();
    let first = a.pass(&snap);
    let first_took = t.elapsed();
    assert_eq!(first.evaluated, OBJECTS);
    // Half the namespaces are team a, half of their objects are outside *.example.com.
    assert_eq!(violations(&a), OBJECTS / 4);

    let t = Instant::now();
    let idle = a.pass(&snap);
    let idle_took = t.elapsed();
    assert_eq!(idle.evaluated, 0);

    // 20 objects of team a fixed.
    for i in (1..40).step_by(2) {
        snap.insert(es(i / per_ns, i, &format!("fixed{i}.example.com")));
    }
    let t = Instant::now();
    let some = a.pass(&snap);
    let some_took = t.elapsed();
    assert_eq!(some.evaluated, 20);
    assert_eq!(violations(&a), OBJECTS / 4 - 20);

    // One namespace relabelled team a: its 100 objects.
    snap.guardrails_mut().set_namespace(
        "ns-1",
        BTreeMap::from([("team".to_string(), "a".to_string())]),
    );
    let t = Instant::now();
    let relabel = a.pass(&snap);
    let relabel_took = t.elapsed();
    assert_eq!(relabel.evaluated, per_ns);
    assert_eq!(violations(&a), OBJECTS / 4 - 20 + per_ns / 2);

    eprintln!(
        "{OBJECTS} ExternalServices: first pass {first_took:?} ({} evaluated); idle pass {idle_took:?} (0); \
         20 changed {some_took:?} (20); namespace relabelled {relabel_took:?} ({per_ns})",
        first.evaluated
    );
}

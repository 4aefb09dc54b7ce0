//! Every field survives: the seed, the workshop examples and the proto doc examples decode into
//! our types and encode back to exactly the same JSON (no field lost, renamed or added).

mod support;

use egress_webhook::core::{Object, Options, defaults::default_object};
use egress_webhook::load::{LoadResult, load_inputs};
use serde_json::Value;

fn fixture_values() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for dir in ["manifests/examples", "tests/fixtures/upstream"] {
        let dir = support::repo_path(dir);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, doc) in text.split("\n---\n").enumerate() {
                let v: Value =
                    serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                if !v.is_null() {
                    out.push((format!("{} doc {i}", f.display()), v));
                }
            }
        }
    }
    out
}

#[test]
fn fixtures_round_trip_without_losing_a_field() {
    let mut handled = 0;
    for (name, value) in fixture_values() {
        match Object::from_value(value.clone()) {
            Ok(obj) => {
                assert_eq!(obj.to_value(), value, "{name}: re-encoded object differs");
                handled += 1;
            }
            Err(egress_webhook::core::object::DecodeError::Unhandled { .. }) => {}
            Err(e) => panic!("{name}: {e}"),
        }
    }
    // seed: 3 SAs + Service + VG + ES + AP; workshop: 3 + 1; proto: 3 VG + 4 AP
    assert_eq!(handled, 7 + 4 + 7, "every fixture object was checked");
}

#[test]
fn every_gloo_kind_appears_in_the_fixtures() {
    let kinds: std::collections::BTreeSet<String> = fixture_values()
        .iter()
        .filter_map(|(_, v)| v.get("kind").and_then(Value::as_str).map(str::to_string))
        .collect();
    for k in [
        "ExternalService",
        "VirtualGateway",
        "AccessPolicy",
        "Service",
        "ServiceAccount",
    ] {
        assert!(kinds.contains(k), "{k} missing from fixtures");
    }
}

#[test]
fn defaulting_is_idempotent_on_every_fixture() {
    let opts = Options::default();
    let mut all = LoadResult::default();
    for dir in [
        "manifests/examples",
        "tests/fixtures/upstream",
        "tests/golden",
    ] {
        let loaded = load_inputs(&[support::repo_path(dir)]).unwrap();
        all.objects.extend(loaded.objects);
    }
    assert!(all.objects.len() > 20);
    for l in all.objects {
        let once = default_object(l.object.clone(), &opts);
        let twice = default_object(once.clone(), &opts);
        assert_eq!(
            once, twice,
            "{}: defaulting twice differs from once",
            l.source
        );
    }
}

#[test]
fn defaults_of_the_seed_external_service_are_those_of_design_section_4() {
    let es = support::seed()
        .into_iter()
        .find(|o| o.kind_name() == "ExternalService")
        .unwrap();
    let d = default_object(es, &Options::default()).to_value();
    let port = &d["spec"]["ports"][0];
    assert_eq!(port["targetPort"], serde_json::json!({"number": 443}));
    assert_eq!(
        port["clientsideTls"],
        serde_json::json!({"mode": "SIMPLE", "sni": "httpbin.org"})
    );
    assert_eq!(port["egressGatewayRoutes"]["portMatch"], 80);
}

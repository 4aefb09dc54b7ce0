//! Table-driven rule tests: every file in tests/cases/ holds the cases of one rule id, at
//! least one where the rule fires and one near miss where it does not. See tests/cases/README.md.

mod support;

use std::collections::BTreeSet;

use egress_webhook::core::{
    Object, Operation, Options, Snapshot, check_in_mesh,
    defaults::default_object,
    guardrails::Guardrails,
    mesh_config,
    rules::{catalogue::CATALOGUE, on_apply},
};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    rule: String,
    cases: Vec<Case>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseOptions {
    strict: Option<bool>,
    cluster_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    seed: bool,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    options: CaseOptions,
    #[serde(default)]
    objects: Vec<Value>,
    /// EgressGuardrails (issue 14) in the snapshot.
    #[serde(default)]
    guardrails: Vec<Value>,
    /// Namespace name → its labels, for the guardrails' namespaceSelectors.
    #[serde(default)]
    namespaces: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// The mesh configuration (a MeshConfig, Helm values or the `istio` ConfigMap, as
    /// `--mesh-config` reads it); without it the mesh's outbound policy is unknown.
    mesh: Option<String>,
    review: Option<Review>,
    #[serde(default)]
    expect: Vec<Expect>,
    #[serde(default)]
    absent: Vec<String>,
    default: Option<DefaultCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Review {
    /// CREATE (default), UPDATE or DELETE.
    #[serde(default)]
    operation: Option<String>,
    /// "Kind namespace/name" of the object under review (taken from the case's set).
    object: String,
    /// UPDATE: the stored object before the change.
    old: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Expect {
    rule: String,
    severity: String,
    object: String,
    path: String,
    /// Substrings the message must contain.
    #[serde(default)]
    contains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DefaultCase {
    /// "Kind namespace/name" of the object to default.
    object: String,
    /// JSON pointer → the value after defaulting.
    #[serde(default)]
    expect: serde_json::Map<String, Value>,
    /// JSON pointers whose value defaulting must leave as written (absent stays absent).
    #[serde(default)]
    unchanged: Vec<String>,
}

fn case_files() -> Vec<(String, CaseFile)> {
    let dir = support::repo_path("tests/cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let file: CaseFile =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().to_string(), file)
        })
        .collect()
}

fn options(c: &CaseOptions) -> Options {
    let mut o = Options::default();
    if let Some(s) = c.strict {
        o.strict = s;
    }
    if let Some(n) = &c.cluster_name {
        o.cluster_name = n.clone();
    }
    o
}

fn case_objects(case: &Case) -> Vec<Object> {
    let base = if case.seed {
        support::seed()
    } else {
        Vec::new()
    };
    let base: Vec<Object> = base
        .into_iter()
        .filter(|o| !case.remove.contains(&support::id_string(o)))
        .collect();
    let extra = case
        .objects
        .iter()
        .map(|v| {
            Object::from_value(v.clone()).unwrap_or_else(|e| panic!("case {:?}: {e}", case.name))
        })
        .collect();
    support::overlay(base, extra)
}

fn case_guardrails(case: &Case) -> Guardrails {
    let mut g = Guardrails::default();
    for v in &case.guardrails {
        let guardrail = serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("case {:?}: guardrail: {e}", case.name));
        g.upsert(guardrail);
    }
    for (name, labels) in &case.namespaces {
        g.set_namespace(name, labels.clone());
    }
    g
}

fn find<'a>(objects: &'a [Object], id: &str, case: &str) -> &'a Object {
    objects
        .iter()
        .find(|o| support::id_string(o) == id)
        .unwrap_or_else(|| panic!("case {case:?}: no object {id:?} in the set"))
}

/// Run one case; returns the rule ids it showed firing and the ids it showed absent.
fn run_case(file: &str, case: &Case) -> (BTreeSet<String>, BTreeSet<String>) {
    let opts = options(&case.options);
    let objects = case_objects(case);
    let mut fired = BTreeSet::new();
    let mut absent = BTreeSet::new();

    if let Some(d) = &case.default {
        let obj = find(&objects, &d.object, &case.name);
        let before = obj.to_value();
        let after = default_object(obj.clone(), &opts).to_value();
        for (ptr, want) in &d.expect {
            assert_eq!(
                after.pointer(ptr),
                Some(want),
                "{file}: case {:?}: {ptr} after defaulting",
                case.name
            );
        }
        for ptr in &d.unchanged {
            assert_eq!(
                after.pointer(ptr),
                before.pointer(ptr),
                "{file}: case {:?}: {ptr} changed",
                case.name
            );
        }
        let rule = file.trim_end_matches(".yaml").to_string();
        if !d.expect.is_empty() {
            fired.insert(rule.clone());
        }
        if !d.unchanged.is_empty() {
            absent.insert(rule);
        }
    }

    let outbound = case.mesh.as_ref().map(|text| {
        mesh_config::parse("mesh", text)
            .unwrap_or_else(|e| panic!("{file}: case {:?}: {e}", case.name))
            .outbound("mesh.yaml")
    });
    let findings = match &case.review {
        None => check_in_mesh(&objects, case_guardrails(case), outbound.as_ref(), &opts),
        Some(r) => {
            let obj = find(&objects, &r.object, &case.name);
            let mut snap = Snapshot::new(
                objects.iter().cloned().map(|o| default_object(o, &opts)),
                &opts,
            );
            *snap.guardrails_mut() = case_guardrails(case);
            snap.set_outbound(outbound.clone());
            let old = r
                .old
                .clone()
                .map(|v| Object::from_value(v).expect("old object decodes"));
            let op = match r.operation.as_deref().unwrap_or("CREATE") {
                "CREATE" => Operation::Create,
                "UPDATE" => Operation::Update(old.as_ref().expect("UPDATE needs old")),
                "DELETE" => Operation::Delete,
                other => panic!("unknown operation {other}"),
            };
            on_apply(obj, &default_object(obj.clone(), &opts), &snap, &opts, op)
        }
    };
    let listing = findings
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for e in &case.expect {
        let hit = findings.iter().any(|f| {
            f.rule == e.rule
                && f.severity.to_string() == e.severity
                && f.object.to_string() == e.object
                && f.path == e.path
                && e.contains.iter().all(|c| f.message.contains(c.as_str()))
        });
        assert!(
            hit,
            "{file}: case {:?}: expected {} {} {}: {} containing {:?}; got:\n{listing}",
            case.name, e.severity, e.object, e.path, e.rule, e.contains
        );
        fired.insert(e.rule.clone());
    }
    for id in &case.absent {
        assert!(
            !findings.iter().any(|f| f.rule == id),
            "{file}: case {:?}: {id} must not fire; got:\n{listing}",
            case.name
        );
        absent.insert(id.clone());
    }
    (fired, absent)
}

#[test]
fn every_case_holds() {
    for (file, cf) in case_files() {
        assert_eq!(
            format!("{}.yaml", cf.rule),
            file,
            "file name is the rule id"
        );
        for case in &cf.cases {
            run_case(&file, case);
        }
    }
}

/// Fails when a rule id of the catalogue has no case where it fires, or no near miss.
#[test]
fn every_rule_has_a_firing_case_and_a_near_miss() {
    let mut fired = BTreeSet::new();
    let mut missed = BTreeSet::new();
    for (file, cf) in case_files() {
        for case in &cf.cases {
            let (f, a) = run_case(&file, case);
            fired.extend(f);
            missed.extend(a);
        }
    }
    let ids: Vec<&str> = CATALOGUE.iter().map(|r| r.id).collect();
    let no_fire: Vec<_> = ids.iter().filter(|id| !fired.contains(**id)).collect();
    let no_miss: Vec<_> = ids.iter().filter(|id| !missed.contains(**id)).collect();
    assert!(
        no_fire.is_empty(),
        "rules without a firing case: {no_fire:?}"
    );
    assert!(no_miss.is_empty(), "rules without a near miss: {no_miss:?}");
}

/// The catalogue is exactly API.md §7 (E1–E26, V1–V21, A1–A16), E27, which istiod's
/// DestinationRule validation adds (found by tests/fuzz_core.rs), the EgressGuardrail rules
/// G1–G8 (issue 14), and M1 (issue 15).
#[test]
fn catalogue_is_api_md_section_7() {
    let mut want: Vec<String> = (1..=27).map(|i| format!("E{i}")).collect();
    want.extend((1..=21).map(|i| format!("V{i}")));
    want.extend((1..=16).map(|i| format!("A{i}")));
    want.extend((1..=8).map(|i| format!("G{i}")));
    want.push("M1".to_string());
    let have: Vec<String> = CATALOGUE.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(have, want);
}

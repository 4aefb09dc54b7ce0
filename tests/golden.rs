//! Golden tests of the expansion: tests/golden/<case>/input.yaml → expected.yaml (what `render`
//! prints) and findings.txt (what `check` prints). An input whose first line is
//! `# overlay: seed` is laid over the running example (manifests/examples).
//! Regenerate after a deliberate change with `UPDATE_GOLDEN=1 cargo test --test golden`, and
//! read the diff: these files are the review of what we generate.

mod support;

use egress_webhook::cli::render::to_yaml;
use egress_webhook::core::{
    Object, Options, Snapshot, check, defaults::default_object, expand::expand,
};

fn cases() -> Vec<std::path::PathBuf> {
    support::golden_cases()
}

fn inputs(dir: &std::path::Path) -> Vec<Object> {
    support::golden_inputs(dir)
}

/// `UPDATE_GOLDEN=1` rewrites the files; any other value (`0`, `false`, empty) compares, so that
/// a stray setting cannot turn this oracle into one that always passes.
fn updating(value: Option<&str>) -> bool {
    value == Some("1")
}

fn compare(path: &std::path::Path, actual: &str) {
    if updating(std::env::var("UPDATE_GOLDEN").ok().as_deref()) {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|_| panic!("{} missing: run UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == actual,
        "{} differs from the output:\n{actual}",
        path.display()
    );
}

#[test]
fn expansion_matches_the_golden_files() {
    let opts = Options::default();
    let dirs = cases();
    assert!(
        dirs.len() >= 10,
        "the golden cases of issue 3 are all present"
    );
    for dir in dirs {
        let objects = inputs(&dir);
        let findings: String = check(&objects, &opts)
            .iter()
            .map(|f| format!("{f}\n"))
            .collect();
        compare(&dir.join("findings.txt"), &findings);
        let snap = Snapshot::new(objects.into_iter().map(|o| default_object(o, &opts)), &opts);
        compare(
            &dir.join("expected.yaml"),
            &to_yaml(&expand(&snap, &opts)).unwrap(),
        );
    }
}

#[test]
fn expansion_is_deterministic_whatever_the_input_order() {
    let opts = Options::default();
    for dir in cases() {
        let objects = inputs(&dir);
        let forward = Snapshot::new(
            objects.iter().cloned().map(|o| default_object(o, &opts)),
            &opts,
        );
        let backward = Snapshot::new(
            objects
                .iter()
                .rev()
                .cloned()
                .map(|o| default_object(o, &opts)),
            &opts,
        );
        assert_eq!(
            expand(&forward, &opts),
            expand(&backward, &opts),
            "{}",
            dir.display()
        );
    }
}

use egress_webhook::core::expand::{ParentRef, affected_parents, expand_parents};
use egress_webhook::core::object::GlooKind;
use egress_webhook::istio::IstioObject;

fn parent_of(o: &IstioObject) -> ParentRef {
    let l = o.metadata.labels.as_ref().expect("labels");
    let kind = match l["gloo.solo.io/parent_kind"].as_str() {
        "ExternalService" => GlooKind::ExternalService,
        "VirtualGateway" => GlooKind::VirtualGateway,
        _ => GlooKind::AccessPolicy,
    };
    ParentRef::new(
        kind,
        &l["gloo.solo.io/parent_namespace"],
        &l["gloo.solo.io/parent_name"],
    )
}

/// What admission recomputes for one parent set is exactly the slice of the full expansion.
#[test]
fn expanding_all_parents_one_by_one_equals_the_full_expansion() {
    let opts = Options::default();
    for dir in cases() {
        let snap = Snapshot::new(
            inputs(&dir).into_iter().map(|o| default_object(o, &opts)),
            &opts,
        );
        let full = expand(&snap, &opts);
        let parents = full.iter().map(parent_of).collect();
        assert_eq!(
            expand_parents(&snap, &opts, &parents),
            full,
            "{}",
            dir.display()
        );
    }
}

/// Removing (or changing) one object changes companions of the affected parents only: the rest of
/// the desired set is untouched, so admission may recompute just that part.
#[test]
fn a_change_touches_only_the_affected_parents() {
    let opts = Options::default();
    let mut checked = 0;
    for dir in cases() {
        let objects: Vec<Object> = inputs(&dir)
            .into_iter()
            .map(|o| default_object(o, &opts))
            .collect();
        let before = Snapshot::new(objects.iter().cloned(), &opts);
        let full_before = expand(&before, &opts);
        for o in objects
            .iter()
            .filter(|o| o.gloo_kind().is_some() || o.kind_name() == "ServiceAccount")
        {
            let mut after = before.clone();
            after.remove(o);
            let mut affected = affected_parents(&before, o);
            affected.extend(affected_parents(&after, o));
            let keep = |objs: &[IstioObject]| -> Vec<IstioObject> {
                objs.iter()
                    .filter(|x| !affected.contains(&parent_of(x)))
                    .cloned()
                    .collect()
            };
            let full_after = expand(&after, &opts);
            assert_eq!(
                keep(&full_before),
                keep(&full_after),
                "{}: removing {}",
                dir.display(),
                o.id()
            );
            assert_eq!(
                expand_parents(&after, &opts, &affected),
                full_after
                    .iter()
                    .filter(|x| affected.contains(&parent_of(x)))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            checked += 1;
        }
    }
    assert!(checked > 30);
}

#[test]
fn only_update_golden_1_rewrites_the_files() {
    assert!(updating(Some("1")));
    for v in [
        None,
        Some("0"),
        Some(""),
        Some("true"),
        Some("yes"),
        Some("01"),
    ] {
        assert!(!updating(v), "{v:?}");
    }
}

//! Golden tests of the expansion: tests/golden/<case>/input.yaml → expected.yaml (what `render`
//! prints) and findings.txt (what `check` prints). An input whose first line is
//! `# overlay: seed` is laid over the running example (manifests/examples).
//! Regenerate after a deliberate change with `UPDATE_GOLDEN=1 cargo test --test golden`, and
//! read the diff: these files are the review of what we generate.

mod support;

use egress_webhook::cli::{load, render::to_yaml};
use egress_webhook::core::{
    Object, Options, Snapshot, check, defaults::default_object, expand::expand,
};

fn cases() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(support::repo_path("tests/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

pub fn inputs(dir: &std::path::Path) -> Vec<Object> {
    let input = dir.join("input.yaml");
    let text = std::fs::read_to_string(&input).unwrap();
    let own: Vec<Object> = load::load_inputs(&[input.display().to_string()])
        .unwrap()
        .objects
        .into_iter()
        .map(|l| l.object)
        .collect();
    if text.starts_with("# overlay: seed") {
        support::overlay(support::seed(), own)
    } else {
        own
    }
}

fn compare(path: &std::path::Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
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

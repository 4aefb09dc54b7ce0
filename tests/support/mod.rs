//! Shared test helpers: the seed objects of the running example and object lookup.
#![allow(dead_code)]

pub mod bystander;
pub mod istio_schema;
pub mod istiod_rules;
pub mod reliability;
pub mod server;

use egress_webhook::core::Object;
use egress_webhook::load::{LoadResult, load_inputs, load_text};

pub fn repo_path(rel: &str) -> String {
    format!("{}/{}", env!("CARGO_MANIFEST_DIR"), rel)
}

/// The running example (DESIGN §2) as committed under manifests/examples.
pub fn seed() -> Vec<Object> {
    let loaded = load_inputs(&[repo_path("manifests/examples")]).expect("seed loads");
    loaded.objects.into_iter().map(|l| l.object).collect()
}

/// Parse YAML text (multi-document) into objects.
pub fn objects(yaml: &str) -> Vec<Object> {
    let mut out = LoadResult::default();
    load_text("<test>", yaml, &mut out).expect("test YAML parses");
    out.objects.into_iter().map(|l| l.object).collect()
}

/// "Kind namespace/name"
pub fn id_string(o: &Object) -> String {
    o.id().to_string()
}

/// Replace objects with the same kind/namespace/name, append the rest.
pub fn overlay(base: Vec<Object>, extra: Vec<Object>) -> Vec<Object> {
    let mut out = base;
    for o in extra {
        match out.iter().position(|b| id_string(b) == id_string(&o)) {
            Some(i) => out[i] = o,
            None => out.push(o),
        }
    }
    out
}

/// The golden case directories (tests/golden/*), sorted.
pub fn golden_cases() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(repo_path("tests/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// A golden case's input objects: input.yaml, laid over the seed when its first line is
/// `# overlay: seed`.
pub fn golden_inputs(dir: &std::path::Path) -> Vec<Object> {
    let input = dir.join("input.yaml");
    let text = std::fs::read_to_string(&input).unwrap();
    let own: Vec<Object> = load_inputs(&[input.display().to_string()])
        .unwrap()
        .objects
        .into_iter()
        .map(|l| l.object)
        .collect();
    if text.starts_with("# overlay: seed") {
        overlay(seed(), own)
    } else {
        own
    }
}

/// The ValidatingAdmissionPolicy (and binding) that refuses DestinationRules of `parent`.
pub fn deny_destinationrules_policy(parent: &str) -> String {
    std::fs::read_to_string(repo_path(
        "tests/fixtures/deny-destinationrules-policy.yaml",
    ))
    .unwrap()
    .replace("PARENT", parent)
}

/// Bytes as text (lossy), for output and messages.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// The files of the running example (manifests/examples), sorted, but those ending in `skip`.
pub fn seed_files_except(skip: &str) -> Vec<String> {
    let dir = repo_path("manifests/examples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| !p.ends_with(skip))
        .collect();
    files.sort();
    files
}

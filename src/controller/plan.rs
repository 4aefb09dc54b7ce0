//! What to send for one parent: the desired companions against the observed ones, compared on the
//! fields we own. Pure.
//!
//! Owned fields: `spec`, our labels (`app.kubernetes.io/managed-by`, `gloo.solo.io/parent_*`),
//! the annotations the expansion sets (`istio.io/dry-run`) and `ownerReferences`. Anything else
//! on a stored object (other labels, managedFields, status) is not ours to compare. Istio's CRDs
//! default nothing, so a stored spec equals the spec we sent and equality is exact.
//!
//! Order (make-before-break): creates and updates first, in the expansion's order (what is
//! referenced first: ServiceEntry, Gateway, DestinationRule, VirtualService, AuthorizationPolicy),
//! deletes last, so that a narrowing never passes through a state with fewer policies.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::api::DynamicObject;
use serde_json::Value;

use crate::core::expand::metadata::{MANAGED_BY, PARENT_CLUSTER};
use crate::istio::IstioObject;

/// The annotations the expansion may set; one we set earlier and no longer want is removed.
pub const OWNED_ANNOTATIONS: [&str; 1] = ["istio.io/dry-run"];

/// A companion: kind, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CompanionKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl CompanionKey {
    pub fn of_desired(d: &IstioObject) -> Self {
        CompanionKey {
            kind: d.kind.to_string(),
            namespace: d.namespace().to_string(),
            name: d.name().to_string(),
        }
    }

    pub fn of_observed(kind: &str, o: &DynamicObject) -> Self {
        CompanionKey {
            kind: kind.to_string(),
            namespace: o.metadata.namespace.clone().unwrap_or_default(),
            name: o.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for CompanionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One request to send.
#[derive(Clone, Debug)]
pub enum Step {
    /// Not observed: create (after making sure no foreign object has the name).
    Create(IstioObject),
    /// Observed with different owned fields: apply; the observed version is what undo restores.
    Update(IstioObject, Arc<DynamicObject>),
    /// Observed and no longer desired.
    Delete(CompanionKey, Arc<DynamicObject>),
}

impl Step {
    pub fn key(&self) -> CompanionKey {
        match self {
            Step::Create(d) | Step::Update(d, _) => CompanionKey::of_desired(d),
            Step::Delete(k, _) => k.clone(),
        }
    }

    pub fn is_delete(&self) -> bool {
        matches!(self, Step::Delete(..))
    }
}

/// The steps that make `observed` (the companions stored now, each with its kind) equal to
/// `desired`: none when they are equal on the owned fields.
pub fn plan(desired: &[IstioObject], observed: &[(String, Arc<DynamicObject>)]) -> Vec<Step> {
    let mut by_key: BTreeMap<CompanionKey, &Arc<DynamicObject>> = observed
        .iter()
        .map(|(kind, o)| (CompanionKey::of_observed(kind, o), o))
        .collect();
    let mut steps = Vec::new();
    for d in desired {
        match by_key.remove(&CompanionKey::of_desired(d)) {
            None => steps.push(Step::Create(d.clone())),
            Some(o) if !matches(d, o) => steps.push(Step::Update(d.clone(), o.clone())),
            Some(_) => {}
        }
    }
    for (key, o) in by_key {
        steps.push(Step::Delete(key, o.clone()));
    }
    steps
}

/// Is the stored object equal to the desired one on every field we own?
pub fn matches(desired: &IstioObject, observed: &DynamicObject) -> bool {
    let Ok(want) = serde_json::to_value(desired) else {
        return false;
    };
    if want.get("spec") != observed.data.get("spec") {
        return false;
    }
    let meta = &observed.metadata;
    let want_labels = desired.metadata.labels.clone().unwrap_or_default();
    let have_labels = meta.labels.clone().unwrap_or_default();
    // Our labels: every desired one present and equal, none of ours extra.
    let ours =
        |k: &str| k == MANAGED_BY || k.starts_with("gloo.solo.io/parent_") || k == PARENT_CLUSTER;
    let have_ours: BTreeMap<&String, &String> =
        have_labels.iter().filter(|(k, _)| ours(k)).collect();
    let want_ours: BTreeMap<&String, &String> = want_labels.iter().collect();
    if have_ours != want_ours {
        return false;
    }
    let annotation =
        |m: &Option<BTreeMap<String, String>>, k: &str| m.as_ref().and_then(|a| a.get(k)).cloned();
    if OWNED_ANNOTATIONS
        .iter()
        .any(|k| annotation(&desired.metadata.annotations, k) != annotation(&meta.annotations, k))
    {
        return false;
    }
    let refs = |r: &Option<Vec<_>>| r.clone().unwrap_or_default();
    refs(&desired.metadata.owner_references) == refs(&meta.owner_references)
}

/// The spec of a desired object as JSON (what the stored object's `spec` will be).
pub fn desired_spec(d: &IstioObject) -> Value {
    serde_json::to_value(&d.spec).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Options, Snapshot, expand::expand};

    fn running_example() -> Vec<IstioObject> {
        let loaded =
            crate::load::load_inputs(&[
                concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/examples").to_string()
            ])
            .expect("examples load");
        let opts = Options::default();
        let objects = loaded
            .objects
            .into_iter()
            .map(|l| crate::core::defaults::default_object(l.object, &opts));
        expand(&Snapshot::new(objects, &opts), &opts)
    }

    /// A desired object as the apiserver stores it: JSON round trip, server fields added.
    fn stored(d: &IstioObject) -> (String, Arc<DynamicObject>) {
        let mut o: DynamicObject =
            serde_json::from_value(serde_json::to_value(d).unwrap()).unwrap();
        o.metadata.resource_version = Some("42".into());
        o.metadata.uid = Some("u-1".into());
        o.metadata
            .labels
            .get_or_insert_default()
            .insert("team".into(), "someone-else".into());
        (d.kind.to_string(), Arc::new(o))
    }

    #[test]
    fn equal_on_owned_fields_means_nothing_to_send() {
        let desired = running_example();
        assert!(desired.len() >= 5, "{desired:?}");
        let observed: Vec<_> = desired.iter().map(stored).collect();
        assert!(plan(&desired, &observed).is_empty());
    }

    #[test]
    fn creates_and_updates_come_before_deletes() {
        let desired = running_example();
        let mut observed: Vec<_> = desired.iter().skip(1).map(stored).collect();
        // A changed spec, and one companion nobody wants any more.
        let mut changed = (*observed[0].1).clone();
        changed.data["spec"] = serde_json::json!({"hosts": ["evil.example.com"]});
        observed[0].1 = Arc::new(changed);
        let mut gone = (*observed[1].1).clone();
        gone.metadata.name = Some("not-wanted-any-more".into());
        observed.push((observed[1].0.clone(), Arc::new(gone)));
        let steps = plan(&desired, &observed);
        let kinds: Vec<&str> = steps
            .iter()
            .map(|s| match s {
                Step::Create(_) => "create",
                Step::Update(..) => "update",
                Step::Delete(..) => "delete",
            })
            .collect();
        assert_eq!(kinds, ["create", "update", "delete"], "{steps:?}");
    }

    #[test]
    fn a_lost_annotation_or_owner_reference_is_a_difference() {
        let desired = running_example();
        let (kind, o) = stored(&desired[0]);
        let mut annotated = (*o).clone();
        annotated
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("istio.io/dry-run".into(), "true".into());
        assert!(!matches(&desired[0], &annotated), "{kind}");
        let mut owned = (*o).clone();
        owned.metadata.owner_references = Some(vec![Default::default()]);
        assert!(!matches(&desired[0], &owned));
        let mut relabelled = (*o).clone();
        relabelled
            .metadata
            .labels
            .get_or_insert_default()
            .insert(MANAGED_BY.into(), "someone".into());
        assert!(!matches(&desired[0], &relabelled));
    }
}

//! The plan preview of a dry run (`kubectl apply --dry-run=server`): the companion changes the
//! real apply would make, as warnings, computed the way [`Controller::write_admitted`] computes
//! what to write (the catalog with the object in it, each affected parent's expansion against
//! the observed companions, `plan::plan`, and for a parent other than the object only what the
//! object changes), and writing nothing: the object is looked at in a private copy of the
//! catalog (`Catalog::with_object`), never admitted into it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Controller, changed_keys, plan};
use crate::core::{
    Object,
    expand::{ParentRef, affected_parents, expand_parents},
    text::printable,
};

/// Lines listed before the rest are counted: kubectl prints each warning on its own line, and a
/// VirtualGateway shared by thousands of ExternalServices would otherwise print thousands.
pub const PREVIEW_LINES: usize = 10;

impl Controller {
    /// The companion changes that admitting `obj` (defaulted) would write now, as warning lines;
    /// `create`: the apiserver is creating it (its owner references come later, as in
    /// `write_admitted`).
    pub fn preview_admitted(&self, obj: &Object, create: bool) -> Vec<String> {
        let mut obj = obj.clone();
        if create {
            obj.clear_uid();
        }
        let own = obj
            .gloo_kind()
            .map(|k| ParentRef::new(k, obj.namespace(), obj.name()));
        let current = self.catalog.current();
        let steps = self.catalog.with_object(&obj, |mut parents, view| {
            parents.extend(affected_parents(view, &obj));
            // In the order of the writes: parent by parent, each in its expansion's order.
            let mut seen: BTreeSet<plan::CompanionKey> = BTreeSet::new();
            let mut steps: Vec<plan::Step> = Vec::new();
            for p in parents {
                let one: BTreeSet<ParentRef> = [p.clone()].into();
                let desired = expand_parents(view, &self.opts, &one);
                let mut planned = plan::plan(&desired, &self.observed.of_parent(&p));
                if Some(&p) != own.as_ref() {
                    let before = expand_parents(&current, &self.opts, &one);
                    let changed = changed_keys(&before, &desired);
                    planned.retain(|s| changed.contains(&s.key()));
                }
                for s in planned {
                    if seen.insert(s.key()) {
                        steps.push(s);
                    }
                }
            }
            steps
        });
        lines(&steps, PREVIEW_LINES)
    }
}

/// `would create|update|delete Kind ns/name`, creates and updates before deletes (the order of
/// the writes), at most `cap` lines and a count of the rest.
pub fn lines(steps: &[plan::Step], cap: usize) -> Vec<String> {
    if steps.is_empty() {
        return vec!["would change no companion Istio object".to_string()];
    }
    let mut ordered: Vec<&plan::Step> = steps.iter().filter(|s| !s.is_delete()).collect();
    ordered.extend(steps.iter().filter(|s| s.is_delete()));
    // Companion names come from validated parent names; escaped all the same, as every name
    // that reaches kubectl's terminal is (`core::text`).
    let mut out: Vec<String> = ordered
        .iter()
        .take(cap)
        .map(|s| printable(&line(s)).into_owned())
        .collect();
    if ordered.len() > cap {
        out.push(format!(
            "... and {} more companion changes",
            ordered.len() - cap
        ));
    }
    out
}

fn line(step: &plan::Step) -> String {
    match step {
        plan::Step::Create(_) => format!("would create {}", step.key()),
        plan::Step::Delete(..) => format!("would delete {}", step.key()),
        plan::Step::Update(desired, observed) => {
            let want = serde_json::to_value(desired).unwrap_or(Value::Null);
            let mut changes = Vec::new();
            diff(
                "",
                observed.data.get("spec"),
                want.get("spec"),
                &mut changes,
            );
            let refs = |r: &Option<Vec<_>>| r.clone().unwrap_or_default();
            if refs(&desired.metadata.owner_references) != refs(&observed.metadata.owner_references)
            {
                changes.push("ownerReferences".to_string());
            }
            if changes.is_empty() {
                // Our labels or annotations differ: nothing in the spec.
                changes.push("metadata".to_string());
            }
            let shown: Vec<&str> = changes.iter().take(3).map(String::as_str).collect();
            let more = match changes.len().saturating_sub(3) {
                0 => String::new(),
                n => format!(", {n} more"),
            };
            format!("would update {} ({}{more})", step.key(), shown.join(", "))
        }
    }
}

/// What differs between two JSON values, short: a list of scalars by the field's name and the
/// items added and removed (`principals +1`), an object by its fields, a list of objects of
/// the same length item by item, anything else as the field that changed.
fn diff(field: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    let name = if field.is_empty() { "spec" } else { field };
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                diff(k, a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if scalars(a) && scalars(b) => {
            let added = b.iter().filter(|v| !a.contains(v)).count();
            let removed = a.iter().filter(|v| !b.contains(v)).count();
            out.push(match (added, removed) {
                (0, 0) => format!("{name} reordered"),
                (n, 0) => format!("{name} +{n}"),
                (0, m) => format!("{name} -{m}"),
                (n, m) => format!("{name} +{n} -{m}"),
            });
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (x, y) in a.iter().zip(b) {
                diff(field, Some(x), Some(y), out);
            }
        }
        (None, Some(_)) => out.push(format!("{name} added")),
        (Some(_), None) => out.push(format!("{name} removed")),
        _ => out.push(format!("{name} changed")),
    }
}

fn scalars(items: &[Value]) -> bool {
    items.iter().all(|v| !v.is_object() && !v.is_array())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn changes(old: Value, new: Value) -> Vec<String> {
        let mut out = Vec::new();
        diff("", Some(&old), Some(&new), &mut out);
        out
    }

    #[test]
    fn a_principal_added_is_named_by_its_field() {
        let rule = |p: &[&str]| {
            json!({"rules": [{"from": [{"source": {"principals": p}}],
                              "to": [{"operation": {"hosts": ["httpbin.org"]}}]}]})
        };
        assert_eq!(changes(rule(&["a"]), rule(&["a", "b"])), ["principals +1"]);
        assert_eq!(
            changes(rule(&["a", "b"]), rule(&["c"])),
            ["principals +1 -2"]
        );
        assert_eq!(
            changes(
                json!({"hosts": ["a"]}),
                json!({"hosts": ["a"], "exportTo": ["*"]})
            ),
            ["exportTo added"]
        );
        assert_eq!(
            changes(
                json!({"rules": [{"a": 1}]}),
                json!({"rules": [{"a": 1}, {"a": 2}]})
            ),
            ["rules changed"]
        );
        assert!(changes(rule(&["a"]), rule(&["a"])).is_empty());
    }

    #[test]
    fn lines_are_capped_with_a_count_of_the_rest() {
        use crate::istio::IstioObject;
        let loaded =
            crate::load::load_inputs(&[
                concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/examples").to_string()
            ])
            .expect("examples load");
        let opts = crate::core::Options::default();
        let objects = loaded
            .objects
            .into_iter()
            .map(|l| crate::core::defaults::default_object(l.object, &opts));
        let desired: Vec<IstioObject> =
            crate::core::expand::expand(&crate::core::Snapshot::new(objects, &opts), &opts);
        let steps = plan::plan(&desired, &[]);
        assert!(steps.len() >= 5, "{steps:?}");
        let all = lines(&steps, PREVIEW_LINES);
        assert_eq!(all.len(), steps.len());
        assert!(
            all.iter().any(|l| l
                == "would create ServiceEntry global/externalservice-httpbin-org-global"),
            "{all:?}"
        );
        let capped = lines(&steps, 2);
        assert_eq!(capped.len(), 3);
        assert_eq!(
            capped[2],
            format!("... and {} more companion changes", steps.len() - 2)
        );
        assert_eq!(lines(&[], 2), ["would change no companion Istio object"]);
    }
}

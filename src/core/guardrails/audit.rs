//! The audit (issue 14): every guardrail's violations among the objects that exist, kept up to
//! date pass by pass with work proportional to what changed.
//!
//! The [`Auditor`] remembers, per ExternalService, the version it evaluated (the snapshot's
//! `Arc`, compared by pointer: a new version is a new allocation, and holding the old one keeps
//! its address from being reused) and the violations found. A pass compares pointers (a few
//! nanoseconds per object) and evaluates again only:
//! * ExternalServices that are new or changed;
//! * those an AccessPolicy selected or selects, when the policy changed or went (G5);
//! * those in a namespace whose labels changed, or that a changed guardrail governed or governs
//!   (spec compared, so a guardrail's own status write changes nothing).
//!
//! Pure: the caller hands in a snapshot and writes the results wherever they go.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::api::{AccessPolicy, ExternalService};
use crate::core::snapshot::{Key, Name, Snapshot};

use super::evaluate::{Violation, external_service_violations, selected_keys};
use super::{Action, Compiled};

struct Seen {
    obj: Arc<ExternalService>,
    violations: Vec<Violation>,
}

#[derive(Default)]
pub struct Auditor {
    es: BTreeMap<Key, Seen>,
    es_by_ns: BTreeMap<Name, BTreeSet<Name>>,
    ap: HashMap<Key, Arc<AccessPolicy>>,
    guardrails: BTreeMap<String, Compiled>,
    namespaces: BTreeMap<Name, BTreeMap<String, String>>,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    /// ExternalServices evaluated (the work that grows with changes).
    pub evaluated: usize,
    /// ExternalServices in the snapshot (compared by pointer only).
    pub objects: usize,
}

/// One guardrail's audit result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardrailAudit {
    pub action: Action,
    /// Sorted by object, then as found.
    pub violations: Vec<Violation>,
}

impl Auditor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bring the results up to date with `snap`.
    pub fn pass(&mut self, snap: &Snapshot) -> PassStats {
        let mut dirty: BTreeSet<Key> = BTreeSet::new();
        let mut dirty_ns: BTreeSet<Name> = BTreeSet::new();

        // ExternalServices: new, changed, gone. Both sides iterate in key order, so one merge
        // walk compares them without a lookup or an allocation per object (this walk is what an
        // idle pass costs).
        let mut objects = 0;
        let mut gone: Vec<Key> = Vec::new();
        {
            let mut old = self.es.iter().peekable();
            for (k, es) in snap.external_service_entries() {
                objects += 1;
                while let Some((ok, _)) = old.next_if(|(ok, _)| *ok < k) {
                    gone.push(ok.clone());
                }
                match old.next_if(|(ok, _)| *ok == k) {
                    Some((_, seen)) if Arc::ptr_eq(&seen.obj, es) => {}
                    _ => {
                        dirty.insert(k.clone());
                    }
                }
            }
            gone.extend(old.map(|(k, _)| k.clone()));
        }
        for k in gone {
            self.es.remove(&k);
            if let Some(names) = self.es_by_ns.get_mut(&k.0) {
                names.remove(&k.1);
                if names.is_empty() {
                    self.es_by_ns.remove(&k.0);
                }
            }
        }

        // AccessPolicies: what a changed or deleted one selected (as it was) and selects now.
        let mut aps: HashMap<Key, Arc<AccessPolicy>> = HashMap::new();
        for (k, ap) in snap.access_policy_entries() {
            match self.ap.remove(k) {
                Some(old) if Arc::ptr_eq(&old, ap) => {}
                old => {
                    if let Some(old) = old {
                        dirty.extend(selected_keys(&old, snap));
                    }
                    dirty.extend(selected_keys(ap, snap));
                }
            }
            aps.insert(k.clone(), ap.clone());
        }
        for old in self.ap.values() {
            dirty.extend(selected_keys(old, snap));
        }
        self.ap = aps;

        // Guardrails: a changed spec re-evaluates the namespaces it governed or governs.
        let current: BTreeMap<String, Compiled> = snap
            .guardrails()
            .iter()
            .map(|c| (c.name().to_string(), c.clone()))
            .collect();
        let mut changed: Vec<(Option<&Compiled>, Option<&Compiled>)> = Vec::new();
        for (name, c) in &current {
            match self.guardrails.get(name) {
                Some(old) if old.guardrail.spec == c.guardrail.spec => {}
                old => changed.push((old, Some(c))),
            }
        }
        for (name, old) in &self.guardrails {
            if !current.contains_key(name) {
                changed.push((Some(old), None));
            }
        }
        // Namespaces: labels changed (only namespaces that hold ExternalServices matter).
        let mut labels_now = BTreeMap::new();
        for ns in self
            .es_by_ns
            .keys()
            .chain(dirty.iter().map(|k| &k.0))
            .collect::<BTreeSet<&Name>>()
        {
            let labels = snap.guardrails().namespace_labels(ns);
            if self.namespaces.get(ns) != Some(&labels) {
                dirty_ns.insert(ns.clone());
            }
            if !changed.is_empty() {
                let hit = |c: Option<&Compiled>| c.is_some_and(|c| c.selects(&labels));
                if changed.iter().any(|(old, new)| hit(*old) || hit(*new)) {
                    dirty_ns.insert(ns.clone());
                }
            }
            labels_now.insert(ns.clone(), labels);
        }
        self.namespaces = labels_now;
        self.guardrails = current;
        for ns in &dirty_ns {
            for name in self.es_by_ns.get(ns).into_iter().flatten() {
                dirty.insert((ns.clone(), name.clone()));
            }
        }

        // The work: evaluate what may have changed.
        let mut evaluated = 0;
        for k in dirty {
            let Some(es) = snap.external_service_entry(&k) else {
                continue;
            };
            evaluated += 1;
            let violations = external_service_violations(es, snap);
            self.es_by_ns
                .entry(k.0.clone())
                .or_default()
                .insert(k.1.clone());
            self.es.insert(
                k,
                Seen {
                    obj: es.clone(),
                    violations,
                },
            );
        }
        PassStats { evaluated, objects }
    }

    /// Every guardrail of the last pass, with its violations (none for a clean one).
    pub fn results(&self) -> BTreeMap<String, GuardrailAudit> {
        let mut out: BTreeMap<String, GuardrailAudit> = self
            .guardrails
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    GuardrailAudit {
                        action: c.action,
                        violations: Vec::new(),
                    },
                )
            })
            .collect();
        for seen in self.es.values() {
            for v in &seen.violations {
                if let Some(a) = out.get_mut(&v.guardrail) {
                    a.violations.push(v.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Object, Options, defaults::default_object};

    fn es(ns: &str, name: &str, host: &str) -> Object {
        let v = serde_json::json!({
            "apiVersion": "networking.gloo.solo.io/v2", "kind": "ExternalService",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"hosts": [host], "ports": [{"name": "https", "number": 443, "protocol": "HTTPS"}]}
        });
        default_object(Object::from_value(v).unwrap(), &Options::default())
    }

    fn guardrail(action: &str) -> crate::api::EgressGuardrail {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "policy.egress-webhook.dev/v1alpha1", "kind": "EgressGuardrail",
            "metadata": {"name": "team-a"},
            "spec": {"namespaceSelector": {"matchLabels": {"team": "a"}},
                     "allowedHosts": ["*.example.com"], "enforcementAction": action}
        }))
        .unwrap()
    }

    fn count(a: &Auditor) -> usize {
        a.results().get("team-a").map_or(0, |r| r.violations.len())
    }

    #[test]
    fn a_pass_evaluates_only_what_changed() {
        let opts = Options::default();
        let mut objects = Vec::new();
        for i in 0..50 {
            objects.push(es("a1", &format!("bad-{i}"), &format!("h{i}.org")));
            objects.push(es("b1", &format!("free-{i}"), &format!("h{i}.org")));
        }
        let mut snap = Snapshot::new(objects, &opts);
        snap.guardrails_mut()
            .set_namespace("a1", [("team".into(), "a".into())].into());
        snap.guardrails_mut().set_namespace("b1", BTreeMap::new());
        snap.guardrails_mut().upsert(guardrail("audit"));
        let mut a = Auditor::new();
        assert_eq!(
            a.pass(&snap).evaluated,
            100,
            "the first pass sees everything"
        );
        assert_eq!(count(&a), 50);
        assert_eq!(
            a.pass(&snap).evaluated,
            0,
            "nothing changed, nothing evaluated"
        );

        // One object fixed: one evaluation, one violation fewer.
        snap.insert(es("a1", "bad-0", "api.example.com"));
        assert_eq!(a.pass(&snap).evaluated, 1);
        assert_eq!(count(&a), 49);

        // A label on b1: its 50 objects only.
        snap.guardrails_mut()
            .set_namespace("b1", [("team".into(), "a".into())].into());
        assert_eq!(a.pass(&snap).evaluated, 50);
        assert_eq!(count(&a), 99);

        // The guardrail's action changes: everything it governs, and the action is reported.
        snap.guardrails_mut().upsert(guardrail("warn"));
        assert_eq!(a.pass(&snap).evaluated, 100);
        assert_eq!(a.results()["team-a"].action, Action::Warn);

        // Deleted objects leave the results without an evaluation.
        snap.remove(&es("a1", "bad-1", ""));
        assert_eq!(a.pass(&snap).evaluated, 0);
        assert_eq!(count(&a), 98);
    }

    #[test]
    fn an_access_policy_change_re_evaluates_what_it_selected() {
        let opts = Options::default();
        let ap = |name: &str, target: &str| {
            let v = serde_json::json!({
                "apiVersion": "security.policy.gloo.solo.io/v2", "kind": "AccessPolicy",
                "metadata": {"name": name, "namespace": "a1"},
                "spec": {"applyToDestinations": [{"kind": "EXTERNAL_SERVICE",
                         "selector": {"name": target, "namespace": "a1"}}]}
            });
            default_object(Object::from_value(v).unwrap(), &opts)
        };
        let mut objects = vec![ap("p", "x"), es("a1", "x", "x.org")];
        for i in 0..20 {
            objects.push(es("a1", &format!("other-{i}"), "o.org"));
        }
        let mut snap = Snapshot::new(objects, &opts);
        snap.guardrails_mut().upsert(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "policy.egress-webhook.dev/v1alpha1", "kind": "EgressGuardrail",
                "metadata": {"name": "policies"}, "spec": {"requireAccessPolicy": true}
            }))
            .unwrap(),
        );
        let mut a = Auditor::new();
        a.pass(&snap);
        let g5 = |a: &Auditor| a.results()["policies"].violations.len();
        assert_eq!(g5(&a), 20, "every ExternalService but x lacks a policy");
        snap.remove(&ap("p", ""));
        assert_eq!(a.pass(&snap).evaluated, 1, "only what the policy selected");
        assert_eq!(g5(&a), 21);
        snap.insert(ap("p", "other-3"));
        assert_eq!(a.pass(&snap).evaluated, 1);
        assert_eq!(g5(&a), 20);
    }
}

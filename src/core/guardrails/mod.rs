//! EgressGuardrails (issue 14, DESIGN §7): what a platform team allows ExternalServices of the
//! namespaces it selects. Pure: the guardrails and the namespaces' labels come in through
//! [`Guardrails`] (held by the snapshot), verdicts go out as findings with rule ids G1-G8.
//!
//! * `evaluate`: G1-G5, a guardrail's verdict on an ExternalService (and G5 on an AccessPolicy
//!   whose deletion or change leaves one unselected);
//! * `validate`: G6-G8, the guardrail object itself (host globs, gateway references, selector,
//!   enforcement action);
//! * `dns_glob`: the host globs.

pub mod audit;
pub mod dns_glob;
pub mod evaluate;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use imbl::OrdMap;
use kube::core::{Selector, SelectorExt};

use crate::api::egress_guardrail::{EgressGuardrail, NamespaceSelector};
use crate::api::list;

pub use dns_glob::DnsGlob;
pub use evaluate::{Violation, admission_findings, violations};

/// The label the apiserver puts on every namespace (its name); a namespace we have not seen
/// still carries it, so a selector on it works offline too.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// What a guardrail does with a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Refused at admission.
    Deny,
    /// Admitted with a warning.
    Warn,
    /// Admitted; only the audit reports it.
    Audit,
}

impl Action {
    /// `deny` when absent; an unknown value counts as `deny` (fail closed; G8 reports it).
    pub fn parse(text: Option<&str>) -> Action {
        match text {
            Some("warn") => Action::Warn,
            Some("audit") => Action::Audit,
            _ => Action::Deny,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Warn => "warn",
            Action::Audit => "audit",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A guardrail with its selector and globs parsed once. Parts that do not parse are left out
/// here (G6/G8 deny them at admission, so they exist only in objects stored before).
#[derive(Clone, Debug)]
pub struct Compiled {
    pub guardrail: Arc<EgressGuardrail>,
    pub action: Action,
    /// `None`: a selector that does not parse, which selects no namespace.
    selector: Option<Selector>,
    pub allowed: Vec<DnsGlob>,
    pub denied: Vec<DnsGlob>,
}

impl Compiled {
    pub fn new(g: EgressGuardrail) -> Compiled {
        let spec = &g.spec;
        let globs = |v: &Option<Vec<String>>| {
            list(v)
                .iter()
                .filter_map(|s| DnsGlob::parse(s).ok())
                .collect::<Vec<_>>()
        };
        Compiled {
            action: Action::parse(spec.enforcement_action.as_deref()),
            selector: parse_selector(spec.namespace_selector.as_ref()).ok(),
            allowed: globs(&spec.allowed_hosts),
            denied: globs(&spec.denied_hosts),
            guardrail: Arc::new(g),
        }
    }

    pub fn name(&self) -> &str {
        self.guardrail.metadata.name.as_deref().unwrap_or("")
    }

    /// Does the guardrail govern a namespace with these labels?
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }
}

/// A `namespaceSelector` as kube-core's [`Selector`] (which does the matching, as the apiserver
/// does); an omitted selector selects every namespace.
pub fn parse_selector(sel: Option<&NamespaceSelector>) -> Result<Selector, String> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    let Some(sel) = sel else {
        return Ok(Selector::default());
    };
    let native = meta::LabelSelector {
        match_labels: sel.match_labels.clone(),
        match_expressions: sel.match_expressions.as_ref().map(|v| {
            v.iter()
                .map(|r| meta::LabelSelectorRequirement {
                    key: r.key.clone(),
                    operator: r.operator.clone(),
                    values: r.values.clone(),
                })
                .collect()
        }),
    };
    Selector::try_from(native).map_err(|e| e.to_string())
}

/// The guardrails of the cluster and the labels of its namespaces, in persistent maps: the
/// catalog clones its snapshot for every change it publishes, and these clones share every node.
#[derive(Clone, Debug, Default)]
pub struct Guardrails {
    by_name: OrdMap<String, Compiled>,
    namespaces: OrdMap<String, Arc<BTreeMap<String, String>>>,
    /// Namespaces being deleted (a deletionTimestamp): lockdown neither creates nor deletes
    /// anything in them (a create into a terminating namespace is refused, and what is there
    /// goes with it).
    terminating: imbl::OrdSet<String>,
}

impl Guardrails {
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn upsert(&mut self, g: EgressGuardrail) {
        let name = g.metadata.name.clone().unwrap_or_default();
        self.by_name.insert(name, Compiled::new(g));
    }

    pub fn remove(&mut self, name: &str) {
        self.by_name.remove(name);
    }

    /// Every guardrail replaced by `all` (a re-list).
    pub fn replace_all(&mut self, all: Vec<EgressGuardrail>) {
        self.by_name.clear();
        for g in all {
            self.upsert(g);
        }
    }

    pub fn get(&self, name: &str) -> Option<&Compiled> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Compiled> {
        self.by_name.values()
    }

    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) {
        self.namespaces.insert(name.to_string(), Arc::new(labels));
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
        self.terminating.remove(name);
    }

    /// Every namespace replaced by `all` (a re-list).
    pub fn replace_namespaces(&mut self, all: Vec<(String, BTreeMap<String, String>)>) {
        self.namespaces = all.into_iter().map(|(n, l)| (n, Arc::new(l))).collect();
        let namespaces = &self.namespaces;
        self.terminating = self
            .terminating
            .iter()
            .filter(|n| namespaces.contains_key(*n))
            .cloned()
            .collect();
    }

    /// Whether `name` is being deleted (set from its deletionTimestamp).
    pub fn set_terminating(&mut self, name: &str, terminating: bool) {
        if terminating {
            self.terminating.insert(name.to_string());
        } else {
            self.terminating.remove(name);
        }
    }

    pub fn is_terminating(&self, name: &str) -> bool {
        self.terminating.contains(name)
    }

    pub fn knows_namespace(&self, name: &str) -> bool {
        self.namespaces.contains_key(name)
    }

    pub fn namespace_names(&self) -> impl Iterator<Item = &str> {
        self.namespaces.keys().map(String::as_str)
    }

    /// The labels of `namespace`: as last seen, or only the name label when it was not seen.
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        match self.namespaces.get(namespace) {
            Some(l) => {
                let mut l = l.as_ref().clone();
                l.entry(NAMESPACE_NAME_LABEL.to_string())
                    .or_insert_with(|| namespace.to_string());
                l
            }
            None => [(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string())].into(),
        }
    }

    /// The guardrails that govern `namespace`, by name.
    pub fn governing(&self, namespace: &str) -> Vec<&Compiled> {
        if self.by_name.is_empty() {
            return Vec::new();
        }
        let labels = self.namespace_labels(namespace);
        self.by_name
            .values()
            .filter(|c| c.selects(&labels))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guardrail(v: serde_json::Value) -> EgressGuardrail {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn governing_matches_namespace_labels_and_the_name_label() {
        let mut g = Guardrails::default();
        g.upsert(guardrail(serde_json::json!({
            "apiVersion": "policy.egress-webhook.dev/v1alpha1", "kind": "EgressGuardrail",
            "metadata": {"name": "team-a"},
            "spec": {"namespaceSelector": {"matchLabels": {"team": "a"}}}
        })));
        g.upsert(guardrail(serde_json::json!({
            "apiVersion": "policy.egress-webhook.dev/v1alpha1", "kind": "EgressGuardrail",
            "metadata": {"name": "by-name"},
            "spec": {"namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["payments"]}]}}
        })));
        g.set_namespace("a1", [("team".to_string(), "a".to_string())].into());
        g.set_namespace("b1", [("team".to_string(), "b".to_string())].into());
        let names = |ns: &str| {
            g.governing(ns)
                .iter()
                .map(|c| c.name().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("a1"), ["team-a"]);
        assert!(names("b1").is_empty());
        assert_eq!(
            names("payments"),
            ["by-name"],
            "an unseen namespace has its name label"
        );
    }

    #[test]
    fn a_bad_selector_selects_nothing_and_an_absent_one_everything() {
        let mut g = Guardrails::default();
        g.upsert(guardrail(serde_json::json!({
            "apiVersion": "policy.egress-webhook.dev/v1alpha1", "kind": "EgressGuardrail",
            "metadata": {"name": "bad"},
            "spec": {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Like"}]}}
        })));
        g.upsert(guardrail(serde_json::json!({
            "apiVersion": "policy.egress-webhook.dev/v1alpha1", "kind": "EgressGuardrail",
            "metadata": {"name": "all"}, "spec": {}
        })));
        let names: Vec<_> = g
            .governing("x")
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        assert_eq!(names, ["all"]);
        assert_eq!(
            g.get("all").unwrap().action,
            Action::Deny,
            "deny by default"
        );
    }
}

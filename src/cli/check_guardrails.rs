//! Which EgressGuardrails `check` applies, and the namespace labels their selectors see: those
//! of `--guardrails` files, and with `--kubeconfig` the cluster's own as well (unless
//! `--no-cluster-guardrails`), a file's guardrail replacing the cluster's of the same name, as
//! the files' objects replace the cluster's versions of them (`core::overlay`): the files are
//! what is about to be applied.

use std::collections::BTreeSet;

use crate::api::EgressGuardrail;
use crate::core::guardrails::Guardrails;
use crate::load::{self, GuardrailFiles, LoadError};

/// The guardrails to apply, with the names of those that come from files (validated and
/// reported on; the cluster's were admitted already) and `note:` lines.
#[derive(Debug, Default)]
pub struct Applied {
    pub guardrails: Guardrails,
    pub from_files: Vec<String>,
    pub notes: Vec<String>,
}

/// The guardrails of the `guardrail_inputs` files, and the Namespaces of the objects' `inputs`
/// and of those files (stdin is read once, by the objects' loader: its Namespaces do not count).
/// The inputs' Namespaces come first: a Namespace of the guardrail files (a test of what a label
/// would do, say) replaces one of the same name.
pub fn read_files(
    guardrail_inputs: &[String],
    inputs: &[String],
) -> Result<GuardrailFiles, LoadError> {
    let mut files = load::load_guardrails(guardrail_inputs)?;
    let files_inputs: Vec<String> = inputs.iter().filter(|i| *i != "-").cloned().collect();
    let mut namespaces = load::load_guardrails(&files_inputs)?.namespaces;
    namespaces.append(&mut files.namespaces);
    files.namespaces = namespaces;
    Ok(files)
}

/// The cluster's guardrails and namespaces with the files' on top: a file's guardrail or
/// Namespace replaces the cluster's of the same name (said in a note for guardrails, so that a
/// CI log shows which version decided).
pub fn combine(
    cluster_guardrails: Vec<EgressGuardrail>,
    cluster_namespaces: Vec<(String, std::collections::BTreeMap<String, String>)>,
    files: GuardrailFiles,
) -> Applied {
    let mut notes = files.notes;
    let in_cluster: BTreeSet<String> = cluster_guardrails
        .iter()
        .filter_map(|g| g.metadata.name.clone())
        .collect();
    let mut guardrails = Guardrails::default();
    guardrails.replace_all(cluster_guardrails);
    guardrails.replace_namespaces(cluster_namespaces);
    let mut from_files = Vec::new();
    for g in files.guardrails {
        let name = g.metadata.name.clone().unwrap_or_default();
        if in_cluster.contains(&name) {
            notes.push(format!(
                "note: EgressGuardrail {name}: the version of --guardrails replaces the cluster's"
            ));
        }
        if !from_files.contains(&name) {
            from_files.push(name);
        }
        guardrails.upsert(g);
    }
    for (name, labels) in files.namespaces {
        guardrails.set_namespace(&name, labels);
    }
    Applied {
        guardrails,
        from_files,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guardrail(name: &str, action: &str) -> EgressGuardrail {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "policy.egress-webhook.dev/v1alpha1", "kind": "EgressGuardrail",
            "metadata": {"name": name},
            "spec": {"namespaceSelector": {"matchLabels": {"team": "a"}}, "enforcementAction": action}
        }))
        .unwrap()
    }

    fn labels(team: &str) -> std::collections::BTreeMap<String, String> {
        [("team".to_string(), team.to_string())].into()
    }

    #[test]
    fn a_file_guardrail_or_namespace_replaces_the_clusters_of_the_same_name() {
        let files = GuardrailFiles {
            guardrails: vec![guardrail("team-a", "warn"), guardrail("new", "audit")],
            namespaces: vec![("a2".to_string(), labels("a"))],
            notes: Vec::new(),
        };
        let applied = combine(
            vec![guardrail("team-a", "deny"), guardrail("other", "deny")],
            vec![
                ("a1".to_string(), labels("a")),
                ("a2".to_string(), labels("b")),
            ],
            files,
        );
        let g = &applied.guardrails;
        assert_eq!(g.get("team-a").unwrap().action.as_str(), "warn");
        assert_eq!(g.get("other").unwrap().action.as_str(), "deny");
        assert_eq!(g.get("new").unwrap().action.as_str(), "audit");
        assert_eq!(applied.from_files, ["team-a", "new"]);
        assert_eq!(
            applied.notes,
            ["note: EgressGuardrail team-a: the version of --guardrails replaces the cluster's"]
        );
        let governing = |ns: &str| g.governing(ns).len();
        assert_eq!(governing("a1"), 3, "the cluster's label");
        assert_eq!(
            governing("a2"),
            3,
            "the file's Namespace replaces the cluster's"
        );
        assert_eq!(governing("b1"), 0, "unknown namespace: only its name label");
    }
}

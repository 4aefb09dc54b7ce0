//! The pure core: defaults, rules, snapshot and expansion. No I/O happens below this module,
//! so `check`, `render` and the admission server all call exactly the same code.

pub mod access;
pub mod defaults;
pub mod expand;
pub mod findings;
pub mod guardrails;
pub mod lockdown;
pub mod mesh_config;
pub mod names;
pub mod object;
pub mod rules;
pub mod selectors;
pub mod snapshot;
pub mod status;
pub mod text;

pub use findings::{Finding, ObjectId, Severity};
pub use object::{GlooKind, Object};
pub use snapshot::Snapshot;

/// Settings that change verdicts or output; the same flags on `check`, `render` and `serve`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The cluster we run in; references to other clusters cannot be checked (warning).
    pub cluster_name: String,
    /// Trust domain of AuthorizationPolicy principals (Istio's default, not Gloo's cluster name).
    pub trust_domain: String,
    /// Turns E23 and V21 into errors (DESIGN §9).
    pub strict: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cluster_name: "cluster1".to_string(),
            trust_domain: "cluster.local".to_string(),
            strict: false,
        }
    }
}

/// What the apiserver is doing to the object under review. `check` always validates as Create.
#[derive(Clone, Copy, Debug)]
pub enum Operation<'a> {
    Create,
    /// Update with the stored object before the change.
    Update(&'a Object),
    Delete,
}

/// Offline check of a set of objects against each other: default everything, index it, and
/// validate each Gloo object. Findings are sorted by object, then rule order of discovery.
pub fn check(objects: &[Object], opts: &Options) -> Vec<Finding> {
    check_with_guardrails(objects, guardrails::Guardrails::default(), opts)
}

/// `check` with the guardrails (and namespace labels) of `egress-webhook check --guardrails`;
/// the guardrails themselves are validated too (G6-G8), after the objects.
pub fn check_with_guardrails(
    objects: &[Object],
    guardrails: guardrails::Guardrails,
    opts: &Options,
) -> Vec<Finding> {
    check_in_mesh(objects, guardrails, None, opts)
}

/// [`check_with_guardrails`] in a mesh whose outbound traffic policy is known
/// (`--mesh-config`): M1 as well.
pub fn check_in_mesh(
    objects: &[Object],
    guardrails: guardrails::Guardrails,
    outbound: Option<&mesh_config::Outbound>,
    opts: &Options,
) -> Vec<Finding> {
    let defaulted: Vec<Object> = objects
        .iter()
        .map(|o| defaults::default_object(o.clone(), opts))
        .collect();
    let mut snapshot = Snapshot::new(defaulted.iter().cloned(), opts);
    *snapshot.guardrails_mut() = guardrails;
    snapshot.set_outbound(outbound.cloned());
    let mut out = Vec::new();
    for (written, defaulted) in objects.iter().zip(&defaulted) {
        out.extend(rules::on_apply(
            written,
            defaulted,
            &snapshot,
            opts,
            Operation::Create,
        ));
    }
    for c in snapshot.guardrails().iter() {
        out.extend(guardrails::validate::validate(&c.guardrail, &snapshot));
    }
    out
}

/// `check --kubeconfig`: the objects of the files checked against a cluster's (`cluster`,
/// defaulted), each file object replacing the cluster's version of it, and validated as the
/// admission would see its apply: an update of the stored version when there is one, else a
/// create. Only the files' objects are reported on. `outbound`: the cluster's mesh outbound
/// policy (M1), as the admission sees it.
pub fn check_against(
    files: &[Object],
    cluster: &[Object],
    opts: &Options,
    outbound: Option<&mesh_config::Outbound>,
) -> Vec<Finding> {
    check_against_guarded(
        files,
        cluster,
        guardrails::Guardrails::default(),
        &[],
        opts,
        outbound,
    )
}

/// [`check_against`] under `guardrails` (the cluster's and the files', with the namespaces'
/// labels), as the admission applies them. Of the guardrails, only those named in
/// `file_guardrails` are validated (G6-G8) and reported on: the cluster's own were admitted
/// already, and only the files' objects are reported on. Their G7 sees the cluster's
/// VirtualGateways with the files'.
pub fn check_against_guarded(
    files: &[Object],
    cluster: &[Object],
    guardrails: guardrails::Guardrails,
    file_guardrails: &[String],
    opts: &Options,
    outbound: Option<&mesh_config::Outbound>,
) -> Vec<Finding> {
    let defaulted: Vec<Object> = files
        .iter()
        .map(|o| defaults::default_object(o.clone(), opts))
        .collect();
    let mut snapshot = Snapshot::new(overlay(cluster, &defaulted), opts);
    *snapshot.guardrails_mut() = guardrails;
    snapshot.set_outbound(outbound.cloned());
    let mut out = Vec::new();
    for (written, defaulted) in files.iter().zip(&defaulted) {
        let id = written.id();
        let stored = cluster.iter().find(|c| c.id() == id);
        let op = match stored {
            Some(old) => Operation::Update(old),
            None => Operation::Create,
        };
        out.extend(rules::on_apply(written, defaulted, &snapshot, opts, op));
    }
    for name in file_guardrails {
        if let Some(c) = snapshot.guardrails().get(name) {
            out.extend(guardrails::validate::validate(&c.guardrail, &snapshot));
        }
    }
    out
}

/// The cluster's objects with each of `files` in place of the cluster's version (same kind,
/// namespace and name), the files' new objects appended.
pub fn overlay(cluster: &[Object], files: &[Object]) -> Vec<Object> {
    let ids: std::collections::BTreeSet<ObjectId> = files.iter().map(Object::id).collect();
    cluster
        .iter()
        .filter(|c| !ids.contains(&c.id()))
        .chain(files)
        .cloned()
        .collect()
}

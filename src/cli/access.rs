//! `egress-webhook access --host HOST [--port N] [--from NS/SA] FILE...`: who can reach an
//! external host through the egress gateway, decided offline by Istio's AuthorizationPolicy
//! semantics over the policies the webhook would generate and the ones in the files
//! (`core::access`). Exit codes: 0, or with `--from` 0 allowed / 1 denied / 3 depends on the
//! request; 2 for usage, I/O and parse errors, and for inputs the webhook would deny.

use std::io::Write;

use crate::core::access::{
    self, Policy, TrustDomains, Verdict,
    report::{Query, Report, report},
};
use crate::core::expand::metadata;
use crate::core::mesh_config::{self, MeshConfig};
use crate::core::{
    self, Object, Snapshot, defaults::default_object, expand::expand, findings::has_errors,
};
use crate::load::{self, Raw};

use super::check::OutputFormat;
use super::{CoreFlags, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};

/// `--from` answer that depends on the request (method, path, header, IP, JWT, CUSTOM provider).
pub const EXIT_DEPENDS: i32 = 3;

#[derive(clap::Args, Debug)]
pub struct AccessArgs {
    #[command(flatten)]
    pub core: CoreFlags,
    /// The external host a workload calls.
    #[arg(long)]
    pub host: String,
    /// The port the workload calls (default: every port routed through a gateway).
    #[arg(long)]
    pub port: Option<u32>,
    /// One ServiceAccount, `namespace/name`: one answer, exit 0 allowed, 1 denied, 3 depends.
    #[arg(long, value_name = "NS/SA")]
    pub from: Option<String>,
    /// text: one line per ServiceAccount; json: the whole report.
    #[arg(long, short, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Istio's mesh configuration: a MeshConfig YAML, Helm values (`meshConfig:`) or the `istio`
    /// ConfigMap. Without it: Istio's defaults (outbound ALLOW_ANY, root namespace istio-system).
    #[arg(long, value_name = "FILE")]
    pub mesh_config: Option<String>,
    /// Read the live cluster: its objects, AuthorizationPolicies and mesh ConfigMap (files
    /// replace the cluster's version of an object; `--mesh-config` replaces the ConfigMap).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<String>,
    /// Files or directories of YAML/JSON, AuthorizationPolicies included; `-` reads stdin.
    #[arg(required_unless_present = "kubeconfig")]
    pub inputs: Vec<String>,
}

/// Everything `access` evaluates: the files' objects, and the cluster's when asked.
pub struct Inputs {
    pub objects: Vec<Object>,
    /// The cluster's objects (defaulted); the files' replace theirs.
    pub cluster: Option<Vec<Object>>,
    /// User-written AuthorizationPolicies: the cluster's first, the files' after (and in place).
    pub user_policies: Vec<Raw>,
    /// The cluster's mesh ConfigMap, when it has one.
    pub cluster_mesh: Option<(String, MeshConfig)>,
    pub notes: Vec<String>,
}

pub fn run(args: &AccessArgs, out: &mut impl Write, err: &mut impl Write) -> i32 {
    let (loaded, file_policies) = match load::load_inputs_with_authorization_policies(&args.inputs)
    {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return EXIT_USAGE;
        }
    };
    let mut inputs = Inputs {
        objects: loaded.objects.into_iter().map(|l| l.object).collect(),
        cluster: None,
        user_policies: Vec::new(),
        cluster_mesh: None,
        notes: loaded.notes,
    };
    if let Some(kubeconfig) = &args.kubeconfig {
        let cluster = match super::cluster_input::read(
            kubeconfig,
            &args.core.options(),
            super::cluster_input::Wanted {
                authorization_policies: true,
                ..Default::default()
            },
        ) {
            Ok(c) => c,
            Err(e) => {
                let _ = writeln!(err, "error: --kubeconfig {kubeconfig}: {e}");
                return EXIT_USAGE;
            }
        };
        inputs.notes.extend(cluster.notes);
        // The generated policies are computed again from the same objects; the cluster's
        // copies of them could only be older.
        inputs.user_policies = cluster
            .policies
            .into_iter()
            .filter(|p| {
                p.pointer("/metadata/labels")
                    .and_then(|l| l.get(metadata::MANAGED_BY))
                    .and_then(serde_json::Value::as_str)
                    != Some(metadata::MANAGER)
            })
            .map(|value| Raw {
                source: format!("cluster of {kubeconfig}"),
                value,
            })
            .collect();
        // `istio` is the default revision's; a revisioned one only when there is no default.
        let mesh = match cluster.mesh {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(err, "error: --kubeconfig {kubeconfig}: {e}");
                return EXIT_USAGE;
            }
        };
        inputs.cluster_mesh = mesh.into_iter().min_by_key(|(name, _)| name != "istio");
        inputs.cluster = Some(cluster.objects);
    }
    inputs.user_policies.extend(file_policies);
    evaluate(args, inputs, out, err)
}

/// The common part of `access` on files and on a cluster.
pub fn evaluate(
    args: &AccessArgs,
    inputs: Inputs,
    out: &mut impl Write,
    err: &mut impl Write,
) -> i32 {
    let from = match args.from.as_deref().map(parse_from).transpose() {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "error: --from: {e}");
            return EXIT_USAGE;
        }
    };
    let mesh = match &args.mesh_config {
        None => inputs
            .cluster_mesh
            .clone()
            .map(|(_, m)| m)
            .unwrap_or_default(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| format!("{path}: {e}"))
            .and_then(|t| mesh_config::parse(path, &t))
        {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(err, "error: --mesh-config: {e}");
                return EXIT_USAGE;
            }
        },
    };
    for n in &inputs.notes {
        let _ = writeln!(err, "{n}");
    }
    let opts = args.core.options();
    let findings = match &inputs.cluster {
        None => core::check(&inputs.objects, &opts),
        Some(cluster) => core::check_against(&inputs.objects, cluster, &opts, None),
    };
    if has_errors(&findings) {
        for f in &findings {
            let _ = writeln!(err, "{f}");
        }
        let _ = writeln!(
            err,
            "error: the webhook would deny these objects; fix them before asking who can reach {}",
            args.host
        );
        return EXIT_USAGE;
    }
    let objects: Vec<Object> = match &inputs.cluster {
        None => inputs.objects,
        Some(cluster) => core::overlay(cluster, &inputs.objects),
    };
    // Kubernetes' own namespaces (kube-system, kube-public, kube-node-lease) run no mesh
    // workloads: their ServiceAccounts would only pad a live cluster's answer.
    let accounts: Vec<(String, String)> = objects
        .iter()
        .filter(|o| !o.namespace().starts_with("kube-"))
        .filter_map(|o| match o {
            Object::ServiceAccount(sa) => Some((
                sa.metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                sa.metadata.name.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    let snapshot = Snapshot::new(objects.into_iter().map(|o| default_object(o, &opts)), &opts);
    let policies = match policies(&snapshot, &opts, &inputs.user_policies, err) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return EXIT_USAGE;
        }
    };
    let trust = TrustDomains {
        domain: mesh
            .trust_domain
            .clone()
            .unwrap_or_else(|| opts.trust_domain.clone()),
        aliases: mesh.trust_domain_aliases.clone(),
    };
    let query = Query {
        host: &args.host,
        port: args.port,
        from: from.as_ref().map(|(n, s)| (n.as_str(), s.as_str())),
    };
    let rep = report(&query, &snapshot, &policies, &mesh, &trust, &accounts);
    let written = match args.output {
        OutputFormat::Text => super::access_text::write(out, &rep),
        OutputFormat::Json => serde_json::to_writer_pretty(&mut *out, &rep)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out)),
    };
    if let Err(e) = written {
        let _ = writeln!(err, "error: writing output: {e}");
        return EXIT_USAGE;
    }
    if from.is_some() {
        exit_for(&rep)
    } else {
        EXIT_OK
    }
}

fn parse_from(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, sa)) if !ns.is_empty() && !sa.is_empty() && !sa.contains('/') => {
            Ok((ns.to_string(), sa.to_string()))
        }
        _ => Err(format!("{s:?} is not NAMESPACE/SERVICEACCOUNT")),
    }
}

/// The generated policies, with the user's in place of any of the same namespace/name (the
/// webhook never overwrites an object it does not manage: it reports a conflict instead).
fn policies(
    snap: &Snapshot,
    opts: &core::Options,
    user: &[Raw],
    err: &mut impl Write,
) -> Result<Vec<Policy>, String> {
    let mut out = access::generated_policies(&expand(snap, opts)).map_err(|e| e.to_string())?;
    let generated = out.len();
    for raw in user {
        let p = access::policy::decode(&raw.value).map_err(|e| format!("{}: {e}", raw.source))?;
        // A later input replaces an earlier one of the same name (files over the cluster).
        if let Some(i) = out
            .iter()
            .position(|g| g.namespace == p.namespace && g.name == p.name)
        {
            if i < generated {
                let _ = writeln!(
                    err,
                    "note: {}: AuthorizationPolicy {}/{} has the name of a generated one; the webhook would not overwrite it, so it is evaluated in its place",
                    raw.source, p.namespace, p.name
                );
            }
            out[i] = p;
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// `--from`'s exit code: denied anywhere = 1, else depending on the request anywhere = 3. A
/// direct route is not decided by gateway policies: nothing here stops it.
fn exit_for(rep: &Report) -> i32 {
    if let Some(u) = &rep.undeclared {
        return if u.allowed { EXIT_OK } else { EXIT_FINDINGS };
    }
    let verdicts: Vec<Verdict> = rep
        .routes
        .iter()
        .flat_map(|r| r.gateways.iter().flat_map(|g| g.answers.iter()))
        .map(|a| a.decision.verdict)
        .collect();
    if verdicts.contains(&Verdict::Denied) {
        EXIT_FINDINGS
    } else if verdicts.contains(&Verdict::DependsOnRequest) {
        EXIT_DEPENDS
    } else {
        EXIT_OK
    }
}

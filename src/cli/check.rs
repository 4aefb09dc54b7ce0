//! `egress-webhook check`: default, validate and cross-check objects from files.

use std::io::Write;

use crate::cluster::live::MESH_NAMESPACE;
use crate::core::{
    self, Finding,
    findings::has_errors,
    mesh_config::{self, Outbound, outbound_of},
};
use crate::load;

use super::cluster_input::Wanted;
use super::{CoreFlags, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, check_guardrails};

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub core: CoreFlags,
    /// text: one line per finding; json: a JSON document for machines.
    #[arg(long, short, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Check against this cluster's objects (files replace the cluster's version of an object),
    /// as the admission would: its exact messages.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<String>,
    /// Istio's mesh configuration (a MeshConfig, Helm values or the `istio` ConfigMap): its
    /// outbound traffic policy is checked (M1). With `--kubeconfig`, the cluster's mesh
    /// ConfigMaps are read instead unless this is given; without either it is not checked.
    #[arg(long, value_name = "FILE")]
    pub mesh_config: Option<String>,
    /// Files or directories of YAML/JSON (multi-document, `kind: List`); `-` reads stdin.
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// EgressGuardrails to apply (files or directories; repeat the flag), with the Namespaces
    /// whose labels their namespaceSelectors match (Namespaces among the inputs count too).
    /// Violations of `deny` guardrails are errors, of `warn` ones warnings, of `audit` ones
    /// nothing, as at admission. With `--kubeconfig` they come on top of the cluster's own
    /// guardrails, replacing any of the same name, and the cluster's Namespaces give the labels.
    #[arg(long)]
    pub guardrails: Vec<String>,
    /// With `--kubeconfig`: do not apply the cluster's EgressGuardrails (only those of
    /// `--guardrails`, if any). By default they apply, as the admission applies them: a check
    /// without them would pass what `kubectl apply` is refused.
    #[arg(long, requires = "kubeconfig")]
    pub no_cluster_guardrails: bool,
}

pub fn run(args: &CheckArgs, out: &mut impl Write, err: &mut impl Write) -> i32 {
    let loaded = match load::load_inputs(&args.inputs) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return EXIT_USAGE;
        }
    };
    let objects: Vec<_> = loaded.objects.into_iter().map(|l| l.object).collect();
    let opts = args.core.options();
    let mut notes = loaded.notes;
    let file_mesh = match args.mesh_config.as_deref().map(read_mesh).transpose() {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(err, "error: --mesh-config: {e}");
            return EXIT_USAGE;
        }
    };
    let files = if args.guardrails.is_empty() {
        load::GuardrailFiles::default()
    } else {
        match check_guardrails::read_files(&args.guardrails, &args.inputs) {
            Ok(f) => f,
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                return EXIT_USAGE;
            }
        }
    };
    let findings = match &args.kubeconfig {
        None => {
            let applied = check_guardrails::combine(Vec::new(), Vec::new(), files);
            notes.extend(applied.notes);
            core::check_in_mesh(&objects, applied.guardrails, file_mesh.as_ref(), &opts)
        }
        Some(kubeconfig) => {
            let cluster_guardrails = !args.no_cluster_guardrails;
            let wanted = Wanted {
                guardrails: cluster_guardrails,
                // The files' guardrails need them; the cluster's are seen to by `read`.
                namespaces: !files.guardrails.is_empty(),
                ..Default::default()
            };
            let cluster = match super::cluster_input::read(kubeconfig, &opts, wanted) {
                Ok(c) => c,
                Err(e) => {
                    let _ = writeln!(err, "error: --kubeconfig {kubeconfig}: {e}");
                    return EXIT_USAGE;
                }
            };
            notes.extend(cluster.notes);
            // The admission's view: the cluster's mesh ConfigMaps, as `serve` watches them.
            let outbound = file_mesh.or_else(|| match cluster.mesh {
                Ok(configs) => Some(outbound_of(MESH_NAMESPACE, &configs)),
                Err(e) => {
                    notes.push(format!(
                        "note: {e}: the mesh's outbound policy (M1) is not checked"
                    ));
                    None
                }
            });
            if cluster_guardrails && cluster.guardrails.is_none() {
                notes.push(
                    "note: the cluster has no EgressGuardrail CRD: no cluster guardrails apply"
                        .to_string(),
                );
            }
            let applied = check_guardrails::combine(
                cluster.guardrails.unwrap_or_default(),
                cluster.namespaces,
                files,
            );
            notes.extend(applied.notes);
            core::check_against_guarded(
                &objects,
                &cluster.objects,
                applied.guardrails,
                &applied.from_files,
                &opts,
                outbound.as_ref(),
            )
        }
    };
    let written = match args.output {
        OutputFormat::Text => write_text(out, &notes, &findings),
        OutputFormat::Json => write_json(out, &notes, objects.len(), &findings),
    };
    if let Err(e) = written {
        let _ = writeln!(err, "error: writing output: {e}");
        return EXIT_USAGE;
    }
    if has_errors(&findings) {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    }
}

/// `--mesh-config FILE`: its outbound policy, the file named as its source.
fn read_mesh(path: &str) -> Result<Outbound, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(mesh_config::parse(path, &text)?.outbound(path))
}

fn write_text(out: &mut impl Write, notes: &[String], findings: &[Finding]) -> std::io::Result<()> {
    for n in notes {
        writeln!(out, "{n}")?;
    }
    for f in findings {
        writeln!(out, "{f}")?;
    }
    Ok(())
}

fn write_json(
    out: &mut impl Write,
    notes: &[String],
    objects: usize,
    findings: &[Finding],
) -> std::io::Result<()> {
    let errors = findings
        .iter()
        .filter(|f| f.severity == core::Severity::Error)
        .count();
    let doc = serde_json::json!({
        "objects": objects,
        "errors": errors,
        "warnings": findings.len() - errors,
        "notes": notes,
        "findings": findings,
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

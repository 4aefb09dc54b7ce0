//! `egress-webhook check`: default, validate and cross-check objects from files.

use std::io::Write;

use crate::cluster::live::MESH_NAMESPACE;
use crate::core::{
    self, Finding,
    findings::has_errors,
    mesh_config::{self, Outbound, outbound_of},
};
use crate::load;

use super::{CoreFlags, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};

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
    /// nothing, as at admission.
    /// (Not with --kubeconfig yet: the cluster's own guardrails are not read.)
    #[arg(long, conflicts_with = "kubeconfig")]
    pub guardrails: Vec<String>,
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
    let findings = match &args.kubeconfig {
        None => {
            let guardrails = if args.guardrails.is_empty() {
                core::guardrails::Guardrails::default()
            } else {
                match guardrails_and_namespaces(args) {
                    Ok((g, n)) => {
                        notes.extend(n);
                        g
                    }
                    Err(e) => {
                        let _ = writeln!(err, "error: {e}");
                        return EXIT_USAGE;
                    }
                }
            };
            core::check_in_mesh(&objects, guardrails, file_mesh.as_ref(), &opts)
        }
        Some(kubeconfig) => match super::cluster_input::read(kubeconfig, &opts, false) {
            Ok(cluster) => {
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
                core::check_against(&objects, &cluster.objects, &opts, outbound.as_ref())
            }
            Err(e) => {
                let _ = writeln!(err, "error: --kubeconfig {kubeconfig}: {e}");
                return EXIT_USAGE;
            }
        },
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

/// The guardrails of `--guardrails` and the Namespaces of the inputs and of those files (stdin
/// is read once, by the objects' loader: its Namespaces do not count), with the guardrail files'
/// notes.
fn guardrails_and_namespaces(
    args: &CheckArgs,
) -> Result<(core::guardrails::Guardrails, Vec<String>), load::LoadError> {
    let mut files = load::load_guardrails(&args.guardrails)?;
    let notes = std::mem::take(&mut files.notes);
    let files_inputs: Vec<String> = args.inputs.iter().filter(|i| *i != "-").cloned().collect();
    // The inputs' Namespaces first: a Namespace of the guardrail files (a test of what a label
    // would do, say) replaces one of the same name.
    let mut namespaces = load::load_guardrails(&files_inputs)?.namespaces;
    namespaces.append(&mut files.namespaces);
    files.namespaces = namespaces;
    Ok((files.into_guardrails(), notes))
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

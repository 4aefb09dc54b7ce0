//! `egress-webhook check`: default, validate and cross-check objects from files.

use std::io::Write;

use crate::core::{self, Finding, findings::has_errors};
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
    /// Files or directories of YAML/JSON (multi-document, `kind: List`); `-` reads stdin.
    #[arg(required = true)]
    pub inputs: Vec<String>,
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
    let findings = match &args.kubeconfig {
        None => core::check(&objects, &opts),
        Some(kubeconfig) => match super::cluster_input::read(kubeconfig, &opts, false) {
            Ok(cluster) => {
                notes.extend(cluster.notes);
                core::check_against(&objects, &cluster.objects, &opts)
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

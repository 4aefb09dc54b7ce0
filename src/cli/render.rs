//! `egress-webhook render`: print the Istio objects the webhook would write, as YAML, sorted.
//! Inputs with errors render nothing: the webhook would deny them, so nothing would be written.

use std::io::Write;

use std::collections::BTreeSet;

use crate::core::{
    self, Object, Snapshot,
    defaults::default_object,
    expand::{affected_parents, expand, expand_parents},
    findings::has_errors,
};
use crate::istio::IstioObject;
use crate::load;

use super::{CoreFlags, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub core: CoreFlags,
    /// Render against this cluster's objects: the companions the admission of the files' objects
    /// would write there (files replace the cluster's version of an object).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<String>,
    /// Files or directories of YAML/JSON (multi-document, `kind: List`); `-` reads stdin.
    #[arg(required = true)]
    pub inputs: Vec<String>,
}

pub fn run(args: &RenderArgs, out: &mut impl Write, err: &mut impl Write) -> i32 {
    let loaded = match load::load_inputs(&args.inputs) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return EXIT_USAGE;
        }
    };
    let opts = args.core.options();
    let objects: Vec<_> = loaded.objects.into_iter().map(|l| l.object).collect();
    if let Some(kubeconfig) = &args.kubeconfig {
        return match super::cluster_input::read(kubeconfig, &opts, Default::default()) {
            Ok(cluster) => {
                let mut notes = loaded.notes;
                notes.extend(cluster.notes);
                render_against(&objects, &cluster.objects, &notes, &opts, out, err)
            }
            Err(e) => {
                let _ = writeln!(err, "error: --kubeconfig {kubeconfig}: {e}");
                EXIT_USAGE
            }
        };
    }
    let findings = core::check(&objects, &opts);
    for n in &loaded.notes {
        let _ = writeln!(err, "{n}");
    }
    for f in &findings {
        let _ = writeln!(err, "{f}");
    }
    if has_errors(&findings) {
        return EXIT_FINDINGS;
    }
    let snapshot = Snapshot::new(objects.into_iter().map(|o| default_object(o, &opts)), &opts);
    print_yaml(&expand(&snapshot, &opts), out, err)
}

/// `render --kubeconfig`: the companions of the parents the files' objects affect (as the
/// admission recomputes them), over the cluster's objects with the files' in place.
fn render_against(
    files: &[Object],
    cluster: &[Object],
    notes: &[String],
    opts: &core::Options,
    out: &mut impl Write,
    err: &mut impl Write,
) -> i32 {
    let findings = core::check_against(files, cluster, opts, None);
    for n in notes {
        let _ = writeln!(err, "{n}");
    }
    for f in &findings {
        let _ = writeln!(err, "{f}");
    }
    if has_errors(&findings) {
        return EXIT_FINDINGS;
    }
    let defaulted: Vec<Object> = files
        .iter()
        .map(|o| default_object(o.clone(), opts))
        .collect();
    let before = Snapshot::new(cluster.iter().cloned(), opts);
    let after = Snapshot::new(core::overlay(cluster, &defaulted), opts);
    let mut parents = BTreeSet::new();
    for o in &defaulted {
        parents.extend(affected_parents(&before, o));
        parents.extend(affected_parents(&after, o));
    }
    print_yaml(&expand_parents(&after, opts, &parents), out, err)
}

fn print_yaml(objects: &[IstioObject], out: &mut impl Write, err: &mut impl Write) -> i32 {
    match to_yaml(objects) {
        Ok(text) => match out.write_all(text.as_bytes()) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                let _ = writeln!(err, "error: writing output: {e}");
                EXIT_USAGE
            }
        },
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            EXIT_USAGE
        }
    }
}

/// Multi-document YAML, one document per object.
pub fn to_yaml(objects: &[IstioObject]) -> Result<String, serde_saphyr::SerializeError> {
    let mut text = String::new();
    for o in objects {
        text.push_str("---\n");
        text.push_str(&serde_saphyr::to_string(o)?);
    }
    Ok(text)
}

//! `egress-webhook render`: print the Istio objects the webhook would write, as YAML, sorted.
//! Inputs with errors render nothing: the webhook would deny them, so nothing would be written.

use std::io::Write;

use crate::core::{self, Snapshot, defaults::default_object, expand::expand, findings::has_errors};
use crate::istio::IstioObject;
use crate::load;

use super::{CoreFlags, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub core: CoreFlags,
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
    match to_yaml(&expand(&snapshot, &opts)) {
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

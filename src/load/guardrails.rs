//! `check --guardrails FILE`: EgressGuardrails and Namespaces (their labels, for the guardrails'
//! namespaceSelectors) read from files, with the same parsing as the objects (multi-document
//! YAML or JSON, `kind: List`, directories). A child of `load` to share its parsers.

use std::path::Path;

use serde_json::Value;

use super::{LoadError, expand_path, flatten_lists, parse_yaml_chunks, yaml_documents};
use crate::api::egress_guardrail::{EgressGuardrail, POLICY_GROUP, POLICY_VERSION};
use crate::core::guardrails::{Guardrails, validate::KIND};

/// What the files held: guardrails and namespace labels, and `note:` lines for other documents.
#[derive(Debug, Default)]
pub struct GuardrailFiles {
    pub guardrails: Vec<EgressGuardrail>,
    pub namespaces: Vec<(String, std::collections::BTreeMap<String, String>)>,
    pub notes: Vec<String>,
}

impl GuardrailFiles {
    /// Into the core's [`Guardrails`].
    pub fn into_guardrails(self) -> Guardrails {
        let mut g = Guardrails::default();
        g.replace_all(self.guardrails);
        for (name, labels) in self.namespaces {
            g.set_namespace(&name, labels);
        }
        g
    }
}

/// Read every file (or directory; `-` is stdin) of `inputs`.
pub fn load_guardrails(inputs: &[String]) -> Result<GuardrailFiles, LoadError> {
    let mut out = GuardrailFiles::default();
    for input in inputs {
        if input == "-" {
            let text = super::read_stdin()?;
            read_text("<stdin>", &text, &mut out)?;
            continue;
        }
        for file in expand_path(Path::new(input))? {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Io {
                path: name.clone(),
                source,
            })?;
            read_text(&name, &text, &mut out)?;
        }
    }
    Ok(out)
}

/// The Namespaces among documents of `text` (the objects' files may declare them too).
pub fn read_text(file: &str, text: &str, out: &mut GuardrailFiles) -> Result<(), LoadError> {
    let trimmed = text.trim_start();
    let docs: Vec<(usize, Value)> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let doc = serde_json::from_str::<Value>(text).map_err(|e| LoadError::Parse {
            location: format!("{file}:{}", e.line()),
            message: format!("invalid JSON: {e}"),
        })?;
        vec![(1, doc)]
    } else {
        parse_yaml_chunks(file, &yaml_documents(text))?
    };
    for (line, doc) in docs {
        let location = format!("{file}:{line}");
        for value in flatten_lists(doc) {
            let api_version = value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind == KIND && api_version == format!("{POLICY_GROUP}/{POLICY_VERSION}") {
                let g: EgressGuardrail =
                    serde_path_to_error::deserialize(&value).map_err(|e| LoadError::Parse {
                        location: location.clone(),
                        message: format!("{KIND}: {}: {}", e.path(), e.inner()),
                    })?;
                out.guardrails.push(g);
            } else if kind == "Namespace" && api_version == "v1" {
                let name = value
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let labels = value
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                out.namespaces.push((name, labels));
            } else {
                out.notes.push(format!(
                    "note: {location}: skipped {api_version} {kind}: not an EgressGuardrail or Namespace"
                ));
            }
        }
    }
    Ok(())
}

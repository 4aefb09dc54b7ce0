//! Reading objects from files, directories and stdin: multi-document YAML or JSON, `kind: List`.
//! This is the I/O edge of the offline commands; what it returns goes to the pure core.
//!
//! A module of its own, not part of `cli` (which only main.rs imports), because more than the
//! commands read objects this way: `check`, `render` and `serve --objects` use [`load_inputs`],
//! and the catalog's and the integration tests' fixtures go through [`load_text`].

mod guardrails;

pub use guardrails::{GuardrailFiles, load_guardrails};

use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use crate::core::object::{DecodeError, Object};

/// An object and where it came from (for messages).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub object: Object,
    pub source: String,
}

#[derive(Debug, Default)]
pub struct LoadResult {
    pub objects: Vec<Loaded>,
    /// `note:` lines: documents of kinds we skip.
    pub notes: Vec<String>,
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{location}: {message}")]
    Parse { location: String, message: String },
}

/// Load every input. `-` reads stdin; a directory is read recursively (`.yaml`, `.yml`, `.json`).
pub fn load_inputs(inputs: &[String]) -> Result<LoadResult, LoadError> {
    let mut objects = Vec::new();
    let notes = load_each(inputs, &mut |l| objects.push(l))?;
    Ok(LoadResult { objects, notes })
}

/// [`load_inputs`], handing each object to `each` as soon as it is decoded instead of
/// collecting them: `serve --objects` builds its catalog this way, so that the parsed documents
/// of a large file are never all in memory at once (issue 12: that was the loading peak, 325 MB
/// for 41,000 objects). Returns the notes.
pub fn load_each(
    inputs: &[String],
    each: &mut dyn FnMut(Loaded),
) -> Result<Vec<String>, LoadError> {
    load_each_keeping(inputs, each, &mut Keep::Nothing)
}

/// Documents of kinds the core does not take that a command still wants, handed over raw.
pub enum Keep<'a> {
    Nothing,
    /// AuthorizationPolicies (`access` evaluates them; they never enter the Snapshot).
    AuthorizationPolicies(&'a mut Vec<Raw>),
}

/// A document kept as parsed, and where it came from.
#[derive(Debug, Clone)]
pub struct Raw {
    pub value: Value,
    pub source: String,
}

/// All of standard input (the input `-`), as text.
pub(crate) fn read_stdin() -> Result<String, LoadError> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|source| {
        LoadError::Io {
            path: "<stdin>".into(),
            source,
        }
    })?;
    Ok(text)
}

fn load_each_keeping(
    inputs: &[String],
    each: &mut dyn FnMut(Loaded),
    keep: &mut Keep<'_>,
) -> Result<Vec<String>, LoadError> {
    let mut notes = Vec::new();
    for input in inputs {
        if input == "-" {
            let text = read_stdin()?;
            load_text_each("<stdin>", &text, each, &mut notes, keep)?;
            continue;
        }
        for file in expand_path(Path::new(input))? {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Io {
                path: name.clone(),
                source,
            })?;
            load_text_each(&name, &text, each, &mut notes, keep)?;
        }
    }
    Ok(notes)
}

fn expand_path(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.display().to_string(),
        source,
    };
    if !path.is_dir() {
        // Let the read report a missing file.
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            files.extend(expand_path(&entry)?);
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(entry);
        }
    }
    Ok(files)
}

/// Parse one file's text and decode its objects into `out`.
pub fn load_text(file: &str, text: &str, out: &mut LoadResult) -> Result<(), LoadError> {
    let objects = &mut out.objects;
    load_text_each(
        file,
        text,
        &mut |l| objects.push(l),
        &mut out.notes,
        &mut Keep::Nothing,
    )
}

/// Documents parsed at a time: enough for every core to have work, few enough that their
/// parsed trees (a few KB each) stay a small part of what the objects take.
const BATCH: usize = 256;

fn load_text_each(
    file: &str,
    text: &str,
    each: &mut dyn FnMut(Loaded),
    notes: &mut Vec<String>,
    keep: &mut Keep<'_>,
) -> Result<(), LoadError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON is one document.
        let line = text.len() - trimmed.len();
        let first_line = text[..line].matches('\n').count() + 1;
        let doc = serde_json::from_str::<Value>(text).map_err(|e| LoadError::Parse {
            location: format!("{file}:{}", e.line()),
            message: format!("invalid JSON: {e}"),
        })?;
        return decode_document(file, first_line, doc, each, notes, keep);
    }
    let chunks = yaml_documents(text);
    for batch in chunks.chunks(BATCH) {
        for (line, doc) in parse_yaml_chunks(file, batch)? {
            decode_document(file, line, doc, each, notes, keep)?;
        }
    }
    Ok(())
}

/// Decode one parsed document (a `List` contributes its items).
fn decode_document(
    file: &str,
    line: usize,
    doc: Value,
    each: &mut dyn FnMut(Loaded),
    notes: &mut Vec<String>,
    keep: &mut Keep<'_>,
) -> Result<(), LoadError> {
    let location = format!("{file}:{line}");
    for value in flatten_lists(doc) {
        if let Keep::AuthorizationPolicies(kept) = keep
            && crate::core::access::policy::is_authorization_policy(&value)
        {
            kept.push(Raw {
                value,
                source: location.clone(),
            });
            continue;
        }
        match Object::from_value(value) {
            Ok(object) => each(Loaded {
                object,
                source: location.clone(),
            }),
            Err(DecodeError::Unhandled { api_version, kind }) => {
                let what = if kind.is_empty() {
                    "a document without kind".to_string()
                } else {
                    format!("{api_version} {kind}")
                };
                notes.push(format!(
                    "note: {location}: skipped {what}: not a kind egress-webhook checks"
                ));
            }
            Err(e @ DecodeError::Invalid { .. }) => {
                return Err(LoadError::Parse {
                    location,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// A YAML text split on `---` lines, with the line each document starts on; the documents
/// borrow from `text` (a copy of a large file was part of the loading peak).
fn yaml_documents(text: &str) -> Vec<(usize, &str)> {
    let mut chunks = Vec::new();
    let (mut start_line, mut start_byte, mut offset) = (1, 0, 0);
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if is_separator(line) {
            chunks.push((start_line, &text[start_byte..offset]));
            start_line = i + 2;
            start_byte = offset + raw.len();
        }
        offset += raw.len();
    }
    chunks.push((start_line, &text[start_byte..]));
    chunks
}

/// Parse YAML documents on every core: YAML parsing is most of the time `check` takes on a
/// large file, and documents are independent. Order (and the first error) is kept.
fn parse_yaml_chunks(
    file: &str,
    chunks: &[(usize, &str)],
) -> Result<Vec<(usize, Value)>, LoadError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads <= 1 || chunks.len() < 64 {
        return chunks
            .iter()
            .filter_map(|(line, text)| parse_yaml(file, *line, text).transpose())
            .collect();
    }
    let per = chunks.len().div_ceil(threads);
    let parts: Vec<Result<Vec<(usize, Value)>, LoadError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .filter_map(|(line, text)| parse_yaml(file, *line, text).transpose())
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(LoadError::Parse {
                        location: file.to_string(),
                        message: "the YAML parser failed".to_string(),
                    })
                })
            })
            .collect()
    });
    let mut docs = Vec::with_capacity(chunks.len());
    for part in parts {
        docs.extend(part?);
    }
    Ok(docs)
}

fn is_separator(line: &str) -> bool {
    line == "---" || line.starts_with("--- ") || line.starts_with("---\t") || line == "..."
}

/// One YAML document; `None` for an empty one (comments only, or `null`).
fn parse_yaml(file: &str, start: usize, text: &str) -> Result<Option<(usize, Value)>, LoadError> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(None);
    }
    match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Null) => Ok(None),
        Ok(v) => Ok(Some((start, v))),
        Err(e) => {
            let line = e
                .location()
                .map(|l| start + l.line() as usize - 1)
                .unwrap_or(start);
            let message = e.to_string();
            let first = message.lines().next().unwrap_or("invalid YAML").to_string();
            Err(LoadError::Parse {
                location: format!("{file}:{line}"),
                message: format!("invalid YAML: {first}"),
            })
        }
    }
}

/// `kind: List` (and `*List`) documents contribute their items.
fn flatten_lists(doc: Value) -> Vec<Value> {
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && doc.get("items").is_some_and(Value::is_array);
    if is_list {
        match doc {
            Value::Object(mut m) => match m.remove("items") {
                Some(Value::Array(items)) => items.into_iter().flat_map(flatten_lists).collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    } else if let Value::Array(items) = doc {
        items.into_iter().flat_map(flatten_lists).collect()
    } else {
        vec![doc]
    }
}

/// [`load_inputs`] for `access`: also returns the AuthorizationPolicy documents, raw (they are
/// evaluated, not checked, and are not part of the Snapshot).
pub fn load_inputs_with_authorization_policies(
    inputs: &[String],
) -> Result<(LoadResult, Vec<Raw>), LoadError> {
    let mut objects = Vec::new();
    let mut policies = Vec::new();
    let notes = load_each_keeping(
        inputs,
        &mut |l| objects.push(l),
        &mut Keep::AuthorizationPolicies(&mut policies),
    )?;
    Ok((LoadResult { objects, notes }, policies))
}

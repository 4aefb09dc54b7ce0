//! Offline stand-in for kube-apiserver validating an Istio custom resource against the vendored
//! Istio 1.24.6 CRDs (`manifests/istio/crds-1.24.6.yaml`) with `fieldValidation=Strict`.
//!
//! Why: the generator's output must be accepted by a real cluster, and the tests cannot start a
//! kube-apiserver. So this walks the object against the CRD's `openAPIV3Schema` the way the
//! apiserver does: unknown fields are errors (Strict), then types, enums, required, bounds, list
//! maps, the structural `oneOf`/`anyOf`/`allOf`/`not` junctors, and the CEL rules
//! (`x-kubernetes-validations`). CEL cannot be evaluated generically without a CEL engine, so every
//! rule text that occurs in the file is recognised verbatim and re-implemented by hand
//! ([`eval_cel`]); [`unevaluated_validations`] lists what is left (tests pin that list).
//!
//! Error messages follow the apiserver's field-error shape (`<path>: Required value`,
//! `<path>: Invalid value: ...`, `<path>: Unsupported value: ...`, `<path>: Duplicate value: ...`)
//! so the `_err` substrings of istio/api's own CRD fixtures can be matched against them.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The CRD file is compiled in: the checker then needs no working directory, and editing the file
/// rebuilds the tests. Its integrity is pinned by a sha256 test on the file itself.
const CRD_YAML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/manifests/istio/crds-1.24.6.yaml"
));

struct Crd {
    group: String,
    kind: String,
    namespaced: bool,
    /// (version name, served, openAPIV3Schema)
    versions: Vec<(String, bool, Value)>,
}

fn crds() -> &'static [Crd] {
    static CRDS: OnceLock<Vec<Crd>> = OnceLock::new();
    CRDS.get_or_init(|| {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(CRD_YAML).expect("vendored Istio CRD file parses as YAML");
        let mut out = Vec::new();
        for doc in docs {
            let spec = &doc["spec"];
            let (Some(group), Some(kind)) =
                (spec["group"].as_str(), spec["names"]["kind"].as_str())
            else {
                continue;
            };
            let versions = spec["versions"]
                .as_array()
                .map(|vs| {
                    vs.iter()
                        .filter_map(|v| {
                            Some((
                                v["name"].as_str()?.to_string(),
                                v["served"].as_bool().unwrap_or(false),
                                v["schema"]["openAPIV3Schema"].clone(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Crd {
                group: group.to_string(),
                kind: kind.to_string(),
                namespaced: spec["scope"].as_str() == Some("Namespaced"),
                versions,
            });
        }
        assert!(
            !out.is_empty(),
            "no CRDs found in the vendored Istio CRD file"
        );
        out
    })
}

fn find_schema(group: &str, version: &str, kind: &str) -> Result<(&'static Value, bool), String> {
    let Some(crd) = crds().iter().find(|c| c.group == group && c.kind == kind) else {
        return Err(format!(
            "kind: Invalid value: {kind:?}: no CustomResourceDefinition for {kind} in group {group:?} \
             (Istio 1.24.6 CRDs)"
        ));
    };
    match crd.versions.iter().find(|(name, _, _)| name == version) {
        Some((_, true, schema)) => Ok((schema, crd.namespaced)),
        _ => {
            let served: Vec<&str> = crd
                .versions
                .iter()
                .filter(|(_, served, _)| *served)
                .map(|(n, _, _)| n.as_str())
                .collect();
            Err(format!(
                "apiVersion: Unsupported value: \"{group}/{version}\": {kind} is served as {}",
                served.join(", ")
            ))
        }
    }
}

/// Validate one Istio object as kube-apiserver would on create with `fieldValidation=Strict`.
/// Returns one message per violation, each starting with the field path; empty = accepted.
///
/// Deviation on purpose: `metadata.namespace` is required (the apiserver would take it from the
/// request URL) because every object the generator emits must name its namespace explicitly.
pub fn check_schema(obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let Some(map) = obj.as_object() else {
        return vec![format!(
            "<object>: Invalid value: {}: must be of type object",
            type_name(obj)
        )];
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str);
    let kind = map.get("kind").and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        if api_version.is_none() {
            errs.push("apiVersion: Required value".to_string());
        }
        if kind.is_none() {
            errs.push("kind: Required value".to_string());
        }
        return errs;
    };
    let Some((group, version)) = api_version.split_once('/') else {
        return vec![format!(
            "apiVersion: Invalid value: {api_version:?}: not a custom resource group/version"
        )];
    };
    let (schema, namespaced) = match find_schema(group, version, kind) {
        Ok(found) => found,
        Err(e) => return vec![e],
    };

    match map.get("metadata") {
        Some(meta) => check_metadata(meta, namespaced, &mut errs),
        None => errs.push("metadata.name: Required value".to_string()),
    }

    // The root schema only declares spec/status; apiVersion, kind and metadata are implicit.
    let root = schema.as_object();
    let props = root
        .and_then(|r| r.get("properties"))
        .and_then(Value::as_object);
    for (key, value) in map {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(key)) {
            Some(sub) => validate(sub, value, key, true, &mut errs),
            None => errs.push(unknown_field(key)),
        }
    }
    if let Some(required) = root
        .and_then(|r| r.get("required"))
        .and_then(Value::as_array)
    {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                errs.push(format!("{r}: Required value"));
            }
        }
    }
    errs
}

/// Every CEL rule and `pattern` in the given kind's schemas (all versions) that [`check_schema`]
/// cannot evaluate, as `"<version> <path>: <rule>"`. Empty means the schema checks are complete.
pub fn unevaluated_validations(kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    for crd in crds().iter().filter(|c| c.kind == kind) {
        for (version, _, schema) in &crd.versions {
            collect_unevaluated(schema, &format!("{version} "), &mut out);
        }
    }
    out
}

/// (group, version, kind) of every served version in the CRD file.
pub fn served_kinds() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for crd in crds() {
        for (version, served, _) in &crd.versions {
            if *served {
                out.push((crd.group.clone(), version.clone(), crd.kind.clone()));
            }
        }
    }
    out
}

fn collect_unevaluated(s: &Value, path: &str, out: &mut Vec<String>) {
    let Some(s) = s.as_object() else { return };
    if let Some(Value::Array(rules)) = s.get("x-kubernetes-validations") {
        for r in rules {
            let rule = r["rule"].as_str().unwrap_or("");
            if eval_cel(rule, &Value::Null).is_none() {
                out.push(format!("{path}: {rule}"));
            }
        }
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && match_pattern(p, "").is_none()
    {
        out.push(format!("{path}: pattern {p}"));
    }
    if let Some(Value::Object(props)) = s.get("properties") {
        for (k, v) in props {
            collect_unevaluated(v, &format!("{path}.{k}"), out);
        }
    }
    if let Some(items) = s.get("items") {
        collect_unevaluated(items, &format!("{path}[]"), out);
    }
    if let Some(add) = s.get("additionalProperties") {
        collect_unevaluated(add, &format!("{path}[*]"), out);
    }
    for kw in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(subs)) = s.get(kw) {
            for sub in subs {
                collect_unevaluated(sub, path, out);
            }
        }
    }
    if let Some(not) = s.get("not") {
        collect_unevaluated(not, path, out);
    }
}

// ---------------------------------------------------------------------------------------------
// metadata (ObjectMeta rules the apiserver applies to every custom resource)

/// Fields of ObjectMeta; anything else under metadata is an unknown field in Strict mode.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn check_metadata(meta: &Value, namespaced: bool, errs: &mut Vec<String>) {
    let Some(m) = meta.as_object() else {
        errs.push(format!(
            "metadata: Invalid value: {}: must be of type object",
            type_name(meta)
        ));
        return;
    };
    for key in m.keys() {
        if !OBJECT_META_FIELDS.contains(&key.as_str()) {
            errs.push(unknown_field(&format!("metadata.{key}")));
        }
    }
    match m.get("name").and_then(Value::as_str) {
        None | Some("") => errs.push("metadata.name: Required value".to_string()),
        Some(name) => {
            if !is_dns1123_subdomain(name) {
                errs.push(format!(
                    "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must \
                     consist of lower case alphanumeric characters, '-' or '.', and must start and \
                     end with an alphanumeric character"
                ));
            }
        }
    }
    if namespaced {
        match m.get("namespace").and_then(Value::as_str) {
            None | Some("") => errs.push("metadata.namespace: Required value".to_string()),
            Some(ns) => {
                if !is_dns1123_label_lower(ns) {
                    errs.push(format!(
                        "metadata.namespace: Invalid value: {ns:?}: a lowercase RFC 1123 label must \
                         consist of lower case alphanumeric characters or '-', and must start and \
                         end with an alphanumeric character"
                    ));
                }
            }
        }
    }
    for (field, is_label) in [("labels", true), ("annotations", false)] {
        let Some(v) = m.get(field) else { continue };
        let Some(entries) = v.as_object() else {
            errs.push(format!(
                "metadata.{field}: Invalid value: {}: must be of type object",
                type_name(v)
            ));
            continue;
        };
        let mut total = 0usize;
        for (k, val) in entries {
            let path = format!("metadata.{field}[{k}]");
            if let Err(e) = check_qualified_name(k) {
                errs.push(format!("metadata.{field}: Invalid value: {k:?}: {e}"));
            }
            let Some(text) = val.as_str() else {
                errs.push(format!(
                    "{path}: Invalid value: {}: must be of type string",
                    type_name(val)
                ));
                continue;
            };
            total += k.len() + text.len();
            if is_label && let Err(e) = check_label_value(text) {
                errs.push(format!("{path}: Invalid value: {text:?}: {e}"));
            }
        }
        // ObjectMeta caps the summed size of annotations at 256 KiB.
        if !is_label && total > 256 * 1024 {
            errs.push(format!(
                "metadata.annotations: Too long: must have at most 262144 bytes (has {total})"
            ));
        }
    }
}

/// Kubernetes object names of custom resources: lower-case DNS-1123 subdomain, at most 253 chars.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_lower_label_chars)
}

/// Kubernetes namespace names: lower-case DNS-1123 label, at most 63 chars.
pub fn is_dns1123_label_lower(s: &str) -> bool {
    s.len() <= 63 && is_lower_label_chars(s)
}

fn is_lower_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// Label/annotation keys: `[prefix/]name`, prefix a DNS-1123 subdomain, name ≤ 63 of
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn check_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns1123_subdomain(p)
    {
        return Err("prefix part must be a lowercase DNS-1123 subdomain".to_string());
    }
    if name.is_empty() || name.len() > 63 || !is_label_value_chars(name) {
        return Err(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
                    start and end with an alphanumeric character (max 63)"
                .to_string(),
        );
    }
    Ok(())
}

/// Label values: empty, or ≤ 63 of alphanumerics, `-`, `_`, `.`, alphanumeric at both ends.
pub fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || (v.len() <= 63 && is_label_value_chars(v)) {
        Ok(())
    } else {
        Err(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', \
             '_' or '.', and must start and end with an alphanumeric character (max 63)"
                .to_string(),
        )
    }
}

fn is_label_value_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

// ---------------------------------------------------------------------------------------------
// structural schema walk

fn unknown_field(path: &str) -> String {
    format!("{path}: unknown field \"{path}\" (strict field validation)")
}

fn flag(s: &Map<String, Value>, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        // A type this walker does not know would be a malformed CRD; nothing to enforce.
        _ => true,
    }
}

/// Compact rendering of a value for messages, cut so one huge object cannot flood the output.
fn brief(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 120 {
        format!("{}...", text.chars().take(117).collect::<String>())
    } else {
        text
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Validate `v` against schema node `s` at `path`. `strict` is false inside junctor sub-schemas:
/// those only add value constraints, unknown-field pruning is decided by the structural skeleton.
fn validate(s: &Value, v: &Value, path: &str, strict: bool, errs: &mut Vec<String>) {
    let Some(s) = s.as_object() else { return };
    if v.is_null() {
        if !flag(s, "nullable")
            && let Some(t) = s.get("type").and_then(Value::as_str)
        {
            errs.push(format!(
                "{path}: Invalid value: \"null\": must be of type {t}"
            ));
        }
        return;
    }
    if flag(s, "x-kubernetes-int-or-string") {
        if !(is_integer(v) || v.is_string()) {
            errs.push(format!(
                "{path}: Invalid value: {}: must be an integer or a string",
                type_name(v)
            ));
            return;
        }
    } else if let Some(t) = s.get("type").and_then(Value::as_str)
        && !type_matches(t, v)
    {
        errs.push(format!(
            "{path}: Invalid value: \"{}\": must be of type {t}",
            type_name(v)
        ));
        return;
    }

    if let Some(Value::Array(allowed)) = s.get("enum")
        && !allowed.iter().any(|a| a == v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errs.push(format!(
            "{path}: Unsupported value: {}: supported values: {}",
            brief(v),
            list.join(", ")
        ));
    }

    match v {
        Value::String(text) => check_string(s, text, path, errs),
        Value::Number(_) => check_number(s, v, path, errs),
        Value::Array(items) => check_array(s, items, path, strict, errs),
        Value::Object(m) => check_object(s, m, path, strict, errs),
        _ => {}
    }

    check_junctors(s, v, path, errs);
    check_cel(s, v, path, errs);
}

fn check_string(s: &Map<String, Value>, text: &str, path: &str, errs: &mut Vec<String>) {
    let len = text.chars().count() as u64;
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errs.push(format!(
            "{path}: Too long: may not be longer than {max} (has {len})"
        ));
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errs.push(format!(
            "{path}: Invalid value: {text:?}: should be at least {min} chars long"
        ));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && match_pattern(p, text) == Some(false)
    {
        errs.push(format!(
            "{path}: Invalid value: {text:?}: should match '{p}'"
        ));
    }
}

fn check_number(s: &Map<String, Value>, v: &Value, path: &str, errs: &mut Vec<String>) {
    let Some(x) = v.as_f64() else { return };
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMaximum");
        if x > max || (exclusive && x == max) {
            let rel = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(format!(
                "{path}: Invalid value: {}: should be {rel} {}",
                brief(v),
                num_text(max)
            ));
        }
    }
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMinimum");
        if x < min || (exclusive && x == min) {
            let rel = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(format!(
                "{path}: Invalid value: {}: should be {rel} {}",
                brief(v),
                num_text(min)
            ));
        }
    }
}

fn num_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn check_array(
    s: &Map<String, Value>,
    items: &[Value],
    path: &str,
    strict: bool,
    errs: &mut Vec<String>,
) {
    let n = items.len() as u64;
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && n > max
    {
        errs.push(format!(
            "{path}: Too many: {n}: must have at most {max} items"
        ));
    }
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && n < min
    {
        errs.push(format!(
            "{path}: Invalid value: {n}: should have at least {min} items"
        ));
    }
    if let Some(item_schema) = s.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, item, &format!("{path}[{i}]"), strict, errs);
        }
    }
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => {
            let keys: Vec<&str> = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|ks| ks.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let mut key = Map::new();
                for k in &keys {
                    key.insert(k.to_string(), item.get(*k).cloned().unwrap_or(Value::Null));
                }
                let key = Value::Object(key);
                if !seen.insert(key.to_string()) {
                    errs.push(format!("{path}[{i}]: Duplicate value: {key}"));
                }
            }
        }
        Some("set") => {
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    errs.push(format!("{path}[{i}]: Duplicate value: {}", brief(item)));
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    s: &Map<String, Value>,
    m: &Map<String, Value>,
    path: &str,
    strict: bool,
    errs: &mut Vec<String>,
) {
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties");
    let open = flag(s, "x-kubernetes-preserve-unknown-fields")
        || matches!(additional, Some(Value::Bool(true)));
    for (key, value) in m {
        if let Some(sub) = props.and_then(|p| p.get(key)) {
            validate(sub, value, &child(path, key), strict, errs);
        } else if let Some(sub @ Value::Object(_)) = additional {
            // Map entries are addressed like the apiserver does: `path[key]`.
            validate(sub, value, &format!("{path}[{key}]"), strict, errs);
        } else if strict && !open {
            errs.push(unknown_field(&child(path, key)));
        }
    }
    if let Some(Value::Array(required)) = s.get("required") {
        for r in required.iter().filter_map(Value::as_str) {
            if !m.contains_key(r) {
                errs.push(format!("{}: Required value", child(path, r)));
            }
        }
    }
    let n = m.len() as u64;
    if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
        && n > max
    {
        errs.push(format!(
            "{path}: Too many: {n}: must have at most {max} items"
        ));
    }
    if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
        && n < min
    {
        errs.push(format!(
            "{path}: Invalid value: {n}: should have at least {min} properties"
        ));
    }
}

fn passes(sub: &Value, v: &Value, path: &str) -> bool {
    let mut scratch = Vec::new();
    validate(sub, v, path, false, &mut scratch);
    scratch.is_empty()
}

fn check_junctors(s: &Map<String, Value>, v: &Value, path: &str, errs: &mut Vec<String>) {
    if let Some(Value::Array(subs)) = s.get("allOf") {
        for sub in subs {
            validate(sub, v, path, false, errs);
        }
    }
    if let Some(Value::Array(subs)) = s.get("anyOf")
        && !subs.iter().any(|sub| passes(sub, v, path))
    {
        errs.push(format!(
            "{path}: Invalid value: {}: must validate at least one schema (anyOf)",
            brief(v)
        ));
    }
    if let Some(Value::Array(subs)) = s.get("oneOf") {
        let ok = subs.iter().filter(|sub| passes(sub, v, path)).count();
        if ok != 1 {
            errs.push(format!(
                "{path}: Invalid value: {}: must validate one and only one schema (oneOf), \
                 found {ok} valid alternatives",
                brief(v)
            ));
        }
    }
    if let Some(not) = s.get("not")
        && passes(not, v, path)
    {
        errs.push(format!(
            "{path}: Invalid value: {}: must not validate the schema (not)",
            brief(v)
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// CEL rules, re-implemented by hand per rule text

fn check_cel(s: &Map<String, Value>, v: &Value, path: &str, errs: &mut Vec<String>) {
    let Some(Value::Array(rules)) = s.get("x-kubernetes-validations") else {
        return;
    };
    let shown_type = s.get("type").and_then(Value::as_str).unwrap_or("object");
    for r in rules {
        let rule = r["rule"].as_str().unwrap_or("");
        let message = r["message"].as_str().unwrap_or(rule);
        match eval_cel(rule, v) {
            // Unknown rule text: listed by unevaluated_validations, nothing to say here.
            None | Some(Ok(true)) => {}
            Some(Ok(false)) => {
                errs.push(format!(
                    "{path}: Invalid value: \"{shown_type}\": {message}"
                ));
            }
            Some(Err(e)) => errs.push(format!(
                "{path}: Invalid value: \"{shown_type}\": {message} (rule evaluation error: {e})"
            )),
        }
    }
}

/// `has(self.f)`: the field is present. (A JSON null would fail the type check first.)
fn has(v: &Value, field: &str) -> bool {
    v.get(field).is_some_and(|x| !x.is_null())
}

fn str_field<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    match v.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("no such overload for field {field}")),
        None => Err(format!("no such key: {field}")),
    }
}

fn map_keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// `(has(self.a)?1:0)+(has(self.b)?1:0)+...<=1`: returns the field names.
fn has_count_fields(rule: &str) -> Option<Vec<&str>> {
    let body = rule.strip_suffix("<=1")?;
    body.split('+')
        .map(|term| term.strip_prefix("(has(self.")?.strip_suffix(")?1:0)"))
        .collect()
}

/// Evaluate one CEL rule of the Istio CRDs against `v` (the value `self`).
/// `None`: the rule text is not one this checker knows. `Some(Err)`: CEL would raise a runtime
/// error (missing key, bad duration, ...), which the apiserver reports as a rejection too.
fn eval_cel(rule: &str, v: &Value) -> Option<Result<bool, String>> {
    let compact: String = rule.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(fields) = has_count_fields(&compact) {
        return Some(Ok(fields.iter().filter(|f| has(v, f)).count() <= 1));
    }
    let text = v.as_str().unwrap_or("");
    let result = match compact.as_str() {
        "!self.contains('*')" => Ok(!text.contains('*')),
        "self!='*'" => Ok(text != "*"),
        "self.size()==0" => Ok(text.is_empty()),
        "selfin['','HTTP','HTTPS']" => Ok(matches!(text, "" | "HTTP" | "HTTPS")),
        "self.all(key,!key.contains('*'))" => Ok(map_keys(v).iter().all(|k| !k.contains('*'))),
        "self.all(key,key.size()!=0)" => Ok(map_keys(v).iter().all(|k| !k.is_empty())),
        "self.all(key,size(key)<63&&key.matches('^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$'))" => {
            Ok(map_keys(v)
                .iter()
                .all(|k| k.chars().count() < 63 && is_alnum_dash_label(k)))
        }
        "self.all(key,0<int(key)&&int(key)<=65535)" => {
            let mut ok = Ok(true);
            for k in map_keys(v) {
                match k.parse::<i64>() {
                    Ok(p) if (1..=65535).contains(&p) => {}
                    Ok(_) => ok = ok.and(Ok(false)),
                    Err(_) => ok = Err(format!("cannot convert {k:?} to int")),
                }
            }
            ok
        }
        "0<self&&self<=65535" => Ok(v.as_f64().is_some_and(|p| p > 0.0 && p <= 65535.0)),
        "duration(self)>=duration('1ms')" => {
            parse_go_duration(text).map(|nanos| nanos >= 1_000_000)
        }
        "[self.group,self.kind]in[['core','Service'],['','Service'],['gateway.networking.k8s.io','Gateway'],['networking.istio.io','ServiceEntry']]" => {
            str_field(v, "group").and_then(|g| {
                str_field(v, "kind").map(|k| {
                    matches!(
                        (g, k),
                        ("core" | "", "Service")
                            | ("gateway.networking.k8s.io", "Gateway")
                            | ("networking.istio.io", "ServiceEntry")
                    )
                })
            })
        }
        "!(has(self.addresses)&&self.addresses.exists(k,k.contains('/'))&&(has(self.resolution)&&self.resolution!='STATIC'&&self.resolution!='NONE'))" =>
        {
            let cidr = v["addresses"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x.as_str().is_some_and(|s| s.contains('/')))
            });
            let resolution = v["resolution"].as_str();
            Ok(!(cidr && resolution.is_some_and(|r| r != "STATIC" && r != "NONE")))
        }
        "(!has(self.resolution)||self.resolution=='NONE')?!has(self.endpoints):true" => {
            let none = !has(v, "resolution") || v["resolution"].as_str() == Some("NONE");
            Ok(!none || !has(v, "endpoints"))
        }
        "(has(self.resolution)&&self.resolution=='DNS_ROUND_ROBIN')?(!has(self.endpoints)||size(self.endpoints)==1):true" =>
        {
            let rr = v["resolution"].as_str() == Some("DNS_ROUND_ROBIN");
            Ok(!rr
                || !has(v, "endpoints")
                || v["endpoints"].as_array().is_some_and(|e| e.len() == 1))
        }
        "has(self.address)||has(self.network)" => Ok(has(v, "address") || has(v, "network")),
        "(has(self.address)&&self.address.startsWith('unix://'))?!has(self.ports):true" => {
            let uds = v["address"]
                .as_str()
                .is_some_and(|a| a.starts_with("unix://"));
            Ok(!uds || !has(v, "ports"))
        }
        "self.startsWith('unix://')?(self.substring(7,8)=='/'||self.substring(7,8)=='@'):true" => {
            match text.strip_prefix("unix://") {
                None => Ok(true),
                Some(rest) => match rest.chars().next() {
                    Some(c) => Ok(c == '/' || c == '@'),
                    None => Err("substring index out of range".to_string()),
                },
            }
        }
        "self.startsWith('unix://')?!self.endsWith('/'):true" => {
            Ok(!text.starts_with("unix://") || !text.ends_with('/'))
        }
        "self.all(l1,self.exists_one(l2,l1.number==l2.number))" => {
            let items = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
            let mut numbers = Vec::new();
            let mut res = Ok(true);
            for item in items {
                match item.get("number") {
                    Some(n) => numbers.push(n),
                    None => res = Err("no such key: number".to_string()),
                }
            }
            res.map(|_| {
                numbers
                    .iter()
                    .all(|n| numbers.iter().filter(|m| *m == n).count() == 1)
            })
        }
        "(has(self.selector)&&has(self.selector.matchLabels)&&self.selector.matchLabels.size()>0)||!has(self.portLevelMtls)" =>
        {
            let labels = v["selector"]["matchLabels"]
                .as_object()
                .is_some_and(|m| !m.is_empty());
            Ok(labels || !has(v, "portLevelMtls"))
        }
        "((has(self.operation)?self.operation:'')=='UPSERT')?self.value!='':true" => {
            if v["operation"].as_str() == Some("UPSERT") {
                str_field(v, "value").map(|s| !s.is_empty())
            } else {
                Ok(true)
            }
        }
        "((has(self.operation)?self.operation:'')=='REMOVE')?!has(self.value):true" => {
            Ok(v["operation"].as_str() != Some("REMOVE") || !has(v, "value"))
        }
        "(has(self.valueFrom)?self.valueFrom:'')!='HOST'||!has(self.value)" => {
            Ok(v["valueFrom"].as_str() != Some("HOST") || !has(v, "value"))
        }
        // Not evaluated: the WasmPlugin/RequestAuthentication URL rules (`isURL`, `url()`) need
        // a URL parser with CEL's exact semantics; none of the kinds the generator emits use them.
        _ => return None,
    };
    Some(result)
}

/// `^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$` (no length limit).
fn is_alnum_dash_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// The handful of `pattern`s in the Istio CRDs, matched by hand (no regex engine in the tests).
/// `None` = unknown pattern.
fn match_pattern(pattern: &str, s: &str) -> Option<bool> {
    let b = s.as_bytes();
    Some(match pattern {
        // Kubernetes API group: empty, or dot-separated lower-case DNS labels.
        r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" => {
            s.is_empty() || s.split('.').all(is_lower_label_chars)
        }
        // Kind: a letter, then letters/digits/dashes, not ending in a dash.
        r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$" => {
            !b.is_empty()
                && b[0].is_ascii_alphabetic()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        "(^$|^[a-f0-9]{64}$)" => {
            s.is_empty()
                || (b.len() == 64 && b.iter().all(|c| matches!(c, b'a'..=b'f' | b'0'..=b'9')))
        }
        "^[-_A-Za-z0-9]+$" => {
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
        }
        _ => return None,
    })
}

/// Parse a Go `time.ParseDuration` string (what CEL's `duration()` accepts) into nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<i128, String> {
    let bad = || format!("invalid duration {s:?}");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut value = whole.checked_mul(unit).ok_or_else(bad)?;
        if !frac_part.is_empty() {
            // Fractions are truncated to whole nanoseconds, like Go.
            let digits = frac_part.len().min(18) as u32;
            let frac: i128 = frac_part[..digits as usize].parse().map_err(|_| bad())?;
            value += frac * unit / 10i128.pow(digits);
        }
        total = total.checked_add(value).ok_or_else(bad)?;
    }
    Ok(if negative { -total } else { total })
}

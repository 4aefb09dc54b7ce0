//! AuthorizationPolicy (`security.istio.io/v1` or `v1beta1`) as the evaluator reads it: the
//! ones the expansion generates and the ones users write, both decoded from JSON, so the two
//! are evaluated by the same code. Decoding checks what istiod's validation would reject and
//! what the evaluation relies on (EGRESS.md §4 "AuthorizationPolicy"), and says where.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    Allow,
    Deny,
    Audit,
    Custom,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
            Action::Custom => "CUSTOM",
        }
    }
}

/// One decoded policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub namespace: String,
    pub name: String,
    pub action: Action,
    /// CUSTOM's extension provider.
    pub provider: Option<String>,
    /// `None`: every workload of the namespace (of the mesh, in the root namespace).
    pub selector: Option<BTreeMap<String, String>>,
    /// `targetRef`/`targetRefs`: the policy binds to a waypoint or a Gateway API gateway, never
    /// to a gateway Deployment selected by labels (ours).
    pub targets_ref: bool,
    /// `istio.io/dry-run: "true"`: evaluated and logged by Envoy, not enforced.
    pub dry_run: bool,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub from: Option<Vec<From>>,
    #[serde(default)]
    pub to: Option<Vec<To>>,
    #[serde(default)]
    pub when: Option<Vec<Condition>>,
}

#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct From {
    pub source: Option<Source>,
}

#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    pub principals: Option<Vec<String>>,
    pub not_principals: Option<Vec<String>>,
    pub request_principals: Option<Vec<String>>,
    pub not_request_principals: Option<Vec<String>>,
    pub namespaces: Option<Vec<String>>,
    pub not_namespaces: Option<Vec<String>>,
    pub ip_blocks: Option<Vec<String>>,
    pub not_ip_blocks: Option<Vec<String>>,
    pub remote_ip_blocks: Option<Vec<String>>,
    pub not_remote_ip_blocks: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct To {
    pub operation: Option<Operation>,
}

#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    pub hosts: Option<Vec<String>>,
    pub not_hosts: Option<Vec<String>>,
    pub ports: Option<Vec<String>>,
    pub not_ports: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub not_methods: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub not_paths: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    pub key: String,
    pub values: Option<Vec<String>>,
    pub not_values: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpecIn {
    selector: Option<SelectorIn>,
    target_ref: Option<Value>,
    target_refs: Option<Vec<Value>>,
    action: Option<String>,
    provider: Option<ProviderIn>,
    rules: Option<Vec<Rule>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SelectorIn {
    match_labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderIn {
    name: Option<String>,
}

/// Why a policy cannot be evaluated: the object, the field and the problem.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("AuthorizationPolicy {namespace}/{name}: {path}: {message}")]
pub struct PolicyError {
    pub namespace: String,
    pub name: String,
    pub path: String,
    pub message: String,
}

/// Is this document an AuthorizationPolicy (any served version)?
pub fn is_authorization_policy(doc: &Value) -> bool {
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    doc.get("kind").and_then(Value::as_str) == Some("AuthorizationPolicy")
        && matches!(api, "security.istio.io/v1" | "security.istio.io/v1beta1")
}

/// Decode one AuthorizationPolicy document. A missing namespace is `default`, as kubectl does.
pub fn decode(doc: &Value) -> Result<Policy, PolicyError> {
    let meta = doc.get("metadata");
    let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
    let namespace = text("namespace").unwrap_or("default").to_string();
    let name = text("name").unwrap_or("").to_string();
    let err = |path: String, message: String| PolicyError {
        namespace: namespace.clone(),
        name: name.clone(),
        path,
        message,
    };
    if name.is_empty() {
        return Err(err("metadata.name".into(), "required".into()));
    }
    let dry_run = match meta
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(DRY_RUN_ANNOTATION))
    {
        None => false,
        Some(v) => parse_bool(v.as_str().unwrap_or("")).ok_or_else(|| {
            err(
                format!("metadata.annotations[{DRY_RUN_ANNOTATION}]"),
                format!("{v} is not a boolean (istiod rejects the policy)"),
            )
        })?,
    };
    let empty = Value::Object(Default::default());
    let spec_value = doc.get("spec").unwrap_or(&empty);
    let spec: SpecIn = serde_path_to_error::deserialize(spec_value)
        .map_err(|e| err(format!("spec.{}", e.path()), e.inner().to_string()))?;
    let action = match spec.action.as_deref().unwrap_or("ALLOW") {
        "ALLOW" => Action::Allow,
        "DENY" => Action::Deny,
        "AUDIT" => Action::Audit,
        "CUSTOM" => Action::Custom,
        other => {
            return Err(err(
                "spec.action".into(),
                format!("{other:?} is not one of ALLOW, DENY, AUDIT, CUSTOM"),
            ));
        }
    };
    let provider = spec.provider.and_then(|p| p.name);
    if action == Action::Custom && provider.as_deref().unwrap_or("").is_empty() {
        return Err(err(
            "spec.provider.name".into(),
            "a CUSTOM policy needs an extension provider".into(),
        ));
    }
    if dry_run && !matches!(action, Action::Allow | Action::Deny) {
        return Err(err(
            format!("metadata.annotations[{DRY_RUN_ANNOTATION}]"),
            format!(
                "dry-run is supported only for ALLOW and DENY, not {}",
                action.as_str()
            ),
        ));
    }
    let rules = spec.rules.unwrap_or_default();
    if rules.is_empty() && matches!(action, Action::Deny | Action::Custom) {
        return Err(err(
            "spec.rules".into(),
            format!(
                "a {} policy needs rules (istiod rejects it; `rules: [{{}}]` matches every request)",
                action.as_str()
            ),
        ));
    }
    for (i, r) in rules.iter().enumerate() {
        check_rule(r, &format!("spec.rules[{i}]")).map_err(|(p, m)| err(p, m))?;
    }
    Ok(Policy {
        namespace: namespace.clone(),
        name: name.clone(),
        action,
        provider,
        selector: spec
            .selector
            .and_then(|s| s.match_labels)
            .filter(|l| !l.is_empty()),
        targets_ref: spec.target_ref.is_some() || spec.target_refs.is_some_and(|t| !t.is_empty()),
        dry_run,
        rules,
    })
}

/// Go's `strconv.ParseBool`, which istiod uses for the annotation.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

type FieldError = (String, String);

fn check_rule(r: &Rule, at: &str) -> Result<(), FieldError> {
    if let Some(from) = &r.from {
        if from.is_empty() {
            return Err((
                format!("{at}.from"),
                "empty list (istiod rejects `from: []`)".into(),
            ));
        }
        for (i, f) in from.iter().enumerate() {
            let s = f
                .source
                .as_ref()
                .ok_or_else(|| (format!("{at}.from[{i}].source"), "required".to_string()))?;
            let at = format!("{at}.from[{i}].source");
            for (field, list) in [
                ("principals", &s.principals),
                ("notPrincipals", &s.not_principals),
                ("requestPrincipals", &s.request_principals),
                ("notRequestPrincipals", &s.not_request_principals),
                ("namespaces", &s.namespaces),
                ("notNamespaces", &s.not_namespaces),
                ("ipBlocks", &s.ip_blocks),
                ("notIpBlocks", &s.not_ip_blocks),
                ("remoteIpBlocks", &s.remote_ip_blocks),
                ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
            ] {
                no_empty_strings(list, &format!("{at}.{field}"))?;
            }
        }
    }
    if let Some(to) = &r.to {
        if to.is_empty() {
            return Err((
                format!("{at}.to"),
                "empty list (istiod rejects `to: []`)".into(),
            ));
        }
        for (i, t) in to.iter().enumerate() {
            let o = t
                .operation
                .as_ref()
                .ok_or_else(|| (format!("{at}.to[{i}].operation"), "required".to_string()))?;
            let at = format!("{at}.to[{i}].operation");
            for (field, list) in [
                ("hosts", &o.hosts),
                ("notHosts", &o.not_hosts),
                ("methods", &o.methods),
                ("notMethods", &o.not_methods),
                ("paths", &o.paths),
                ("notPaths", &o.not_paths),
            ] {
                no_empty_strings(list, &format!("{at}.{field}"))?;
            }
            for (field, list) in [("ports", &o.ports), ("notPorts", &o.not_ports)] {
                for (j, p) in list.iter().flatten().enumerate() {
                    if p.parse::<u16>().is_err() {
                        return Err((
                            format!("{at}.{field}[{j}]"),
                            format!("{p:?} is not a port number (0-65535)"),
                        ));
                    }
                }
            }
        }
    }
    for (i, c) in r.when.iter().flatten().enumerate() {
        let at = format!("{at}.when[{i}]");
        if c.key.is_empty() {
            return Err((format!("{at}.key"), "required".into()));
        }
        if c.values.as_ref().is_none_or(Vec::is_empty)
            && c.not_values.as_ref().is_none_or(Vec::is_empty)
        {
            return Err((at, "needs values or notValues".into()));
        }
        no_empty_strings(&c.values, &format!("{at}.values"))?;
        no_empty_strings(&c.not_values, &format!("{at}.notValues"))?;
    }
    Ok(())
}

fn no_empty_strings(list: &Option<Vec<String>>, at: &str) -> Result<(), FieldError> {
    match list.iter().flatten().position(String::is_empty) {
        Some(j) => Err((
            format!("{at}[{j}]"),
            "empty string (istiod rejects it)".into(),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(spec: Value) -> Value {
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
               "metadata": {"name": "p", "namespace": "istio-egress"}, "spec": spec})
    }

    #[test]
    fn action_defaults_to_allow_and_selector_is_read() {
        let p = decode(&doc(
            json!({"selector": {"matchLabels": {"istio": "egressgateway"}}}),
        ))
        .unwrap();
        assert_eq!(p.action, Action::Allow);
        assert!(p.rules.is_empty());
        assert_eq!(p.selector.unwrap()["istio"], "egressgateway");
        assert!(!p.dry_run);
    }

    #[test]
    fn dry_run_annotation_is_a_go_boolean() {
        let mut d = doc(json!({"action": "DENY", "rules": [{}]}));
        d["metadata"]["annotations"] = json!({"istio.io/dry-run": "True"});
        assert!(decode(&d).unwrap().dry_run);
        d["metadata"]["annotations"] = json!({"istio.io/dry-run": "yes"});
        let e = decode(&d).unwrap_err();
        assert_eq!(e.path, "metadata.annotations[istio.io/dry-run]");
    }

    #[test]
    fn errors_name_object_field_and_problem() {
        let e = decode(&doc(
            json!({"rules": [{"to": [{"operation": {"ports": ["443", "https"]}}]}]}),
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "AuthorizationPolicy istio-egress/p: spec.rules[0].to[0].operation.ports[1]: \"https\" is not a port number (0-65535)"
        );
        let e = decode(&doc(
            json!({"rules": [{"from": [{"source": {"principal": ["x"]}}]}]}),
        ))
        .unwrap_err();
        assert!(e.path.starts_with("spec.rules[0].from[0].source"), "{e}");
        assert!(e.message.contains("unknown field `principal`"), "{e}");
        let e = decode(&doc(json!({"action": "DENY"}))).unwrap_err();
        assert_eq!(e.path, "spec.rules");
        let e = decode(&doc(json!({"action": "CUSTOM", "rules": [{}]}))).unwrap_err();
        assert_eq!(e.path, "spec.provider.name");
        let e = decode(&doc(json!({"action": "REJECT"}))).unwrap_err();
        assert_eq!(e.path, "spec.action");
        let e = decode(&doc(json!({"rules": [{"from": []}]}))).unwrap_err();
        assert_eq!(e.path, "spec.rules[0].from");
        let e = decode(&doc(json!({"rules": [{"when": [{"key": "source.ip"}]}]}))).unwrap_err();
        assert_eq!(e.path, "spec.rules[0].when[0]");
        let e = decode(&doc(
            json!({"rules": [{"to": [{"operation": {"hosts": [""]}}]}]}),
        ))
        .unwrap_err();
        assert_eq!(e.path, "spec.rules[0].to[0].operation.hosts[0]");
    }

    #[test]
    fn target_refs_are_recognised() {
        let p = decode(&doc(json!({"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "w"}]})))
            .unwrap();
        assert!(p.targets_ref);
    }
}

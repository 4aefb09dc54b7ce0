//! The parts of Istio's MeshConfig that decide egress: `outboundTrafficPolicy.mode` (what a
//! sidecar does with a host no ServiceEntry declares), `rootNamespace` (whose AuthorizationPolicies
//! apply mesh-wide) and `trustDomain`/`trustDomainAliases` (how principals are written).
//! Parsed from text (no I/O here): a MeshConfig document, Helm values with a `meshConfig` key,
//! or the `istio` ConfigMap whose `data.mesh` holds the MeshConfig (EGRESS.md "Outbound traffic
//! policy"; Istio's default when nothing sets the mode is ALLOW_ANY).

use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    /// Hosts no ServiceEntry declares go out directly from the client's sidecar.
    AllowAny,
    /// Hosts no ServiceEntry declares are blocked by the client's sidecar.
    RegistryOnly,
}

impl OutboundMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundMode::AllowAny => "ALLOW_ANY",
            OutboundMode::RegistryOnly => "REGISTRY_ONLY",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    pub outbound_mode: OutboundMode,
    /// Whether the mode was written (false: Istio's default ALLOW_ANY applies).
    pub outbound_mode_set: bool,
    pub root_namespace: String,
    pub trust_domain: Option<String>,
    pub trust_domain_aliases: Vec<String>,
}

impl Default for MeshConfig {
    /// Istio's defaults: ALLOW_ANY, root namespace `istio-system`, trust domain from the flags.
    fn default() -> Self {
        MeshConfig {
            outbound_mode: OutboundMode::AllowAny,
            outbound_mode_set: false,
            root_namespace: "istio-system".into(),
            trust_domain: None,
            trust_domain_aliases: Vec::new(),
        }
    }
}

/// Parse a MeshConfig, Helm values (`meshConfig:`) or an `istio` ConfigMap (`data.mesh`).
/// `source` names the input in errors.
pub fn parse(source: &str, text: &str) -> Result<MeshConfig, String> {
    let doc: Value = serde_saphyr::from_str(text)
        .map_err(|e| format!("{source}: invalid YAML: {}", first_line(&e.to_string())))?;
    if doc.get("kind").and_then(Value::as_str) == Some("ConfigMap") {
        let mesh = doc.pointer("/data/mesh").ok_or_else(|| {
            format!("{source}: data.mesh: missing (the istio ConfigMap keeps the MeshConfig there)")
        })?;
        let text = mesh
            .as_str()
            .ok_or_else(|| format!("{source}: data.mesh: not a string"))?;
        let inner: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_saphyr::from_str(text).map_err(|e| {
                format!(
                    "{source}: data.mesh: invalid YAML: {}",
                    first_line(&e.to_string())
                )
            })?
        };
        return from_value(source, "data.mesh.", &inner);
    }
    match doc.get("meshConfig") {
        Some(inner) => from_value(source, "meshConfig.", inner),
        None => from_value(source, "", &doc),
    }
}

/// From the ConfigMap's `mesh` key alone (what `serve` reads from the cluster).
pub fn from_mesh_key(source: &str, text: &str) -> Result<MeshConfig, String> {
    if text.trim().is_empty() {
        return Ok(MeshConfig::default());
    }
    let inner: Value = serde_saphyr::from_str(text).map_err(|e| {
        format!(
            "{source}: mesh: invalid YAML: {}",
            first_line(&e.to_string())
        )
    })?;
    from_value(source, "mesh.", &inner)
}

/// The outbound traffic policy the rules see (M1): the mode in force and where it comes from,
/// for the message that names what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    pub mode: OutboundMode,
    /// Where the mode is set, or why it is the default: "ConfigMap istio-system/istio", ...
    pub source: String,
}

impl MeshConfig {
    /// The outbound policy this one configuration sets; `source` names it (a file, a ConfigMap).
    pub fn outbound(&self, source: &str) -> Outbound {
        let how = if self.outbound_mode_set {
            ""
        } else {
            ", mode not set: Istio's default"
        };
        Outbound {
            mode: self.outbound_mode,
            source: format!("{source}{how}"),
        }
    }
}

/// The mesh's outbound policy from its ConfigMaps in `namespace` (name and MeshConfig, the
/// default `istio` and any revisioned `istio-<rev>`): ALLOW_ANY when there is none (Istio's
/// default) or when any of them leaves it ALLOW_ANY, because the sidecars of that revision let
/// undeclared hosts out; the source names those ConfigMaps. REGISTRY_ONLY when all say so.
pub fn outbound_of(namespace: &str, configs: &[(String, MeshConfig)]) -> Outbound {
    if configs.is_empty() {
        return Outbound {
            mode: OutboundMode::AllowAny,
            source: format!("no ConfigMap {namespace}/istio: Istio's default"),
        };
    }
    let open: Vec<String> = configs
        .iter()
        .filter(|(_, m)| m.outbound_mode == OutboundMode::AllowAny)
        .map(|(name, m)| m.outbound(&format!("ConfigMap {namespace}/{name}")).source)
        .collect();
    if open.is_empty() {
        let names: Vec<String> = configs
            .iter()
            .map(|(name, _)| format!("ConfigMap {namespace}/{name}"))
            .collect();
        return Outbound {
            mode: OutboundMode::RegistryOnly,
            source: names.join(", "),
        };
    }
    Outbound {
        mode: OutboundMode::AllowAny,
        source: open.join("; "),
    }
}

fn from_value(source: &str, at: &str, v: &Value) -> Result<MeshConfig, String> {
    let mut out = MeshConfig::default();
    if v.is_null() {
        return Ok(out);
    }
    if !v.is_object() {
        return Err(format!(
            "{source}: {}: not a mapping",
            at.trim_end_matches('.')
        ));
    }
    if let Some(mode) = v.pointer("/outboundTrafficPolicy/mode") {
        out.outbound_mode = match mode.as_str() {
            Some("ALLOW_ANY") => OutboundMode::AllowAny,
            Some("REGISTRY_ONLY") => OutboundMode::RegistryOnly,
            _ => {
                return Err(format!(
                    "{source}: {at}outboundTrafficPolicy.mode: {mode} is not ALLOW_ANY or REGISTRY_ONLY"
                ));
            }
        };
        out.outbound_mode_set = true;
    }
    let text = |k: &str| -> Result<Option<String>, String> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(Value::String(_)) => Ok(None),
            Some(other) => Err(format!("{source}: {at}{k}: {other} is not a string")),
        }
    };
    if let Some(ns) = text("rootNamespace")? {
        out.root_namespace = ns;
    }
    out.trust_domain = text("trustDomain")?;
    if let Some(aliases) = v.get("trustDomainAliases") {
        out.trust_domain_aliases = aliases
            .as_array()
            .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect())
            .ok_or_else(|| format!("{source}: {at}trustDomainAliases: not a list of strings"))?;
    }
    Ok(out)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_mode_is_allow_any() {
        let m = parse("f", "rootNamespace: istio-system\n").unwrap();
        assert_eq!(m.outbound_mode, OutboundMode::AllowAny);
        assert!(!m.outbound_mode_set);
        assert_eq!(from_mesh_key("cm", "").unwrap(), MeshConfig::default());
    }

    #[test]
    fn mesh_config_values_and_config_map_forms() {
        let plain = parse("f", "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\ntrustDomain: prod.example\ntrustDomainAliases: [old.example]\n").unwrap();
        assert_eq!(plain.outbound_mode, OutboundMode::RegistryOnly);
        assert_eq!(plain.trust_domain.as_deref(), Some("prod.example"));
        assert_eq!(plain.trust_domain_aliases, ["old.example"]);
        let values = parse(
            "f",
            "meshConfig:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
        )
        .unwrap();
        assert_eq!(values.outbound_mode, OutboundMode::RegistryOnly);
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n    rootNamespace: mesh-root\n    outboundTrafficPolicy:\n      mode: REGISTRY_ONLY\n";
        let m = parse("cm.yaml", cm).unwrap();
        assert_eq!(m.outbound_mode, OutboundMode::RegistryOnly);
        assert_eq!(m.root_namespace, "mesh-root");
    }

    #[test]
    fn outbound_is_allow_any_without_config_maps_or_when_any_leaves_it_open() {
        let registry = parse("f", "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n").unwrap();
        let unset = MeshConfig::default();
        let none = outbound_of("istio-system", &[]);
        assert_eq!(none.mode, OutboundMode::AllowAny);
        assert_eq!(
            none.source,
            "no ConfigMap istio-system/istio: Istio's default"
        );
        let closed = outbound_of("istio-system", &[("istio".into(), registry.clone())]);
        assert_eq!(closed.mode, OutboundMode::RegistryOnly);
        assert_eq!(closed.source, "ConfigMap istio-system/istio");
        let mixed = outbound_of(
            "istio-system",
            &[("istio".into(), registry), ("istio-canary".into(), unset)],
        );
        assert_eq!(mixed.mode, OutboundMode::AllowAny);
        assert_eq!(
            mixed.source,
            "ConfigMap istio-system/istio-canary, mode not set: Istio's default"
        );
    }

    #[test]
    fn errors_name_source_and_field() {
        assert_eq!(
            parse("f", "outboundTrafficPolicy: {mode: BLOCK}\n").unwrap_err(),
            "f: outboundTrafficPolicy.mode: \"BLOCK\" is not ALLOW_ANY or REGISTRY_ONLY"
        );
        assert_eq!(
            parse("cm", "kind: ConfigMap\ndata: {other: x}\n").unwrap_err(),
            "cm: data.mesh: missing (the istio ConfigMap keeps the MeshConfig there)"
        );
        assert!(
            parse("f", "a: [")
                .unwrap_err()
                .starts_with("f: invalid YAML")
        );
    }
}

//! G6-G8: an EgressGuardrail itself, at admission (our validating webhook sees guardrails too)
//! and in `check --guardrails`.
//!
//! * G6: each `allowedHosts` / `deniedHosts` entry is a DNS glob (`dns_glob`);
//! * G7: each `allowedGateways` entry names (name and namespace) a VirtualGateway that exists;
//! * G8: `namespaceSelector` parses (operators, values) and `enforcementAction` is known.

use crate::api::egress_guardrail::EgressGuardrail;
use crate::api::{list, text};
use crate::core::findings::{Finding, ObjectId, Report};
use crate::core::snapshot::Snapshot;

use super::{DnsGlob, parse_selector};

pub const KIND: &str = "EgressGuardrail";

/// The id findings on a guardrail carry (cluster-scoped: no namespace).
pub fn id(g: &EgressGuardrail) -> ObjectId {
    ObjectId {
        kind: KIND.to_string(),
        namespace: String::new(),
        name: g.metadata.name.clone().unwrap_or_default(),
    }
}

/// Every finding on `g` (all errors); VirtualGateways are looked up in `snap`.
pub fn validate(g: &EgressGuardrail, snap: &Snapshot) -> Vec<Finding> {
    let mut r = Report::new(id(g), false);
    let spec = &g.spec;
    for (field, v) in [
        ("allowedHosts", &spec.allowed_hosts),
        ("deniedHosts", &spec.denied_hosts),
    ] {
        for (i, h) in list(v).iter().enumerate() {
            if let Err(why) = DnsGlob::parse(h) {
                r.error("G6", format!("spec.{field}[{i}]"), why);
            }
        }
    }
    for (i, gw) in list(&spec.allowed_gateways).iter().enumerate() {
        let path = format!("spec.allowedGateways[{i}]");
        let (ns, name) = (text(&gw.namespace), text(&gw.name));
        if ns.is_empty() || name.is_empty() {
            r.error(
                "G7",
                path,
                "a gateway reference needs name and namespace (a guardrail has no namespace to default to)",
            );
        } else if snap.virtual_gateway(ns, name).is_none() {
            r.error(
                "G7",
                path,
                format!("VirtualGateway {ns}/{name} does not exist"),
            );
        }
    }
    if let Err(why) = parse_selector(spec.namespace_selector.as_ref()) {
        r.error(
            "G8",
            "spec.namespaceSelector",
            format!("not a valid label selector: {why}"),
        );
    }
    if let Some(a) = &spec.enforcement_action
        && !["deny", "warn", "audit"].contains(&a.as_str())
    {
        r.error(
            "G8",
            "spec.enforcementAction",
            format!("{a:?} is not one of deny, warn, audit"),
        );
    }
    r.findings
}

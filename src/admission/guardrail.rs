//! Reviews of our own EgressGuardrail (`policy.egress-webhook.dev`) at /validate: a guardrail
//! with a bad host glob, a reference to a VirtualGateway that does not exist, or a bad selector
//! or action is denied with the field path (G6-G8), like the Gloo kinds' rules.

use super::bounded::MAX_OBJECT_VALUES;
use super::review::{GroupVersionKind, Outcome, RequestIn};
use crate::api::egress_guardrail::{EgressGuardrail, POLICY_GROUP};
use crate::core::text::printable;
use crate::core::{
    Finding, Severity, Snapshot,
    guardrails::validate::{KIND, validate as rules},
};

/// Is the request for an EgressGuardrail (any version: matchPolicy Equivalent)?
pub fn is_guardrail(gvk: &GroupVersionKind) -> bool {
    gvk.group == POLICY_GROUP && gvk.kind == KIND
}

/// The verdict on a guardrail's CREATE or UPDATE; other operations are allowed untouched.
pub fn validate(req: &RequestIn, outcome: &mut Outcome, snap: &Snapshot) {
    if !matches!(req.operation.as_deref(), Some("CREATE" | "UPDATE")) {
        return;
    }
    let id = format!("{KIND} {}", outcome.name);
    let Some(raw) = req.object.as_ref().filter(|o| !o.over) else {
        outcome.deny(
            400,
            "BadRequest",
            format!("{id}: the request has no readable object"),
        );
        return;
    };
    if raw.values > MAX_OBJECT_VALUES {
        outcome.deny(
            422,
            "Invalid",
            format!(
                "{id}: more than {MAX_OBJECT_VALUES} JSON values, more than egress-webhook reviews"
            ),
        );
        return;
    }
    let g: EgressGuardrail = match serde_path_to_error::deserialize(raw.value()) {
        Ok(g) => g,
        Err(e) => {
            let (path, message) = (e.path().to_string(), e.inner().to_string());
            outcome.deny(
                422,
                "Invalid",
                format!("{id}: {}: {}", printable(&path), printable(&message)),
            );
            return;
        }
    };
    let findings = rules(&g, snap);
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(Finding::to_string)
        .collect();
    if !errors.is_empty() {
        outcome.deny(422, "Invalid", errors.join("\n"));
    }
    outcome.findings = findings;
    // G7 may come from a cache that has not seen a VirtualGateway created a moment ago: the
    // handler looks its references up live and decides again.
    outcome.reviewed_guardrail = Some(Box::new(g));
}

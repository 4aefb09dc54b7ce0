//! "Who can reach this host?": Istio's AuthorizationPolicy semantics at the egress gateway,
//! evaluated offline over the policies the expansion generates and the ones users write
//! (issue 15). Pure: the CLI hands in decoded objects and prints what comes back.
//!
//! - `policy`: AuthorizationPolicy documents decoded (and checked) for evaluation
//! - `pattern`: Istio's value matching and trust-domain handling of principals
//! - `tri`: three-valued matching (yes / no / depends on the request)
//! - `rule`: one rule against what is known of a request
//! - `decide`: which policies apply to the gateway pods, then CUSTOM, DENY, ALLOW

pub mod decide;
pub mod pattern;
pub mod policy;
pub mod report;
pub mod route;
pub mod rule;
pub mod tri;

#[cfg(test)]
mod decide_tests;

pub use decide::{
    DENIED_TEXT, Decision, PolicyRef, Reason, RuleHit, Skipped, Verdict, Workload, decide, select,
};
pub use pattern::TrustDomains;
pub use policy::{Action, Policy, PolicyError};
pub use rule::Request;

/// The generated AuthorizationPolicies among expansion output, decoded like user-written ones.
pub fn generated_policies(
    objects: &[crate::istio::IstioObject],
) -> Result<Vec<Policy>, PolicyError> {
    objects
        .iter()
        .filter(|o| o.kind == "AuthorizationPolicy")
        .map(|o| {
            let value = serde_json::to_value(o).map_err(|e| PolicyError {
                namespace: o.namespace().to_string(),
                name: o.name().to_string(),
                path: "spec".into(),
                message: e.to_string(),
            })?;
            policy::decode(&value)
        })
        .collect()
}

//! Istio's order of evaluation at one workload (AuthorizationPolicy reference, "Authorization
//! Policy" concept page): CUSTOM policies that match send the request to their extension
//! provider, which may deny; then any matching DENY rule denies; then, if no ALLOW policy
//! selects the workload, the request is allowed; else a matching ALLOW rule allows it; else it is
//! denied. AUDIT never changes the answer. Policies annotated `istio.io/dry-run` are not
//! enforced: the answer ignores them, and a second answer says what enforcing them would give.

use std::collections::BTreeMap;

use serde::Serialize;

use super::policy::{Action, Policy};
use super::rule::{Request, rule_matches};
use super::tri::Tri;

/// What a client gets from an Envoy RBAC denial: status 403 and this body.
pub const DENIED_TEXT: &str = "403 RBAC: access denied";

/// The gateway pods a request reaches: their namespace and (known) labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Workload {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PolicyRef {
    pub namespace: String,
    pub name: String,
    pub action: Action,
    pub dry_run: bool,
}

impl PolicyRef {
    fn of(p: &Policy) -> Self {
        PolicyRef {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            action: p.action,
            dry_run: p.dry_run,
        }
    }
}

impl std::fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dry = if self.dry_run { " (dry-run)" } else { "" };
        write!(
            f,
            "{} AuthorizationPolicy {}/{}{dry}",
            self.action.as_str(),
            self.namespace,
            self.name
        )
    }
}

/// A rule that matches the request: for certain (`depends_on` empty) or for some requests only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleHit {
    pub policy: PolicyRef,
    pub rule: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

impl std::fmt::Display for RuleHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rule {}", self.policy, self.rule)?;
        if !self.depends_on.is_empty() {
            write!(f, " (when {})", self.depends_on.join(" and "))?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allowed,
    Denied,
    /// A rule on a request attribute (method, path, header, IP, JWT) or a CUSTOM provider decides.
    DependsOnRequest,
}

/// What decides when every rule that depends on the request does not match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Reason {
    /// A DENY rule (denied) or an ALLOW rule (allowed) matches.
    Rule(RuleHit),
    /// No ALLOW policy selects the workload: allowed.
    NoAllowPolicy,
    /// ALLOW policies select the workload, and none of their rules matches: denied.
    NoAllowRuleMatched { policies: Vec<PolicyRef> },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// The answer when every rule in `conditional` does not match.
    pub allowed: bool,
    pub reason: Reason,
    /// DENY and ALLOW rules before the deciding one that match only some requests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditional: Vec<RuleHit>,
    /// CUSTOM rules that match: their provider is asked first and may deny.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom: Vec<RuleHit>,
    /// The answer with the dry-run policies enforced too, when some selects the workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Box<Decision>>,
}

/// Why a policy in the workload's namespace (or the root namespace) is not applied to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub policy: PolicyRef,
    pub why: String,
}

/// The policies that apply to `workload`: in its namespace or the root namespace, with no
/// selector or a selector whose labels the workload has; `targetRef(s)` policies bind to
/// waypoints and Gateway API gateways, never to a gateway Deployment. Policies elsewhere are
/// left out silently; those in scope that still do not apply are returned with the reason.
pub fn select<'a>(
    policies: &'a [Policy],
    workload: &Workload,
    root_namespace: &str,
) -> (Vec<&'a Policy>, Vec<Skipped>) {
    let mut applied = Vec::new();
    let mut skipped = Vec::new();
    for p in policies {
        if p.namespace != workload.namespace && p.namespace != root_namespace {
            continue;
        }
        if p.targets_ref {
            skipped.push(Skipped {
                policy: PolicyRef::of(p),
                why: "targetRef binds it to a waypoint or a Gateway API gateway, not to gateway pods selected by labels".into(),
            });
            continue;
        }
        match &p.selector {
            None => applied.push(p),
            Some(sel) if sel.iter().all(|(k, v)| workload.labels.get(k) == Some(v)) => {
                applied.push(p)
            }
            Some(sel) => {
                let wanted: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
                skipped.push(Skipped {
                    policy: PolicyRef::of(p),
                    why: format!(
                        "its selector ({}) is not among the gateway pods' labels",
                        wanted.join(",")
                    ),
                });
            }
        }
    }
    (applied, skipped)
}

/// The answer for one request at a workload, from the policies `select` applied.
pub fn decide(policies: &[&Policy], req: &Request<'_>) -> Decision {
    let enforced: Vec<&Policy> = policies.iter().copied().filter(|p| !p.dry_run).collect();
    let mut decision = decide_among(&enforced, req);
    if policies.iter().any(|p| p.dry_run) {
        // Enforcing a dry-run policy = evaluating it like the others (the annotation removed).
        decision.dry_run = Some(Box::new(decide_among(policies, req)));
    }
    decision
}

fn hits<'a>(
    policies: &'a [&Policy],
    action: Action,
    req: &'a Request<'_>,
) -> impl Iterator<Item = (RuleHit, bool)> + 'a {
    policies
        .iter()
        .filter(move |p| p.action == action)
        .flat_map(move |p| {
            p.rules.iter().enumerate().filter_map(move |(i, r)| {
                let (certain, depends_on) = match rule_matches(r, req) {
                    Tri::Yes => (true, Vec::new()),
                    Tri::No => return None,
                    Tri::Depends(on) => (false, on.into_iter().collect()),
                };
                Some((
                    RuleHit {
                        policy: PolicyRef::of(p),
                        rule: i,
                        depends_on,
                    },
                    certain,
                ))
            })
        })
}

fn decide_among(policies: &[&Policy], req: &Request<'_>) -> Decision {
    let custom: Vec<RuleHit> = hits(policies, Action::Custom, req)
        .map(|(h, _)| h)
        .collect();
    let mut conditional = Vec::new();
    let mut outcome = None;
    for (hit, certain) in hits(policies, Action::Deny, req) {
        if certain {
            outcome = Some((false, Reason::Rule(hit)));
            break;
        }
        conditional.push(hit);
    }
    let outcome = outcome.unwrap_or_else(|| {
        let allow: Vec<&&Policy> = policies
            .iter()
            .filter(|p| p.action == Action::Allow)
            .collect();
        if allow.is_empty() {
            return (true, Reason::NoAllowPolicy);
        }
        for (hit, certain) in hits(policies, Action::Allow, req) {
            if certain {
                return (true, Reason::Rule(hit));
            }
            conditional.push(hit);
        }
        let mut refs: Vec<PolicyRef> = allow.iter().map(|p| PolicyRef::of(p)).collect();
        refs.sort();
        (false, Reason::NoAllowRuleMatched { policies: refs })
    });
    let (allowed, reason) = outcome;
    // A conditional rule changes the answer only when its effect is the other one.
    let other_effect = if allowed { Action::Deny } else { Action::Allow };
    let verdict = if conditional.iter().any(|h| h.policy.action == other_effect)
        || (allowed && !custom.is_empty())
    {
        Verdict::DependsOnRequest
    } else if allowed {
        Verdict::Allowed
    } else {
        Verdict::Denied
    };
    Decision {
        verdict,
        allowed,
        reason,
        conditional,
        custom,
        dry_run: None,
    }
}

//! G1-G5: the guardrails governing an object's namespace, applied to it.
//!
//! * G1 `allowedHosts`: every host within one glob (an ExternalService of addresses only has no
//!   host a glob could allow: it violates G1 when `allowedHosts` is set);
//! * G2 `deniedHosts`: no host that could reach a denied name (deny wins over allow);
//! * G3 `requireEgressGateway`: every port has `egressGatewayRoutes`;
//! * G4 `allowedGateways`: every VirtualGateway reference is one of them (local cluster);
//! * G5 `requireAccessPolicy`: an AccessPolicy selects the ExternalService; checked on the
//!   ExternalService, and on an AccessPolicy whose deletion or change would leave one unselected.
//!
//! Objects are seen defaulted (DESIGN §9: cross-object rules look at the defaulted objects, and
//! gateway references get their namespace from defaulting).

use std::collections::BTreeSet;

use crate::api::{AccessPolicy, ExternalService, list, text};
use crate::core::{
    Operation, Options,
    defaults::default_object,
    findings::{Finding, ObjectId, Report, Severity},
    object::Object,
    selectors::is_local_cluster,
    snapshot::{Key, Snapshot, external_service_destinations, key},
};

use super::{Action, Compiled};

/// One guardrail's verdict on one field of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub guardrail: String,
    pub action: Action,
    /// Severity: error for `deny`, warning for `warn` and `audit`.
    pub finding: Finding,
}

/// What admission adds to the other rules' findings: `deny` violations as errors, `warn` ones
/// as warnings; `audit` ones are left to the audit.
pub fn admission_findings(
    obj: &Object,
    snap: &Snapshot,
    opts: &Options,
    op: Operation<'_>,
) -> Vec<Finding> {
    violations(obj, snap, opts, op)
        .into_iter()
        .filter(|v| v.action != Action::Audit)
        .map(|v| v.finding)
        .collect()
}

/// Every guardrail violation of `obj` (defaulted) under `op`, whatever the action.
pub fn violations(
    obj: &Object,
    snap: &Snapshot,
    opts: &Options,
    op: Operation<'_>,
) -> Vec<Violation> {
    if snap.guardrails().is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    match (obj, op) {
        (Object::ExternalService(es), Operation::Create | Operation::Update(_)) => {
            out = external_service_violations(es, snap);
        }
        (Object::AccessPolicy(ap), Operation::Delete) => {
            access_policy_change(ap, None, snap, &mut out);
        }
        (Object::AccessPolicy(ap), Operation::Update(Object::AccessPolicy(old))) => {
            if let Object::AccessPolicy(old) =
                default_object(Object::AccessPolicy(old.clone()), opts)
            {
                access_policy_change(&old, Some(ap), snap, &mut out);
            }
        }
        _ => {}
    }
    out
}

/// Every guardrail violation of an ExternalService (defaulted), as admission of it would see
/// them (the audit's unit of work).
pub fn external_service_violations(es: &ExternalService, snap: &Snapshot) -> Vec<Violation> {
    let ns = own_namespace(es);
    let id = ObjectId {
        kind: "ExternalService".to_string(),
        namespace: ns.to_string(),
        name: es.metadata.name.clone().unwrap_or_default(),
    };
    let mut out = Vec::new();
    for c in snap.guardrails().governing(ns) {
        let mut sink = Sink::new(id.clone(), c);
        external_service(es, c, snap, &mut sink);
        out.extend(sink.done());
    }
    out
}

/// The keys of the ExternalServices an AccessPolicy selects (the audit follows them when the
/// policy changes).
pub fn selected_keys(ap: &AccessPolicy, snap: &Snapshot) -> BTreeSet<Key> {
    selected(ap, snap)
        .into_iter()
        .map(|(_, es)| es_key(es))
        .collect()
}

/// Collects one guardrail's findings on one object.
struct Sink<'a> {
    report: Report,
    c: &'a Compiled,
}

impl<'a> Sink<'a> {
    fn new(id: ObjectId, c: &'a Compiled) -> Self {
        Sink {
            report: Report::new(id, false),
            c,
        }
    }

    fn push(&mut self, rule: &'static str, path: impl Into<String>, message: String) {
        let severity = match self.c.action {
            Action::Deny => Severity::Error,
            Action::Warn | Action::Audit => Severity::Warning,
        };
        self.report.push(severity, rule, path, message);
    }

    fn done(self) -> Vec<Violation> {
        let (name, action) = (self.c.name().to_string(), self.c.action);
        self.report
            .findings
            .into_iter()
            .map(|finding| Violation {
                guardrail: name.clone(),
                action,
                finding,
            })
            .collect()
    }
}

fn own_namespace(es: &ExternalService) -> &str {
    es.metadata.namespace.as_deref().unwrap_or("default")
}

fn es_key(es: &ExternalService) -> Key {
    key(own_namespace(es), es.metadata.name.as_deref().unwrap_or(""))
}

fn external_service(es: &ExternalService, c: &Compiled, snap: &Snapshot, sink: &mut Sink<'_>) {
    let spec = &c.guardrail.spec;
    let g = c.name().to_string();
    let hosts = list(&es.spec.hosts);
    // G1
    if !list(&spec.allowed_hosts).is_empty() {
        let allowed = list(&spec.allowed_hosts).join(", ");
        for (i, h) in hosts.iter().enumerate() {
            if !c.allowed.iter().any(|a| a.covers(h)) {
                sink.push(
                    "G1",
                    format!("spec.hosts[{i}]"),
                    format!(
                        "host {h:?} is not within allowedHosts of EgressGuardrail {g} ({allowed})"
                    ),
                );
            }
        }
        if hosts.is_empty() && !list(&es.spec.addresses).is_empty() {
            sink.push(
                "G1",
                "spec.addresses",
                format!(
                    "EgressGuardrail {g} allows only hosts within allowedHosts ({allowed}); addresses are not hosts"
                ),
            );
        }
    }
    // G2
    for (i, h) in hosts.iter().enumerate() {
        if let Some(d) = c.denied.iter().find(|d| d.overlaps(h)) {
            sink.push(
                "G2",
                format!("spec.hosts[{i}]"),
                format!(
                    "host {h:?} reaches {:?}, in deniedHosts of EgressGuardrail {g}",
                    d.as_str()
                ),
            );
        }
    }
    let ports = list(&es.spec.ports);
    // G3
    if spec.require_egress_gateway == Some(true) {
        for (i, p) in ports.iter().enumerate() {
            if p.egress_gateway_routes.is_none() {
                sink.push(
                    "G3",
                    format!("spec.ports[{i}]"),
                    format!(
                        "port {} has no egressGatewayRoutes: EgressGuardrail {g} requires egress through a gateway (requireEgressGateway)",
                        p.number.unwrap_or(0)
                    ),
                );
            }
        }
    }
    // G4
    let allowed_gw = list(&spec.allowed_gateways);
    if !allowed_gw.is_empty() {
        let allowed: BTreeSet<Key> = allowed_gw
            .iter()
            .map(|a| key(text(&a.namespace), text(&a.name)))
            .collect();
        let shown = allowed
            .iter()
            .map(|(ns, n)| format!("{ns}/{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        for (i, p) in ports.iter().enumerate() {
            let Some(routes) = &p.egress_gateway_routes else {
                continue;
            };
            for (j, gw) in list(&routes.virtual_gateway_refs).iter().enumerate() {
                let ns = match text(&gw.namespace) {
                    "" => own_namespace(es),
                    ns => ns,
                };
                let local = is_local_cluster(text(&gw.cluster), snap.cluster());
                if local && allowed.contains(&key(ns, text(&gw.name))) {
                    continue;
                }
                let whose = if local {
                    String::new()
                } else {
                    format!(" of cluster {}", text(&gw.cluster))
                };
                sink.push(
                    "G4",
                    format!("spec.ports[{i}].egressGatewayRoutes.virtualGatewayRefs[{j}]"),
                    format!(
                        "VirtualGateway {ns}/{}{whose} is not in allowedGateways of EgressGuardrail {g} ({shown})",
                        text(&gw.name)
                    ),
                );
            }
        }
    }
    // G5
    if spec.require_access_policy == Some(true) && snap.access_policies_selecting(es).is_empty() {
        let (ns, name) = es_key(es);
        // Under deny the policy must come first, and A14 lets it name the ExternalService before
        // that exists (`rules::access_policy::destinations::policy_first`); under warn or audit
        // the ExternalService is admitted anyway, and a named policy must wait for it.
        let how = match c.action {
            Action::Deny => format!(
                "it may name ExternalService {ns}/{name}, namespace included, before that exists"
            ),
            Action::Warn | Action::Audit => {
                "a label or namespace selector may select an ExternalService before it exists"
                    .to_string()
            }
        };
        sink.push(
            "G5",
            "metadata.name",
            format!(
                "no AccessPolicy selects ExternalService {ns}/{name}: EgressGuardrail {g} requires one (requireAccessPolicy); create the AccessPolicy first ({how})"
            ),
        );
    }
}

/// G5 on an AccessPolicy: the ExternalServices `before` selects and `after` (`None`: deleted)
/// no longer does, which no other AccessPolicy selects, in namespaces whose guardrails require one.
fn access_policy_change(
    before: &AccessPolicy,
    after: Option<&AccessPolicy>,
    snap: &Snapshot,
    out: &mut Vec<Violation>,
) {
    let ap_ns = before.metadata.namespace.as_deref().unwrap_or("default");
    let ap_name = before.metadata.name.as_deref().unwrap_or("");
    let ap_key = key(ap_ns, ap_name);
    let id = ObjectId {
        kind: "AccessPolicy".to_string(),
        namespace: ap_ns.to_string(),
        name: ap_name.to_string(),
    };
    let still: BTreeSet<Key> = after
        .map(|a| {
            selected(a, snap)
                .into_iter()
                .map(|(_, es)| es_key(es))
                .collect()
        })
        .unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, es) in selected(before, snap) {
        let k = es_key(es);
        if still.contains(&k) || !seen.insert(k.clone()) {
            continue;
        }
        let others = snap.access_policies_selecting(es).into_iter().any(|p| {
            key(
                p.metadata.namespace.as_deref().unwrap_or("default"),
                p.metadata.name.as_deref().unwrap_or(""),
            ) != ap_key
        });
        if others {
            continue;
        }
        for c in snap.guardrails().governing(&k.0) {
            if c.guardrail.spec.require_access_policy != Some(true) {
                continue;
            }
            let es_id = format!("ExternalService {}/{}", k.0, k.1);
            let what = if after.is_some() {
                format!("after this change of AccessPolicy {ap_ns}/{ap_name}, {es_id} is")
            } else {
                format!("deleting AccessPolicy {ap_ns}/{ap_name} leaves {es_id}")
            };
            let mut sink = Sink::new(id.clone(), c);
            sink.push(
                "G5",
                format!("spec.applyToDestinations[{i}]"),
                format!(
                    "{what} selected by no AccessPolicy, which EgressGuardrail {} requires (requireAccessPolicy)",
                    c.name()
                ),
            );
            out.extend(sink.done());
        }
    }
}

/// The ExternalServices an AccessPolicy selects, with the index of the destination that does
/// (none when `applyToWorkloads` is set: its destinations are ignored, A4).
fn selected<'s>(ap: &AccessPolicy, snap: &'s Snapshot) -> Vec<(usize, &'s ExternalService)> {
    if !list(&ap.spec.apply_to_workloads).is_empty() {
        return Vec::new();
    }
    external_service_destinations(ap)
        .into_iter()
        .flat_map(|(i, sel)| {
            snap.external_services_selected(sel)
                .into_iter()
                .map(move |es| (i, es))
        })
        .collect()
}

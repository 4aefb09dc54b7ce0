//! `applyToDestinations` rules: A1 (kind), A3 (port), A14 (the ExternalService exists),
//! A15 (the ExternalService is routed through an egress gateway).

use crate::api::{
    AccessPolicy, DestinationSelector, ExternalService, ObjectSelector, PortSelector,
    external_service::ExternalServicePort, list, text,
};
use crate::core::{
    Options, findings::Report, guardrails::Action, rules::syntax::is_port, snapshot::Snapshot,
};

use super::{case_hint, labels_text, nothing_selected, other_cluster};

const EXTERNAL_SERVICE: &str = "EXTERNAL_SERVICE";

/// How many ExternalServices a message names before it says "and N more".
const NAMED_IN_MESSAGE: usize = 3;

pub(super) fn validate(ap: &AccessPolicy, snap: &Snapshot, opts: &Options, report: &mut Report) {
    // With applyToWorkloads set, Gloo ignores the destinations (A4 says so): their syntax is
    // still checked, but we do not deny a policy over references that have no effect.
    let destinations_apply = list(&ap.spec.apply_to_workloads).is_empty();
    for (i, dest) in list(&ap.spec.apply_to_destinations).iter().enumerate() {
        let path = format!("spec.applyToDestinations[{i}]");
        a1(&path, dest, report);
        a3(&path, dest.port.as_ref(), report);
        if destinations_apply && text(&dest.kind) == EXTERNAL_SERVICE {
            external_service_destination(&path, dest, snap, opts, report);
        }
    }
}

/// A1: the kind is known, and not VIRTUAL_DESTINATION (AccessPolicy does not support it).
/// Runs on the defaulted object, so an omitted kind is SERVICE here (A2).
fn a1(path: &str, dest: &DestinationSelector, report: &mut Report) {
    let kind = text(&dest.kind);
    match kind {
        "SERVICE" | EXTERNAL_SERVICE => {}
        "VIRTUAL_DESTINATION" => report.error(
            "A1",
            format!("{path}.kind"),
            "VIRTUAL_DESTINATION is not supported as an AccessPolicy destination: select the \
             backing SERVICE or EXTERNAL_SERVICE instead",
        ),
        _ => report.error(
            "A1",
            format!("{path}.kind"),
            format!(
                "unknown destination kind {kind:?}: must be SERVICE or EXTERNAL_SERVICE{}",
                case_hint(kind, &["SERVICE", EXTERNAL_SERVICE, "VIRTUAL_DESTINATION"])
            ),
        ),
    }
}

/// A3: a port selector gives a number or a name, not both; the number is 1..65535.
fn a3(path: &str, port: Option<&PortSelector>, report: &mut Report) {
    let Some(port) = port else {
        return;
    };
    let name = text(&port.name);
    if let Some(n) = port.number {
        if !name.is_empty() {
            report.error(
                "A3",
                format!("{path}.port"),
                format!("port sets both number {n} and name {name:?}: set exactly one of them"),
            );
        }
        if !is_port(n) {
            report.error(
                "A3",
                format!("{path}.port.number"),
                format!("port number {n} is out of range 1..65535"),
            );
        }
    }
}

/// A14 and A15 for one EXTERNAL_SERVICE destination that applies.
fn external_service_destination(
    path: &str,
    dest: &DestinationSelector,
    snap: &Snapshot,
    opts: &Options,
    report: &mut Report,
) {
    // Gloo: an omitted selector selects every ExternalService, exactly like `selector: {}`.
    let any = ObjectSelector::default();
    let (sel, sel_path) = match &dest.selector {
        Some(sel) => (sel, format!("{path}.selector")),
        None => (&any, path.to_string()),
    };
    if other_cluster("A14", &sel_path, "ExternalServices", sel, opts, report) {
        return;
    }
    let selected = snap.external_services_selected(sel);
    if selected.is_empty() {
        a14(&sel_path, sel, snap, report);
    } else {
        a15(path, dest.port.as_ref(), &selected, report);
    }
}

/// A14 (DESIGN §9): the selector picks nothing. Naming an ExternalService that does not exist is
/// an error (a warning where a guardrail makes the policy come first: `policy_first`); labels (or
/// a namespace alone) that match nothing is a warning, and so is a named ExternalService that
/// exists but lacks the selector's labels (it exists: the labels may come).
fn a14(path: &str, sel: &ObjectSelector, snap: &Snapshot, report: &mut Report) {
    let (ns, name) = (text(&sel.namespace), text(&sel.name));
    let labels = labels_text(sel.labels.as_ref());
    if name.is_empty() {
        report.warning(
            "A14",
            path,
            format!(
                "{}: the policy selects nothing until one does",
                nothing_selected("ExternalService", sel)
            ),
        );
        return;
    }
    // Is the name alone found? Then only the labels are wrong.
    let by_name = ObjectSelector {
        name: sel.name.clone(),
        namespace: sel.namespace.clone(),
        cluster: sel.cluster.clone(),
        ..Default::default()
    };
    let named = if labels.is_empty() {
        Vec::new()
    } else {
        snap.external_services_selected(&by_name)
    };
    match (named.is_empty(), ns) {
        (false, _) => report.warning(
            "A14",
            path,
            format!(
                "ExternalService {} exists but does not have the labels {labels}: the policy \
                 selects nothing",
                names(&named)
            ),
        ),
        (true, "") => report.error("A14", path, nothing_selected("ExternalService", &by_name)),
        (true, ns) => match policy_first(snap, ns) {
            Some(g) => report.warning(
                "A14",
                path,
                format!(
                    "ExternalService {ns}/{name} does not exist yet: admitted because EgressGuardrail {g} \
                     requires an AccessPolicy before an ExternalService of namespace {ns} \
                     (requireAccessPolicy, deny); until it exists the policy selects nothing, and \
                     if the name is misspelt G5 refuses the ExternalService"
                ),
            ),
            None => report.error(
                "A14",
                path,
                format!("ExternalService {ns}/{name} does not exist"),
            ),
        },
    }
}

/// The guardrail that makes an AccessPolicy come before the ExternalServices of `namespace`:
/// one that governs it with `requireAccessPolicy` and `deny`. There A14 allows a name that does
/// not exist yet (a warning), or the pair could never be created: G5 refuses the ExternalService
/// until a policy selects it, and A14 would refuse a policy naming it until it exists. What A14
/// guards against (a misspelt name, a policy that protects nothing while the ExternalService is
/// open to the mesh) cannot happen there: G5 refuses every ExternalService no policy selects,
/// so a misspelt name shows on the ExternalService's apply. The selector must name the
/// namespace: a name in any namespace may be meant for one no such guardrail governs.
fn policy_first(snap: &Snapshot, namespace: &str) -> Option<String> {
    snap.guardrails()
        .governing(namespace)
        .into_iter()
        .find(|c| c.action == Action::Deny && c.guardrail.spec.require_access_policy == Some(true))
        .map(|c| c.name().to_string())
}

/// A15: Istio enforces AuthorizationPolicy on MESH_EXTERNAL traffic only at the egress gateway
/// (istio/istio#53904), so a policy on ExternalServices none of which (on the selected port) is
/// routed through a gateway is never enforced.
fn a15(
    path: &str,
    port: Option<&PortSelector>,
    selected: &[&ExternalService],
    report: &mut Report,
) {
    let routed = selected.iter().any(|es| {
        list(&es.spec.ports)
            .iter()
            .any(|p| port_selected(port, p) && p.egress_gateway_routes.is_some())
    });
    if routed {
        return;
    }
    let which_port = match port.map(|p| (p.number, text(&p.name))) {
        Some((Some(n), _)) => format!("port {n}"),
        Some((None, name)) if !name.is_empty() => format!("port {name:?}"),
        _ => "port".to_string(),
    };
    report.warning(
        "A15",
        path,
        format!(
            "no {which_port} of the selected ExternalService {} has egressGatewayRoutes: Istio \
             does not enforce AuthorizationPolicy on MESH_EXTERNAL ServiceEntry traffic at the \
             client sidecar (istio/istio#53904), only at an egress gateway, so this policy is \
             not enforced; route the ExternalService through a VirtualGateway",
            names(selected)
        ),
    );
}

/// Does the destination port selector pick this ExternalService port? No selector (or an empty
/// one) picks every port.
fn port_selected(sel: Option<&PortSelector>, port: &ExternalServicePort) -> bool {
    let Some(sel) = sel else {
        return true;
    };
    match (sel.number, text(&sel.name)) {
        (Some(n), _) => port.number == Some(n),
        (None, "") => true,
        (None, name) => text(&port.name) == name,
    }
}

/// `ns/a, ns/b, ns/c and 2 more`
fn names(services: &[&ExternalService]) -> String {
    let mut out = services
        .iter()
        .take(NAMED_IN_MESSAGE)
        .map(|es| {
            format!(
                "{}/{}",
                es.metadata.namespace.as_deref().unwrap_or("default"),
                es.metadata.name.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if services.len() > NAMED_IN_MESSAGE {
        out.push_str(&format!(" and {} more", services.len() - NAMED_IN_MESSAGE));
    }
    out
}

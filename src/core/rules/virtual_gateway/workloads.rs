//! Gateway workload rules: V19 (selector shape) and V20 (listener ports against the gateway
//! Services).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::meta::NamespacedName as _;
use crate::api::{ObjectSelector, VirtualGateway, WorkloadSelector, list, text};
use crate::core::findings::Report;
use crate::core::selectors::is_local_cluster;
use crate::core::{Options, snapshot::Snapshot};

use super::{PortKey, listener_path, port_key};

/// `vg` is defaulted (nothing here is defaulted, but cross-object rules read that form).
pub(super) fn validate(vg: &VirtualGateway, snap: &Snapshot, opts: &Options, report: &mut Report) {
    v19_kinds(vg, report);
    v19_empty_selectors(vg, report);
    v19_egress_without_workloads(vg, snap, report);
    v20(vg, snap, opts, report);
}

fn kind(w: &WorkloadSelector) -> &str {
    text(&w.kind)
}

fn v19_kinds(vg: &VirtualGateway, report: &mut Report) {
    for (i, w) in list(&vg.spec.workloads).iter().enumerate() {
        match kind(w) {
            "" | "KUBE" | "VM" => {}
            other => report.error(
                "V19",
                format!("spec.workloads[{i}].kind"),
                format!(
                    "workload kind `{other}` is not KUBE or VM (case-sensitive; omitted means KUBE)"
                ),
            ),
        }
    }
}

fn selects_everything(sel: Option<&ObjectSelector>) -> bool {
    sel.is_none_or(|s| {
        s.labels.as_ref().is_none_or(|l| l.is_empty())
            && [&s.name, &s.namespace, &s.cluster, &s.workspace]
                .iter()
                .all(|f| text(f).is_empty())
    })
}

/// The API server prunes unknown fields before admission, so a selector written as
/// `selector: {istio: egressgateway}` reaches us as `{}` (API.md §7 "All kinds").
fn v19_empty_selectors(vg: &VirtualGateway, report: &mut Report) {
    for (i, w) in list(&vg.spec.workloads).iter().enumerate() {
        if selects_everything(w.selector.as_ref()) {
            report.warning(
                "V19",
                format!("spec.workloads[{i}].selector"),
                "this workload selector is empty, so it selects every gateway workload (ingress gateways too); if you wrote labels directly under `selector`, the API server dropped them as unknown fields: put them under `selector.labels` (kubectl --validate=strict catches this)",
            );
        }
    }
}

/// DESIGN §9: an egress VirtualGateway has a listener with `exposedExternalServices`, or an
/// ExternalService routes through it.
fn v19_egress_without_workloads(vg: &VirtualGateway, snap: &Snapshot, report: &mut Report) {
    if !list(&vg.spec.workloads).is_empty() {
        return;
    }
    let exposes = list(&vg.spec.listeners)
        .iter()
        .any(|l| !list(&l.exposed_external_services).is_empty());
    let users = snap.external_services_using_gateway(super::namespace(vg), super::name(vg));
    let why = if exposes {
        "it has listeners with exposedExternalServices".to_string()
    } else if !users.is_empty() {
        let names: Vec<String> = users
            .iter()
            .map(|es| es.metadata.qualified_name())
            .collect();
        format!("ExternalService {} route through it", names.join(", "))
    } else {
        return;
    };
    report.warning(
        "V19",
        "spec.workloads",
        format!(
            "this is an egress VirtualGateway ({why}) without workloads, so it applies to every gateway workload, ingress gateways included; select the egress gateway, e.g. workloads: [{{selector: {{labels: {{istio: egressgateway}}}}}}]"
        ),
    );
}

/// The gateway Services selected by the KUBE selectors of the local cluster, by key; None when
/// no selector can be checked here (VM workloads, other clusters).
fn selected_services<'a>(
    vg: &VirtualGateway,
    snap: &'a Snapshot,
    opts: &Options,
) -> Option<BTreeMap<String, &'a Service>> {
    let default_selector = ObjectSelector::default();
    let mut checkable = false;
    let mut out = BTreeMap::new();
    for w in list(&vg.spec.workloads) {
        let sel = w.selector.as_ref().unwrap_or(&default_selector);
        if !matches!(kind(w), "" | "KUBE")
            || !is_local_cluster(text(&sel.cluster), &opts.cluster_name)
        {
            continue;
        }
        checkable = true;
        for svc in snap.services_selected(sel, super::namespace(vg)) {
            out.insert(svc.metadata.qualified_name(), svc);
        }
    }
    checkable.then_some(out)
}

fn service_ports(svc: &Service) -> &[ServicePort] {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[])
}

/// Does the listener's port (number, else name) select this Service port?
fn selects(port: &PortKey<'_>, p: &ServicePort) -> bool {
    match port {
        PortKey::Number(n) => i64::from(p.port) == i64::from(*n),
        PortKey::Name(name) => p.name.as_deref() == Some(*name),
    }
}

/// `svc (ports 80, 443)` for messages.
fn describe(key: &str, svc: &Service) -> String {
    let ports: Vec<String> = service_ports(svc)
        .iter()
        .map(|p| match p.name.as_deref() {
            Some(name) if !name.is_empty() => format!("{} `{name}`", p.port),
            _ => p.port.to_string(),
        })
        .collect();
    format!("{key} (ports {})", ports.join(", "))
}

/// DESIGN §9: no `workloads` is V19's business; otherwise each listener port must be a port of
/// a selected Service whose targetPort is a number in 1..65535 (the Gateway listens on it).
fn v20(vg: &VirtualGateway, snap: &Snapshot, opts: &Options, report: &mut Report) {
    if list(&vg.spec.workloads).is_empty() {
        return;
    }
    let Some(services) = selected_services(vg, snap, opts) else {
        return;
    };
    if services.is_empty() {
        report.warning(
            "V20",
            "spec.workloads",
            format!(
                "no Service matches the workloads selectors (namespace {} unless a selector names one), so the listener ports cannot be checked against the gateway Service",
                super::namespace(vg)
            ),
        );
        return;
    }
    for (i, l) in list(&vg.spec.listeners).iter().enumerate() {
        if let Some(port) = port_key(l) {
            v20_listener(&listener_path(i), &port, &services, report);
        }
    }
}

fn v20_listener(
    path: &str,
    port: &PortKey<'_>,
    services: &BTreeMap<String, &Service>,
    report: &mut Report,
) {
    let path = format!("{path}.port");
    let mut found = false;
    for (key, svc) in services {
        for p in service_ports(svc).iter().filter(|p| selects(port, p)) {
            found = true;
            if let Some(problem) = target_port_problem(p) {
                report.error(
                    "V20",
                    path.clone(),
                    format!(
                        "the listener's {port} is backed by port {} of gateway Service {key}, whose {problem}; the Gateway listens on the targetPort, so it must be a number in 1..65535",
                        p.port
                    ),
                );
            }
        }
    }
    if !found {
        let described: Vec<String> = services.iter().map(|(k, s)| describe(k, s)).collect();
        report.error(
            "V20",
            path,
            format!(
                "{port} is not a port of any selected gateway Service: {}",
                described.join("; ")
            ),
        );
    }
}

/// Why a Service port cannot back a listener, if it cannot. An omitted targetPort is the port.
fn target_port_problem(p: &ServicePort) -> Option<String> {
    match &p.target_port {
        Some(IntOrString::String(name)) => Some(format!("targetPort is the name `{name}`")),
        Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => {
            Some(format!("targetPort {n} is out of range 1..65535"))
        }
        None if !(1..=65535).contains(&p.port) => {
            Some(format!("port {} is out of range 1..65535", p.port))
        }
        _ => None,
    }
}

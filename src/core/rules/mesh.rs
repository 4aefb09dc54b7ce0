//! M1: an ExternalService routed through an egress gateway while the mesh's outbound traffic
//! policy is ALLOW_ANY (EGRESS.md "Outbound traffic policy"): the gateway and its
//! AuthorizationPolicies govern this host, but every host no ServiceEntry declares still leaves
//! the mesh directly from the client's sidecar, so the gateway is not the only way out.
//!
//! A finding about the object's surroundings, not the object: reported when it is applied
//! (admission's answer, `check` given the mesh configuration), not by `validate`, whose findings
//! also make a parent's status. A mesh setting in the status would turn every routed
//! ExternalService to WARNING at once, and back, each time the mesh ConfigMap changed.

use crate::api::list;
use crate::core::{
    Object, Operation,
    findings::Report,
    mesh_config::{Outbound, OutboundMode},
};

pub fn m1(defaulted: &Object, outbound: Option<&Outbound>, op: Operation<'_>, report: &mut Report) {
    let (Object::ExternalService(es), Some(outbound)) = (defaulted, outbound) else {
        return;
    };
    if matches!(op, Operation::Delete) || outbound.mode != OutboundMode::AllowAny {
        return;
    }
    let Some(index) = list(&es.spec.ports)
        .iter()
        .position(|p| p.egress_gateway_routes.is_some())
    else {
        return;
    };
    report.warning(
        "M1",
        format!("spec.ports[{index}].egressGatewayRoutes"),
        format!(
            "the mesh's outbound traffic policy is ALLOW_ANY ({}): this host goes through the \
             egress gateway, but workloads still reach every external host no ServiceEntry \
             declares directly from their sidecars, bypassing it; set \
             outboundTrafficPolicy.mode: REGISTRY_ONLY in the mesh config (key mesh of ConfigMap \
             istio-system/istio, meshConfig in Istio's install values)",
            outbound.source
        ),
    );
}

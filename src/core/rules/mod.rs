//! Validation: every rule of API.md §7, one function per rule id, one file per kind.
//!
//! Each kind's `validate` gets the object as written (rules about omitted fields look at that,
//! DESIGN §9) and its defaulted form (uniqueness and cross-object rules look at that), plus the
//! snapshot of the other objects.

pub mod access_policy;
pub mod catalogue;
pub mod external_service;
pub mod mesh;
pub mod syntax;
pub mod virtual_gateway;

use super::{
    Operation, Options,
    defaults::default_object,
    findings::{Finding, Report},
    object::Object,
    snapshot::Snapshot,
};

/// Validate one object against the snapshot. Objects that are not Gloo kinds have no rules.
pub fn validate(obj: &Object, snap: &Snapshot, opts: &Options, op: Operation<'_>) -> Vec<Finding> {
    validate_defaulted(obj, &default_object(obj.clone(), opts), snap, opts, op)
}

/// `validate` for a caller that already holds the defaulted object (`check` defaults each object
/// once for the snapshot and reuses it here).
pub fn validate_defaulted(
    written: &Object,
    defaulted: &Object,
    snap: &Snapshot,
    opts: &Options,
    op: Operation<'_>,
) -> Vec<Finding> {
    let mut report = Report::new(written.id(), opts.strict);
    match (written, defaulted) {
        (Object::ExternalService(w), Object::ExternalService(d)) => {
            external_service::validate(w, d, snap, opts, op, &mut report)
        }
        (Object::VirtualGateway(w), Object::VirtualGateway(d)) => {
            virtual_gateway::validate(w, d, snap, opts, op, &mut report)
        }
        (Object::AccessPolicy(w), Object::AccessPolicy(d)) => {
            access_policy::validate(w, d, snap, opts, op, &mut report)
        }
        _ => {}
    }
    // The guardrails (issue 14) of the object's namespace; the defaulted object, as for the
    // other cross-object rules.
    report
        .findings
        .extend(super::guardrails::admission_findings(
            defaulted, snap, opts, op,
        ));
    report.findings
}

/// What applying `written` reports: [`validate_defaulted`], and the findings about its
/// surroundings (M1, the mesh's outbound policy from `snap`) that belong in the answer to the
/// apply but not in the object's status (`mesh`).
pub fn on_apply(
    written: &Object,
    defaulted: &Object,
    snap: &Snapshot,
    opts: &Options,
    op: Operation<'_>,
) -> Vec<Finding> {
    let mut findings = validate_defaulted(written, defaulted, snap, opts, op);
    let mut report = Report::new(written.id(), opts.strict);
    mesh::m1(defaulted, snap.outbound(), op, &mut report);
    findings.extend(report.findings);
    findings
}

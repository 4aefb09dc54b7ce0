//! Rules for AccessPolicy (API.md §7).

use crate::api::AccessPolicy;
use crate::core::{Operation, Options, findings::Report, snapshot::Snapshot};

pub fn validate(
    written: &AccessPolicy,
    defaulted: &AccessPolicy,
    snap: &Snapshot,
    opts: &Options,
    op: Operation<'_>,
    report: &mut Report,
) {
    let _ = (written, defaulted, snap, opts, op, report);
}

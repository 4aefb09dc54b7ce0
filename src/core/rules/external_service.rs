//! Rules for ExternalService (API.md §7).

use crate::api::ExternalService;
use crate::core::{Operation, Options, findings::Report, snapshot::Snapshot};

pub fn validate(
    written: &ExternalService,
    defaulted: &ExternalService,
    snap: &Snapshot,
    opts: &Options,
    op: Operation<'_>,
    report: &mut Report,
) {
    let _ = (written, defaulted, snap, opts, op, report);
}

//! Rules for VirtualGateway (API.md §7).

use crate::api::VirtualGateway;
use crate::core::{Operation, Options, findings::Report, snapshot::Snapshot};

pub fn validate(
    written: &VirtualGateway,
    defaulted: &VirtualGateway,
    snap: &Snapshot,
    opts: &Options,
    op: Operation<'_>,
    report: &mut Report,
) {
    let _ = (written, defaulted, snap, opts, op, report);
}

//! Rules for ExternalService (API.md §7, E1–E26; DESIGN §5 for E25/E26, §9 for the decisions;
//! E27 from istiod's DestinationRule validation, found by tests/fuzz_core.rs).
//!
//! One function per rule id, grouped by topic in the submodules. E9 and E13 are pure defaults
//! (src/core/defaults.rs) and have no function here; E6, E18 and E21 have their default part
//! there and their reject part here.

mod addresses;
mod ports;
mod routes;
mod tls;
mod wildcard;

use crate::api::{ExternalService, Text, external_service::ExternalServicePort, list};
use crate::core::{Operation, Options, findings::Report, snapshot::Snapshot};

pub fn validate(
    written: &ExternalService,
    defaulted: &ExternalService,
    snap: &Snapshot,
    opts: &Options,
    op: Operation<'_>,
    report: &mut Report,
) {
    // Deleting an ExternalService breaks nothing that admission could protect: the objects it
    // references do not depend on it, and its companions are removed with it.
    if matches!(op, Operation::Delete) {
        return;
    }
    let c = Ctx {
        written,
        defaulted,
        snap,
        opts,
    };
    addresses::e1(&c, report);
    addresses::e2(&c, report);
    addresses::e3(&c, report);
    addresses::e4(&c, report);
    ports::e5(&c, report);
    ports::e6(&c, report);
    ports::e7(&c, report);
    ports::e8(&c, report);
    tls::e10(&c, report);
    tls::e11(&c, report);
    tls::e12(&c, report);
    wildcard::e14(&c, report);
    wildcard::e15(&c, report);
    routes::e16(&c, report);
    routes::e17(&c, report);
    routes::e18(&c, report);
    routes::e19(&c, report);
    routes::e20(&c, report);
    routes::e21(&c, report);
    routes::e22_e23(&c, report);
    tls::e24(&c, report);
    tls::e25(&c, report);
    tls::e27(&c, report);
    routes::e26(&c, report);
}

/// What every rule gets: both forms of the object and the world around it.
struct Ctx<'a> {
    written: &'a ExternalService,
    defaulted: &'a ExternalService,
    snap: &'a Snapshot,
    opts: &'a Options,
}

/// A port seen both as written and as defaulted. Defaults never add or remove ports, so the
/// two lists line up by index; `written` is `None` only if they ever stopped doing so.
struct PortView<'a> {
    index: usize,
    written: Option<&'a ExternalServicePort>,
    defaulted: &'a ExternalServicePort,
}

impl PortView<'_> {
    fn path(&self) -> String {
        format!("spec.ports[{}]", self.index)
    }

    fn field(&self, rest: &str) -> String {
        format!("spec.ports[{}].{rest}", self.index)
    }
}

impl<'a> Ctx<'a> {
    fn namespace(&self) -> &'a str {
        self.defaulted
            .metadata
            .namespace
            .as_deref()
            .unwrap_or("default")
    }

    fn name(&self) -> &'a str {
        self.defaulted.metadata.name.as_deref().unwrap_or("")
    }

    fn hosts(&self) -> &'a [Text] {
        list(&self.defaulted.spec.hosts)
    }

    fn ports(&self) -> impl Iterator<Item = PortView<'a>> + 'a {
        let written = list(&self.written.spec.ports);
        list(&self.defaulted.spec.ports)
            .iter()
            .enumerate()
            .map(move |(index, defaulted)| PortView {
                index,
                written: written.get(index),
                defaulted,
            })
    }

    /// `spec.selector` selects ExternalEndpoints only when it has at least one label.
    fn selects_endpoints(&self) -> bool {
        self.defaulted
            .spec
            .selector
            .as_ref()
            .is_some_and(|s| !s.is_empty())
    }
}

/// `"a", "b"` for messages.
fn quoted_list<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

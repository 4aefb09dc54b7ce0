//! A finding: one rule's verdict on one field of one object.

use std::fmt;

use serde::Serialize;

use super::text::printable;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kind, namespace and name of the object a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectId {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names come from objects: escaped (`text`), so that no id can carry a control
        // character into a message or log line.
        if self.namespace.is_empty() {
            // A cluster-scoped object (EgressGuardrail).
            return write!(f, "{} {}", printable(&self.kind), printable(&self.name));
        }
        write!(
            f,
            "{} {}/{}",
            printable(&self.kind),
            printable(&self.namespace),
            printable(&self.name)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub object: ObjectId,
    /// JSON-ish field path: `spec.ports[0].egressGatewayRoutes.portMatch`.
    pub path: String,
    pub message: String,
    /// Rule id of API.md §7 (E1…, V1…, A1…).
    pub rule: &'static str,
}

impl Finding {
    /// The line without the severity prefix: what admission puts in a denial or warning.
    /// Paths and messages quote values of the object: the line is escaped (`text`), so it
    /// stays one line of printable text whatever the object holds.
    pub fn summary(&self) -> String {
        let line = format!(
            "{}: {}: {} [{}]",
            self.object, self.path, self.message, self.rule
        );
        // Not copied when there is nothing to escape (a denial can carry thousands of lines).
        let escaped = match printable(&line) {
            std::borrow::Cow::Owned(s) => Some(s),
            std::borrow::Cow::Borrowed(_) => None,
        };
        escaped.unwrap_or(line)
    }
}

/// `error: ExternalService global/httpbin.org: spec.ports[0]...: message [E22]`
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.summary())
    }
}

/// Collects the findings for one object; rule functions push into it.
pub struct Report {
    pub object: ObjectId,
    pub strict: bool,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn new(object: ObjectId, strict: bool) -> Self {
        Report {
            object,
            strict,
            findings: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        severity: Severity,
        rule: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.findings.push(Finding {
            severity,
            object: self.object.clone(),
            path: path.into(),
            message: message.into(),
            rule,
        });
    }

    pub fn error(
        &mut self,
        rule: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Error, rule, path, message);
    }

    pub fn warning(
        &mut self,
        rule: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Warning, rule, path, message);
    }

    /// A warning that `--strict` turns into an error (E23, V21).
    pub fn strict_warning(
        &mut self,
        rule: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        let severity = if self.strict {
            Severity::Error
        } else {
            Severity::Warning
        };
        self.push(severity, rule, path, message);
    }

    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// True when any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

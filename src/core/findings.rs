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

impl ObjectId {
    /// `Kind namespace/name` (`Kind name` when cluster-scoped, as an EgressGuardrail), each
    /// part escaped (`text`): names come from objects, and no id may carry a control character
    /// into a message or log line. Pieces pushed rather than `write!`n: a finding's line is
    /// built on every review that has one (`Finding::summary`).
    fn push_to(&self, out: &mut String) {
        out.push_str(&printable(&self.kind));
        out.push(' ');
        if !self.namespace.is_empty() {
            out.push_str(&printable(&self.namespace));
            out.push('/');
        }
        out.push_str(&printable(&self.name));
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut id = String::new();
        self.push_to(&mut id);
        f.write_str(&id)
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
        let id = &self.object;
        let mut line = String::with_capacity(
            id.kind.len()
                + id.namespace.len()
                + id.name.len()
                + self.path.len()
                + self.message.len()
                + self.rule.len()
                + 9,
        );
        id.push_to(&mut line);
        for piece in [": ", &self.path, ": ", &self.message, " [", self.rule, "]"] {
            line.push_str(piece);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(namespace: &str, name: &str, message: &str) -> Finding {
        Finding {
            severity: Severity::Warning,
            object: ObjectId {
                kind: "ExternalService".into(),
                namespace: namespace.into(),
                name: name.into(),
            },
            path: "spec.ports[0]".into(),
            message: message.into(),
            rule: "E25",
        }
    }

    #[test]
    fn a_line_names_the_object_the_field_and_the_rule_escaped() {
        let f = finding("global", "httpbin.org", "no CA");
        assert_eq!(
            f.summary(),
            "ExternalService global/httpbin.org: spec.ports[0]: no CA [E25]"
        );
        assert_eq!(
            f.to_string(),
            "warning: ExternalService global/httpbin.org: spec.ports[0]: no CA [E25]"
        );
        assert_eq!(f.object.to_string(), "ExternalService global/httpbin.org");
        let cluster = finding("", "g", "m");
        assert_eq!(
            cluster.summary(),
            "ExternalService g: spec.ports[0]: m [E25]"
        );
        assert_eq!(cluster.object.to_string(), "ExternalService g");
        let hostile = finding("ns\u{1b}", "a\u{202e}b", "line\nbreak");
        assert_eq!(
            hostile.summary(),
            "ExternalService ns\\u{1b}/a\\u{202e}b: spec.ports[0]: line\\nbreak [E25]"
        );
    }
}

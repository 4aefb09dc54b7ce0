//! Istio's string matching for AuthorizationPolicy values, and its principal trust-domain
//! handling (Istio 1.24 `pilot/pkg/security/authz/model` and `pilot/pkg/security/trustdomain`,
//! summarised in EGRESS.md §2 (6)): exact `abc`, prefix `abc*`, suffix `*abc`, presence `*`.

/// Does `pattern` match `value`? `ignore_case` for `hosts`/`notHosts` (the Host header is
/// compared case-insensitively). Presence `*` matches any non-empty value.
pub fn matches(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (p, v) = if ignore_case {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_string(), value.to_string())
    };
    if p == "*" {
        return !v.is_empty();
    }
    if let Some(prefix) = p.strip_suffix('*') {
        return v.starts_with(prefix);
    }
    if let Some(suffix) = p.strip_prefix('*') {
        return v.ends_with(suffix);
    }
    p == v
}

/// The trust domains a workload's identity can be written with: the mesh's own first, then its
/// aliases (MeshConfig `trustDomain`, `trustDomainAliases`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustDomains {
    pub domain: String,
    pub aliases: Vec<String>,
}

impl TrustDomains {
    pub fn new(domain: &str) -> Self {
        TrustDomains {
            domain: domain.to_string(),
            aliases: Vec::new(),
        }
    }

    /// The identity of a ServiceAccount, as the egress gateway sees it in the client's certificate.
    pub fn principal(&self, namespace: &str, service_account: &str) -> String {
        format!("{}/ns/{namespace}/sa/{service_account}", self.domain)
    }

    /// A policy principal as istiod writes it into Envoy: a well-formed `<td>/ns/<ns>/sa/<sa>`
    /// whose trust domain is `cluster.local` ("the local trust domain", whatever it is) or one
    /// of ours becomes one value per trust domain and alias; a malformed one, or one with an
    /// empty or `*` trust domain, is kept as written (it does not enforce a trust domain); a
    /// foreign trust domain is kept too (and matches nothing of ours).
    pub fn expand(&self, principal: &str) -> Vec<String> {
        let parts: Vec<&str> = principal.split('/').collect();
        let enforced = parts.len() == 5 && !parts[0].is_empty() && parts[0] != "*";
        if !enforced {
            return vec![principal.to_string()];
        }
        let td = parts[0];
        let ours =
            td == "cluster.local" || td == self.domain || self.aliases.iter().any(|a| a == td);
        if !ours {
            return vec![principal.to_string()];
        }
        let rest = &principal[td.len()..];
        std::iter::once(&self.domain)
            .chain(&self.aliases)
            .map(|d| format!("{d}{rest}"))
            .collect()
    }

    /// Does a policy principal value match the request's principal?
    pub fn principal_matches(&self, pattern: &str, principal: &str) -> bool {
        self.expand(pattern)
            .iter()
            .any(|p| matches(p, principal, false))
    }
}

/// The namespace part of a principal `<td>/ns/<ns>/sa/<sa>` (Istio's `source.namespace`).
pub fn principal_namespace(principal: &str) -> Option<&str> {
    let parts: Vec<&str> = principal.split('/').collect();
    (parts.len() == 5 && parts[1] == "ns" && parts[3] == "sa").then(|| parts[2])
}

/// `(namespace, service account)` of a principal `<td>/ns/<ns>/sa/<sa>` with no wildcard in
/// them: the ServiceAccounts a policy names explicitly.
pub fn principal_account(principal: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = principal.split('/').collect();
    let ok = parts.len() == 5
        && parts[1] == "ns"
        && parts[3] == "sa"
        && !parts[2].is_empty()
        && !parts[4].is_empty()
        && !parts[2].contains('*')
        && !parts[4].contains('*');
    ok.then(|| (parts[2], parts[4]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_suffix_presence() {
        assert!(matches("abc", "abc", false));
        assert!(!matches("abc", "abcd", false));
        assert!(matches("abc*", "abc", false));
        assert!(matches("abc*", "abcd", false));
        assert!(!matches("abc*", "xabc", false));
        assert!(matches("*abc", "xabc", false));
        assert!(!matches("*abc", "abcx", false));
        assert!(matches("*", "x", false));
        assert!(!matches("*", "", false));
    }

    #[test]
    fn hosts_ignore_case() {
        assert!(matches("HTTPBIN.org", "httpbin.ORG", true));
        assert!(!matches("HTTPBIN.org", "httpbin.ORG", false));
        assert!(matches("httpbin.org:*", "HttpBin.org:8080", true));
    }

    #[test]
    fn cluster_local_means_the_mesh_trust_domain_and_its_aliases() {
        let td = TrustDomains {
            domain: "prod.example".into(),
            aliases: vec!["old.example".into()],
        };
        assert_eq!(
            td.expand("cluster.local/ns/a/sa/b"),
            ["prod.example/ns/a/sa/b", "old.example/ns/a/sa/b"]
        );
        assert!(td.principal_matches("cluster.local/ns/a/sa/b", "prod.example/ns/a/sa/b"));
        assert!(td.principal_matches("old.example/ns/a/sa/b", "prod.example/ns/a/sa/b"));
        // A foreign trust domain is kept as written and matches nobody here.
        assert!(!td.principal_matches("other.example/ns/a/sa/b", "prod.example/ns/a/sa/b"));
        // `*` as trust domain, and malformed principals, do not enforce one.
        assert!(td.principal_matches("*/ns/a/sa/b", "prod.example/ns/a/sa/b"));
        assert_eq!(td.expand("ns/a/sa/b"), ["ns/a/sa/b"]);
    }

    #[test]
    fn principal_wildcards_after_trust_domain_expansion() {
        let td = TrustDomains::new("cluster.local");
        assert!(td.principal_matches("cluster.local/ns/a/*", "cluster.local/ns/a/sa/b"));
        assert!(!td.principal_matches("cluster.local/ns/a/*", "cluster.local/ns/ab/sa/b"));
        assert!(td.principal_matches("*/sa/b", "cluster.local/ns/a/sa/b"));
        assert!(td.principal_matches("*", "cluster.local/ns/a/sa/b"));
    }

    #[test]
    fn principal_parts() {
        assert_eq!(principal_namespace("td/ns/a/sa/b"), Some("a"));
        assert_eq!(principal_account("td/ns/a/sa/b"), Some(("a", "b")));
        assert_eq!(principal_account("td/ns/a/sa/*"), None);
        assert_eq!(principal_namespace("spiffe://td/ns/a/sa/b"), None);
    }
}

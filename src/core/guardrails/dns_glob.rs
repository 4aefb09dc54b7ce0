//! DNS globs of `allowedHosts` / `deniedHosts`: `*` (every host), `*.example.com` (every name
//! below example.com, at any depth, as Istio reads a wildcard host) or an exact FQDN.
//!
//! Why not the `globset` or `glob` crates: they answer "does this string match", but an
//! ExternalService host may itself be a wildcard (`*.api.example.com`), and the questions here
//! are about sets of names: is every name the host stands for allowed (subset), and could any of
//! them be denied (overlap)? With globs restricted to Istio's one form (a `*` only as the whole
//! first label), both answers are suffix comparisons; a general glob engine cannot give them and
//! would accept forms (`api-*.example.com`, `foo.*.com`) that Istio's hosts cannot express.

use crate::core::rules::syntax::{host_matches, is_fqdn, is_wildcard_fqdn};

/// A parsed glob, lower-cased and without a trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsGlob(String);

impl DnsGlob {
    /// The glob, or why it is not one.
    pub fn parse(text: &str) -> Result<DnsGlob, String> {
        let t = text.strip_suffix('.').unwrap_or(text);
        // `*.` + a top-level domain (`*.ru`) is a glob too, though no ExternalService host.
        let tld_wildcard = t
            .strip_prefix("*.")
            .is_some_and(|rest| is_fqdn(&format!("x.{rest}")));
        if t == "*" || is_fqdn(t) || is_wildcard_fqdn(t) || tld_wildcard {
            return Ok(DnsGlob(t.to_ascii_lowercase()));
        }
        let why = if t.is_empty() {
            "is empty".to_string()
        } else if t.contains('*') {
            format!("{text:?} has a `*` other than as the whole first label (`*`, `*.example.com`)")
        } else {
            format!("{text:?} is not a DNS name of at least two labels")
        };
        Err(format!(
            "{why}; a host glob is `*`, `*.example.com` or an exact FQDN"
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Is every name `host` stands for (an FQDN, or `*.` + FQDN) matched by this glob?
    pub fn covers(&self, host: &str) -> bool {
        host_matches(&self.0, &normal(host))
    }

    /// Could some name `host` stands for be matched by this glob?
    pub fn overlaps(&self, host: &str) -> bool {
        let h = normal(host);
        if self.covers(&h) || h == "*" {
            return true;
        }
        // The host is the wider wildcard: `*.com` reaches names of `*.evil.com` and `evil.com.x`.
        match h.strip_prefix('*') {
            Some(suffix) => {
                let g = self.0.trim_start_matches('*');
                g.ends_with(suffix) && g.len() > suffix.len()
            }
            None => false,
        }
    }
}

fn normal(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> DnsGlob {
        DnsGlob::parse(s).unwrap()
    }

    #[test]
    fn parse_accepts_istio_forms_only() {
        for ok in [
            "*",
            "*.org",
            "*.example.com",
            "api.example.com",
            "API.Example.com.",
        ] {
            assert!(DnsGlob::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "api-*.example.com",
            "foo.*.com",
            "*example.com",
            "localhost",
            "a..b",
            "*.*.com",
            "*.123",
        ] {
            let e = DnsGlob::parse(bad).unwrap_err();
            assert!(e.contains("a host glob is"), "{bad}: {e}");
        }
        assert_eq!(g("API.Example.com.").as_str(), "api.example.com");
    }

    #[test]
    fn covers_is_a_subset_test() {
        assert!(g("*").covers("httpbin.org"));
        assert!(g("*.example.com").covers("api.example.com"));
        assert!(g("*.example.com").covers("a.b.example.com"));
        assert!(g("*.example.com").covers("*.api.example.com"));
        assert!(g("*.example.com").covers("*.example.com"));
        assert!(g("*.example.com").covers("API.example.com"));
        assert!(!g("*.example.com").covers("example.com"));
        assert!(!g("*.example.com").covers("httpbin.org"));
        assert!(!g("*.example.com").covers("notexample.com"));
        assert!(!g("*.example.com").covers("*.com"));
        assert!(g("api.example.com").covers("api.example.com"));
        assert!(!g("api.example.com").covers("*.example.com"));
    }

    #[test]
    fn overlaps_is_an_intersection_test() {
        assert!(g("*.evil.com").overlaps("x.evil.com"));
        assert!(g("*.evil.com").overlaps("*.com"), "the host is wider");
        assert!(g("bad.evil.com").overlaps("*.evil.com"));
        assert!(g("*.a.evil.com").overlaps("*.evil.com"));
        assert!(!g("*.evil.com").overlaps("evil.com"));
        assert!(!g("*.evil.com").overlaps("*.good.com"));
        assert!(!g("bad.evil.com").overlaps("*.bad.evil.com"));
        assert!(!g("evil.com").overlaps("*.com.org"));
    }
}

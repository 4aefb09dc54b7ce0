//! Syntax checks shared by the rules of all kinds: host names, IPs, CIDRs, ports.

use std::net::IpAddr;

/// A DNS-1123 label that may contain upper case (Istio's host rule; Kubernetes names are stricter).
fn is_host_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A fully-qualified domain name: at least two labels, each a DNS-1123 label, ≤ 255 characters,
/// top-level label not all digits. A trailing dot is tolerated (as istiod does).
pub fn is_fqdn(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    let labels: Vec<&str> = host.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| is_host_label(l))
        && !labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

/// `*.` followed by an FQDN: a wildcard only as the whole first label (E2).
pub fn is_wildcard_fqdn(host: &str) -> bool {
    host.strip_prefix("*.").is_some_and(is_fqdn)
}

/// E2: an ExternalService host is an FQDN or a wildcard-prefixed FQDN; `*` alone is not allowed.
pub fn is_external_host(host: &str) -> bool {
    is_fqdn(host) || is_wildcard_fqdn(host)
}

/// An IPv4/IPv6 address or a CIDR with a prefix length that fits the address family.
pub fn is_ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => s.parse::<IpAddr>().is_ok(),
        Some((ip, len)) => {
            let Ok(ip) = ip.parse::<IpAddr>() else {
                return false;
            };
            let Ok(len) = len.parse::<u8>() else {
                return false;
            };
            // Reject "+1", "01" style lengths that parse but are not canonical.
            if len.to_string() != s.rsplit('/').next().unwrap_or_default() {
                return false;
            }
            match ip {
                IpAddr::V4(_) => len <= 32,
                IpAddr::V6(_) => len <= 128,
            }
        }
    }
}

/// 1..=65535.
pub fn is_port(n: u32) -> bool {
    (1..=65535).contains(&n)
}

/// The `[namespace/]dnsName` form of `allowedRouteTables[].host` and
/// `exposedExternalServices[].host` (V18): namespace `*`, `.` or a DNS-1123 label; dnsName `*`,
/// an FQDN or `*.` + FQDN. Returns the (namespace, dnsName) parts when valid.
pub fn parse_scoped_host(s: &str) -> Option<(Option<&str>, &str)> {
    let (ns, host) = match s.split_once('/') {
        Some((ns, host)) => (Some(ns), host),
        None => (None, s),
    };
    if let Some(ns) = ns
        && !(ns == "*" || ns == "." || crate::core::names::is_dns1123_label(ns))
    {
        return None;
    }
    let lower = host.to_ascii_lowercase();
    // Istio accepts a wildcard over a single label (`*.org`) in Gateway hosts; so do we here.
    let wildcard_ok = lower.strip_prefix("*.").is_some_and(|rest| {
        rest.split('.').all(is_host_label) && !rest.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    });
    let host_ok = host == "*" || is_fqdn(&lower) || wildcard_ok;
    host_ok.then_some((ns, host))
}

/// Does a VirtualGateway `exposedExternalServices` host entry (`[ns/]dnsName`) admit the
/// ExternalService host `host` declared in namespace `es_namespace`? `.` is the VirtualGateway's
/// own namespace. Host comparison ignores case; `*.x.com` covers `a.x.com` and `*.x.com`.
pub fn exposed_host_matches(
    entry: &str,
    vg_namespace: &str,
    es_namespace: &str,
    host: &str,
) -> bool {
    let Some((ns, pattern)) = parse_scoped_host(entry) else {
        return false;
    };
    let ns_ok = match ns {
        None | Some("*") => true,
        Some(".") => es_namespace == vg_namespace,
        Some(ns) => ns == es_namespace,
    };
    ns_ok && host_matches(pattern, host)
}

/// `pattern` (`*`, `*.suffix` or an exact name) covers `host` (case-insensitive).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    if p == "*" || p == h {
        return true;
    }
    match p.strip_prefix('*') {
        // `*.x.com` covers `a.x.com` and the narrower wildcard `*.a.x.com`.
        Some(suffix) => h.ends_with(suffix) && h.len() > suffix.len(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert!(is_external_host("httpbin.org"));
        assert!(is_external_host("*.example.com"));
        assert!(is_external_host("api.example.com."));
        assert!(!is_external_host("*"));
        assert!(!is_external_host("foo*.example.com"));
        assert!(!is_external_host("localhost"));
        assert!(!is_external_host("a..b"));
        assert!(!is_external_host("1.2.3.4"));
        assert!(!is_external_host("-a.com"));
    }

    #[test]
    fn addresses() {
        assert!(is_ip_or_cidr("10.0.0.1"));
        assert!(is_ip_or_cidr("10.0.0.0/8"));
        assert!(is_ip_or_cidr("2001:db8::/32"));
        assert!(!is_ip_or_cidr("10.0.0.0/33"));
        assert!(!is_ip_or_cidr("10.0.0.0/+8"));
        assert!(!is_ip_or_cidr("example.com"));
    }

    #[test]
    fn scoped_hosts() {
        assert_eq!(
            parse_scoped_host("prod/*.example.com"),
            Some((Some("prod"), "*.example.com"))
        );
        assert_eq!(parse_scoped_host("*"), Some((None, "*")));
        assert!(parse_scoped_host("a/b/c.com").is_none());
        assert!(exposed_host_matches(
            "httpbin.org",
            "istio-egress",
            "global",
            "httpbin.org"
        ));
        assert!(exposed_host_matches(
            "global/httpbin.org",
            "istio-egress",
            "global",
            "httpbin.org"
        ));
        assert!(!exposed_host_matches(
            "other/httpbin.org",
            "istio-egress",
            "global",
            "httpbin.org"
        ));
        assert!(!exposed_host_matches(
            "./httpbin.org",
            "istio-egress",
            "global",
            "httpbin.org"
        ));
        assert!(exposed_host_matches(
            "*.org",
            "istio-egress",
            "global",
            "httpbin.org"
        ));
    }
}

//! Deterministic names for generated objects (API.md §6.2, DESIGN §5).
//!
//! Sanitize like Gloo's `SanitizeNameV2` (`* / . : _ space` → `-`, drop `[ ] " '` and line
//! breaks, lower-case); past 63 characters keep 31 characters, `-` and 31 hex characters of a
//! hash of the whole sanitized string. We use SHA-256 rather than md5: matching Gloo's hashes
//! is neither needed nor possible (API.md §6.2), being stable is.

use sha2::{Digest, Sha256};

pub const MAX_NAME: usize = 63;
const PREFIX: usize = 31;

/// A DNS-1123 label (≤ 63, lower-case alphanumerics and `-`, alphanumeric at both ends) made
/// from the parts joined with `-`.
pub fn object_name(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("-");
    let mut s = String::with_capacity(joined.len());
    for c in joined.chars() {
        match c {
            '*' | '/' | '.' | ':' | '_' | ' ' => s.push('-'),
            '[' | ']' | '"' | '\'' | '\n' | '\r' => {}
            c if c.is_ascii_alphanumeric() || c == '-' => s.push(c.to_ascii_lowercase()),
            // Anything else a label cannot hold becomes a dash too.
            _ => s.push('-'),
        }
    }
    let s = trim_dashes(&s);
    if s.len() <= MAX_NAME {
        return if s.is_empty() {
            "x".to_string()
        } else {
            s.to_string()
        };
    }
    let digest = Sha256::digest(s.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let head = trim_dashes(&s[..PREFIX]);
    format!("{head}-{}", &hex[..MAX_NAME - head.len() - 1])
}

fn trim_dashes(s: &str) -> &str {
    s.trim_matches('-')
}

/// True for a DNS-1123 label: what Gateway names, subset names and port names must be.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_sanitized() {
        assert_eq!(
            object_name(&["externalservice", "httpbin.org", "global"]),
            "externalservice-httpbin-org-global"
        );
        assert_eq!(object_name(&["*.example.com"]), "example-com");
        assert_eq!(object_name(&["A_b:c"]), "a-b-c");
    }

    #[test]
    fn long_names_keep_31_characters_and_a_hash() {
        let long = "virtualgateway-egress-vg-gloo-mesh-gateways-cluster1-with-a-long-tail";
        let n = object_name(&[long]);
        assert_eq!(n.len(), 63);
        assert!(n.starts_with("virtualgateway-egress-vg-gloo-m-"));
        assert!(is_dns1123_label(&n));
        assert_eq!(n, object_name(&[long]), "deterministic");
        assert_ne!(n, object_name(&[&format!("{long}x")]));
    }

    #[test]
    fn labels_are_checked() {
        assert!(is_dns1123_label("a-1"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(""));
    }
}

//! The object's own name and namespace, checked as the apiserver checks them (a custom
//! resource's name is a DNS-1123 subdomain, a namespace a DNS-1123 label), so that a name with
//! control characters, bidi overrides or non-ASCII letters is denied with a message that names
//! the field and shows the value escaped (`core::text`).
//!
//! Why here and not only in the apiserver: the mutating webhook is called before the apiserver
//! validates the object's metadata, and a client that is not the apiserver sends what it likes.

use serde_json::Value;

use crate::core::names::is_dns1123_label;
use crate::core::text::{is_unprintable, printable};

/// Kubernetes' limit for names that are DNS-1123 subdomains.
const MAX_SUBDOMAIN: usize = 253;

/// Lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit, at
/// most 253 characters; each dot-separated part non-empty (as the apiserver's regular
/// expression requires).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SUBDOMAIN
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// What is wrong with `metadata.name` or `metadata.namespace` of a raw object, if anything.
/// An absent or empty name is left to the apiserver (`generateName` fills it later).
pub fn bad_identity(object: &Value) -> Option<String> {
    let meta = object.get("metadata")?;
    bad_name_or_namespace(
        meta.get("name").and_then(Value::as_str),
        meta.get("namespace").and_then(Value::as_str),
    )
}

/// `bad_identity` of an object's `metadata.name` and `.namespace` (`None`: absent or not a
/// string, which is left to the apiserver or to the object's decoding).
pub fn bad_name_or_namespace(name: Option<&str>, namespace: Option<&str>) -> Option<String> {
    if let Some(name) = name
        && !name.is_empty()
        && !is_dns1123_subdomain(name)
    {
        return Some(format!(
            "metadata.name: {} is not a valid name: lower-case letters, digits, '-' and '.', \
             starting and ending with a letter or digit, at most {MAX_SUBDOMAIN} characters \
             (a DNS-1123 subdomain){}",
            quoted(name),
            what_else(name)
        ));
    }
    if let Some(ns) = namespace
        && !ns.is_empty()
        && !is_dns1123_label(ns)
    {
        return Some(format!(
            "metadata.namespace: {} is not a valid namespace: lower-case letters, digits and \
             '-', starting and ending with a letter or digit, at most 63 characters (a DNS-1123 \
             label){}",
            quoted(ns),
            what_else(ns)
        ));
    }
    None
}

/// The value in quotes, escaped, and cut to 100 characters: a 3 MiB name is not repeated back.
fn quoted(s: &str) -> String {
    const SHOWN: usize = 100;
    let n = s.chars().count();
    if n <= SHOWN {
        format!("\"{}\"", printable(s))
    } else {
        let head: String = s.chars().take(SHOWN).collect();
        format!("\"{}\"... ({n} characters)", printable(&head))
    }
}

/// The kind of character that is out of place, when it is one a reader cannot see.
fn what_else(s: &str) -> &'static str {
    if s.chars().any(is_unprintable) {
        "; it holds control or invisible characters, shown escaped"
    } else if !s.is_ascii() {
        "; it holds non-ASCII characters"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subdomains() {
        for good in ["httpbin.org", "a", "egress-vg", "1.2.3", &"a".repeat(253)] {
            assert!(is_dns1123_subdomain(good), "{good}");
        }
        for bad in [
            "",
            "Upper",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a.",
            "a_b",
            "ü.org",
            "a\0b",
            &"a".repeat(254),
        ] {
            assert!(!is_dns1123_subdomain(bad), "{bad:?}");
        }
    }

    #[test]
    fn bad_names_are_named_and_escaped() {
        let obj = |name: &str, ns: &str| json!({"metadata": {"name": name, "namespace": ns}});
        assert_eq!(bad_identity(&obj("httpbin.org", "global")), None);
        assert_eq!(bad_identity(&obj("", "global")), None, "generateName");
        let m = bad_identity(&obj("red\u{1b}[31m", "global")).unwrap();
        assert!(
            m.starts_with("metadata.name: \"red\\u{1b}[31m\" is not"),
            "{m}"
        );
        assert!(
            m.ends_with("control or invisible characters, shown escaped"),
            "{m}"
        );
        assert!(!m.contains('\u{1b}'));
        let m = bad_identity(&obj("ok", "ns\u{202e}x")).unwrap();
        assert!(m.starts_with("metadata.namespace: \"ns\\u{202e}x\""), "{m}");
        let m = bad_identity(&obj("bücher.de", "global")).unwrap();
        assert!(
            m.contains("\"bücher.de\"") && m.ends_with("non-ASCII characters"),
            "{m}"
        );
        let m = bad_identity(&obj(&"X".repeat(1000), "global")).unwrap();
        assert!(m.contains("(1000 characters)") && m.len() < 400, "{m}");
    }
}

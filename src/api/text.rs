//! `Text`: the strings of the Gloo kinds' specs and selectors.
//!
//! Why not `String` (issue 12, memory and speed): the catalog holds hundreds of thousands of
//! short strings (port names, protocols, hosts, namespaces, cluster names, label keys and
//! values), each a heap block of its own behind a 24-byte `String`. `compact_str`'s
//! `CompactString` is the same 24 bytes and keeps a string of up to 24 bytes inside them: no
//! block to allocate when a review's object is decoded, none to free, none held by the catalog.
//! Longer strings live on the heap as before.
//!
//! A newtype rather than `CompactString` itself: the CRDs are generated from these types, and
//! `JsonSchema` (schemars 1) can only be given to a type of ours. It reads and writes exactly a
//! JSON string, with serde's own messages for anything else ("expected a string").

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;

use compact_str::CompactString;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string, inline up to 24 bytes.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(CompactString);

impl Text {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// The list as `String`s, for the Istio types we generate (they keep `String`).
pub fn strings(list: &[Text]) -> Vec<String> {
    list.iter().map(|t| t.to_string()).collect()
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

/// As a `str` shows: messages and test output read as they did with `String`.
impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(CompactString::from(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(CompactString::from(s))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.0.into_string()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.0.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.0.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.0.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.0.as_str()
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        CompactString::deserialize(deserializer).map(Text)
    }
}

/// The schema of a string: the generated CRDs do not change.
impl JsonSchema for Text {
    fn inline_schema() -> bool {
        <String as JsonSchema>::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        <String as JsonSchema>::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        <String as JsonSchema>::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        <String as JsonSchema>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_writes_as_a_string() {
        for s in [
            "",
            "https",
            "exactly-twenty-four-byte",
            "a string longer than twenty-four bytes",
        ] {
            let t: Text = serde_json::from_value(json!(s)).unwrap();
            assert_eq!(t, s);
            assert_eq!(serde_json::to_value(&t).unwrap(), json!(s));
            assert_eq!(format!("{t:?}"), format!("{s:?}"));
            assert_eq!(t.to_string(), s);
        }
        // From a byte slice too (serde_json's reader hands borrowed strings over).
        let t: Text = serde_json::from_slice(br#""HTTPS""#).unwrap();
        assert_eq!(t.as_str(), "HTTPS");
    }

    #[test]
    fn errors_are_the_string_s() {
        for v in [
            json!(1),
            json!(null),
            json!(["a"]),
            json!({"a": 1}),
            json!(true),
        ] {
            let e = serde_json::from_value::<Text>(v.clone()).unwrap_err();
            let b = serde_json::from_value::<String>(v).unwrap_err();
            assert_eq!(e.to_string(), b.to_string());
        }
    }

    #[test]
    fn short_strings_stay_inline() {
        assert_eq!(std::mem::size_of::<Text>(), std::mem::size_of::<String>());
        assert_eq!(
            std::mem::size_of::<Option<Text>>(),
            std::mem::size_of::<String>()
        );
        assert!(!Text::from("exactly-twenty-four-byte").0.is_heap_allocated());
        assert!(
            Text::from("twenty-five bytes, on heap")
                .0
                .is_heap_allocated()
        );
    }

    #[test]
    fn schema_is_the_string_s() {
        let mut g = SchemaGenerator::default();
        let mut h = SchemaGenerator::default();
        assert_eq!(Text::json_schema(&mut g), String::json_schema(&mut h));
    }

    #[test]
    fn orders_and_hashes_as_str() {
        use std::collections::BTreeSet;
        let set: BTreeSet<Text> = ["b", "a", "c"].into_iter().map(Text::from).collect();
        assert!(set.contains("a"));
        assert_eq!(
            set.iter().map(Text::as_str).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}

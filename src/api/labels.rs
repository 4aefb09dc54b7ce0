//! `Labels`: the label maps of selectors, kept as one sorted, exact-size array.
//!
//! Why not `BTreeMap<String, String>` (issue 12, memory): the catalog holds tens of thousands of
//! selectors, nearly all with one or two labels, and a `BTreeMap` node is sized for eleven
//! entries: about 540 bytes for one label, against 48 here. Why not `litemap::LiteMap`, which is
//! this layout: its serde writes an empty map as `[]` in JSON, and an empty `labels: {}` must stay
//! `{}` (patches, companions, the CRD's schema). Reading goes through `BTreeMap`, so duplicate
//! keys and error messages are serde's for a map, as before.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::text::Text;

/// Label key → value, sorted by key, no duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Box<[(Text, Text)]>);

impl Labels {
    pub fn get(&self, key: &str) -> Option<&Text> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Text, &Text)> + Clone {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Text> + Clone {
        self.0.iter().map(|(k, _)| k)
    }
}

impl From<BTreeMap<Text, Text>> for Labels {
    fn from(map: BTreeMap<Text, Text>) -> Self {
        // A BTreeMap iterates in key order without duplicates: already the invariant.
        Labels(map.into_iter().collect())
    }
}

impl From<Labels> for BTreeMap<String, String> {
    fn from(labels: Labels) -> Self {
        labels
            .0
            .into_vec()
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }
}

impl<K: Into<Text>, V: Into<Text>> FromIterator<(K, V)> for Labels {
    /// Later duplicates win, as in a map.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        iter.into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect::<BTreeMap<Text, Text>>()
            .into()
    }
}

impl<K: Into<Text>, V: Into<Text>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a Text, &'a Text);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Text, Text)>,
        fn(&'a (Text, Text)) -> (&'a Text, &'a Text),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<Text, Text>::deserialize(deserializer).map(Labels::from)
    }
}

/// The schema of the map it stands for: the generated CRDs do not change.
impl JsonSchema for Labels {
    fn inline_schema() -> bool {
        <BTreeMap<String, String> as JsonSchema>::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        <BTreeMap<String, String> as JsonSchema>::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        <BTreeMap<String, String> as JsonSchema>::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        <BTreeMap<String, String> as JsonSchema>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_writes_as_a_map() {
        let l: Labels = serde_json::from_value(json!({"b": "2", "a": "1"})).unwrap();
        assert_eq!(l.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(l.get("b").map(Text::as_str), Some("2"));
        assert_eq!(l.get("c"), None);
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            json!({"a": "1", "b": "2"})
        );
        // Empty stays an object (litemap writes `[]`).
        let empty: Labels = serde_json::from_value(json!({})).unwrap();
        assert_eq!(serde_json::to_value(&empty).unwrap(), json!({}));
    }

    #[test]
    fn errors_are_the_map_s() {
        let e = serde_json::from_value::<Labels>(json!(["a"])).unwrap_err();
        let b = serde_json::from_value::<BTreeMap<String, String>>(json!(["a"])).unwrap_err();
        assert_eq!(e.to_string(), b.to_string());
        let e = serde_json::from_value::<Labels>(json!({"a": 1})).unwrap_err();
        let b = serde_json::from_value::<BTreeMap<String, String>>(json!({"a": 1})).unwrap_err();
        assert_eq!(e.to_string(), b.to_string());
    }

    #[test]
    fn schema_is_the_map_s() {
        let mut g = SchemaGenerator::default();
        let mut h = SchemaGenerator::default();
        assert_eq!(
            Labels::json_schema(&mut g),
            <BTreeMap<String, String>>::json_schema(&mut h)
        );
    }
}

//! The object and old object of a review, parsed as raw JSON with a cap on their number of JSON
//! values (`MAX_PARSED_VALUES`), counted while parsing; `MAX_OBJECT_VALUES`, lower, for the
//! Gloo objects that are then typed, defaulted and validated.
//!
//! Why: what a review costs in memory grows with its number of values, not its bytes. `[{},{}]`
//! is 3 bytes per value in the body but an 80-byte `Value` in the tree, and every port, host or
//! client then gets defaulted, typed, validated and reported on: before this cap a 1 MiB review
//! of empty ports held 480 MB while it was decided (tests/admission_memory.rs), so one user
//! allowed to create ExternalServices could exhaust the webhook (the apiserver calls the
//! mutating webhook before it checks the CRD schema). Past the cap the rest of the object is
//! read and dropped without being stored, and the review is denied with a message that says so.

use std::cell::Cell;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// JSON values (scalars, arrays and objects each count one) parsed of one object; past it the
/// object is not kept. Generous, because the Istio kinds we guard arrive here too and a
/// user's own ServiceEntry may list thousands of endpoints (only their labels are read); and
/// bounded, because its parsed tree is held whatever the kind (`budget::parse_cost`).
pub const MAX_PARSED_VALUES: usize = 25_000;

/// JSON values of a Gloo object that is defaulted and validated: past it the review is denied
/// before any of that, since their cost grows with every port, host and client. The largest
/// realistic Gloo object (hundreds of hosts or clients, with its managedFields) has a few
/// thousand.
pub const MAX_OBJECT_VALUES: usize = 10_000;

/// An object of a review: its JSON (`Null` when over `MAX_PARSED_VALUES`), how many values it
/// had (at most one past that cap: counting stops there), and whether it was over.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RawObject {
    pub value: Value,
    pub values: usize,
    pub over: bool,
}

struct Count {
    seen: Cell<usize>,
    limit: usize,
}

impl Count {
    /// Count one more value; false once past the limit.
    fn take(&self) -> bool {
        let n = self.seen.get() + 1;
        self.seen.set(n.min(self.limit + 1));
        n <= self.limit
    }
}

/// Deserializes one value, counting it and everything inside; past the limit, yields `Null`
/// and skips the rest without storing it.
struct Bounded<'a>(&'a Count);

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.take() {
            d.deserialize_any(self)
        } else {
            IgnoredAny::deserialize(d).map(|_| Value::Null)
        }
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Bounded(self.0))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // A duplicate key keeps the last value, as serde_json's own `Value` does.
            let v = map.next_value_seed(Bounded(self.0))?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let count = Count {
            seen: Cell::new(0),
            limit: MAX_PARSED_VALUES,
        };
        let value = Bounded(&count).deserialize(d)?;
        let values = count.seen.get();
        let over = values > MAX_PARSED_VALUES;
        Ok(RawObject {
            value: if over { Value::Null } else { value },
            values,
            over,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RawObject {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn values_are_counted_and_kept_under_the_cap() {
        let o = parse(r#"{"a": [1, "x", null, {"b": true}], "c": 1.5}"#);
        assert_eq!(o.values, 8);
        assert!(!o.over);
        assert_eq!(
            o.value,
            serde_json::json!({"a": [1, "x", null, {"b": true}], "c": 1.5})
        );
    }

    #[test]
    fn past_the_cap_nothing_is_kept() {
        let n = MAX_PARSED_VALUES;
        let at_cap = format!("[{}]", vec!["{}"; n - 1].join(","));
        let o = parse(&at_cap);
        assert_eq!((o.values, o.over), (n, false));
        assert_eq!(o.value.as_array().unwrap().len(), n - 1);
        let over = format!("[{}]", vec!["{}"; n * 3].join(","));
        let o = parse(&over);
        assert_eq!((o.values, o.over, o.value), (n + 1, true, Value::Null));
    }

    #[test]
    fn bad_json_and_deep_nesting_are_errors() {
        assert_eq!(
            parse(r#"{"a": 1, "a": 2}"#).value,
            serde_json::json!({"a": 2})
        );
        assert!(serde_json::from_str::<RawObject>(r#"{"a": }"#).is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(
            serde_json::from_str::<RawObject>(&deep).is_err(),
            "recursion limit"
        );
    }
}

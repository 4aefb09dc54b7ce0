//! The object and old object of a review: their JSON text, kept as it came, and their number of
//! JSON values, counted when the review is read; `MAX_PARSED_VALUES` caps what is ever parsed
//! into a tree, `MAX_OBJECT_VALUES`, lower, the Gloo objects that are typed, defaulted and
//! validated.
//!
//! Why count: what a review costs in memory grows with its number of values, not its bytes.
//! `[{},{}]` is 3 bytes per value in the body but an 80-byte `Value` in the tree, and every
//! port, host or client then gets defaulted, typed, validated and reported on: before this cap a
//! 1 MiB review of empty ports held 480 MB while it was decided (tests/admission_memory.rs), so
//! one user allowed to create ExternalServices could exhaust the webhook (the apiserver calls the
//! mutating webhook before it checks the CRD schema). The count is taken by a pass that stores
//! nothing; past the cap the object is never parsed, and the review is denied with a message that
//! says so.
//!
//! Why keep the text: /validate types a Gloo object straight from it (`Object::gloo_from_text`),
//! and building a generic tree first cost more than typing itself (an insertion-ordered map,
//! hashed, per JSON object; a string allocated per key and value; then every string copied again
//! into the typed object). The tree is parsed on first use, once, by what needs raw JSON: the
//! defaults patch at /mutate, the guard of the Istio kinds we generate, EgressGuardrails, and
//! the error path of an object that does not type.

use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use serde_json::Value;
use serde_json::value::RawValue;

/// JSON values (scalars, arrays and objects each count one) of one object that may be parsed
/// into a tree; past it the object is not. Generous, because the Istio kinds we guard arrive
/// here too and a user's own ServiceEntry may list thousands of endpoints (only their labels
/// are read); and bounded, because that tree is held whatever the kind (`budget::parse_cost`).
pub const MAX_PARSED_VALUES: usize = 25_000;

/// JSON values of a Gloo object that is defaulted and validated: past it the review is denied
/// before any of that, since their cost grows with every port, host and client. The largest
/// realistic Gloo object (hundreds of hosts or clients, with its managedFields) has a few
/// thousand.
pub const MAX_OBJECT_VALUES: usize = 10_000;

/// An object of a review: its JSON text, how many values it has (capped at one past
/// `MAX_PARSED_VALUES`), whether it was over, and its tree once parsed.
#[derive(Debug, Clone)]
pub struct RawObject {
    text: Box<RawValue>,
    pub values: usize,
    pub over: bool,
    tree: OnceLock<Value>,
}

impl RawObject {
    /// The object's JSON text, as the review holds it (valid JSON: it was read as such).
    pub fn text(&self) -> &str {
        self.text.get()
    }

    /// The object's JSON tree, parsed on the first call; `Null` when over `MAX_PARSED_VALUES`.
    pub fn value(&self) -> &Value {
        self.tree.get_or_init(|| self.parse())
    }

    /// `value`, to change in place (the defaults patch is checked on it); always `Some`.
    pub fn value_mut(&mut self) -> Option<&mut Value> {
        self.value();
        self.tree.get_mut()
    }

    fn parse(&self) -> Value {
        if self.over {
            return Value::Null;
        }
        // The text is valid JSON (serde_json captured it), nested no deeper than serde_json
        // parses (`MAX_DEPTH`, checked by the count), and within `MAX_PARSED_VALUES`, so this
        // parse neither fails nor grows past what `budget::parse_cost` reserved.
        serde_json::from_str(self.text.get()).unwrap_or(Value::Null)
    }
}

/// How deep an object may nest: serde_json's recursion limit for a document of its own (128
/// levels taken on entering, refused on reaching zero), which the object's typed decode and its
/// tree, both parsed from its text alone, are held to. The review around it takes two levels,
/// so a tree parse of the whole review allowed the object two levels fewer; this is no looser
/// a bound on the stack.
const MAX_DEPTH: usize = 127;

/// What scanning an object's text found wrong.
#[derive(Debug, PartialEq)]
enum ScanError {
    TooDeep,
}

/// The bytes the scan acts on outside strings; it steps over the rest (colons, numbers,
/// literals, whitespace) with one lookup each.
static STRUCTURE: [bool; 256] = {
    let mut t = [false; 256];
    let mut k = 0;
    let acted_on = *b"\"{}[],";
    while k < acted_on.len() {
        t[acted_on[k] as usize] = true;
        k += 1;
    }
    t
};

/// The number of JSON values of `text` (scalars, arrays and objects; keys are not values), up
/// to one past `limit`, and whether it nests within `MAX_DEPTH`.
///
/// Written here rather than read with a serde visitor (as it first was): the text has just been
/// checked by serde_json (captured as a `RawValue`), and a second serde pass to count it cost
/// more than this scan (bench/results/profile-closed-loop.md). It relies on the text being
/// valid JSON only for the count to be right: on any bytes it ends, without panicking. The
/// count: every value but the outermost is an element of an array or a member of an object, and
/// a container of n elements holds n - 1 commas, so the values are 1 + the commas + the
/// containers that are not empty (commas and brackets inside strings do not count). The tests
/// hold it to a serde visitor that counts each value it visits.
fn count(text: &str, limit: usize) -> Result<usize, ScanError> {
    let bytes = text.as_bytes();
    let (mut commas, mut containers, mut empty, mut depth) = (0usize, 0usize, 0usize, 0usize);
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if !STRUCTURE[usize::from(b)] {
            continue;
        }
        match b {
            b'"' => i = string_end(bytes, i),
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ScanError::TooDeep);
                }
                containers += 1;
                // Empty when the next token closes it: then it is passed over whole.
                let mut next = i;
                while bytes.get(next).is_some_and(u8::is_ascii_whitespace) {
                    next += 1;
                }
                if let Some(b']' | b'}') = bytes.get(next) {
                    empty += 1;
                    depth -= 1;
                    i = next + 1;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => commas += 1,
        }
    }
    Ok((1 + commas + containers - empty).min(limit + 1))
}

/// Just past the closing quote of the string whose contents start at `i` (an escaped character
/// is skipped with its backslash); the end of `bytes` if the string does not close.
///
/// Eight bytes at a time while none is a quote or a backslash: most of an object's bytes are
/// in its strings, most strings are short (keys, names), and a library search (memchr) scans
/// strings shorter than its 32-byte vectors a byte at a time.
fn string_end(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `w` that is zero; exact for the lowest such byte, which is
    // the only one read (a borrow can mark bytes above it).
    let zeros = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    loop {
        while let Some(chunk) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
            let w = u64::from_le_bytes(*chunk);
            let hits = zeros(w ^ (ONES * u64::from(b'"'))) | zeros(w ^ (ONES * u64::from(b'\\')));
            if hits != 0 {
                i += (hits.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        // At a quote or backslash, or within the last eight bytes.
        match bytes.get(i) {
            None => return bytes.len(),
            Some(b'"') => return i + 1,
            Some(b'\\') => i = (i + 2).min(bytes.len()),
            Some(_) => i += 1,
        }
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Capturing the text checks its syntax but not its depth (serde_json skips it without
        // recursing): the count checks that, so an object nested too deep is refused here, as
        // a tree parse of the whole review refused it.
        let text = Box::<RawValue>::deserialize(d)?;
        let values = count(text.get(), MAX_PARSED_VALUES).map_err(|ScanError::TooDeep| {
            D::Error::custom(format_args!(
                "recursion limit exceeded: the object nests deeper than {MAX_DEPTH} levels"
            ))
        })?;
        Ok(RawObject {
            text,
            values,
            over: values > MAX_PARSED_VALUES,
            tree: OnceLock::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

    fn parse(text: &str) -> RawObject {
        serde_json::from_str(text).unwrap()
    }

    /// The oracle: serde_json reads the text and this visitor counts each value it visits.
    struct Counted<'a>(&'a std::cell::Cell<usize>);

    impl<'de> DeserializeSeed<'de> for Counted<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            self.0.set(self.0.get() + 1);
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Counted<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Counted(self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_key::<IgnoredAny>()?.is_some() {
                map.next_value_seed(Counted(self.0))?;
            }
            Ok(())
        }
    }

    fn oracle(text: &str) -> usize {
        let n = std::cell::Cell::new(0);
        let mut de = serde_json::Deserializer::from_str(text);
        Counted(&n).deserialize(&mut de).unwrap();
        n.get()
    }

    /// JSON with the characters the scan must not take for structure: quotes, backslashes,
    /// brackets, braces and commas inside strings and keys, escapes, non-ASCII, empty
    /// containers, nesting.
    fn json() -> impl Strategy<Value = Value> {
        let text = "[a-z\"\\\\\\[\\]{},: \\n\\t\\u{0}é😀]{0,6}";
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            text.prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((text, inner), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        // No regression files: a failure prints the shrunk input, which becomes a case of
        // `the_scan_counts_escapes_and_empty_containers` (as tests/fuzz/mod.rs does).
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn the_scan_counts_what_serde_visits(v in json()) {
            for text in [serde_json::to_string(&v).unwrap(), serde_json::to_string_pretty(&v).unwrap()] {
                prop_assert_eq!(count(&text, usize::MAX - 1), Ok(oracle(&text)), "{}", text);
            }
        }
    }

    /// Inputs the property shrank to while the scan was being written: an escaped quote in a
    /// key, and empty containers.
    #[test]
    fn the_scan_counts_escapes_and_empty_containers() {
        for text in [
            r#"{"":{"\"":null,"":null}}"#,
            "{}",
            "[]",
            r#"[{},[],{"a":[]},"\\",["\\\""]]"#,
        ] {
            assert_eq!(count(text, 100), Ok(oracle(text)), "{text}");
        }
    }

    #[test]
    fn the_scan_survives_what_is_not_json() {
        for text in ["", "\"", "\"\\", "[\"a\\\"]", "]]]", "{,,,", "\\", "[\"\\"] {
            let _ = count(text, 10);
        }
        assert_eq!(count("  [ ]  ", 10), Ok(1));
        assert_eq!(count("[{},[],{\"a\":[]}]", 10), Ok(5));
    }

    #[test]
    fn values_are_counted_and_the_text_kept_under_the_cap() {
        let text = r#"{"a": [1, "x\n", null, {"b": true}], "c": 1.5}"#;
        let o = parse(text);
        assert_eq!(o.values, 8);
        assert!(!o.over);
        assert_eq!(o.text(), text);
        assert!(o.tree.get().is_none(), "no tree until one is asked for");
        assert_eq!(
            *o.value(),
            serde_json::json!({"a": [1, "x\n", null, {"b": true}], "c": 1.5})
        );
        let mut o = o;
        o.value_mut().unwrap()["c"] = 2.into();
        assert_eq!(o.value()["c"], 2);
    }

    #[test]
    fn past_the_cap_nothing_is_parsed() {
        let n = MAX_PARSED_VALUES;
        let at_cap = format!("[{}]", vec!["{}"; n - 1].join(","));
        let o = parse(&at_cap);
        assert_eq!((o.values, o.over), (n, false));
        assert_eq!(o.value().as_array().unwrap().len(), n - 1);
        let over = format!("[{}]", vec!["{}"; n * 3].join(","));
        let o = parse(&over);
        assert_eq!((o.values, o.over, o.value()), (n + 1, true, &Value::Null));
    }

    #[test]
    fn bad_json_and_deep_nesting_are_errors() {
        assert_eq!(
            *parse(r#"{"a": 1, "a": 2}"#).value(),
            serde_json::json!({"a": 2})
        );
        assert!(serde_json::from_str::<RawObject>(r#"{"a": }"#).is_err());
        // Inside a document, as in a review: capturing the text alone would not see the depth.
        let deep = |depth: usize, open: &str, close: &str| {
            format!("{}1{}", open.repeat(depth), close.repeat(depth))
        };
        let nested = |depth: usize, open: &str, close: &str| {
            format!(r#"{{"object": {}, "after": 1}}"#, deep(depth, open, close))
        };
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Holder {
            object: RawObject,
        }
        for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
            // As deep as serde_json parses a document of its own: the tree parses.
            let ok = serde_json::from_str::<Holder>(&nested(MAX_DEPTH, open, close)).unwrap();
            assert_eq!(ok.object.values, MAX_DEPTH + 1);
            assert!(ok.object.value().is_array() || ok.object.value().is_object());
            assert!(
                serde_json::from_str::<Value>(&deep(MAX_DEPTH + 1, open, close)).is_err(),
                "one level more is past serde_json's own limit"
            );
            for depth in [MAX_DEPTH + 1, 10_000] {
                let e = serde_json::from_str::<Holder>(&nested(depth, open, close)).unwrap_err();
                assert!(e.to_string().contains("recursion limit"), "{e}");
            }
        }
    }
}

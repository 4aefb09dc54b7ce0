//! Where a raw object has a list in a place our typed model holds an object.
//!
//! serde's derive accepts a sequence for a struct (its fields in order), so a listener written
//! as `[]` decodes as a listener with no fields. The defaults patch is computed on the typed
//! form and then names a field inside what the raw object has as a list, where it cannot apply.
//! The apiserver's schema would refuse such an object after the mutating webhooks; /mutate
//! refuses it first, naming the field. Written here because neither serde nor serde_json has a
//! switch to refuse sequences for structs, and the one walk costs nothing next to the decode.

use serde_json::Value;

/// The path (`spec.listeners[0]`) of the first place where `typed` (the typed object
/// serialized) has an object and `raw` a list, if any. Only places present in both count.
pub fn list_for_object(typed: &Value, raw: &Value) -> Option<String> {
    walk(typed, raw, String::new())
}

fn walk(typed: &Value, raw: &Value, path: String) -> Option<String> {
    match (typed, raw) {
        (Value::Object(_), Value::Array(_)) => Some(path),
        (Value::Object(t), Value::Object(r)) => t.iter().find_map(|(k, tv)| {
            let rv = r.get(k)?;
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            walk(tv, rv, child)
        }),
        (Value::Array(t), Value::Array(r)) => t
            .iter()
            .zip(r)
            .enumerate()
            .find_map(|(i, (tv, rv))| walk(tv, rv, format!("{path}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_where_an_object_belongs_is_found_with_its_path() {
        let typed = json!({"spec": {"listeners": [{"port": {"number": 443}}, {}]}});
        let raw = json!({"spec": {"listeners": [{"port": {"number": 443}}, []]}});
        assert_eq!(
            list_for_object(&typed, &raw).as_deref(),
            Some("spec.listeners[1]")
        );
    }

    #[test]
    fn matching_shapes_and_absent_fields_are_fine() {
        let typed = json!({"spec": {"listeners": [{"appProtocol": "TCP"}], "x": {}}});
        let raw = json!({"spec": {"listeners": [{}], "unknown": []}});
        assert_eq!(list_for_object(&typed, &raw), None);
    }
}

#[cfg(test)]
mod typed_tests {
    use super::*;

    #[test]
    fn a_typed_listener_decoded_from_a_list_is_found() {
        let raw = serde_json::json!({
            "apiVersion": "networking.gloo.solo.io/v2",
            "kind": "VirtualGateway",
            "metadata": {"name": "vg", "namespace": "istio-egress"},
            "spec": {"listeners": [{"port": {"number": 443}, "http": {}}, []]}
        });
        let typed = crate::core::Object::from_json(&raw).unwrap().to_value();
        assert_eq!(
            list_for_object(&typed, &raw).as_deref(),
            Some("spec.listeners[1]"),
            "{typed}"
        );
    }
}

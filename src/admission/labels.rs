//! Metric label values of a review, from a fixed set: the kind and the operation come from the
//! request body, and a label value taken as sent would let any client mint new time series
//! (unbounded memory in this process and in Prometheus).

use crate::companions::kinds::KINDS;

use super::review::GroupVersionKind;

/// The three kinds we admit, the Istio kinds we generate (and guard: their reviews are worth
/// telling apart), or "other" (unknown kinds, unreadable reviews). Matched by group and kind:
/// an `ExternalService` of another group is "other".
pub fn kind(gvk: Option<&GroupVersionKind>) -> &'static str {
    let Some(gvk) = gvk else {
        return "other";
    };
    let ours = [
        ("networking.gloo.solo.io", "ExternalService"),
        ("networking.gloo.solo.io", "VirtualGateway"),
        ("security.policy.gloo.solo.io", "AccessPolicy"),
    ];
    ours.into_iter()
        .chain(KINDS.iter().map(|(group, _, kind, _)| (*group, *kind)))
        .find(|(group, kind)| *group == gvk.group && *kind == gvk.kind)
        .map_or("other", |(_, kind)| kind)
}

/// CREATE, UPDATE, DELETE, CONNECT (the apiserver's operations), or "other".
pub fn operation(operation: &str) -> &'static str {
    match operation {
        "CREATE" => "CREATE",
        "UPDATE" => "UPDATE",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gvk(group: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: group.to_string(),
            version: "v1".to_string(),
            kind: kind.to_string(),
        }
    }

    #[test]
    fn kinds_outside_the_fixed_set_are_other() {
        assert_eq!(
            kind(Some(&gvk("networking.gloo.solo.io", "ExternalService"))),
            "ExternalService"
        );
        assert_eq!(
            kind(Some(&gvk("security.policy.gloo.solo.io", "AccessPolicy"))),
            "AccessPolicy"
        );
        assert_eq!(
            kind(Some(&gvk("networking.istio.io", "ServiceEntry"))),
            "ServiceEntry"
        );
        assert_eq!(
            kind(Some(&gvk("security.istio.io", "AuthorizationPolicy"))),
            "AuthorizationPolicy"
        );
        for (group, k) in [
            ("apps", "Deployment"),
            ("evil.example.com", "ExternalService"),
            ("networking.gloo.solo.io", "externalservice"),
            ("networking.gloo.solo.io", "\u{0}"),
            ("", ""),
        ] {
            assert_eq!(kind(Some(&gvk(group, k))), "other", "{group} {k}");
        }
        assert_eq!(kind(None), "other");
    }

    #[test]
    fn operations_outside_the_apiserver_s_four_are_other() {
        for op in ["CREATE", "UPDATE", "DELETE", "CONNECT"] {
            assert_eq!(operation(op), op);
        }
        for op in ["", "create", "PATCH", "CREATE ", "x".repeat(1000).as_str()] {
            assert_eq!(operation(op), "other", "{op:?}");
        }
    }
}

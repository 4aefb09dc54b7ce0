//! Hostile names and hosts through the real kubectl and kube-apiserver (issue 13, item 2): an
//! ExternalService whose name holds an ANSI escape, or whose host reads backwards behind a
//! bidi override, is denied by the webhook, and what kubectl prints names the field and shows
//! the character escaped: the terminal is not recoloured, the line does not read backwards.

mod e2e;

use e2e::{apply, kubectl, namespace, shared};

/// kubectl's stderr holds no character a terminal would act on or hide.
fn assert_terminal_safe(text: &str, what: &str) {
    assert!(
        !text
            .chars()
            .any(|c| c != '\n' && egress_webhook::core::text::is_unprintable(c)),
        "{what}: kubectl printed unprintable characters: {text:?}"
    );
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn hostile_names_and_hosts_are_denied_with_escaped_messages_in_kubectl() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let ns = "e2e-hostile";
    namespace(&dev, ns);
    let es = |name: &str, host: &str| {
        format!(
            "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: \"{name}\", namespace: {ns}}}\nspec:\n  hosts: [\"{host}\"]\n  ports:\n  - {{name: http, number: 80, protocol: HTTP}}\n"
        )
    };
    // YAML double-quoted escapes: \e is ESC, \u202E the right-to-left override.
    let cases = [
        (
            "a name with an ANSI escape",
            es("red\\e[31m.example.com", "red.example.com"),
            "mutate.egress-webhook.io",
            "metadata.name: \"red\\u{1b}[31m.example.com\" is not a valid name",
        ),
        (
            "a host behind a bidi override",
            es("bidi.example.com", "\\u202Egro.nibptth"),
            "validate.egress-webhook.io",
            "spec.hosts[0]: host \"\\u{202e}gro.nibptth\"",
        ),
    ];
    for (what, yaml, webhook, needle) in cases {
        let out = apply(&dev, &yaml, &[]).expect_err(what);
        assert!(
            out.stderr
                .contains(&format!("admission webhook \"{webhook}\" denied")),
            "{what}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(needle), "{what}: {}", out.stderr);
        assert_terminal_safe(&out.stderr, what);
    }
    let left =
        kubectl(&dev, &["get", "externalservices", "-n", ns, "-o", "name"]).expect_ok("list");
    assert_eq!(left.stdout, "", "nothing was stored");
}

//! The kustomize tree of `manifests/` builds with the kustomize in the pinned kubectl (built by
//! hack/controlplane/build.sh, like the control plane; missing is a failure, not a skip), each
//! tree yields exactly the expected objects, the overlays and the client-ca component change
//! what they claim to, and the webhook configurations are the code's.
//! Whether the apiserver accepts the output: tests/e2e_install.rs.

mod e2e;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use e2e::repo;
use egress_webhook::cluster::webhook::{self, DEFAULT_NAMESPACE, Registration};
use egress_webhook::controlplane::Binaries;
use serde_json::Value;

/// `kubectl kustomize DIR`, parsed; panics with kustomize's message when it fails.
fn build(dir: &Path) -> Vec<Value> {
    let kubectl = Binaries::locate(None)
        .unwrap_or_else(|e| panic!("{e} (run `make controlplane`)"))
        .kubectl;
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8_lossy(&out.stdout))
        .expect("kustomize printed YAML")
}

/// kind -> count.
fn kinds(objs: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in objs {
        *m.entry(o["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

fn expect(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

fn one<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objs.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

fn pod_spec(objs: &[Value]) -> &Value {
    &one(objs, "Deployment")["spec"]["template"]["spec"]
}

fn args(objs: &[Value]) -> Vec<String> {
    let a: Vec<String> =
        serde_json::from_value(pod_spec(objs)["containers"][0]["args"].clone()).unwrap();
    parses_as_serve(&a);
    a
}

/// The container's args are a valid `egress-webhook serve` command line: every flag exists,
/// and none conflicts with another (--ingress-restricted with --client-ca, say).
fn parses_as_serve(args: &[String]) {
    use clap::{Args, FromArgMatches};
    use egress_webhook::cli::serve::ServeArgs;
    let cmd = clap::Command::new("egress-webhook")
        .subcommand(ServeArgs::augment_args(clap::Command::new("serve")));
    let m = cmd
        .try_get_matches_from(std::iter::once("egress-webhook".to_string()).chain(args.to_vec()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let (name, sub) = m.subcommand().expect("a subcommand");
    assert_eq!(name, "serve");
    ServeArgs::from_arg_matches(sub).unwrap_or_else(|e| panic!("{args:?}: {e}"));
}

/// The base's objects, also part of each overlay.
const BASE: &[(&str, usize)] = &[
    ("Namespace", 1),
    ("ServiceAccount", 1),
    ("ClusterRole", 1),
    ("ClusterRoleBinding", 1),
    // The Lease's, and the mesh config's in istio-system.
    ("Role", 2),
    ("RoleBinding", 2),
    ("Deployment", 1),
    ("Service", 1),
    ("PodDisruptionBudget", 1),
    ("NetworkPolicy", 1),
    ("MutatingWebhookConfiguration", 1),
    ("ValidatingWebhookConfiguration", 1),
];

fn with(extra: &[(&str, usize)]) -> BTreeMap<String, usize> {
    let mut m = expect(BASE);
    for (k, n) in extra {
        *m.entry(k.to_string()).or_default() += n;
    }
    m
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn base_and_crds_build_to_exactly_their_objects() {
    if e2e::skip_cluster_tests() {
        return;
    }
    let base = build(&repo("manifests/base"));
    assert_eq!(kinds(&base), expect(BASE));
    let a = args(&base);
    assert_eq!(a[0], "serve");
    assert!(a.contains(&"--ingress-restricted".to_string()), "{a:?}");
    let crds = build(&repo("manifests/crds"));
    assert_eq!(kinds(&crds), expect(&[("CustomResourceDefinition", 4)]));
}

/// kustomize passes the generated configurations through unchanged: they are exactly
/// `Registration::in_cluster` (the committed file is compared with the code by a unit test).
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn base_webhook_configurations_are_the_codes() {
    if e2e::skip_cluster_tests() {
        return;
    }
    let base = build(&repo("manifests/base"));
    let reg = Registration::in_cluster(DEFAULT_NAMESPACE);
    assert_eq!(
        one(&base, "MutatingWebhookConfiguration"),
        &serde_json::to_value(webhook::mutating(&reg)).unwrap()
    );
    assert_eq!(
        one(&base, "ValidatingWebhookConfiguration"),
        &serde_json::to_value(webhook::validating(&reg)).unwrap()
    );
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn self_signed_overlay_runs_on_an_emptydir_with_its_secret_rbac() {
    if e2e::skip_cluster_tests() {
        return;
    }
    let objs = build(&repo("manifests/overlays/self-signed"));
    assert_eq!(
        kinds(&objs),
        with(&[
            ("CustomResourceDefinition", 4),
            ("Role", 1),
            ("RoleBinding", 1),
            ("ClusterRole", 1),
            ("ClusterRoleBinding", 1),
        ])
    );
    let a = args(&objs);
    for flag in [
        "--tls-cert=/tmp/tls/tls.crt",
        "--tls-key=/tmp/tls/tls.key",
        "--self-signed-secret=egress-webhook-tls",
        "--ingress-restricted",
    ] {
        assert!(a.contains(&flag.to_string()), "{flag} in {a:?}");
    }
    assert!(
        !a.iter().any(|f| f.contains("/etc/egress-webhook/tls")),
        "{a:?}"
    );
    let spec = pod_spec(&objs);
    assert!(spec["volumes"][0]["emptyDir"].is_object(), "{spec}");
    assert!(spec["volumes"][0].get("secret").is_none(), "{spec}");
    assert_eq!(
        spec["containers"][0]["volumeMounts"][0]["mountPath"],
        "/tmp/tls"
    );
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn cert_manager_overlay_issues_the_secret_and_injects_the_ca() {
    if e2e::skip_cluster_tests() {
        return;
    }
    let objs = build(&repo("manifests/overlays/cert-manager"));
    assert_eq!(
        kinds(&objs),
        with(&[
            ("CustomResourceDefinition", 4),
            ("Issuer", 2),
            ("Certificate", 2)
        ])
    );
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        assert_eq!(
            one(&objs, kind)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "egress-webhook/egress-webhook",
            "{kind}"
        );
    }
    // inject-ca-from names the serving Certificate, whose Secret the Deployment mounts.
    let serving = objs
        .iter()
        .find(|o| o["kind"] == "Certificate" && o["metadata"]["name"] == "egress-webhook")
        .expect("Certificate egress-webhook");
    assert_eq!(serving["metadata"]["namespace"], "egress-webhook");
    assert_eq!(serving["spec"]["secretName"], "egress-webhook-tls");
    assert_eq!(
        serving["spec"]["dnsNames"],
        serde_json::json!([
            "egress-webhook.egress-webhook.svc",
            "egress-webhook.egress-webhook.svc.cluster.local"
        ])
    );
    assert_eq!(
        pod_spec(&objs)["volumes"][0]["secret"]["secretName"],
        "egress-webhook-tls"
    );
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn client_ca_component_switches_to_mtls_on_base_and_on_an_overlay() {
    if e2e::skip_cluster_tests() {
        return;
    }
    for (resource, extra) in [
        ("manifests/base", vec![]),
        (
            "manifests/overlays/self-signed",
            vec!["--self-signed-secret=egress-webhook-tls"],
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        e2e::write_client_ca_overlay(tmp.path(), resource, "not parsed by kustomize\n");
        let objs = build(tmp.path());
        let a = args(&objs);
        assert!(!a.contains(&"--ingress-restricted".to_string()), "{a:?}");
        for flag in [
            "--client-ca=/etc/egress-webhook/client-ca/ca.crt",
            "--client-allowed-names=kube-apiserver-webhook-client",
        ]
        .into_iter()
        .chain(extra)
        {
            assert!(a.contains(&flag.to_string()), "{resource}: {flag} in {a:?}");
        }
        // The volume names the generated ConfigMap (kustomize adds a content hash to both).
        let cm = one(&objs, "ConfigMap");
        assert_eq!(cm["data"]["ca.crt"], "not parsed by kustomize\n");
        let spec = pod_spec(&objs);
        let vol = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "client-ca")
            .expect("client-ca volume");
        assert_eq!(vol["configMap"]["name"], cm["metadata"]["name"]);
        let mount = spec["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "client-ca")
            .expect("client-ca mount");
        assert_eq!(mount["mountPath"], "/etc/egress-webhook/client-ca");
        assert_eq!(mount["readOnly"], true);
    }
}

/// No wildcard anywhere in the RBAC of any tree; the base grants nothing on Secrets or Pods, and
/// the self-signed overlay grants Secrets only in its own Role (tests/e2e_install.rs asks the
/// apiserver the same with `kubectl auth can-i`).
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn rbac_has_no_wildcards_and_no_secrets_or_pods_in_the_base() {
    if e2e::skip_cluster_tests() {
        return;
    }
    let rules = |objs: &[Value]| -> Vec<(String, Value)> {
        objs.iter()
            .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
            .flat_map(|o| {
                let name = format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                );
                o["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |r| (name.clone(), r.clone()))
            })
            .collect()
    };
    let strings = |r: &Value, field: &str| -> Vec<String> {
        serde_json::from_value(r[field].clone()).unwrap_or_default()
    };
    for tree in [
        "manifests/base",
        "manifests/overlays/self-signed",
        "manifests/overlays/cert-manager",
    ] {
        for (role, r) in rules(&build(&repo(tree))) {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                assert!(
                    !strings(&r, field).iter().any(|s| s.contains('*')),
                    "{tree}: {role} has a wildcard in {field}: {r}"
                );
            }
            let resources = strings(&r, "resources");
            assert!(!resources.contains(&"pods".to_string()), "{tree}: {role}");
            if resources.contains(&"secrets".to_string()) {
                assert_eq!(
                    (tree, role.as_str()),
                    (
                        "manifests/overlays/self-signed",
                        "Role/egress-webhook-self-signed"
                    ),
                    "Secrets only in the self-signed Role"
                );
            }
        }
    }
}

/// Status and events (src/controller/status.rs, events.rs, cluster/guardrail_audit.rs): exactly
/// `patch` on the four status subresources and `create`/`patch` on `events.k8s.io` events, in every tree; nothing on the
/// core group's events, no `update` of a status.
#[test]
fn rbac_grants_status_patch_and_event_create_patch_exactly() {
    if e2e::skip_cluster_tests() {
        return;
    }
    let strings = |r: &Value, field: &str| -> Vec<String> {
        serde_json::from_value(r[field].clone()).unwrap_or_default()
    };
    for tree in [
        "manifests/base",
        "manifests/overlays/self-signed",
        "manifests/overlays/cert-manager",
    ] {
        let objs = build(&repo(tree));
        let role = objs
            .iter()
            .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == "egress-webhook")
            .unwrap_or_else(|| panic!("{tree}: no ClusterRole egress-webhook"));
        let rules = role["rules"].as_array().unwrap();
        let mut status: Vec<String> = Vec::new();
        let mut events: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for r in rules {
            for res in strings(r, "resources") {
                if res.ends_with("/status") {
                    assert_eq!(strings(r, "verbs"), ["patch"], "{tree}: {r}");
                    for g in strings(r, "apiGroups") {
                        status.push(format!("{res}.{g}"));
                    }
                }
                if res == "events" {
                    events.push((strings(r, "apiGroups"), strings(r, "verbs")));
                }
            }
        }
        status.sort();
        assert_eq!(
            status,
            [
                "accesspolicies/status.security.policy.gloo.solo.io",
                // The guardrail audit's results (src/cluster/guardrail_audit.rs).
                "egressguardrails/status.policy.egress-webhook.dev",
                "externalservices/status.networking.gloo.solo.io",
                "virtualgateways/status.networking.gloo.solo.io",
            ],
            "{tree}"
        );
        assert_eq!(
            events,
            [(
                vec!["events.k8s.io".to_string()],
                vec!["create".to_string(), "patch".to_string()]
            )],
            "{tree}"
        );
    }
}

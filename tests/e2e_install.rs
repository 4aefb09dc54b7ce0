//! Installing: the kustomize overlays are accepted by a real apiserver (server-side dry-run; the
//! Deployment is never started, this control plane has no nodes), the webhook of the shared
//! cluster runs as the ServiceAccount of `manifests/base` with a TokenRequest token, and that
//! ServiceAccount may do what the code needs and nothing more.
//!
//! The rest of "RBAC is sufficient": every other e2e test binary runs its webhook with that same
//! identity (`egress_webhook::cluster::identity`), so they fail if a verb is missing.

mod e2e;

use std::path::Path;

use base64::Engine;
use e2e::{Kubectl, kubectl, kubectl_in, repo, shared};
use egress_webhook::cluster::dev::DevCluster;
use serde_json::Value;

const SA: &str = "system:serviceaccount:egress-webhook:egress-webhook";

/// `kubectl kustomize DIR | kubectl apply --dry-run=server -f -`; every object of the build must
/// be reported as dry-run applied. Returns the number of objects.
fn dry_run_overlay(dev: &DevCluster, dir: &Path) -> usize {
    let built = kubectl(dev, &["kustomize", &dir.display().to_string()])
        .expect_ok("kubectl kustomize")
        .stdout;
    let objects = serde_saphyr::from_multiple::<Value>(&built).expect("YAML");
    let out = kubectl_in(dev, &["apply", "--dry-run=server", "-f", "-"], &built)
        .expect_ok(&format!("dry-run apply of {}", dir.display()));
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .collect();
    assert_eq!(
        lines.len(),
        objects.len(),
        "{}: every object dry-run applied:\n{}",
        dir.display(),
        out.stdout
    );
    objects.len()
}

/// The namespace and our CRDs exist in the shared cluster already (`DevCluster` applies the
/// base RBAC in `egress-webhook` and installs the CRDs): server-side dry-run does not create a
/// namespace for the objects after it, nor serve a kind whose CRD is only dry-run.
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn self_signed_overlay_is_accepted_by_the_apiserver() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let n = dry_run_overlay(&dev, &repo("manifests/overlays/self-signed"));
    eprintln!("manifests/overlays/self-signed: {n} objects accepted (server dry run)");
}

/// cert-manager's Issuer and Certificate need its CRDs, Established: from the pinned copy
/// (manifests/cert-manager/README.md), installed for real first.
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn cert_manager_overlay_is_accepted_by_the_apiserver() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let crds = repo("manifests/cert-manager/crds-v1.21.1.yaml");
    assert!(
        crds.is_file(),
        "{} is committed; see manifests/cert-manager/README.md",
        crds.display()
    );
    dev.cp().install_crds(&[&crds]).expect("cert-manager CRDs");
    let n = dry_run_overlay(&dev, &repo("manifests/overlays/cert-manager"));
    eprintln!("manifests/overlays/cert-manager: {n} objects accepted (server dry run)");
}

/// A user's overlay of self-signed + the client-ca component (with its ConfigMap).
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn client_ca_component_is_accepted_by_the_apiserver() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    e2e::write_client_ca_overlay(
        tmp.path(),
        "manifests/overlays/self-signed",
        dev.webhook_ca_pem(),
    );
    let n = dry_run_overlay(&dev, tmp.path());
    eprintln!("self-signed + components/client-ca: {n} objects accepted (server dry run)");
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn webhook_authenticates_as_its_service_account_with_a_day_long_token() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let user = dev.webhook_user();
    assert_eq!(user.name, SA);
    let out: Kubectl = dev
        .cp()
        .kubectl_command_for(&user.kubeconfig)
        .args(["auth", "whoami", "-o", "json"])
        .output()
        .expect("kubectl auth whoami")
        .into();
    let review = out.expect_ok("whoami with the webhook's kubeconfig").json();
    let info = &review["status"]["userInfo"];
    assert_eq!(info["username"], SA);
    let groups: Vec<&str> = info["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        groups.contains(&"system:serviceaccounts:egress-webhook"),
        "{groups:?}"
    );
    // A TokenRequest token (a JWT) for the ServiceAccount, valid for the 24 h asked for.
    let config: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&user.kubeconfig).unwrap()).unwrap();
    let token = config["users"][0]["user"]["token"].as_str().expect("token");
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], SA);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        24 * 3600
    );
}

/// `kubectl auth can-i VERB RESOURCE [-n NS | -A] --as=SA`: "yes" or "no". A subresource is
/// written `RESOURCE#SUBRESOURCE` (`RESOURCE/NAME` names one object).
fn can_i(dev: &DevCluster, verb: &str, resource: &str, ns: Option<&str>) -> String {
    let (resource, sub) = match resource.split_once('#') {
        Some((r, s)) => (r, Some(s)),
        None => (resource, None),
    };
    let mut args = vec!["auth", "can-i", verb, resource, "--as", SA];
    if let Some(sub) = sub {
        args.extend(["--subresource", sub]);
    }
    match ns {
        Some(ns) => args.extend(["-n", ns]),
        None => args.push("--all-namespaces"),
    }
    kubectl(dev, &args).stdout.trim().to_string()
}

type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a str);

/// The cases whose answer is not the wanted one.
fn mismatches(dev: &DevCluster, cases: &[Case]) -> Vec<String> {
    cases
        .iter()
        .filter_map(|(verb, res, ns, want)| {
            let got = can_i(dev, verb, res, *ns);
            (got != *want).then(|| format!("{verb} {res} in {ns:?}: {got}, want {want}"))
        })
        .collect()
}

fn assert_none(wrong: Vec<String>) {
    assert!(wrong.is_empty(), "can-i --as={SA}:\n{}", wrong.join("\n"));
}

const ISTIO: [&str; 6] = [
    "serviceentries.networking.istio.io",
    "gateways.networking.istio.io",
    "destinationrules.networking.istio.io",
    "virtualservices.networking.istio.io",
    "authorizationpolicies.security.istio.io",
    "peerauthentications.security.istio.io",
];

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn service_account_may_do_what_the_code_needs_and_no_more() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    // An unrelated CRD of our own: the ServiceAccount must get nothing on it.
    let widget = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
        metadata: {name: widgets.install-test.example.com}\n\
        spec:\n  group: install-test.example.com\n  scope: Namespaced\n\
        \x20 names: {plural: widgets, singular: widget, kind: Widget}\n\
        \x20 versions:\n  - name: v1\n    served: true\n    storage: true\n\
        \x20   schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("widget-crd.yaml");
    std::fs::write(&path, widget).unwrap();
    dev.cp().install_crds(&[&path]).expect("the unrelated CRD");

    let ns = Some("egress-webhook");
    let default = Some("default");
    let mut cases: Vec<Case> = vec![
        ("get", "secrets", ns, "no"),
        ("list", "secrets", ns, "no"),
        ("get", "secrets", default, "no"),
        ("list", "secrets", default, "no"),
        ("get", "secrets", None, "no"),
        ("get", "pods", default, "no"),
        ("list", "pods", None, "no"),
        ("create", "pods", default, "no"),
        ("get", "widgets.install-test.example.com", default, "no"),
        ("list", "widgets.install-test.example.com", None, "no"),
        ("*", "*", None, "no"),
        ("*", "*", ns, "no"),
        (
            "create",
            "externalservices.networking.gloo.solo.io",
            None,
            "no",
        ),
        (
            "patch",
            "accesspolicies.security.policy.gloo.solo.io",
            None,
            "no",
        ),
        ("update", "serviceentries.networking.istio.io", None, "no"),
        // Status: patch only (server-side apply), never update, and not the objects themselves.
        (
            "update",
            "externalservices.networking.gloo.solo.io#status",
            None,
            "no",
        ),
        (
            "patch",
            "externalservices.networking.gloo.solo.io",
            None,
            "no",
        ),
        (
            "update",
            "accesspolicies.security.policy.gloo.solo.io#status",
            None,
            "no",
        ),
        // Events: events.k8s.io only, never deleted or read back.
        ("create", "events", None, "no"),
        ("delete", "events.events.k8s.io", None, "no"),
        ("list", "events.events.k8s.io", None, "no"),
        ("create", "sidecars.networking.istio.io", None, "no"),
        ("patch", "services", None, "no"),
        ("list", "leases.coordination.k8s.io", ns, "no"),
        ("delete", "leases/egress-webhook-controller", ns, "no"),
        ("patch", "leases/some-other-lease", ns, "no"),
        ("create", "serviceaccounts/token", ns, "no"),
        (
            "patch",
            "mutatingwebhookconfigurations/egress-webhook",
            None,
            "no",
        ),
        // What the code does (src/cluster/catalog.rs, src/controller/, kube-lease-manager).
        (
            "list",
            "externalservices.networking.gloo.solo.io",
            None,
            "yes",
        ),
        (
            "watch",
            "externalservices.networking.gloo.solo.io",
            None,
            "yes",
        ),
        (
            "get",
            "externalservices.networking.gloo.solo.io",
            default,
            "yes",
        ),
        (
            "watch",
            "virtualgateways.networking.gloo.solo.io",
            None,
            "yes",
        ),
        (
            "get",
            "virtualgateways.networking.gloo.solo.io",
            default,
            "yes",
        ),
        (
            "watch",
            "accesspolicies.security.policy.gloo.solo.io",
            None,
            "yes",
        ),
        (
            "get",
            "accesspolicies.security.policy.gloo.solo.io",
            default,
            "yes",
        ),
        ("list", "services", None, "yes"),
        ("watch", "services", None, "yes"),
        ("list", "serviceaccounts", None, "yes"),
        ("watch", "serviceaccounts", None, "yes"),
        ("get", "leases/egress-webhook-controller", ns, "yes"),
        ("patch", "leases/egress-webhook-controller", ns, "yes"),
        ("create", "leases.coordination.k8s.io", ns, "yes"),
        // src/controller/status.rs and events.rs.
        (
            "patch",
            "externalservices.networking.gloo.solo.io#status",
            None,
            "yes",
        ),
        (
            "patch",
            "virtualgateways.networking.gloo.solo.io#status",
            None,
            "yes",
        ),
        (
            "patch",
            "accesspolicies.security.policy.gloo.solo.io#status",
            None,
            "yes",
        ),
        ("create", "events.events.k8s.io", None, "yes"),
        ("patch", "events.events.k8s.io", None, "yes"),
        // src/cluster/mesh_watch.rs: the mesh ConfigMaps of istio-system, read-only, there only.
        ("list", "configmaps", Some("istio-system"), "yes"),
        ("watch", "configmaps", Some("istio-system"), "yes"),
        ("get", "configmaps/istio", Some("istio-system"), "yes"),
        ("update", "configmaps/istio", Some("istio-system"), "no"),
        ("patch", "configmaps/istio", Some("istio-system"), "no"),
        ("list", "configmaps", default, "no"),
        ("list", "configmaps", None, "no"),
        ("get", "secrets", Some("istio-system"), "no"),
    ];
    for kind in ISTIO {
        for verb in ["get", "list", "watch", "create", "patch", "delete"] {
            cases.push((verb, kind, None, "yes"));
        }
    }
    assert_none(mismatches(&dev, &cases));

    // The self-signed overlay adds its one Secret and the caBundle of its configurations.
    let rbac = repo("manifests/overlays/self-signed/rbac.yaml");
    let rbac = rbac.display().to_string();
    kubectl(&dev, &["apply", "-f", &rbac]).expect_ok("self-signed RBAC");
    let wrong = mismatches(
        &dev,
        &[
            ("get", "secrets/egress-webhook-tls", ns, "yes"),
            ("update", "secrets/egress-webhook-tls", ns, "yes"),
            ("patch", "secrets/egress-webhook-tls", ns, "no"),
            ("create", "secrets", ns, "yes"),
            ("get", "secrets/other-secret", ns, "no"),
            ("list", "secrets", ns, "no"),
            ("watch", "secrets", ns, "no"),
            ("delete", "secrets/egress-webhook-tls", ns, "no"),
            ("get", "secrets/egress-webhook-tls", default, "no"),
            ("create", "secrets", default, "no"),
            (
                "get",
                "mutatingwebhookconfigurations/egress-webhook",
                None,
                "yes",
            ),
            (
                "patch",
                "mutatingwebhookconfigurations/egress-webhook",
                None,
                "yes",
            ),
            (
                "patch",
                "validatingwebhookconfigurations/egress-webhook",
                None,
                "yes",
            ),
            ("patch", "validatingwebhookconfigurations/other", None, "no"),
            ("list", "validatingwebhookconfigurations", None, "no"),
            (
                "delete",
                "mutatingwebhookconfigurations/egress-webhook",
                None,
                "no",
            ),
            ("get", "pods", ns, "no"),
            ("*", "*", None, "no"),
        ],
    );
    // The other tests of this binary expect the base RBAC only.
    kubectl(&dev, &["delete", "-f", &rbac]).expect_ok("remove the self-signed RBAC");
    assert_none(wrong);
}

/// The webhook's real token agrees with the impersonated answers above.
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn the_real_token_is_denied_secrets_and_allowed_its_watches() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let kubeconfig = &dev.webhook_user().kubeconfig;
    for (args, want) in [
        (&["get", "secrets", "-n", "egress-webhook"][..], "no"),
        (&["get", "pods", "-n", "default"][..], "no"),
        (
            &["list", "externalservices.networking.gloo.solo.io", "-A"][..],
            "yes",
        ),
        (
            &["patch", "serviceentries.networking.istio.io", "-A"][..],
            "yes",
        ),
    ] {
        let out: Kubectl = dev
            .cp()
            .kubectl_command_for(kubeconfig)
            .args(["auth", "can-i"])
            .args(args)
            .output()
            .expect("kubectl auth can-i")
            .into();
        assert_eq!(out.stdout.trim(), want, "{args:?}: {}", out.stderr);
    }
}

//! The plan preview of a dry run, through the real kubectl and kube-apiserver: `kubectl apply
//! --dry-run=server` of one of our kinds prints, after the verdict's warnings, the companion
//! changes the real apply would make (`would create|update|delete Kind ns/name`), computed from
//! the controller's plan, and writes nothing: every Gloo and Istio object keeps its
//! resourceVersion.

mod e2e;

use std::time::Duration;

use e2e::{apply, eventually, inventory, repo_text, shared};
use egress_webhook::cluster::dev::DevCluster;

/// The Istio objects with their resourceVersions, once the controller has finished what the
/// last real apply started (owner references once the parent is stored, statuses): the same
/// inventory twice, a second apart. The Gloo objects are left out: their statuses are written
/// by the controller whenever it has reconciled, which says nothing about a dry run.
fn settled(dev: &DevCluster) -> Vec<String> {
    let istio = |dev: &DevCluster| -> Vec<String> {
        inventory(dev)
            .into_iter()
            .filter(|l| {
                !["ExternalService/", "VirtualGateway/", "AccessPolicy/"]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .collect()
    };
    let mut last = istio(dev);
    assert!(
        eventually(Duration::from_secs(20), || {
            std::thread::sleep(Duration::from_secs(1));
            let now = istio(dev);
            std::mem::replace(&mut last, now) == last
        }),
        "the Istio objects kept changing"
    );
    last
}

fn example(file: &str) -> String {
    repo_text(&format!("manifests/examples/{file}"))
}

/// kubectl's `Warning: would ...` lines, without the prefix.
fn preview(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("Warning: "))
        .filter(|l| l.starts_with("would ") || l.starts_with("... and "))
        .map(str::to_string)
        .collect()
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn a_dry_run_lists_the_companion_changes_and_writes_nothing() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    for f in [
        "00-namespaces.yaml",
        "10-egress-gateway-service.yaml",
        "20-service-accounts.yaml",
        "30-virtualgateway.yaml",
    ] {
        apply(&dev, &example(f), &[]).expect_ok(f);
    }

    // The ExternalService on a cluster without it: its companions would be created.
    let before = settled(&dev);
    let dry = apply(
        &dev,
        &example("40-externalservice.yaml"),
        &["--dry-run=server"],
    )
    .expect_ok("dry run of the ExternalService");
    assert_eq!(
        dry.stdout,
        "externalservice.networking.gloo.solo.io/httpbin.org created (server dry run)\n"
    );
    assert_eq!(
        preview(&dry.stderr),
        [
            "would create ServiceEntry global/externalservice-httpbin-org-global",
            "would create DestinationRule global/externalservice-httpbin-org-global-httpbin-org-tls",
            "would create DestinationRule istio-egress/externalservice-httpbin-org-global-istio-egressgateway",
            "would create VirtualService istio-egress/externalservice-httpbin-org-global-httpbin-org",
            "would create AuthorizationPolicy istio-egress/externalservice-httpbin-org-global-istio-egressgateway-open",
            // The VirtualGateway's Gateway exists once it exposes a host that an
            // ExternalService routed through it declares.
            "would create Gateway istio-egress/virtualgateway-egress-vg-istio-egress",
        ],
        "{}",
        dry.stderr
    );
    assert_eq!(settled(&dev), before, "the dry run wrote something");

    // The real apply writes what the preview listed, and lists nothing.
    let real = apply(&dev, &example("40-externalservice.yaml"), &[]).expect_ok("ExternalService");
    assert!(preview(&real.stderr).is_empty(), "{}", real.stderr);
    let mut written: Vec<String> = settled(&dev)
        .into_iter()
        .filter(|l| !before.contains(l))
        .filter_map(|l| Some(l.split_once('@')?.0.to_string()))
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "AuthorizationPolicy/istio-egress/externalservice-httpbin-org-global-istio-egressgateway-open",
            "DestinationRule/global/externalservice-httpbin-org-global-httpbin-org-tls",
            "DestinationRule/istio-egress/externalservice-httpbin-org-global-istio-egressgateway",
            "Gateway/istio-egress/virtualgateway-egress-vg-istio-egress",
            "ServiceEntry/global/externalservice-httpbin-org-global",
            "VirtualService/istio-egress/externalservice-httpbin-org-global-httpbin-org",
        ]
    );

    // The AccessPolicy on a cluster with the ExternalService: its AuthorizationPolicy would be
    // created and the ExternalService's open rule deleted.
    let before = settled(&dev);
    let dry = apply(
        &dev,
        &example("50-accesspolicy.yaml"),
        &["--dry-run=server"],
    )
    .expect_ok("dry run of the AccessPolicy");
    // As the README shows it: the verdict's warning first, then the plan.
    assert_eq!(
        dry.stdout,
        "accesspolicy.security.policy.gloo.solo.io/egress-access-policy created (server dry run)\n"
    );
    assert_eq!(
        dry.stderr.lines().next(),
        Some(
            "Warning: AccessPolicy istio-egress/egress-access-policy: spec.config.authz: `authz` is deprecated: move this entry into `authzList` [A6]"
        ),
        "{}",
        dry.stderr
    );
    assert_eq!(
        preview(&dry.stderr),
        [
            "would create AuthorizationPolicy istio-egress/accesspolicy-egress-access-policy-istio-egressgateway",
            "would delete AuthorizationPolicy istio-egress/externalservice-httpbin-org-global-istio-egressgateway-open",
        ],
        "{}",
        dry.stderr
    );
    assert_eq!(settled(&dev), before, "the dry run wrote something");
    apply(&dev, &example("50-accesspolicy.yaml"), &[]).expect_ok("AccessPolicy");

    // A changed AccessPolicy (reviews allowed too): an update of its AuthorizationPolicy.
    let before = settled(&dev);
    let changed = example("50-accesspolicy.yaml").replace(
        "      allowedClients:\n",
        "      allowedClients:\n        - serviceAccountSelector:\n            cluster: cluster1\n            labels:\n              account: reviews\n            namespace: bookinfo\n",
    );
    let dry = apply(&dev, &changed, &["--dry-run=server"]).expect_ok("dry run of the change");
    assert_eq!(
        dry.stdout,
        "accesspolicy.security.policy.gloo.solo.io/egress-access-policy configured (server dry run)\n"
    );
    assert_eq!(
        preview(&dry.stderr),
        [
            "would update AuthorizationPolicy istio-egress/accesspolicy-egress-access-policy-istio-egressgateway (principals +1)"
        ],
        "{}",
        dry.stderr
    );
    assert_eq!(settled(&dev), before, "the dry run wrote something");

    // A change no companion depends on (a label): nothing would change.
    let labelled = example("50-accesspolicy.yaml").replace(
        "  namespace: istio-egress\n",
        "  namespace: istio-egress\n  labels: {team: platform}\n",
    );
    let dry = apply(&dev, &labelled, &["--dry-run=server"]).expect_ok("dry run of a label");
    assert_eq!(
        preview(&dry.stderr),
        ["would change no companion Istio object"],
        "{}",
        dry.stderr
    );
}

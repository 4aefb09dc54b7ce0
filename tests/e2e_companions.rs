//! Issue 6 end to end: the companions exist when `kubectl apply` returns, equal `render`, are
//! guarded, repaired, follow ServiceAccounts, disappear with their parent, are rolled back when
//! a write is refused, and do not outlive a parent whose create is refused after our webhook.
//!
//! One cluster for the file, used in order by one test (the steps build on each other).

mod e2e;
mod support;

use std::time::{Duration, Instant};

use e2e::{apply, eventually, inventory, kubectl, repo_text, shared};
use serde_json::Value;

fn example(file: &str) -> String {
    repo_text(&format!("manifests/examples/{file}"))
}

/// Companions of a parent (by our labels) of one kind, in all namespaces.
fn companions(
    dev: &egress_webhook::cluster::dev::DevCluster,
    kind: &str,
    parent: &str,
) -> Vec<Value> {
    let sel =
        format!("app.kubernetes.io/managed-by=egress-webhook,gloo.solo.io/parent_name={parent}");
    let list = kubectl(dev, &["get", kind, "-A", "-l", &sel, "-o", "json"])
        .expect_ok("list companions")
        .json();
    list["items"].as_array().cloned().unwrap_or_default()
}

const COMPANION_KINDS: &str = "serviceentries,gateways,destinationrules,virtualservices,authorizationpolicies,peerauthentications";

fn all_companions(dev: &egress_webhook::cluster::dev::DevCluster, parent: &str) -> Vec<String> {
    companions(dev, COMPANION_KINDS, parent)
        .iter()
        .map(|o| {
            format!(
                "{}/{}/{}",
                o["kind"].as_str().unwrap_or(""),
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn principals(ap: &Value) -> Vec<String> {
    let mut out: Vec<String> = ap["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["from"].as_array().cloned().unwrap_or_default())
        .flat_map(|f| {
            f["source"]["principals"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

fn policy_principals(dev: &egress_webhook::cluster::dev::DevCluster) -> Vec<String> {
    companions(dev, "authorizationpolicies", "egress-access-policy")
        .first()
        .map(principals)
        .unwrap_or_default()
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn companions_follow_their_parents() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let dev = &*dev;

    // Namespaces, gateway Service and ServiceAccounts first (plain objects).
    for f in [
        "00-namespaces.yaml",
        "10-egress-gateway-service.yaml",
        "20-service-accounts.yaml",
    ] {
        apply(dev, &example(f), &[]).expect_ok(f);
    }

    // --dry-run=server of the Gloo objects: same verdicts, no object of any kind created.
    let before = inventory(dev);
    for f in [
        "30-virtualgateway.yaml",
        "40-externalservice.yaml",
        "50-accesspolicy.yaml",
    ] {
        // The ExternalService's dry run is denied: its VirtualGateway was not really created.
        let _ = apply(dev, &example(f), &["--dry-run=server"]);
    }
    assert_eq!(
        inventory(dev),
        before,
        "a server-side dry run wrote something"
    );

    // The real apply, in dependency order; no sleep, no retry before looking.
    for f in [
        "30-virtualgateway.yaml",
        "40-externalservice.yaml",
        "50-accesspolicy.yaml",
    ] {
        apply(dev, &example(f), &[]).expect_ok(f);
    }
    let vs = companions(dev, "virtualservices", "httpbin.org");
    assert_eq!(vs.len(), 1, "one VirtualService for httpbin.org");
    let vs = &vs[0];
    assert_eq!(vs["metadata"]["namespace"], "istio-egress");
    assert_eq!(
        vs["spec"]["gateways"],
        serde_json::json!(["istio-egress/virtualgateway-egress-vg-istio-egress", "mesh"])
    );
    let gw = companions(dev, "gateways", "egress-vg");
    assert_eq!(gw.len(), 1);
    assert_eq!(
        gw[0]["metadata"]["name"],
        "virtualgateway-egress-vg-istio-egress"
    );
    assert!(
        vs["spec"]["http"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["route"][0]["destination"]["host"] == "httpbin.org"
                && r["route"][0]["destination"]["port"]["number"] == 443),
        "route to httpbin.org:443: {vs}"
    );
    let describe = kubectl(
        dev,
        &[
            "describe",
            "vs",
            "-l",
            "gloo.solo.io/parent_name=httpbin.org",
            "-n",
            "istio-egress",
        ],
    )
    .expect_ok("describe");
    assert!(
        describe
            .stdout
            .contains("virtualgateway-egress-vg-istio-egress")
            && describe.stdout.contains("mesh"),
        "{}",
        describe.stdout
    );
    assert_eq!(
        policy_principals(dev),
        ["cluster.local/ns/bookinfo/sa/bookinfo-productpage"]
    );

    // Every stored companion equals `render` of the same objects (spec and labels).
    let render = std::process::Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .args(["render", &support::repo_path("manifests/examples")])
        .output()
        .unwrap();
    let rendered: Vec<Value> = String::from_utf8(render.stdout)
        .unwrap()
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    assert!(rendered.len() >= 6);
    for r in &rendered {
        let (kind, ns, name) = (
            r["kind"].as_str().unwrap(),
            r["metadata"]["namespace"].as_str().unwrap(),
            r["metadata"]["name"].as_str().unwrap(),
        );
        let stored = kubectl(dev, &["get", kind, "-n", ns, name, "-o", "json"])
            .expect_ok("stored companion")
            .json();
        assert_eq!(
            stored["spec"], r["spec"],
            "{kind} {ns}/{name}: spec differs from render"
        );
        for (k, v) in r["metadata"]["labels"].as_object().unwrap() {
            assert_eq!(
                &stored["metadata"]["labels"][k], v,
                "{kind} {ns}/{name}: label {k}"
            );
        }
    }

    // The guard: the admin may not edit a generated VirtualService...
    let vs_name = vs["metadata"]["name"].as_str().unwrap().to_string();
    let edit = kubectl(
        dev,
        &[
            "patch",
            "virtualservice",
            "-n",
            "istio-egress",
            &vs_name,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"hosts":["evil.example.com"]}}"#,
        ],
    );
    let edit = edit.expect_err("edit of a generated VirtualService");
    assert!(
        edit.stderr.contains("guard.egress-webhook.io")
            && edit
                .stderr
                .contains("ExternalService global/httpbin.org: edit that object instead"),
        "{}",
        edit.stderr
    );
    // ...and one deleted by hand is back within 5 s.
    kubectl(
        dev,
        &["delete", "virtualservice", "-n", "istio-egress", &vs_name],
    )
    .expect_ok("delete a generated VirtualService");
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || companions(
            dev,
            "virtualservices",
            "httpbin.org"
        )
        .len()
            == 1),
        "the VirtualService was not put back within 5 s"
    );
    eprintln!("deleted VirtualService back after {:?}", t.elapsed());

    // A second ServiceAccount labelled account=productpage: its principal within 5 s; unlabelled: gone.
    apply(dev, "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: productpage-v2, namespace: bookinfo, labels: {account: productpage}}\n", &[]).expect_ok("second SA");
    let both = [
        "cluster.local/ns/bookinfo/sa/bookinfo-productpage",
        "cluster.local/ns/bookinfo/sa/productpage-v2",
    ];
    assert!(
        eventually(Duration::from_secs(5), || policy_principals(dev) == both),
        "principal not added: {:?}",
        policy_principals(dev)
    );
    kubectl(
        dev,
        &[
            "label",
            "serviceaccount",
            "-n",
            "bookinfo",
            "productpage-v2",
            "account-",
        ],
    )
    .expect_ok("unlabel");
    assert!(
        eventually(Duration::from_secs(5), || policy_principals(dev)
            == ["cluster.local/ns/bookinfo/sa/bookinfo-productpage"]),
        "principal not removed: {:?}",
        policy_principals(dev)
    );

    // Delete the AccessPolicy: the ExternalService's open rule comes back.
    kubectl(
        dev,
        &[
            "delete",
            "accesspolicy",
            "-n",
            "istio-egress",
            "egress-access-policy",
        ],
    )
    .expect_ok("delete the AccessPolicy");
    assert!(
        eventually(Duration::from_secs(5), || {
            companions(dev, "authorizationpolicies", "egress-access-policy").is_empty()
                && companions(dev, "authorizationpolicies", "httpbin.org").len() == 1
        }),
        "open rule not back / policy not gone"
    );

    // Delete the ExternalService: no companion of it remains anywhere within 10 s.
    kubectl(
        dev,
        &["delete", "externalservice", "-n", "global", "httpbin.org"],
    )
    .expect_ok("delete the ExternalService");
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || all_companions(
            dev,
            "httpbin.org"
        )
        .is_empty()),
        "companions left: {:?}",
        all_companions(dev, "httpbin.org")
    );
    eprintln!(
        "companions of a deleted ExternalService gone after {:?}",
        t.elapsed()
    );
}

/// A companion write refused by a real admission check (a ValidatingAdmissionPolicy on
/// DestinationRules): the parent is denied with the reason, and nothing it wrote remains.
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn a_refused_companion_write_denies_the_parent_and_rolls_back() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let dev = &*dev;
    kubectl(dev, &["create", "namespace", "rollback"]).expect_ok("namespace");
    apply(
        dev,
        &support::deny_destinationrules_policy("deny-dr.example.com"),
        &[],
    )
    .expect_ok("policy");
    let es = "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {name: deny-dr.example.com, namespace: rollback}\nspec:\n  hosts: [deny-dr.example.com]\n  ports:\n    - {name: https, number: 443, protocol: HTTPS}\n";
    // The policy is loaded asynchronously by the apiserver: until it refuses, clean up and retry.
    let mut denied = None;
    for _ in 0..50 {
        let out = apply(dev, es, &[]);
        if !out.ok {
            denied = Some(out);
            break;
        }
        kubectl(
            dev,
            &[
                "delete",
                "externalservice",
                "-n",
                "rollback",
                "deny-dr.example.com",
            ],
        )
        .expect_ok("cleanup");
        std::thread::sleep(Duration::from_millis(200));
    }
    let denied = denied.expect("the parent was denied once the policy was active");
    assert!(
        denied
            .stderr
            .contains("the companion Istio objects could not be written")
            && denied.stderr.contains("DestinationRule rollback/")
            && denied.stderr.contains("refused by policy"),
        "{}",
        denied.stderr
    );
    assert!(
        all_companions(dev, "deny-dr.example.com").is_empty(),
        "{:?}",
        all_companions(dev, "deny-dr.example.com")
    );
    assert!(
        kubectl(
            dev,
            &[
                "get",
                "externalservice",
                "-n",
                "rollback",
                "deny-dr.example.com"
            ]
        )
        .stderr
        .contains("NotFound")
    );
}

/// A parent refused AFTER our webhook wrote its companions (a ResourceQuota, which the apiserver
/// checks after validating webhooks): the companions are gone within 10 s.
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn companions_of_a_parent_refused_after_us_do_not_survive() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let dev = &*dev;
    kubectl(dev, &["create", "namespace", "orphans"]).expect_ok("namespace");
    apply(
        dev,
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: no-external-services, namespace: orphans}\nspec:\n  hard: {count/externalservices.networking.gloo.solo.io: \"0\"}\n",
        &[],
    )
    .expect_ok("quota");
    // The quota controller fills in the quota's status; until then the check admits.
    assert!(
        eventually(Duration::from_secs(20), || {
            kubectl(
                dev,
                &[
                    "get",
                    "resourcequota",
                    "-n",
                    "orphans",
                    "no-external-services",
                    "-o",
                    "jsonpath={.status.hard}",
                ],
            )
            .stdout
            .contains("externalservices")
        }),
        "the quota has no status"
    );
    let es = "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {name: orphan.example.com, namespace: orphans}\nspec:\n  hosts: [orphan.example.com]\n  ports:\n    - {name: https, number: 443, protocol: HTTPS}\n";
    let out = apply(dev, es, &[]).expect_err("the quota refuses the ExternalService");
    assert!(
        out.stderr.contains("quota") || out.stderr.contains("forbidden"),
        "{}",
        out.stderr
    );
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || all_companions(
            dev,
            "orphan.example.com"
        )
        .is_empty()),
        "orphans left: {:?}",
        all_companions(dev, "orphan.example.com")
    );
    eprintln!("orphaned companions gone after {:?}", t.elapsed());
}

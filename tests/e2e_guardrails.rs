//! EgressGuardrails end to end (issue 14, "Must show"): real kubectl against a real
//! kube-apiserver that calls the webhook. A guardrail's verdicts per enforcement action, per
//! namespace label; requireEgressGateway, allowedGateways and requireAccessPolicy each deny a
//! violator and admit a conforming object; the delete of the only AccessPolicy of an
//! ExternalService is denied naming both; a guardrail change takes effect on the next apply;
//! bad guardrails are denied naming the field.
//!
//! One cluster for the file (`e2e/mod.rs`). Guardrails are cluster-scoped: each test selects
//! only its own namespaces (by a label of its own) and deletes its guardrails at the end.

mod e2e;

use std::time::{Duration, Instant};

use e2e::{Kubectl, apply, eventually, kubectl, repo_text, shared};
use egress_webhook::cluster::dev::DevCluster;

/// kubectl's prefix for a denied create by `kubectl apply -f -`.
const DENIED_CREATE: &str = "The request is invalid: error when creating \"STDIN\": admission webhook \"validate.egress-webhook.io\" denied the request: ";

fn namespace_with_labels(dev: &DevCluster, name: &str, labels: &str) {
    apply(
        dev,
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{{labels}}}}}\n"
        ),
        &[],
    )
    .expect_ok("namespace");
}

fn guardrail(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: policy.egress-webhook.dev/v1alpha1\nkind: EgressGuardrail\nmetadata: {{name: {name}}}\nspec:\n{spec}"
    )
}

/// Applies a guardrail and waits until the webhook's catalog holds it with `action` (the watch
/// delivers it; no restart). Returns how long that took after kubectl returned.
fn apply_guardrail(dev: &DevCluster, name: &str, spec: &str, action: &str) -> Duration {
    apply(dev, &guardrail(name, spec), &[]).expect_ok("apply guardrail");
    let catalog = dev.webhook_catalog().expect("in-process webhook");
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || catalog.read(|s| s
            .guardrails()
            .get(name)
            .is_some_and(|c| c.action.as_str() == action))),
        "the webhook's catalog never saw guardrail {name} with action {action}"
    );
    t.elapsed()
}

/// `httpbin.org` without gateway routes in `ns`, with a label whose value changes the object.
fn httpbin(ns: &str, rev: &str) -> String {
    format!(
        "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: httpbin.org, namespace: {ns}, labels: {{rev: \"{rev}\"}}}}\nspec:\n  hosts: [httpbin.org]\n  ports: [{{name: https, number: 443, protocol: HTTPS}}]\n"
    )
}

/// The G lines of kubectl's stderr (warnings and denials).
fn g_lines(k: &Kubectl) -> Vec<String> {
    k.stderr
        .lines()
        .filter(|l| l.contains("[G"))
        .map(str::to_string)
        .collect()
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn allowed_hosts_per_namespace_label_deny_warn_audit_and_a_change_on_the_next_apply() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let (a, plain) = ("g-team-a", "g-unlabelled");
    namespace_with_labels(&dev, a, "team: a");
    namespace_with_labels(&dev, plain, "");
    let spec = |action: &str| {
        format!(
            "  namespaceSelector: {{matchLabels: {{team: a}}}}\n  allowedHosts: [\"*.example.com\"]\n  enforcementAction: {action}\n"
        )
    };
    let name = "e2e-team-a";
    let took = apply_guardrail(&dev, name, &spec("deny"), "deny");
    eprintln!("guardrail seen by the webhook {took:?} after kubectl apply returned");
    let g1 = format!(
        "ExternalService {a}/httpbin.org: spec.hosts[0]: host \"httpbin.org\" is not within allowedHosts of EgressGuardrail {name} (*.example.com) [G1]"
    );

    // deny: refused, naming the guardrail and the rule.
    let denied = apply(&dev, &httpbin(a, "1"), &[]).expect_err("deny");
    assert_eq!(g_lines(&denied), [format!("{DENIED_CREATE}error: {g1}")]);
    // The same object in an unlabelled namespace is not governed.
    let other = apply(&dev, &httpbin(plain, "1"), &[]).expect_ok("unlabelled namespace");
    assert_eq!(g_lines(&other), Vec::<String>::new());

    // warn: admitted with kubectl's `Warning:`.
    apply_guardrail(&dev, name, &spec("warn"), "warn");
    let warned = apply(&dev, &httpbin(a, "1"), &[]).expect_ok("warn");
    assert_eq!(
        warned.stdout,
        format!("externalservice.networking.gloo.solo.io/httpbin.org created\n")
    );
    assert_eq!(g_lines(&warned), [format!("Warning: {g1}")]);

    // warn -> deny: the next apply (an update of the stored object) is refused.
    apply_guardrail(&dev, name, &spec("deny"), "deny");
    let update = apply(&dev, &httpbin(a, "2"), &[]).expect_err("deny after warn");
    assert!(
        update.stderr.contains(&format!("error: {g1}")),
        "{}",
        update.stderr
    );

    // audit: admitted without a word.
    apply_guardrail(&dev, name, &spec("audit"), "audit");
    let audited = apply(&dev, &httpbin(a, "3"), &[]).expect_ok("audit");
    assert_eq!(g_lines(&audited), Vec::<String>::new());

    kubectl(&dev, &["delete", "egressguardrail", name]).expect_ok("delete guardrail");
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn bad_guardrails_are_denied_naming_the_field() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let bad_glob = apply(
        &dev,
        &guardrail("e2e-bad-glob", "  allowedHosts: [\"api-*.example.com\"]\n"),
        &[],
    )
    .expect_err("bad glob");
    assert_eq!(
        bad_glob.stderr.trim_end(),
        format!(
            "{DENIED_CREATE}error: EgressGuardrail e2e-bad-glob: spec.allowedHosts[0]: \"api-*.example.com\" has a `*` other than as the whole first label (`*`, `*.example.com`); a host glob is `*`, `*.example.com` or an exact FQDN [G6]"
        )
    );
    let unknown = apply(
        &dev,
        &guardrail(
            "e2e-unknown-gw",
            "  allowedGateways: [{name: nowhere-vg, namespace: nowhere}]\n",
        ),
        &[],
    )
    .expect_err("unknown gateway");
    assert_eq!(
        unknown.stderr.trim_end(),
        format!(
            "{DENIED_CREATE}error: EgressGuardrail e2e-unknown-gw: spec.allowedGateways[0]: VirtualGateway nowhere/nowhere-vg does not exist [G7]"
        )
    );
    let none = kubectl(&dev, &["get", "egressguardrails", "-o", "name"]).expect_ok("list");
    assert!(
        !none.stdout.contains("e2e-bad-glob") && !none.stdout.contains("e2e-unknown-gw"),
        "a denied guardrail was stored: {}",
        none.stdout
    );
}

/// An ExternalService of `host` in `ns` routed through `vg` (namespace `vg_ns`).
fn routed(ns: &str, host: &str, vg: &str, vg_ns: &str) -> String {
    format!(
        "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: {host}, namespace: {ns}}}\nspec:\n  hosts: [{host}]\n  ports:\n  - name: https\n    number: 443\n    protocol: HTTPS\n    egressGatewayRoutes:\n      portMatch: 80\n      virtualGatewayRefs: [{{name: {vg}, namespace: {vg_ns}}}]\n"
    )
}

fn vg(name: &str, ns: &str) -> String {
    repo_text("manifests/examples/30-virtualgateway.yaml")
        .replace("name: egress-vg", &format!("name: {name}"))
        .replace("namespace: istio-egress", &format!("namespace: {ns}"))
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn gateway_and_access_policy_requirements_deny_violators_and_admit_conforming_objects() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let gw_ns = "g-gateways";
    namespace_with_labels(&dev, gw_ns, "");
    apply(&dev, &vg("allowed-vg", gw_ns), &[]).expect_ok("allowed VG");
    apply(&dev, &vg("other-vg", gw_ns), &[]).expect_ok("other VG");

    // requireEgressGateway
    let ns = "g-gateway-required";
    namespace_with_labels(&dev, ns, "e2e-guardrail: gateway-required");
    apply_guardrail(
        &dev,
        "e2e-gateway-required",
        "  namespaceSelector: {matchLabels: {e2e-guardrail: gateway-required}}\n  requireEgressGateway: true\n",
        "deny",
    );
    let direct = apply(&dev, &httpbin(ns, "1"), &[]).expect_err("no gateway routes");
    assert_eq!(
        g_lines(&direct),
        [format!(
            "{DENIED_CREATE}error: ExternalService {ns}/httpbin.org: spec.ports[0]: port 443 has no egressGatewayRoutes: EgressGuardrail e2e-gateway-required requires egress through a gateway (requireEgressGateway) [G3]"
        )]
    );
    let through = apply(&dev, &routed(ns, "httpbin.org", "other-vg", gw_ns), &[])
        .expect_ok("through a gateway");
    assert_eq!(g_lines(&through), Vec::<String>::new());

    // allowedGateways
    let ns = "g-gateway-allowlist";
    namespace_with_labels(&dev, ns, "e2e-guardrail: gateway-allowlist");
    apply_guardrail(
        &dev,
        "e2e-gateway-allowlist",
        &format!(
            "  namespaceSelector: {{matchLabels: {{e2e-guardrail: gateway-allowlist}}}}\n  allowedGateways: [{{name: allowed-vg, namespace: {gw_ns}}}]\n"
        ),
        "deny",
    );
    let other = apply(&dev, &routed(ns, "httpbin.org", "other-vg", gw_ns), &[])
        .expect_err("a gateway not in the list");
    assert_eq!(
        g_lines(&other),
        [format!(
            "{DENIED_CREATE}error: ExternalService {ns}/httpbin.org: spec.ports[0].egressGatewayRoutes.virtualGatewayRefs[0]: VirtualGateway {gw_ns}/other-vg is not in allowedGateways of EgressGuardrail e2e-gateway-allowlist ({gw_ns}/allowed-vg) [G4]"
        )]
    );
    apply(&dev, &routed(ns, "httpbin.org", "allowed-vg", gw_ns), &[])
        .expect_ok("the allowed gateway");

    // requireAccessPolicy: an ExternalService no policy selects is refused; once a policy
    // selects the namespace's ExternalServices it is admitted; deleting that only policy is
    // refused, naming both.
    let ns = "g-policy-required";
    namespace_with_labels(&dev, ns, "e2e-guardrail: policy-required");
    apply_guardrail(
        &dev,
        "e2e-policy-required",
        "  namespaceSelector: {matchLabels: {e2e-guardrail: policy-required}}\n  requireAccessPolicy: true\n",
        "deny",
    );
    let es = routed(ns, "httpbin.org", "allowed-vg", gw_ns);
    let alone = apply(&dev, &es, &[]).expect_err("no AccessPolicy");
    assert_eq!(
        g_lines(&alone),
        [format!(
            "{DENIED_CREATE}error: ExternalService {ns}/httpbin.org: metadata.name: no AccessPolicy selects ExternalService {ns}/httpbin.org: EgressGuardrail e2e-policy-required requires one (requireAccessPolicy); create the AccessPolicy first (it may name ExternalService {ns}/httpbin.org, namespace included, before that exists) [G5]"
        )]
    );
    let policy = format!(
        "apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {{name: whole-namespace, namespace: {ns}}}\nspec:\n  applyToDestinations:\n  - kind: EXTERNAL_SERVICE\n    selector: {{namespace: {ns}}}\n  config:\n    authzList:\n    - allowedClients:\n      - serviceAccountSelector: {{name: client, namespace: {ns}}}\n"
    );
    apply(&dev, &policy, &[]).expect_ok("AccessPolicy first");
    apply(&dev, &es, &[]).expect_ok("selected by the AccessPolicy");
    let delete = kubectl(
        &dev,
        &["delete", "accesspolicy", "whole-namespace", "-n", ns],
    )
    .expect_err("deleting the only AccessPolicy");
    assert!(
        delete.stderr.contains(&format!(
            "admission webhook \"validate.egress-webhook.io\" denied the request: error: AccessPolicy {ns}/whole-namespace: spec.applyToDestinations[0]: deleting AccessPolicy {ns}/whole-namespace leaves ExternalService {ns}/httpbin.org selected by no AccessPolicy, which EgressGuardrail e2e-policy-required requires (requireAccessPolicy) [G5]"
        )),
        "{}",
        delete.stderr
    );
    kubectl(&dev, &["get", "accesspolicy", "whole-namespace", "-n", ns])
        .expect_ok("the AccessPolicy is still there");
    // Once the ExternalService is gone, nothing depends on the policy.
    kubectl(&dev, &["delete", "es", "httpbin.org", "-n", ns]).expect_ok("delete ES");
    kubectl(
        &dev,
        &["delete", "accesspolicy", "whole-namespace", "-n", ns],
    )
    .expect_ok("delete the unused AccessPolicy");

    for g in [
        "e2e-gateway-required",
        "e2e-gateway-allowlist",
        "e2e-policy-required",
    ] {
        kubectl(&dev, &["delete", "egressguardrail", g]).expect_ok("delete guardrail");
    }
}

/// The guardrail's status as kubectl shows it.
fn guardrail_status(dev: &DevCluster, name: &str) -> serde_json::Value {
    kubectl(dev, &["get", "egressguardrail", name, "-o", "json"])
        .expect_ok("get guardrail")
        .json()["status"]
        .clone()
}

fn metric_line(dev: &DevCluster, guardrail: &str, action: &str) -> Option<String> {
    let text = dev.webhook_metrics_text().expect("in-process metrics");
    let prefix = format!(
        "egress_webhook_guardrail_violations{{guardrail=\"{guardrail}\",action=\"{action}\"}} "
    );
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .map(|l| l[prefix.len()..].to_string())
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn audit_finds_existing_violators_in_status_metric_and_report_and_a_fix_clears_all_three() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    // The OpenReports Report CRD, from the pinned copy: the audit writes Reports once it exists.
    // And wg-policy's PolicyReport (the dev cluster runs with --policy-reports).
    dev.cp()
        .install_crds(&[
            e2e::repo("manifests/openreports/reports-crd-v0.2.1.yaml"),
            e2e::repo("manifests/openreports/policyreports-crd-wgpolicyk8s-v1alpha2.yaml"),
        ])
        .expect("install the Report and PolicyReport CRDs");
    let ns = "g-audit";
    namespace_with_labels(&dev, ns, "e2e-guardrail: audit");
    // Exists before the guardrail: only the audit can find it.
    apply(&dev, &httpbin(ns, "1"), &[]).expect_ok("pre-existing ExternalService");
    let name = "e2e-audit";
    let t = Instant::now();
    apply_guardrail(
        &dev,
        name,
        "  namespaceSelector: {matchLabels: {e2e-guardrail: audit}}\n  allowedHosts: [\"*.example.com\"]\n  enforcementAction: audit\n",
        "audit",
    );
    // The dev cluster audits every 2 s: within one interval (and the write), status and metric.
    let report_of = |resource: &str| {
        let r = kubectl(
            &dev,
            &[
                "get",
                resource,
                "egress-webhook-guardrails",
                "-n",
                ns,
                "-o",
                "json",
            ],
        );
        r.ok.then(|| r.json())
    };
    let report = || report_of("reports.v1alpha1.openreports.io");
    let policy_report = || report_of("policyreports.v1alpha2.wgpolicyk8s.io");
    let found = |total: i64| {
        let st = guardrail_status(&dev, name);
        let in_report = [report(), policy_report()].iter().all(|r| match r {
            Some(r) => r["summary"]["fail"] == total,
            None => total == 0,
        });
        st["totalViolations"] == total
            && metric_line(&dev, name, "audit").as_deref() == Some(&total.to_string())
            && in_report
    };
    assert!(
        eventually(Duration::from_secs(6), || found(1)),
        "status {} / metric {:?}",
        guardrail_status(&dev, name),
        metric_line(&dev, name, "audit")
    );
    eprintln!(
        "audit status, metric and Report agree {:?} after the guardrail was applied",
        t.elapsed()
    );
    let st = guardrail_status(&dev, name);
    assert_eq!(
        st["violations"],
        serde_json::json!([{
            "object": {"kind": "ExternalService", "namespace": ns, "name": "httpbin.org"},
            "rule": "G1",
            "message": format!("spec.hosts[0]: host \"httpbin.org\" is not within allowedHosts of EgressGuardrail {name} (*.example.com)"),
        }])
    );
    assert!(st["lastAuditTime"].is_string(), "{st}");
    assert_eq!(st["conditions"][0]["reason"], "ViolationsFound", "{st}");
    let (r, p) = (
        report().expect("the namespace's Report"),
        policy_report().expect("the namespace's PolicyReport"),
    );
    let untimed = |v: &serde_json::Value| {
        let mut v = v["results"].clone();
        for r in v.as_array_mut().into_iter().flatten() {
            r.as_object_mut().map(|m| m.remove("timestamp"));
        }
        v
    };
    assert_eq!(
        untimed(&r),
        untimed(&p),
        "Report and PolicyReport say the same"
    );
    let result = &r["results"][0];
    assert_eq!(r["results"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(
        (
            &result["policy"],
            &result["rule"],
            &result["result"],
            &result["source"]
        ),
        (
            &serde_json::json!(name),
            &serde_json::json!("G1"),
            &serde_json::json!("fail"),
            &serde_json::json!("egress-webhook")
        ),
        "{r}"
    );
    assert_eq!(
        result["resources"],
        serde_json::json!([{"apiVersion": "networking.gloo.solo.io/v2", "kind": "ExternalService", "namespace": ns, "name": "httpbin.org"}])
    );

    // Fixing the object clears both.
    let fixed = httpbin(ns, "2").replace("hosts: [httpbin.org]", "hosts: [httpbin.example.com]");
    apply(&dev, &fixed, &[]).expect_ok("fix");
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(6), || found(0)),
        "status {} / metric {:?}",
        guardrail_status(&dev, name),
        metric_line(&dev, name, "audit")
    );
    eprintln!("cleared {:?} after the fix", t.elapsed());
    assert!(
        report().is_none(),
        "the Report of a clean namespace is deleted"
    );
    assert_eq!(
        guardrail_status(&dev, name)["violations"],
        serde_json::json!([])
    );
    assert_eq!(
        guardrail_status(&dev, name)["conditions"][0]["reason"],
        "NoViolations"
    );

    kubectl(&dev, &["delete", "egressguardrail", name]).expect_ok("delete guardrail");
    assert!(
        eventually(Duration::from_secs(6), || metric_line(&dev, name, "audit")
            .is_none()),
        "the metric of a deleted guardrail stays"
    );
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn lockdown_label_brings_the_network_policy_with_the_gateway_target_ports_and_takes_it_away() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let gw = "g-lock-gw";
    namespace_with_labels(&dev, gw, "");
    // The egress gateway Service as Istio's chart installs it (80 -> 8080, 443 -> 8443) and an
    // egress VirtualGateway selecting it.
    apply(
        &dev,
        &repo_text("manifests/examples/10-egress-gateway-service.yaml")
            .replace("namespace: istio-egress", &format!("namespace: {gw}")),
        &[],
    )
    .expect_ok("gateway Service");
    apply(&dev, &vg("lock-vg", gw), &[]).expect_ok("VirtualGateway");

    let ns = "g-locked";
    namespace_with_labels(&dev, ns, "egress-webhook.dev/lockdown: \"true\"");
    let policy = || {
        let r = kubectl(
            &dev,
            &[
                "get",
                "networkpolicy",
                "egress-webhook-lockdown",
                "-n",
                ns,
                "-o",
                "json",
            ],
        );
        r.ok.then(|| r.json())
    };
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(8), || policy().is_some()),
        "no lockdown NetworkPolicy in {ns}"
    );
    eprintln!(
        "lockdown NetworkPolicy appeared {:?} after the label",
        t.elapsed()
    );
    let np = policy().unwrap();
    assert_eq!(
        np["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "egress-webhook"
    );
    // EGRESS.md §5: default-deny egress but DNS, istiod:15012 and the gateway pods' container ports.
    assert_eq!(
        np["spec"],
        serde_json::json!({
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
                         "podSelector": {"matchLabels": {"app": "istiod"}}}],
                 "ports": [{"protocol": "TCP", "port": 15012}]},
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gw}},
                         "podSelector": {"matchLabels": {"app": "istio-egressgateway", "istio": "egressgateway"}}}],
                 "ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 8443}]},
            ],
        })
    );

    // Deleted by hand: put back when the watch of our NetworkPolicies sees the delete.
    kubectl(
        &dev,
        &[
            "delete",
            "networkpolicy",
            "egress-webhook-lockdown",
            "-n",
            ns,
        ],
    )
    .expect_ok("delete by hand");
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || policy().is_some()),
        "a hand-deleted lockdown NetworkPolicy was not put back"
    );
    eprintln!("put back {:?} after a hand delete", t.elapsed());
    assert_eq!(policy().unwrap()["spec"], np["spec"]);

    kubectl(
        &dev,
        &["label", "namespace", ns, "egress-webhook.dev/lockdown-"],
    )
    .expect_ok("remove the label");
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(8), || policy().is_none()),
        "the lockdown NetworkPolicy stayed after the label went"
    );
    eprintln!("and was gone {:?} after the label was removed", t.elapsed());
}

/// G7 and G5 with a cache that lags: a guardrail naming a VirtualGateway created a moment ago,
/// an ExternalService whose AccessPolicy was created a moment ago (by another replica, say), or
/// the delete of an AccessPolicy when another one created a moment ago selects the same
/// ExternalService, whose watch events have not reached the catalog, is not denied: the
/// admission looks them up in the apiserver first, as for E22. The admission server runs here in-process with catalogs
/// that have no watches at all (the most stale cache there is), once without and once with the
/// live lookup, against the real apiserver where the VirtualGateway and the AccessPolicy exist.
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn references_missing_from_the_cache_are_looked_up_before_g7_or_g5_denies() {
    use std::sync::Arc;

    use egress_webhook::admission::{self, ServeConfig, tls::CertFiles};
    use egress_webhook::api::EgressGuardrail;
    use egress_webhook::catalog::Catalog;
    use egress_webhook::cluster::{catalog::LiveRefresher, client_from_kubeconfig};
    use serde_json::{Value, json};

    let Some((dev, _serial)) = shared() else {
        return;
    };
    let gw_ns = "g-lag-gw";
    namespace_with_labels(&dev, gw_ns, "");
    apply(&dev, &vg("fresh-vg", gw_ns), &[]).expect_ok("VirtualGateway");
    // G5's half: a namespace whose ExternalServices need a policy, and the policy, created in
    // the apiserver (the cluster's own webhook has no such guardrail: only the test's catalogs).
    let es_ns = "g-lag-policy";
    namespace_with_labels(&dev, es_ns, "e2e-guardrail: lag-policy");
    apply(
        &dev,
        &format!(
            "apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {{name: whole-namespace, namespace: {es_ns}}}\nspec:\n  applyToDestinations:\n  - kind: EXTERNAL_SERVICE\n    selector: {{namespace: {es_ns}}}\n  config:\n    authzList:\n    - allowedClients:\n      - serviceAccountSelector: {{name: client, namespace: {es_ns}}}\n"
        ),
        &[],
    )
    .expect_ok("AccessPolicy");
    let requires_policy: EgressGuardrail = serde_saphyr::from_str(&guardrail(
        "e2e-lag-policy",
        "  namespaceSelector: {matchLabels: {e2e-guardrail: lag-policy}}\n  requireAccessPolicy: true\n",
    ))
    .unwrap();
    let review = |kind: (&str, &str, &str, &str), namespace: Option<&str>, object: Value| {
        let (group, version, kind, resource) = kind;
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "e2e-lag",
                "kind": {"group": group, "version": version, "kind": kind},
                "resource": {"group": group, "version": version, "resource": resource},
                "name": object["metadata"]["name"],
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {"username": "admin"},
                "object": object,
                "dryRun": false
            }
        })
    };
    let guardrail_review = |gateway: &str| {
        let g: Value = serde_saphyr::from_str(&guardrail(
            "e2e-lagging",
            &format!("  allowedGateways: [{{name: {gateway}, namespace: {gw_ns}}}]\n"),
        ))
        .unwrap();
        review(
            (
                "policy.egress-webhook.dev",
                "v1alpha1",
                "EgressGuardrail",
                "egressguardrails",
            ),
            None,
            g,
        )
    };
    let es_review = review(
        (
            "networking.gloo.solo.io",
            "v2",
            "ExternalService",
            "externalservices",
        ),
        Some(es_ns),
        serde_saphyr::from_str(&httpbin(es_ns, "1")).unwrap(),
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = dev.webhook_tls_dir().to_path_buf();
    let opts = dev.core_options().clone();
    dev.block_on(async {
        let http = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(dev.webhook_ca_pem().as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        let serve = |catalog: Catalog| {
            catalog.mark_synced();
            // The guardrail is known (its watch is up to date), the AccessPolicy is not.
            catalog.update_guardrails(|g| {
                g.upsert(requires_policy.clone());
                g.set_namespace(
                    es_ns,
                    [("e2e-guardrail".to_string(), "lag-policy".to_string())].into(),
                );
            });
            let mut cfg = ServeConfig::new(
                ([127, 0, 0, 1], 0).into(),
                CertFiles {
                    cert: tls.join("tls.crt"),
                    key: tls.join("tls.key"),
                },
            );
            cfg.shutdown_delay = Duration::ZERO;
            admission::start(cfg, Arc::new(catalog), opts.clone())
        };
        let validate = |addr: std::net::SocketAddr, body: Value| {
            let http = http.clone();
            async move {
                let resp: Value = http
                    .post(format!("https://localhost:{}/validate", addr.port()))
                    .json(&body)
                    .send()
                    .await
                    .expect("POST /validate")
                    .json()
                    .await
                    .expect("review JSON");
                resp["response"].clone()
            }
        };
        let client = client_from_kubeconfig(&dev.webhook_user().kubeconfig)
            .await
            .expect("the webhook's client");
        let stale = serve(Catalog::new(&opts)).await.expect("serve");
        let live = serve(Catalog::new(&opts).with_refresher(Arc::new(LiveRefresher::new(client))))
            .await
            .expect("serve");

        // G7. The lag itself: without the lookup, the stale cache denies.
        let denied = validate(stale.addr, guardrail_review("fresh-vg")).await;
        assert_eq!(denied["allowed"], false, "{denied}");
        assert_eq!(
            denied["status"]["message"],
            format!(
                "error: EgressGuardrail e2e-lagging: spec.allowedGateways[0]: VirtualGateway {gw_ns}/fresh-vg does not exist [G7]"
            )
        );
        let allowed = validate(live.addr, guardrail_review("fresh-vg")).await;
        assert_eq!(allowed["allowed"], true, "{allowed}");
        assert!(
            live.state
                .catalog
                .read(|s| s.virtual_gateway(gw_ns, "fresh-vg").is_some()),
            "the looked-up VirtualGateway is now cached"
        );
        // What the apiserver does not have either is still denied after the lookup.
        let missing = validate(live.addr, guardrail_review("no-such-vg")).await;
        assert_eq!(missing["allowed"], false, "{missing}");
        assert_eq!(
            missing["status"]["message"],
            format!(
                "error: EgressGuardrail e2e-lagging: spec.allowedGateways[0]: VirtualGateway {gw_ns}/no-such-vg does not exist [G7]"
            )
        );

        // G5: the stale cache has no policy for the ExternalService; the apiserver has one.
        let denied = validate(stale.addr, es_review.clone()).await;
        assert_eq!(denied["allowed"], false, "{denied}");
        assert!(
            denied["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("error: ExternalService {es_ns}/httpbin.org: metadata.name: no AccessPolicy selects ExternalService {es_ns}/httpbin.org: EgressGuardrail e2e-lag-policy requires one")),
            "{denied}"
        );
        let allowed = validate(live.addr, es_review).await;
        assert_eq!(allowed["allowed"], true, "{allowed}");
        assert!(
            live.state.catalog.read(|s| !s
                .access_policies_selecting_in(es_ns)
                .is_empty()),
            "the looked-up AccessPolicy is now cached"
        );

        // G5 on a DELETE: the cache knows the ExternalService and one policy naming it, not the
        // namespace-wide policy the apiserver holds, so deleting the named one looks like
        // leaving the ExternalService without a policy.
        let named: Value = serde_saphyr::from_str(&format!(
            "apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {{name: named, namespace: {es_ns}}}\nspec:\n  applyToDestinations:\n  - kind: EXTERNAL_SERVICE\n    selector: {{name: httpbin.org, namespace: {es_ns}}}\n"
        ))
        .unwrap();
        let cached = |catalog: Catalog| {
            for o in [
                serde_saphyr::from_str::<Value>(&httpbin(es_ns, "1")).unwrap(),
                named.clone(),
            ] {
                catalog.upsert(egress_webhook::core::Object::from_json(&o).unwrap());
            }
            catalog
        };
        let delete = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "e2e-lag-delete",
                "kind": {"group": "security.policy.gloo.solo.io", "version": "v2", "kind": "AccessPolicy"},
                "resource": {"group": "security.policy.gloo.solo.io", "version": "v2", "resource": "accesspolicies"},
                "name": "named",
                "namespace": es_ns,
                "operation": "DELETE",
                "userInfo": {"username": "admin"},
                "oldObject": named,
                "dryRun": false
            }
        });
        let stale = serve(cached(Catalog::new(&opts))).await.expect("serve");
        let client = client_from_kubeconfig(&dev.webhook_user().kubeconfig)
            .await
            .expect("the webhook's client");
        let live = serve(cached(
            Catalog::new(&opts).with_refresher(Arc::new(LiveRefresher::new(client))),
        ))
        .await
        .expect("serve");
        let denied = validate(stale.addr, delete.clone()).await;
        assert_eq!(denied["allowed"], false, "{denied}");
        assert_eq!(
            denied["status"]["message"],
            format!(
                "error: AccessPolicy {es_ns}/named: spec.applyToDestinations[0]: deleting AccessPolicy {es_ns}/named leaves ExternalService {es_ns}/httpbin.org selected by no AccessPolicy, which EgressGuardrail e2e-lag-policy requires (requireAccessPolicy) [G5]"
            )
        );
        let allowed = validate(live.addr, delete).await;
        assert_eq!(allowed["allowed"], true, "{allowed}");
    });
}

fn check_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_egress-webhook"))
        .arg("check")
        .args(args)
        .output()
        .expect("egress-webhook check runs")
}

/// `check --kubeconfig` applies the cluster's guardrails (selected by the cluster's Namespace
/// labels) as the admission does: the same line and exit code as `kubectl apply`; a
/// `--guardrails` file's guardrail of the same name replaces the cluster's, and
/// `--no-cluster-guardrails` leaves them out.
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn check_with_kubeconfig_applies_the_clusters_guardrails_as_kubectl_apply_sees_them() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let (ns, plain) = ("g-check-cli", "g-check-cli-plain");
    namespace_with_labels(&dev, ns, "e2e-guardrail: check-cli");
    namespace_with_labels(&dev, plain, "");
    let name = "e2e-check-cli";
    let spec = |action: &str| {
        format!(
            "  namespaceSelector: {{matchLabels: {{e2e-guardrail: check-cli}}}}\n  allowedHosts: [\"*.example.com\"]\n  enforcementAction: {action}\n"
        )
    };
    apply_guardrail(&dev, name, &spec("deny"), "deny");
    let kubeconfig = dev.kubeconfig().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let write = |file: &str, text: &str| {
        let p = dir.path().join(file);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let violating = write("es.yaml", &httpbin(ns, "1"));
    let stdout = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let g_of = |o: &std::process::Output| -> Vec<String> {
        stdout(o)
            .lines()
            .filter(|l| l.contains("[G"))
            .map(str::to_string)
            .collect()
    };

    let check = check_cli(&["--kubeconfig", &kubeconfig, &violating]);
    let kubectl_says = apply(&dev, &httpbin(ns, "1"), &[]).expect_err("the guardrail denies");
    let lines = g_of(&check);
    assert_eq!(lines.len(), 1, "{}", stdout(&check));
    assert_eq!(
        g_lines(&kubectl_says),
        [format!("{DENIED_CREATE}{}", lines[0])],
        "check printed\n{}\nkubectl printed\n{}",
        lines[0],
        kubectl_says.stderr
    );
    assert_eq!(
        check.status.code(),
        kubectl_says.code,
        "check's exit code is kubectl's"
    );
    assert_eq!(check.status.code(), Some(1));

    // The cluster's Namespace labels decide: the same object in an unlabelled namespace passes.
    let elsewhere = write("plain.yaml", &httpbin(plain, "1"));
    let check = check_cli(&["--kubeconfig", &kubeconfig, &elsewhere]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    assert!(g_of(&check).is_empty(), "{}", stdout(&check));

    // A file's guardrail of the same name (warn) replaces the cluster's (deny).
    let warn_file = write("guardrail.yaml", &guardrail(name, &spec("warn")));
    let check = check_cli(&[
        "--kubeconfig",
        &kubeconfig,
        "--guardrails",
        &warn_file,
        &violating,
    ]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    assert_eq!(
        g_of(&check),
        [lines[0].replacen("error: ", "warning: ", 1)],
        "{}",
        stdout(&check)
    );
    assert!(
        stdout(&check).contains(&format!(
            "note: EgressGuardrail {name}: the version of --guardrails replaces the cluster's"
        )),
        "{}",
        stdout(&check)
    );
    // Left out on request.
    let check = check_cli(&[
        "--kubeconfig",
        &kubeconfig,
        "--no-cluster-guardrails",
        &violating,
    ]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    assert!(g_of(&check).is_empty(), "{}", stdout(&check));

    kubectl(&dev, &["delete", "egressguardrail", name]).expect_ok("delete guardrail");
}

/// Under `requireAccessPolicy: deny` an ExternalService needs an AccessPolicy selecting it (G5),
/// and an AccessPolicy naming an ExternalService that does not exist is refused elsewhere (A14):
/// where such a guardrail governs the named namespace, A14 admits the name with a warning, so
/// one `kubectl apply -f` of a file with the AccessPolicy first and the ExternalService after
/// it (kubectl applies in file order) creates both. Repeated with fresh names: the
/// ExternalService's review comes right after the policy's, so a lagging cache would show.
/// With the ExternalService first, its create is refused (G5), the policy is created, and the
/// same apply again completes the pair.
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn a_named_access_policy_and_its_external_service_apply_together_under_require_access_policy() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let ns = "g-policy-first";
    namespace_with_labels(&dev, ns, "e2e-guardrail: policy-first");
    let name = "e2e-policy-first";
    apply_guardrail(
        &dev,
        name,
        "  namespaceSelector: {matchLabels: {e2e-guardrail: policy-first}}\n  requireAccessPolicy: true\n",
        "deny",
    );
    let policy = |host: &str| {
        format!(
            "apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {{name: {host}, namespace: {ns}}}\nspec:\n  applyToDestinations:\n  - kind: EXTERNAL_SERVICE\n    selector: {{name: {host}, namespace: {ns}}}\n  config:\n    authzList:\n    - allowedClients:\n      - serviceAccountSelector: {{name: client, namespace: {ns}}}\n"
        )
    };
    let external_service = |host: &str| {
        format!(
            "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: {host}, namespace: {ns}}}\nspec:\n  hosts: [{host}]\n  ports: [{{name: https, number: 443, protocol: HTTPS}}]\n"
        )
    };
    let a14 = |host: &str| {
        format!(
            "Warning: AccessPolicy {ns}/{host}: spec.applyToDestinations[0].selector: ExternalService {ns}/{host} does not exist yet: admitted because EgressGuardrail {name} requires an AccessPolicy before an ExternalService of namespace {ns} (requireAccessPolicy, deny); until it exists the policy selects nothing, and if the name is misspelt G5 refuses the ExternalService [A14]"
        )
    };
    let rounds = 10;
    let t = Instant::now();
    for i in 0..rounds {
        let host = format!("api{i}.example.com");
        let both = format!("{}---\n{}", policy(&host), external_service(&host));
        let out = apply(&dev, &both, &[]).expect_ok("AccessPolicy, then its ExternalService");
        assert_eq!(
            out.stdout,
            format!(
                "accesspolicy.security.policy.gloo.solo.io/{host} created\nexternalservice.networking.gloo.solo.io/{host} created\n"
            )
        );
        assert!(
            out.stderr.lines().any(|l| l == a14(&host)),
            "{}",
            out.stderr
        );
    }
    eprintln!(
        "{rounds} AccessPolicy + ExternalService pairs applied in {:?}",
        t.elapsed()
    );

    // ExternalService first: refused, the policy created; the same file again completes it.
    let host = "late.example.com";
    let reversed = format!("{}---\n{}", external_service(host), policy(host));
    let first = apply(&dev, &reversed, &[]).expect_err("the ExternalService comes too early");
    assert!(
        first.stderr.contains(&format!(
            "error: ExternalService {ns}/{host}: metadata.name: no AccessPolicy selects ExternalService {ns}/{host}: EgressGuardrail {name} requires one (requireAccessPolicy)"
        )),
        "{}",
        first.stderr
    );
    assert_eq!(
        first.stdout,
        format!("accesspolicy.security.policy.gloo.solo.io/{host} created\n")
    );
    apply(&dev, &reversed, &[]).expect_ok("the second apply");
    kubectl(&dev, &["get", "es", host, "-n", ns]).expect_ok("the ExternalService exists");

    // A misspelt name is caught by G5 on the ExternalService, not silently left unprotected.
    let typo = format!(
        "{}---\n{}",
        policy("typo.example.com").replace(
            "selector: {name: typo.example.com",
            "selector: {name: typo.exmaple.com"
        ),
        external_service("typo.example.com")
    );
    let caught = apply(&dev, &typo, &[]).expect_err("a misspelt name");
    assert!(
        caught.stderr.contains(&format!(
            "error: ExternalService {ns}/typo.example.com: metadata.name: no AccessPolicy selects ExternalService {ns}/typo.example.com"
        )),
        "{}",
        caught.stderr
    );

    kubectl(&dev, &["delete", "egressguardrail", name]).expect_ok("delete guardrail");
}

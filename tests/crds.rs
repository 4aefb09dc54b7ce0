//! The committed CRDs are what `egress-webhook crds` prints (regenerate: `make crds`).

mod support;

#[test]
fn committed_crds_are_fresh() {
    let generated = egress_webhook::crds::render().expect("CRDs serialize");
    let path = support::repo_path("manifests/crds/gloo-egress-crds.yaml");
    let committed =
        std::fs::read_to_string(&path).expect("manifests/crds/gloo-egress-crds.yaml exists");
    assert!(
        committed == generated,
        "{path} is stale: run `make crds` and commit the result"
    );
}

#[test]
fn crds_have_short_names_status_and_printer_columns() {
    let text = egress_webhook::crds::render().unwrap();
    let docs: Vec<serde_json::Value> = text
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    let short: Vec<&str> = docs
        .iter()
        .map(|d| d["spec"]["names"]["shortNames"][0].as_str().unwrap())
        .collect();
    assert_eq!(short, ["es", "vg", "ap", "egr"]);
    let (gloo, ours) = docs.split_at(3);
    for d in gloo {
        let v = &d["spec"]["versions"][0];
        assert_eq!(v["name"], "v2");
        assert!(
            v["subresources"]["status"].is_object(),
            "status subresource"
        );
        assert!(v["additionalPrinterColumns"].as_array().unwrap().len() >= 3);
        assert_eq!(d["spec"]["scope"], "Namespaced");
    }
    // EgressGuardrail: our own kind, cluster-scoped (a platform team's, not a namespace's).
    let guardrail = &ours[0];
    assert_eq!(guardrail["spec"]["group"], "policy.egress-webhook.dev");
    assert_eq!(guardrail["spec"]["names"]["kind"], "EgressGuardrail");
    assert_eq!(guardrail["spec"]["scope"], "Cluster");
    let v = &guardrail["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert!(
        v["subresources"]["status"].is_object(),
        "status subresource"
    );
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for field in [
        "namespaceSelector",
        "allowedHosts",
        "deniedHosts",
        "requireEgressGateway",
        "allowedGateways",
        "requireAccessPolicy",
        "enforcementAction",
    ] {
        assert!(spec[field].is_object(), "spec.{field} in the schema");
    }
    let status = &v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    for field in [
        "violations",
        "totalViolations",
        "lastAuditTime",
        "conditions",
    ] {
        assert!(status[field].is_object(), "status.{field} in the schema");
    }
}

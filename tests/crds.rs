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
    assert_eq!(short, ["es", "vg", "ap"]);
    for d in &docs {
        let v = &d["spec"]["versions"][0];
        assert_eq!(v["name"], "v2");
        assert!(
            v["subresources"]["status"].is_object(),
            "status subresource"
        );
        assert!(v["additionalPrinterColumns"].as_array().unwrap().len() >= 3);
        assert_eq!(d["spec"]["scope"], "Namespaced");
    }
}

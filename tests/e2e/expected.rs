//! The oracle of the controller tests: the companions stored in the cluster equal what the pure
//! expansion makes of the stored parents (what `render` would print for them).

use serde_json::Value;

use egress_webhook::cluster::dev::DevCluster;
use egress_webhook::core::{
    Object, Snapshot, defaults::default_object, expand::ParentRef, expand::expand_parents,
};

use super::kubectl;

/// The stored objects the expansion reads, from the cluster (what `render` would be given).
pub fn stored_objects(dev: &DevCluster) -> Vec<Object> {
    let list = kubectl(
        dev,
        &[
            "get",
            "externalservices,virtualgateways,accesspolicies,services,serviceaccounts",
            "-A",
            "-o",
            "json",
        ],
    )
    .expect_ok("list inputs")
    .json();
    let opts = dev.core_options();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| Object::from_value(o.clone()).ok())
        .map(|o| default_object(o, opts))
        .collect()
}

/// Every companion of the `expected_parents` parents in `ns` equals the expansion of the stored objects (spec,
/// labels and owner references), and no other companion of theirs exists. `Err` says what differs.
pub fn companions_match_render(
    dev: &DevCluster,
    ns: &str,
    expected_parents: usize,
) -> Result<(), String> {
    let opts = dev.core_options().clone();
    let snap = Snapshot::new(stored_objects(dev), &opts);
    let parents: std::collections::BTreeSet<ParentRef> = snap
        .parents()
        .into_iter()
        .filter(|p| p.namespace == ns)
        .collect();
    if parents.len() != expected_parents {
        return Err(format!("parents in {ns}: {parents:?}"));
    }
    let desired = expand_parents(&snap, &opts, &parents);
    let stored = kubectl(
        dev,
        &[
            "get",
            "serviceentries,gateways,destinationrules,virtualservices,authorizationpolicies,peerauthentications",
            "-A",
            "-l",
            &format!("gloo.solo.io/parent_namespace={ns}"),
            "-o",
            "json",
        ],
    )
    .expect_ok("list companions")
    .json();
    let stored: Vec<&Value> = stored["items"].as_array().unwrap().iter().collect();
    let id = |kind: &str, o: &Value| {
        format!(
            "{kind} {}/{}",
            o["metadata"]["namespace"].as_str().unwrap_or(""),
            o["metadata"]["name"].as_str().unwrap_or("")
        )
    };
    let mut want: Vec<String> = desired
        .iter()
        .map(|d| format!("{} {}/{}", d.kind, d.namespace(), d.name()))
        .collect();
    let mut have: Vec<String> = stored
        .iter()
        .map(|o| id(o["kind"].as_str().unwrap_or(""), o))
        .collect();
    want.sort();
    have.sort();
    if want != have {
        return Err(format!("companions of {ns}: want {want:?}, have {have:?}"));
    }
    for d in &desired {
        let d_json = serde_json::to_value(d).unwrap();
        let o = stored
            .iter()
            .find(|o| {
                o["kind"] == d_json["kind"] && o["metadata"]["name"] == d_json["metadata"]["name"]
            })
            .unwrap();
        if o["spec"] != d_json["spec"] {
            return Err(format!(
                "{}: spec {} != {}",
                id(d.kind, o),
                o["spec"],
                d_json["spec"]
            ));
        }
        for (k, v) in d_json["metadata"]["labels"].as_object().unwrap() {
            if &o["metadata"]["labels"][k] != v {
                return Err(format!("{}: label {k}", id(d.kind, o)));
            }
        }
    }
    Ok(())
}

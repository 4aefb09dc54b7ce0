//! AdmissionReviews shaped exactly as kube-apiserver sends them, over real TLS, HTTP/1.1 and
//! HTTP/2: verdicts, warnings, and the defaults patch checked against the core's defaulting.

mod support;

use serde_json::{Value, json};
use support::server::{
    Answer, Http, TestServer, ap_raw, apply, as_stored, core_default, es_raw, review, review_dry,
    uid, vg_raw,
};

const BOTH: [Http; 2] = [Http::H1, Http::H2];

/// The three seed objects as the apiserver has them at CREATE time.
fn seeds() -> Vec<(&'static str, Value)> {
    vec![
        ("ExternalService", as_stored(es_raw(), "es-uid")),
        ("VirtualGateway", as_stored(vg_raw(), "vg-uid")),
        ("AccessPolicy", as_stored(ap_raw(), "ap-uid")),
    ]
}

async fn send(srv: &TestServer, http: Http, endpoint: &str, r: &Value) -> Answer {
    let a = srv.review(http, endpoint, r).await;
    assert_eq!(a.version, http.version(), "negotiated version");
    a.assert_answers(r["request"]["uid"].as_str().unwrap());
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_objects_are_allowed_and_mutated_into_the_core_defaults() {
    let srv = TestServer::start().await;
    for http in BOTH {
        for (kind, obj) in seeds() {
            for op in ["CREATE", "UPDATE"] {
                let id = uid(kind);
                let old = (op == "UPDATE").then(|| obj.clone());
                let r = review(&id, op, Some(&obj), old.as_ref());

                let v = send(&srv, http, "validate", &r).await;
                assert!(v.allowed(), "{kind} {op} over {http:?}: {}", v.text);
                assert!(v.patch().is_none(), "validate never patches: {}", v.text);

                let m = send(&srv, http, "mutate", &r).await;
                assert!(m.allowed(), "{kind} {op}: {}", m.text);
                let patched = apply(&obj, m.patch().as_ref());
                assert_eq!(
                    patched,
                    core_default(&obj),
                    "{kind} {op} over {http:?}: patch result differs from the core's defaults"
                );

                // Idempotent: the patched object needs nothing more.
                let again = review(&uid(kind), op, Some(&patched), old.as_ref());
                let m2 = send(&srv, http, "mutate", &again).await;
                assert!(m2.allowed(), "{}", m2.text);
                assert!(
                    m2.patch().is_none(),
                    "{kind}: second mutate patched again: {:?}",
                    m2.patch()
                );
                assert!(m2.response().get("patchType").is_none(), "{}", m2.text);
            }
        }
    }
    srv.stop().await;
}

/// The ExternalService is the seed object that needs defaults (DESIGN §4): targetPort, the
/// refs' cluster, SIMPLE TLS origination and its SNI. The patch must actually change it, or the
/// comparison above proves nothing about patching.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_service_gets_the_design_defaults() {
    let srv = TestServer::start().await;
    let obj = as_stored(es_raw(), "es-uid");
    let r = review(&uid("es"), "CREATE", Some(&obj), None);
    let m = send(&srv, Http::H2, "mutate", &r).await;
    let patch = m.patch().expect("the ExternalService gets defaults");
    let patched = apply(&obj, Some(&patch));
    assert_ne!(patched, obj);
    let port = &patched["spec"]["ports"][0];
    assert_eq!(port["clientsideTls"]["mode"], "SIMPLE", "{port}");
    assert_eq!(port["clientsideTls"]["sni"], "httpbin.org", "{port}");
    assert_eq!(port["egressGatewayRoutes"]["portMatch"], 80, "{port}");
    // Nothing the user wrote is removed: every op adds or replaces.
    for op in &patch.0 {
        assert!(
            !matches!(op, json_patch::PatchOperation::Remove(_)),
            "the defaults patch removes a field: {op:?}"
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_survive_the_patch() {
    let srv = TestServer::start().await;
    let mut obj = as_stored(es_raw(), "es-uid");
    obj["spec"]["futureTopLevel"] = json!({"keep": [1, 2, 3]});
    obj["spec"]["ports"][0]["futurePortField"] = json!("keep-me");
    obj["spec"]["ports"][0]["clientsideTls"]["futureTls"] = json!(true);
    obj["status"] = json!({"observedGeneration": 1, "state": "ACCEPTED"});
    for http in BOTH {
        let r = review(&uid("es-unknown"), "CREATE", Some(&obj), None);
        let m = send(&srv, http, "mutate", &r).await;
        let patched = apply(&obj, m.patch().as_ref());
        assert_eq!(
            patched["spec"]["futureTopLevel"],
            obj["spec"]["futureTopLevel"]
        );
        assert_eq!(patched["spec"]["ports"][0]["futurePortField"], "keep-me");
        assert_eq!(
            patched["spec"]["ports"][0]["clientsideTls"]["futureTls"],
            true
        );
        assert_eq!(patched["status"], obj["status"]);
        // And the defaults are there all the same.
        assert_eq!(
            patched["spec"]["ports"][0]["clientsideTls"]["mode"],
            "SIMPLE"
        );
        // Exactly: the known part equals the core's defaults, the unknown part is untouched.
        let mut expected = core_default(&as_stored(es_raw(), "es-uid"));
        expected["spec"]["futureTopLevel"] = obj["spec"]["futureTopLevel"].clone();
        expected["spec"]["ports"][0]["futurePortField"] = json!("keep-me");
        expected["spec"]["ports"][0]["clientsideTls"]["futureTls"] = json!(true);
        expected["status"] = obj["status"].clone();
        assert_eq!(patched, expected);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_service_without_its_virtual_gateway_is_denied() {
    let objects: Vec<_> = support::seed()
        .into_iter()
        .filter(|o| o.kind_name() != "VirtualGateway")
        .collect();
    let srv = TestServer::start_with(objects, |_| {}).await;
    let obj = as_stored(es_raw(), "es-uid");
    for http in BOTH {
        let mut verdicts = Vec::new();
        for dry_run in [false, true] {
            let r = review_dry(&uid("es-novg"), "CREATE", Some(&obj), None, dry_run);
            let v = send(&srv, http, "validate", &r).await;
            assert_eq!(v.status, 200, "a denial is an HTTP 200: {}", v.text);
            assert!(!v.allowed(), "{}", v.text);
            let msg = v.message();
            for needle in ["egress-vg", "virtualGatewayRefs", "[E22]"] {
                assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
            }
            assert_eq!(v.response()["status"]["code"], 422, "{}", v.text);
            verdicts.push((v.allowed(), msg, v.warnings()));
        }
        assert_eq!(verdicts[0], verdicts[1], "dryRun changes the verdict");
    }
    srv.stop().await;
}

/// Warnings carry the finding lines; dryRun: true gets the identical answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_and_dry_run() {
    let srv = TestServer::start().await;
    let cases = [
        (
            as_stored(es_raw(), "es-uid"),
            "[E25]",
            "spec.ports[0].clientsideTls",
        ),
        (as_stored(ap_raw(), "ap-uid"), "[A6]", "spec.config.authz"),
    ];
    for http in BOTH {
        for (obj, rule, path) in &cases {
            let mut answers = Vec::new();
            for dry_run in [false, true] {
                let r = review_dry(&uid("warn"), "CREATE", Some(obj), None, dry_run);
                let v = send(&srv, http, "validate", &r).await;
                assert!(v.allowed(), "{}", v.text);
                let w = v.warnings();
                assert!(
                    w.iter().any(|l| l.contains(rule) && l.contains(path)),
                    "no {rule} warning on {path}: {w:?}"
                );
                let mut resp = v.response().clone();
                resp["uid"] = Value::Null;
                answers.push(resp);
            }
            assert_eq!(answers[0], answers[1], "dryRun changes the answer");
        }
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_referenced_virtual_gateway_is_allowed_with_a_warning() {
    let srv = TestServer::start().await;
    let stored = as_stored(vg_raw(), "vg-uid");
    for http in BOTH {
        let r = review(&uid("vg-del"), "DELETE", None, Some(&stored));
        assert!(r["request"]["object"].is_null());
        let v = send(&srv, http, "validate", &r).await;
        assert!(v.allowed(), "{}", v.text);
        let w = v.warnings();
        assert!(
            w.iter()
                .any(|l| l.contains("global/httpbin.org") && l.contains("[V21]")),
            "no V21 warning naming global/httpbin.org: {w:?}"
        );
        // Mutate has nothing to do on DELETE.
        let m = send(&srv, http, "mutate", &r).await;
        assert!(m.allowed() && m.patch().is_none(), "{}", m.text);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_we_do_not_handle_are_allowed_untouched() {
    let srv = TestServer::start().await;
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "productpage", "namespace": "bookinfo", "uid": "d-uid"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "productpage"}},
            "template": {
                "metadata": {"labels": {"app": "productpage"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    });
    for http in BOTH {
        for endpoint in ["mutate", "validate"] {
            let r = review(&uid("deploy"), "CREATE", Some(&deployment), None);
            assert_eq!(r["request"]["kind"]["group"], "apps");
            let a = send(&srv, http, endpoint, &r).await;
            assert!(a.allowed(), "{}", a.text);
            let resp = a.response();
            assert!(resp.get("patch").is_none(), "{}", a.text);
            assert!(resp.get("warnings").is_none(), "{}", a.text);
            assert!(resp.get("status").is_none(), "{}", a.text);
        }
    }
    srv.stop().await;
}

/// README's "Run the webhook locally" shows what the server answers to
/// hack/reviews/es-create.json with the running example as its catalog; keep it true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_serve_example_is_what_the_server_answers() {
    let readme = std::fs::read_to_string(support::repo_path("README.md")).unwrap();
    let block = |name: &str| -> String {
        let start = format!("<!-- {name} -->\n```\n");
        let from = readme
            .find(&start)
            .unwrap_or_else(|| panic!("README has no {name} block"))
            + start.len();
        let to = from + readme[from..].find("\n```\n").expect("block end");
        readme[from..to].to_string()
    };
    let body = std::fs::read(support::repo_path("hack/reviews/es-create.json")).unwrap();
    let srv = TestServer::start().await;
    let fix = "update README.md (hack/update-readme.sh) to";
    for (endpoint, name) in [
        ("mutate", "serve-mutate-output"),
        ("validate", "serve-validate-output"),
    ] {
        let a = support::server::post(
            &srv.h1,
            &srv.url(&format!("/{endpoint}?timeout=10s")),
            body.clone(),
        )
        .await
        .unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(block(name), a.text, "{fix}:\n{}", a.text);
        if endpoint == "mutate" {
            let patch = serde_json::to_string(&a.patch().unwrap()).unwrap();
            assert_eq!(block("serve-patch"), patch, "{fix}:\n{patch}");
        }
    }
    srv.stop().await;
}

/// A field sent as an explicit null is defaulted like an absent one (the patch `add`s over it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_nulls_are_defaulted() {
    let srv = TestServer::start().await;
    let mut obj = as_stored(es_raw(), "es-uid");
    obj["spec"]["ports"][0]["targetPort"] = Value::Null;
    obj["spec"]["ports"][0]["clientsideTls"]["sni"] = Value::Null;
    obj["spec"]["ports"][0]["egressGatewayRoutes"]["virtualGatewayRefs"][0]["cluster"] =
        Value::Null;
    let r = review(&uid("nulls"), "CREATE", Some(&obj), None);
    let m = send(&srv, Http::H1, "mutate", &r).await;
    let patched = apply(&obj, m.patch().as_ref());
    assert_eq!(patched, core_default(&as_stored(es_raw(), "es-uid")));
    srv.stop().await;
}

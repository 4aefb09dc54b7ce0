//! Proves the Istio checkers (tests/support/istio_schema.rs, tests/support/istiod_rules.rs) work
//! and can fail: istio/api's own CRD fixtures, the EGRESS.md §2 canonical objects, and
//! hand-broken objects whose errors must name the offending field path.
//!
//! The fixtures are vendored in tests/fixtures/istio-crd-testdata-1.24.6 (istio/api's own files).

mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::istio_schema::{check_schema, served_kinds, unevaluated_validations};
use support::istiod_rules::check_istiod;

// ---------------------------------------------------------------------------------------------
// helpers

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/istio-crd-testdata-1.24.6")
}

/// Fixture files whose name ends with `suffix`, sorted, with their parsed documents.
fn fixtures(suffix: &str) -> Vec<(String, Vec<Value>)> {
    let dir = fixture_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *{suffix} fixtures in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", p.display()));
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), docs)
        })
        .collect()
}

/// Where Go's YAML (sigs.k8s.io/yaml, used by istio/api's fixture test) and a YAML 1.2 parser
/// disagree: (file, metadata.name, JSON pointer, value Go reads). In the flow sequence
/// `[1.2.3.4, 001:db8::]` YAML 1.2 ends the plain scalar at `:` before `]` and reads a one-pair
/// map `{"001:db8:": null}`; go-yaml reads the string `001:db8::`. The fixture means the string.
const YAML_DIALECT_FIXUPS: &[(&str, &str, &str, &str)] = &[(
    "serviceentry-valid.yaml",
    "full",
    "/spec/addresses/1",
    "001:db8::",
)];

fn apply_yaml_fixups(file: &str, doc: &mut Value) {
    for (f, name, pointer, value) in YAML_DIALECT_FIXUPS {
        if *f == file && doc["metadata"]["name"] == *name {
            let slot = doc
                .pointer_mut(pointer)
                .unwrap_or_else(|| panic!("{file} {name}: no {pointer} to fix up"));
            assert!(
                slot.is_object(),
                "{file} {name}: {pointer} no longer needs the fixup"
            );
            *slot = json!(value);
        }
    }
}

/// The fixtures are applied with `kubectl apply -n default`: give them the namespace our
/// checkers require to be explicit.
fn in_default_namespace(mut doc: Value) -> Value {
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("namespace").or_insert_with(|| json!("default"));
    }
    doc
}

fn doc_name(doc: &Value) -> String {
    format!(
        "{} {}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// EGRESS.md §2: the canonical resource set (app speaks HTTP, egress gateway originates TLS),
/// copied verbatim from our reference document.
const CANONICAL_YAML: &str = r#"
# (1) ServiceEntry — registers the external host (needed for REGISTRY_ONLY and for the gateway cluster)
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api-example-com, namespace: app-ns}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL        # default (enum 0); explicit is fine
  resolution: DNS                # MUST be DNS (or DNS_ROUND_ROBIN) for the gateway leg, see note
  ports:
  - {number: 80,  name: http,  protocol: HTTP}    # what the app calls
  - {number: 443, name: https, protocol: HTTPS}   # what the gateway dials (TLS originated by DR (5))
---
# (2) Gateway — a server on the egress gateway that accepts Istio mTLS from sidecars
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress-api-example-com, namespace: app-ns}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: https-tls-origination, protocol: HTTPS}   # 80 = a port of the gateway *Service*
    hosts: [api.example.com]          # same as "*/api.example.com"; "app-ns/api.example.com" restricts to VSs in app-ns
    tls: {mode: ISTIO_MUTUAL}         # no certs/credentialName allowed with ISTIO_MUTUAL
---
# (3) DestinationRule — sidecar → gateway hop uses Istio mTLS with SNI = external host
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-api-example-com, namespace: app-ns}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: api-example-com             # DNS-1123 label: no dots, so not the raw host name
    trafficPolicy:
      portLevelSettings:
      - port: {number: 80}
        tls: {mode: ISTIO_MUTUAL, sni: api.example.com}
---
# (4) VirtualService — two legs: mesh (sidecars) → gateway; gateway → external host:443
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-example-com-through-egress, namespace: app-ns}
spec:
  hosts: [api.example.com]
  gateways: [app-ns/egress-api-example-com, mesh]   # short "egress-api-example-com" = same namespace as the VS
  http:
  - match: [{gateways: [mesh], port: 80}]
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: api-example-com
        port: {number: 80}
      weight: 100
  - match: [{gateways: [app-ns/egress-api-example-com], port: 80}]
    route:
    - destination: {host: api.example.com, port: {number: 443}}
      weight: 100
---
# (5) DestinationRule — TLS origination at the gateway toward the external host
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-tls-api-example-com, namespace: app-ns}
spec:
  host: api.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, sni: api.example.com}   # docs omit sni; explicit is deterministic
---
# (6) AuthorizationPolicy — only these workload identities may use the gateway, for these hosts
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: egress-allow-api-example-com, namespace: istio-system}   # the gateway's namespace
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/app-ns/sa/app-sa"]}}]
    to:   [{operation: {hosts: ["api.example.com", "api.example.com:*"]}}]
"#;

fn canonical() -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(CANONICAL_YAML).expect("canonical YAML parses");
    assert_eq!(docs.len(), 6, "EGRESS.md §2 has six objects");
    docs
}

fn canonical_of(kind: &str) -> Value {
    canonical()
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no canonical {kind}"))
}

/// Set the value at a JSON pointer whose parent exists (appending when the index is the length).
fn set(obj: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').expect("pointer has a parent");
    let target = obj
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no parent {parent} for {pointer}"));
    match target {
        Value::Object(m) => {
            m.insert(last.to_string(), value);
        }
        Value::Array(a) => {
            let i: usize = last.parse().expect("array index");
            if i == a.len() {
                a.push(value);
            } else {
                a[i] = value;
            }
        }
        other => panic!("cannot set {pointer} inside {other}"),
    }
}

fn remove(obj: &mut Value, pointer: &str) {
    let (parent, last) = pointer.rsplit_once('/').expect("pointer has a parent");
    if let Some(Value::Object(m)) = obj.pointer_mut(parent) {
        m.remove(last);
    }
}

fn with(kind: &str, edits: &[(&str, Value)]) -> Value {
    let mut obj = canonical_of(kind);
    for (pointer, value) in edits {
        set(&mut obj, pointer, value.clone());
    }
    obj
}

#[track_caller]
fn assert_fails(checker: &str, errs: &[String], path: &str, contains: &str) {
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("{path}:")) && e.contains(contains)),
        "{checker}: expected an error at `{path}` containing {contains:?}, got {errs:#?}"
    );
}

#[track_caller]
fn schema_fails(obj: &Value, path: &str, contains: &str) {
    assert_fails("check_schema", &check_schema(obj), path, contains);
}

#[track_caller]
fn istiod_fails(obj: &Value, path: &str, contains: &str) {
    assert_fails("check_istiod", &check_istiod(obj), path, contains);
}

#[track_caller]
fn both_pass(obj: &Value) {
    let schema = check_schema(obj);
    let istiod = check_istiod(obj);
    assert!(
        schema.is_empty() && istiod.is_empty(),
        "{} should pass: schema {schema:#?} istiod {istiod:#?}",
        doc_name(obj)
    );
}

// ---------------------------------------------------------------------------------------------
// the vendored CRD file and the fixtures

#[test]
fn vendored_crd_file_has_the_pinned_sha256() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/istio/crds-1.24.6.yaml");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex,
        "60c3309cac9c9b1ac9b67aa441a0eb6333c8b2d4132597cf907c206f2a4f1ffe"
    );
}

#[test]
fn crd_file_serves_the_expected_kinds() {
    let kinds = served_kinds();
    for (group, kind) in [
        ("networking.istio.io", "ServiceEntry"),
        ("networking.istio.io", "Gateway"),
        ("networking.istio.io", "VirtualService"),
        ("networking.istio.io", "DestinationRule"),
        ("networking.istio.io", "Sidecar"),
        ("security.istio.io", "AuthorizationPolicy"),
        ("security.istio.io", "PeerAuthentication"),
    ] {
        assert!(
            kinds
                .iter()
                .any(|(g, v, k)| g == group && v == "v1" && k == kind),
            "{group}/v1 {kind} is not served by the CRD file"
        );
    }
}

/// Every CEL rule and pattern in the schemas of the kinds we generate is evaluated by
/// check_schema. The only ones left anywhere in the file are the URL rules of WasmPlugin and
/// RequestAuthentication (`isURL`/`url()`), which we never generate.
#[test]
fn every_crd_validation_of_the_generated_kinds_is_evaluated() {
    for kind in [
        "ServiceEntry",
        "Gateway",
        "VirtualService",
        "DestinationRule",
        "AuthorizationPolicy",
        "PeerAuthentication",
        "Sidecar",
    ] {
        assert_eq!(
            unevaluated_validations(kind),
            Vec::<String>::new(),
            "{kind}"
        );
    }
    let mut rest: Vec<String> = Vec::new();
    for (_, _, kind) in served_kinds() {
        rest.extend(unevaluated_validations(&kind));
    }
    assert!(
        rest.iter().all(|r| r.contains("url(")),
        "unexpected unevaluated validations: {rest:#?}"
    );
}

#[test]
fn valid_fixtures_pass_both_checkers() {
    let mut count = 0;
    for (file, docs) in fixtures("-valid.yaml") {
        for mut doc in docs {
            assert!(doc.get("_err").is_none(), "{file}: valid fixture with _err");
            apply_yaml_fixups(&file, &mut doc);
            let doc = in_default_namespace(doc);
            let schema = check_schema(&doc);
            assert!(schema.is_empty(), "{file} {}: {schema:#?}", doc_name(&doc));
            // istiod accepts them too (a partial wildcard SE host is only a warning there).
            let istiod = check_istiod(&doc);
            assert!(istiod.is_empty(), "{file} {}: {istiod:#?}", doc_name(&doc));
            count += 1;
        }
    }
    assert!(count >= 8, "only {count} valid fixture documents found");
}

/// Fixture documents (`metadata.name`) whose `_err` check_schema cannot reproduce because they
/// need a CEL rule it does not evaluate. Empty: every rule the fixtures exercise is implemented.
const NOT_CAUGHT_BY_SCHEMA: &[&str] = &[];

#[test]
fn invalid_fixtures_are_rejected_with_the_expected_message() {
    let mut checked = 0;
    for (file, docs) in fixtures("-invalid.yaml") {
        for mut doc in docs {
            let Some(expected) = doc
                .as_object_mut()
                .and_then(|m| m.remove("_err"))
                .and_then(|e| e.as_str().map(str::to_string))
            else {
                continue;
            };
            let doc = in_default_namespace(doc);
            let name = doc_name(&doc);
            if NOT_CAUGHT_BY_SCHEMA.contains(&doc["metadata"]["name"].as_str().unwrap_or("")) {
                continue;
            }
            let errs = check_schema(&doc);
            assert!(
                errs.iter().any(|e| e.contains(&expected)),
                "{file} {name}: expected an error containing {expected:?}, got {errs:#?}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 15,
        "only {checked} invalid fixture documents checked"
    );
}

/// istio/api keeps these cases commented out (`#_err: "TODO"`) because the CRDs do not catch
/// them; istiod's webhook does. They show why both checkers are needed.
#[test]
fn crd_todo_cases_pass_the_schema_but_fail_istiod() {
    let base = json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "ServiceEntry",
        "metadata": {"name": "x", "namespace": "default"},
        "spec": {"hosts": ["example.com"]}
    });
    let mut bad_selector_key = base.clone();
    set(&mut bad_selector_key, "/spec/resolution", json!("STATIC"));
    set(
        &mut bad_selector_key,
        "/spec/workloadSelector",
        json!({"labels": {"*": "val"}}),
    );
    let mut bad_host = base.clone();
    set(&mut bad_host, "/spec/hosts", json!(["foo*"]));
    let mut bad_cidr = base.clone();
    set(&mut bad_cidr, "/spec/addresses", json!(["1.2.3.4/99"]));

    for (obj, path, contains) in [
        (
            &bad_selector_key,
            "spec.workloadSelector.labels",
            "wildcard is not supported",
        ),
        (&bad_host, "spec.hosts[0]", "invalid"),
        (&bad_cidr, "spec.addresses[0]", "not a valid CIDR block"),
    ] {
        assert_eq!(check_schema(obj), Vec::<String>::new(), "{obj}");
        istiod_fails(obj, path, contains);
    }
}

// ---------------------------------------------------------------------------------------------
// the canonical set

#[test]
fn canonical_set_passes_both_checkers() {
    for obj in canonical() {
        both_pass(&obj);
    }
}

#[test]
fn canonical_set_is_valid_in_every_served_version() {
    for obj in canonical() {
        let group = obj["apiVersion"]
            .as_str()
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("");
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        for (g, v, k) in served_kinds() {
            if g == group && k == kind {
                let mut o = obj.clone();
                o["apiVersion"] = json!(format!("{g}/{v}"));
                assert_eq!(check_schema(&o), Vec::<String>::new(), "{g}/{v} {k}");
            }
        }
    }
}

#[test]
fn checking_many_objects_is_cheap_after_the_first_parse() {
    let objs = canonical();
    let _ = check_schema(&objs[0]);
    let start = std::time::Instant::now();
    for _ in 0..100 {
        for o in &objs {
            assert!(check_schema(o).is_empty());
            assert!(check_istiod(o).is_empty());
        }
    }
    // 1200 checks; generous bound for a debug build on a loaded 2-core machine.
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}

// ---------------------------------------------------------------------------------------------
// the brief's hand-broken objects

#[test]
fn unknown_field_is_rejected() {
    // A typo of targetPort, and the snake_case spelling the old docs used for sniHosts.
    let se = with("ServiceEntry", &[("/spec/ports/0/targetport", json!(8080))]);
    schema_fails(&se, "spec.ports[0].targetport", "unknown field");
    let mut vs = canonical_of("VirtualService");
    set(
        &mut vs,
        "/spec/tls",
        json!([{"match": [{"sni_hosts": ["api.example.com"], "sniHosts": ["api.example.com"]}],
                                      "route": [{"destination": {"host": "api.example.com"}}]}]),
    );
    schema_fails(&vs, "spec.tls[0].match[0].sni_hosts", "unknown field");
    let mut top = canonical_of("Gateway");
    set(&mut top, "/_err", json!("x"));
    schema_fails(&top, "_err", "unknown field");
    let mut meta = canonical_of("Gateway");
    set(&mut meta, "/metadata/label", json!({"a": "b"}));
    schema_fails(&meta, "metadata.label", "unknown field");
}

#[test]
fn wrong_enum_is_rejected() {
    let se = with("ServiceEntry", &[("/spec/resolution", json!("DNS_RR"))]);
    schema_fails(&se, "spec.resolution", "Unsupported value: \"DNS_RR\"");
    let gw = with(
        "Gateway",
        &[("/spec/servers/0/tls/mode", json!("ISTIO_MTLS"))],
    );
    schema_fails(&gw, "spec.servers[0].tls.mode", "Unsupported value");
    let ap = with("AuthorizationPolicy", &[("/spec/action", json!("allow"))]);
    schema_fails(&ap, "spec.action", "Unsupported value");
    istiod_fails(&ap, "spec.action", "unsupported action");
}

#[test]
fn gateway_name_with_a_dot_is_rejected_by_istiod_only() {
    let gw = with(
        "Gateway",
        &[("/metadata/name", json!("egress.api-example-com"))],
    );
    // A dotted name is a fine Kubernetes name, so only istiod's rule catches it.
    assert_eq!(check_schema(&gw), Vec::<String>::new());
    istiod_fails(&gw, "metadata.name", "invalid gateway name");
}

#[test]
fn authorization_policy_empty_from_is_rejected() {
    let ap = with("AuthorizationPolicy", &[("/spec/rules/0/from", json!([]))]);
    assert_eq!(check_schema(&ap), Vec::<String>::new());
    istiod_fails(&ap, "spec.rules[0].from", "`from` must not be empty");
    let ap = with("AuthorizationPolicy", &[("/spec/rules/0/to", json!([]))]);
    istiod_fails(&ap, "spec.rules[0].to", "`to` must not be empty");
}

#[test]
fn spiffe_principal_is_rejected() {
    let ap = with(
        "AuthorizationPolicy",
        &[(
            "/spec/rules/0/from/0/source/principals/0",
            json!("spiffe://cluster.local/ns/app-ns/sa/app-sa"),
        )],
    );
    istiod_fails(
        &ap,
        "spec.rules[0].from[0].source.principals[0]",
        "spiffe://",
    );
}

#[test]
fn virtual_service_wildcard_host_bound_to_mesh_is_rejected() {
    let vs = with("VirtualService", &[("/spec/hosts", json!(["*"]))]);
    istiod_fails(&vs, "spec.hosts[0]", "wildcard host * is not allowed");
    // No gateways at all means "mesh" too.
    let mut vs2 = vs.clone();
    remove(&mut vs2, "/spec/gateways");
    istiod_fails(&vs2, "spec.hosts[0]", "wildcard host * is not allowed");
    // Near miss: a VS bound only to a gateway may use `*`.
    let gw_only = with(
        "VirtualService",
        &[
            ("/spec/hosts", json!(["*"])),
            ("/spec/gateways", json!(["app-ns/egress-api-example-com"])),
            (
                "/spec/http",
                json!([{"route": [{"destination": {"host": "api.example.com"}}]}]),
            ),
        ],
    );
    both_pass(&gw_only);
}

#[test]
fn duplicate_service_entry_port_is_rejected() {
    // Same number, different names: the CRD's CEL rule and istiod.
    let se = with(
        "ServiceEntry",
        &[(
            "/spec/ports/1",
            json!({"number": 80, "name": "http-alt", "protocol": "HTTP"}),
        )],
    );
    schema_fails(&se, "spec.ports", "port number cannot be duplicated");
    istiod_fails(&se, "spec.ports[1].number", "already defined");
    // Same name: the list-map key of the CRD and istiod.
    let se = with(
        "ServiceEntry",
        &[(
            "/spec/ports/1",
            json!({"number": 8080, "name": "http", "protocol": "HTTP"}),
        )],
    );
    schema_fails(&se, "spec.ports[1]", "Duplicate value");
    istiod_fails(&se, "spec.ports[1].name", "already defined");
}

// ---------------------------------------------------------------------------------------------
// more schema behaviour

#[test]
fn schema_types_required_and_bounds() {
    let se = with("ServiceEntry", &[("/spec/ports/0/number", json!("80"))]);
    schema_fails(&se, "spec.ports[0].number", "must be of type integer");
    let se = with("ServiceEntry", &[("/spec/hosts", json!("api.example.com"))]);
    schema_fails(&se, "spec.hosts", "must be of type array");
    let se = with("ServiceEntry", &[("/spec/hosts", json!([]))]);
    schema_fails(&se, "spec.hosts", "at least 1 items");
    let many: Vec<String> = (0..257).map(|i| format!("h{i}.example.com")).collect();
    let se = with("ServiceEntry", &[("/spec/hosts", json!(many))]);
    schema_fails(&se, "spec.hosts", "must have at most 256 items");
    let se = with(
        "ServiceEntry",
        &[("/spec/addresses", json!(["x".repeat(65)]))],
    );
    schema_fails(&se, "spec.addresses[0]", "Too long");
    let se = with("ServiceEntry", &[("/spec/ports/0/number", json!(-1))]);
    schema_fails(&se, "spec.ports[0].number", "greater than or equal to 0");
    let mut gw = canonical_of("Gateway");
    remove(&mut gw, "/spec/servers/0/port");
    schema_fails(&gw, "spec.servers[0].port", "Required value");
    let gw = with("Gateway", &[("/spec/servers/0/hosts", Value::Null)]);
    schema_fails(&gw, "spec.servers[0].hosts", "must be of type array");
    // int-or-string: a Sidecar ingress defaultEndpoint is a string; status.observedGeneration is
    // int-or-string and status accepts anything else (preserve-unknown-fields).
    let gw = with(
        "Gateway",
        &[(
            "/status",
            json!({"observedGeneration": "3", "anything": [1]}),
        )],
    );
    assert_eq!(check_schema(&gw), Vec::<String>::new());
    let gw = with(
        "Gateway",
        &[("/status", json!({"observedGeneration": true}))],
    );
    schema_fails(&gw, "status.observedGeneration", "integer or a string");
    // A map (additionalProperties) of strings.
    let gw = with("Gateway", &[("/spec/selector/istio", json!(1))]);
    schema_fails(&gw, "spec.selector[istio]", "must be of type string");
}

#[test]
fn schema_one_of_is_enforced() {
    // loadBalancer: at most one of simple / consistentHash (oneOf with a `not anyOf` branch).
    let dr = with(
        "DestinationRule",
        &[(
            "/spec/subsets/0/trafficPolicy/loadBalancer",
            json!({"simple": "ROUND_ROBIN", "consistentHash": {"useSourceIp": true}}),
        )],
    );
    schema_fails(&dr, "spec.subsets[0].trafficPolicy.loadBalancer", "oneOf");
    let dr = with(
        "DestinationRule",
        &[(
            "/spec/subsets/0/trafficPolicy/loadBalancer",
            json!({"simple": "ROUND_ROBIN"}),
        )],
    );
    assert_eq!(check_schema(&dr), Vec::<String>::new());
    // VirtualService StringMatch: exactly one of exact/prefix/regex.
    let vs = with(
        "VirtualService",
        &[(
            "/spec/http/0/match/0/uri",
            json!({"exact": "/a", "prefix": "/b"}),
        )],
    );
    schema_fails(&vs, "spec.http[0].match[0].uri", "oneOf");
}

#[test]
fn schema_metadata_and_kind() {
    let mut se = canonical_of("ServiceEntry");
    remove(&mut se, "/metadata/namespace");
    schema_fails(&se, "metadata.namespace", "Required value");
    let se = with("ServiceEntry", &[("/metadata/name", json!("API_example"))]);
    schema_fails(&se, "metadata.name", "RFC 1123 subdomain");
    let se = with(
        "ServiceEntry",
        &[("/metadata/labels", json!({"app": "a b"}))],
    );
    schema_fails(&se, "metadata.labels[app]", "valid label");
    let se = with(
        "ServiceEntry",
        &[("/apiVersion", json!("networking.istio.io/v2"))],
    );
    schema_fails(&se, "apiVersion", "served as");
    let se = with("ServiceEntry", &[("/kind", json!("ExternalService"))]);
    schema_fails(&se, "kind", "no CustomResourceDefinition");
    let mut se = canonical_of("ServiceEntry");
    remove(&mut se, "/spec");
    schema_fails(&se, "spec", "Required value");
}

#[test]
fn schema_cel_rules() {
    let se = with("ServiceEntry", &[("/spec/hosts/0", json!("*"))]);
    schema_fails(&se, "spec.hosts[0]", "hostname cannot be wildcard");
    let se = with("ServiceEntry", &[("/spec/ports/0/number", json!(0))]);
    schema_fails(&se, "spec.ports[0].number", "port must be between 1-65535");
    let se = with(
        "ServiceEntry",
        &[("/spec/ports/0/targetPort", json!(70000))],
    );
    schema_fails(
        &se,
        "spec.ports[0].targetPort",
        "port must be between 1-65535",
    );
    let se = with(
        "ServiceEntry",
        &[("/spec/addresses", json!(["10.0.0.0/8"]))],
    );
    schema_fails(
        &se,
        "spec",
        "CIDR addresses are allowed only for NONE/STATIC",
    );
    let se = with(
        "ServiceEntry",
        &[
            ("/spec/resolution", json!("NONE")),
            ("/spec/endpoints", json!([{"address": "1.2.3.4"}])),
        ],
    );
    schema_fails(&se, "spec", "NONE mode cannot set endpoints");
    let se = with(
        "ServiceEntry",
        &[
            ("/spec/workloadSelector", json!({"labels": {"a": "b"}})),
            ("/spec/endpoints", json!([{"address": "1.2.3.4"}])),
        ],
    );
    schema_fails(&se, "spec", "only one of WorkloadSelector or Endpoints");
    let se = with(
        "ServiceEntry",
        &[("/spec/endpoints", json!([{"address": "unix://"}]))],
    );
    schema_fails(
        &se,
        "spec.endpoints[0].address",
        "UDS must be an absolute path",
    );

    let ap = with(
        "AuthorizationPolicy",
        &[(
            "/spec/targetRef",
            json!({"kind": "Service", "group": "", "name": "x"}),
        )],
    );
    schema_fails(&ap, "spec", "only one of targetRefs or selector can be set");
    let ap = with(
        "AuthorizationPolicy",
        &[(
            "/spec/selector/matchLabels",
            json!({"istio*": "egressgateway"}),
        )],
    );
    schema_fails(
        &ap,
        "spec.selector.matchLabels",
        "wildcard not allowed in label key match",
    );
    let ap = with(
        "AuthorizationPolicy",
        &[("/spec/selector/matchLabels", json!({"": "egressgateway"}))],
    );
    schema_fails(&ap, "spec.selector.matchLabels", "key must not be empty");
    let ap = with(
        "AuthorizationPolicy",
        &[("/spec/selector/matchLabels/istio", json!("egress*"))],
    );
    schema_fails(
        &ap,
        "spec.selector.matchLabels[istio]",
        "wildcard not allowed in label value match",
    );

    let dr = with(
        "DestinationRule",
        &[(
            "/spec/workloadSelector",
            json!({"matchLabels": {"app": "*"}}),
        )],
    );
    schema_fails(
        &dr,
        "spec.workloadSelector.matchLabels[app]",
        "wildcard not allowed",
    );
    let dr = with(
        "DestinationRule",
        &[(
            "/spec/subsets/0/trafficPolicy/connectionPool",
            json!({"tcp": {"connectTimeout": "500us"}}),
        )],
    );
    schema_fails(
        &dr,
        "spec.subsets[0].trafficPolicy.connectionPool.tcp.connectTimeout",
        "valid duration greater than 1ms",
    );
    let dr = with(
        "DestinationRule",
        &[(
            "/spec/subsets/0/trafficPolicy/connectionPool",
            json!({"tcp": {"connectTimeout": "ten seconds"}}),
        )],
    );
    schema_fails(
        &dr,
        "spec.subsets[0].trafficPolicy.connectionPool.tcp.connectTimeout",
        "valid duration",
    );
    let dr = with(
        "DestinationRule",
        &[(
            "/spec/subsets/0/trafficPolicy/connectionPool",
            json!({"tcp": {"connectTimeout": "1.5s"}}),
        )],
    );
    assert_eq!(check_schema(&dr), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// more istiod rules (each with the field path), plus near misses that must pass

#[test]
fn istiod_metadata_rules() {
    let se = with("ServiceEntry", &[("/metadata/name", json!("a".repeat(64)))]);
    istiod_fails(&se, "metadata.name", "longer than 63");
    let gw = with(
        "Gateway",
        &[("/metadata/annotations", json!({"istio.io/dry-run": "true"}))],
    );
    istiod_fails(
        &gw,
        "metadata.annotations[istio.io/dry-run]",
        "unsupported annotation",
    );
    let ap = with(
        "AuthorizationPolicy",
        &[("/metadata/annotations", json!({"istio.io/dry-run": "yes"}))],
    );
    istiod_fails(
        &ap,
        "metadata.annotations[istio.io/dry-run]",
        "\"true\" or \"false\"",
    );
    let ap = with(
        "AuthorizationPolicy",
        &[
            ("/metadata/annotations", json!({"istio.io/dry-run": "true"})),
            ("/spec/action", json!("AUDIT")),
        ],
    );
    istiod_fails(&ap, "metadata.annotations[istio.io/dry-run]", "ALLOW/DENY");
    let ap = with(
        "AuthorizationPolicy",
        &[("/metadata/annotations", json!({"istio.io/dry-run": "true"}))],
    );
    both_pass(&ap);
}

#[test]
fn istiod_export_to_rules() {
    let se = with(
        "ServiceEntry",
        &[("/spec/exportTo", json!(["app-ns", "."]))],
    );
    istiod_fails(&se, "spec.exportTo[1]", ". and current namespace");
    let se = with(
        "ServiceEntry",
        &[("/spec/exportTo", json!(["*", "istio-system"]))],
    );
    istiod_fails(&se, "spec.exportTo", "both public (*) and non-public");
    let dr = with("DestinationRule", &[("/spec/exportTo", json!(["~"]))]);
    istiod_fails(&dr, "spec.exportTo[0]", "~ (none) is not allowed");
    let se = with("ServiceEntry", &[("/spec/exportTo", json!(["~", "."]))]);
    istiod_fails(&se, "spec.exportTo", "to no one (~) and someone");
    let vs = with(
        "VirtualService",
        &[("/spec/exportTo", json!(["Not_A_Namespace"]))],
    );
    istiod_fails(&vs, "spec.exportTo[0]", "valid DNS 1123 label");
    let dr = with(
        "DestinationRule",
        &[
            (
                "/spec/workloadSelector",
                json!({"matchLabels": {"app": "x"}}),
            ),
            ("/spec/exportTo", json!(["istio-system"])),
        ],
    );
    istiod_fails(&dr, "spec.exportTo", "beyond current namespace");
    for ok in [json!(["."]), json!(["*"]), json!([".", "istio-system"])] {
        both_pass(&with("VirtualService", &[("/spec/exportTo", ok)]));
    }
    both_pass(&with("ServiceEntry", &[("/spec/exportTo", json!(["~"]))]));
}

#[test]
fn istiod_service_entry_rules() {
    let se = with("ServiceEntry", &[("/spec/hosts/0", json!("*.example.com"))]);
    istiod_fails(&se, "spec.hosts[0]", "must be FQDN if no endpoints");
    // Near miss: a wildcard host with resolution NONE (EGRESS.md variant B).
    both_pass(&with(
        "ServiceEntry",
        &[
            ("/spec/hosts/0", json!("*.example.com")),
            ("/spec/resolution", json!("NONE")),
        ],
    ));
    let se = with(
        "ServiceEntry",
        &[
            ("/spec/hosts/1", json!("api2.example.com")),
            ("/spec/ports/1/protocol", json!("TCP")),
        ],
    );
    istiod_fails(
        &se,
        "spec.ports[1].protocol",
        "multiple hosts provided with non-HTTP, non-TLS ports",
    );
    both_pass(&with(
        "ServiceEntry",
        &[("/spec/hosts/1", json!("api2.example.com"))],
    ));
    let se = with(
        "ServiceEntry",
        &[("/spec/ports/0/name", json!("http_port"))],
    );
    istiod_fails(&se, "spec.ports[0].name", "invalid port name");
    let se = with(
        "ServiceEntry",
        &[("/spec/ports/0/protocol", json!("HTTP3"))],
    );
    istiod_fails(&se, "spec.ports[0].protocol", "unsupported protocol");
    let se = with(
        "ServiceEntry",
        &[("/spec/ports/0/protocol", json!("grpc-web"))],
    );
    both_pass(&se);
    let se = with(
        "ServiceEntry",
        &[("/spec/hosts/0", json!("api.example.123"))],
    );
    istiod_fails(&se, "spec.hosts[0]", "all-numeric");
    let se = with(
        "ServiceEntry",
        &[
            ("/spec/resolution", json!("STATIC")),
            ("/spec/endpoints", json!([{"address": "api.example.com"}])),
        ],
    );
    istiod_fails(&se, "spec.endpoints[0].address", "not a valid IP address");
    let se = with(
        "ServiceEntry",
        &[(
            "/spec/endpoints",
            json!([{"address": "1.2.3.4", "ports": {"grpc": 8080}}]),
        )],
    );
    istiod_fails(
        &se,
        "spec.endpoints[0].ports[grpc]",
        "not defined by the service entry",
    );
}

#[test]
fn istiod_gateway_rules() {
    let gw = with("Gateway", &[("/spec/servers", json!([]))]);
    istiod_fails(&gw, "spec.servers", "at least one server");
    let gw = with("Gateway", &[("/spec/servers/0/hosts", json!([]))]);
    istiod_fails(&gw, "spec.servers[0].hosts", "at least one host");
    let gw = with("Gateway", &[("/spec/servers/0/port/name", json!(""))]);
    istiod_fails(&gw, "spec.servers[0].port.name", "port name must be set");
    let gw = with("Gateway", &[("/spec/servers/0/port/number", json!(0))]);
    istiod_fails(&gw, "spec.servers[0].port.number", "1..65535");
    let mut gw = canonical_of("Gateway");
    let second = gw["spec"]["servers"][0].clone();
    set(&mut gw, "/spec/servers/1", second);
    istiod_fails(&gw, "spec.servers[1].port.name", "must be unique");
    let mut gw = canonical_of("Gateway");
    remove(&mut gw, "/spec/servers/0/tls");
    istiod_fails(
        &gw,
        "spec.servers[0].tls",
        "must have TLS settings for HTTPS/TLS",
    );
    let gw = with(
        "Gateway",
        &[("/spec/servers/0/tls/credentialName", json!("api-cert"))],
    );
    istiod_fails(
        &gw,
        "spec.servers[0].tls.credentialName",
        "ISTIO_MUTUAL TLS cannot have",
    );
    let gw = with(
        "Gateway",
        &[("/spec/servers/0/tls", json!({"mode": "SIMPLE"}))],
    );
    istiod_fails(&gw, "spec.servers[0].tls", "requires a server certificate");
    both_pass(&with(
        "Gateway",
        &[(
            "/spec/servers/0/tls",
            json!({"mode": "SIMPLE", "credentialName": "c"}),
        )],
    ));
    let gw = with("Gateway", &[("/spec/servers/0/hosts/0", json!("api"))]);
    istiod_fails(&gw, "spec.servers[0].hosts[0]", "short names");
    let gw = with(
        "Gateway",
        &[("/spec/servers/0/hosts/0", json!("Bad_NS/api.example.com"))],
    );
    istiod_fails(&gw, "spec.servers[0].hosts[0]", "invalid namespace value");
    let gw = with(
        "Gateway",
        &[("/spec/servers/0/hosts/0", json!("*api.example.com"))],
    );
    istiod_fails(&gw, "spec.servers[0].hosts[0]", "partial wildcard");
    for ok in [
        "app-ns/api.example.com",
        "*/api.example.com",
        "./*.example.com",
        "*",
    ] {
        both_pass(&with("Gateway", &[("/spec/servers/0/hosts/0", json!(ok))]));
    }
    let gw = with(
        "Gateway",
        &[
            ("/spec/servers/0/port/protocol", json!("HTTP")),
            (
                "/spec/servers/0/tls",
                json!({"mode": "SIMPLE", "credentialName": "c"}),
            ),
        ],
    );
    istiod_fails(&gw, "spec.servers[0].tls", "plain text HTTP ports");
    let gw = with(
        "Gateway",
        &[("/spec/servers/0/port/targetPort", json!(8080))],
    );
    istiod_fails(
        &gw,
        "spec.servers[0].port.targetPort",
        "no impact on Gateways",
    );
}

#[test]
fn istiod_virtual_service_rules() {
    let vs = with(
        "VirtualService",
        &[("/spec/gateways/0", json!("app-ns/egress.api"))],
    );
    istiod_fails(&vs, "spec.gateways[0]", "invalid value for gateway name");
    let vs = with(
        "VirtualService",
        &[("/spec/gateways/0", json!("egress-api-example-com.app-ns"))],
    );
    istiod_fails(
        &vs,
        "spec.gateways[0]",
        "must be mesh, <name> or <namespace>/<name>",
    );
    both_pass(&with(
        "VirtualService",
        &[("/spec/gateways/0", json!("egress-api-example-com"))],
    ));
    let vs = with(
        "VirtualService",
        &[("/spec/http/0/match/0/gateways/0", json!("/x"))],
    );
    istiod_fails(&vs, "spec.http[0].match[0].gateways[0]", "cannot be empty");
    let vs = with(
        "VirtualService",
        &[("/spec/hosts", json!(["*.example.com", "api.example.com"]))],
    );
    istiod_fails(&vs, "spec.hosts[1]", "duplicate hosts");
    let mut vs = canonical_of("VirtualService");
    remove(&mut vs, "/spec/http");
    istiod_fails(&vs, "spec", "http, tcp or tls must be provided");
    let vs = with(
        "VirtualService",
        &[("/spec/http/0/redirect", json!({"uri": "/x"}))],
    );
    istiod_fails(&vs, "spec.http[0]", "both route and redirect");
    let vs = with("VirtualService", &[("/spec/http/0/route", json!([]))]);
    istiod_fails(
        &vs,
        "spec.http[0]",
        "route, redirect or direct_response is required",
    );
    let vs = with(
        "VirtualService",
        &[("/spec/http/0/route/0/destination/host", json!("*"))],
    );
    istiod_fails(
        &vs,
        "spec.http[0].route[0].destination.host",
        "invalid destination host",
    );
    let vs = with(
        "VirtualService",
        &[(
            "/spec/http/0/route/0/destination/subset",
            json!("api.example.com"),
        )],
    );
    istiod_fails(
        &vs,
        "spec.http[0].route[0].destination.subset",
        "DNS-1123 label",
    );
    let vs = with(
        "VirtualService",
        &[("/spec/http/0/route/0/destination/port/number", json!(70000))],
    );
    istiod_fails(
        &vs,
        "spec.http[0].route[0].destination.port.number",
        "1..65535",
    );
    let vs = with(
        "VirtualService",
        &[("/spec/http/0/match/0/port", json!(65536))],
    );
    istiod_fails(&vs, "spec.http[0].match[0].port", "1..65535");
    let vs = with(
        "VirtualService",
        &[("/spec/http/0/route/0/weight", json!(150))],
    );
    istiod_fails(&vs, "spec.http[0].route[0].weight", "0..100");
    let mut vs = canonical_of("VirtualService");
    let dest = json!({"destination": {"host": "api.example.com"}, "weight": 0});
    set(&mut vs, "/spec/http/0/route/0/weight", json!(0));
    set(&mut vs, "/spec/http/0/route/1", dest);
    istiod_fails(&vs, "spec.http[0].route", "total destination weight = 0");
    let vs = with(
        "VirtualService",
        &[(
            "/spec/tls",
            json!([{"match": [{"sniHosts": ["other.example.com"], "port": 443}],
                                "route": [{"destination": {"host": "api.example.com", "port": {"number": 443}}}]}]),
        )],
    );
    istiod_fails(
        &vs,
        "spec.tls[0].match[0].sniHosts[0]",
        "not a compatible subset",
    );
    let vs = with(
        "VirtualService",
        &[(
            "/spec/tls",
            json!([{"match": [{"sniHosts": ["api.example.com"], "port": 443}],
                                "route": [{"destination": {"host": "api.example.com", "port": {"number": 443}}}]}]),
        )],
    );
    both_pass(&vs);
}

#[test]
fn istiod_destination_rule_rules() {
    let dr = with(
        "DestinationRule",
        &[("/spec/subsets/1", json!({"name": "api-example-com"}))],
    );
    istiod_fails(&dr, "spec.subsets[1].name", "duplicate subset names");
    let dr = with(
        "DestinationRule",
        &[("/spec/subsets/0/name", json!("api.example.com"))],
    );
    istiod_fails(&dr, "spec.subsets[0].name", "DNS-1123 label");
    let dr = with("DestinationRule", &[("/spec/trafficPolicy", json!({}))]);
    istiod_fails(&dr, "spec.trafficPolicy", "at least one field");
    let mut dr = canonical_of("DestinationRule");
    remove(
        &mut dr,
        "/spec/subsets/0/trafficPolicy/portLevelSettings/0/port",
    );
    istiod_fails(
        &dr,
        "spec.subsets[0].trafficPolicy.portLevelSettings[0].port",
        "must have valid port",
    );
    let mut dr = canonical_of("DestinationRule");
    remove(
        &mut dr,
        "/spec/subsets/0/trafficPolicy/portLevelSettings/0/tls",
    );
    istiod_fails(
        &dr,
        "spec.subsets[0].trafficPolicy.portLevelSettings[0]",
        "at least one field",
    );
    let dr = with(
        "DestinationRule",
        &[(
            "/spec/subsets/0/trafficPolicy/portLevelSettings/0/port/number",
            json!(0),
        )],
    );
    istiod_fails(
        &dr,
        "spec.subsets[0].trafficPolicy.portLevelSettings[0].port.number",
        "1..65535",
    );
    let tls = "/spec/subsets/0/trafficPolicy/portLevelSettings/0/tls";
    let path = "spec.subsets[0].trafficPolicy.portLevelSettings[0].tls";
    let dr = with("DestinationRule", &[(tls, json!({"mode": "MUTUAL"}))]);
    istiod_fails(
        &dr,
        &format!("{path}.clientCertificate"),
        "required for mutual tls",
    );
    istiod_fails(
        &dr,
        &format!("{path}.privateKey"),
        "required for mutual tls",
    );
    both_pass(&with(
        "DestinationRule",
        &[(tls, json!({"mode": "MUTUAL", "credentialName": "client"}))],
    ));
    let dr = with(
        "DestinationRule",
        &[(
            tls,
            json!({"mode": "MUTUAL", "credentialName": "c", "privateKey": "/k"}),
        )],
    );
    istiod_fails(&dr, path, "credentialName is set");
    let dr = with(
        "DestinationRule",
        &[(
            tls,
            json!({"mode": "SIMPLE", "insecureSkipVerify": true, "caCertificates": "/ca"}),
        )],
    );
    istiod_fails(&dr, path, "InsecureSkipVerify");
    let dr = with(
        "DestinationRule",
        &[("/spec/host", json!("api..example.com"))],
    );
    istiod_fails(&dr, "spec.host", "invalid");
}

#[test]
fn istiod_authorization_policy_rules() {
    let ap = with(
        "AuthorizationPolicy",
        &[("/spec/rules/0/from/0", json!({}))],
    );
    istiod_fails(&ap, "spec.rules[0].from[0].source", "must not be nil");
    let ap = with(
        "AuthorizationPolicy",
        &[("/spec/rules/0/from/0/source", json!({}))],
    );
    istiod_fails(&ap, "spec.rules[0].from[0].source", "must not be empty");
    let ap = with(
        "AuthorizationPolicy",
        &[("/spec/rules/0/to/0/operation", json!({}))],
    );
    istiod_fails(&ap, "spec.rules[0].to[0].operation", "must not be empty");
    let ap = with(
        "AuthorizationPolicy",
        &[("/spec/rules/0/to/0/operation/hosts/1", json!(""))],
    );
    istiod_fails(&ap, "spec.rules[0].to[0].operation.hosts[1]", "empty value");
    let ap = with(
        "AuthorizationPolicy",
        &[("/spec/rules/0/to/0/operation/ports", json!(["70000"]))],
    );
    istiod_fails(
        &ap,
        "spec.rules[0].to[0].operation.ports[0]",
        "invalid port",
    );
    let ap = with(
        "AuthorizationPolicy",
        &[(
            "/spec/rules/0/from/0/source/ipBlocks",
            json!(["10.0.0.0/33"]),
        )],
    );
    istiod_fails(
        &ap,
        "spec.rules[0].from[0].source.ipBlocks[0]",
        "not a valid CIDR",
    );
    let ap = with(
        "AuthorizationPolicy",
        &[("/spec/rules/0/when", json!([{"key": "connection.sni"}]))],
    );
    istiod_fails(&ap, "spec.rules[0].when[0]", "`values` or `notValues`");
    let ap = with(
        "AuthorizationPolicy",
        &[(
            "/spec/rules/0/when",
            json!([{"key": "request.host", "values": ["a"]}]),
        )],
    );
    istiod_fails(&ap, "spec.rules[0].when[0].values", "unknown attribute");
    both_pass(&with(
        "AuthorizationPolicy",
        &[(
            "/spec/rules/0/when",
            json!([{"key": "connection.sni", "values": ["api.example.com"]}]),
        )],
    ));
    let ap = with(
        "AuthorizationPolicy",
        &[(
            "/spec/rules/0/from/0/source/principals/0",
            json!("cluster.local/ns/app-ns/app-sa"),
        )],
    );
    istiod_fails(
        &ap,
        "spec.rules[0].from[0].source.principals[0]",
        "<trust-domain>/ns/<namespace>/sa/",
    );
    let ap = with(
        "AuthorizationPolicy",
        &[(
            "/spec/rules/0/from/0/source/principals/0",
            json!("cluster.local/ns/*/sa/app-sa"),
        )],
    );
    istiod_fails(
        &ap,
        "spec.rules[0].from[0].source.principals[0]",
        "start or the end",
    );
    for ok in ["*", "cluster.local/ns/app-ns/sa/*", "*/ns/app-ns/sa/app-sa"] {
        both_pass(&with(
            "AuthorizationPolicy",
            &[("/spec/rules/0/from/0/source/principals/0", json!(ok))],
        ));
    }
    let mut ap = canonical_of("AuthorizationPolicy");
    set(&mut ap, "/spec/action", json!("DENY"));
    remove(&mut ap, "/spec/rules");
    istiod_fails(&ap, "spec.rules", "DENY action without `rules`");
    let ap = with(
        "AuthorizationPolicy",
        &[("/spec/targetRef", json!({"kind": "Service", "name": "x"}))],
    );
    istiod_fails(&ap, "spec", "only one of selector, targetRef or targetRefs");
}

#[test]
fn istiod_peer_authentication_rules() {
    let pa = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "app-ns"},
        "spec": {"mtls": {"mode": "STRICT"}}
    });
    both_pass(&pa);
    let mut bad = pa.clone();
    set(&mut bad, "/spec/mtls/mode", json!("MUTUAL"));
    schema_fails(&bad, "spec.mtls.mode", "Unsupported value");
    istiod_fails(&bad, "spec.mtls.mode", "unsupported mTLS mode");
    let mut bad = pa.clone();
    set(
        &mut bad,
        "/spec/portLevelMtls",
        json!({"8080": {"mode": "DISABLE"}}),
    );
    schema_fails(&bad, "spec", "portLevelMtls requires selector");
    istiod_fails(&bad, "spec.portLevelMtls", "cannot have port level mTLS");
}

#[test]
fn istiod_sidecar_rules() {
    let sc = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": "default", "namespace": "app-ns"},
        "spec": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
                 "egress": [{"hosts": ["./*", "istio-system/*"]}]}
    });
    both_pass(&sc);
    let mut bad = sc.clone();
    set(&mut bad, "/spec/egress/0/hosts/1", json!("istio-system"));
    istiod_fails(&bad, "spec.egress[0].hosts[1]", "namespace/dnsName");
    let mut bad = sc.clone();
    set(&mut bad, "/spec", json!({}));
    istiod_fails(&bad, "spec", "empty configuration");
}

#[test]
fn istiod_rejects_kinds_it_has_no_rules_for() {
    let obj = json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
                     "metadata": {"name": "x", "namespace": "y"}, "spec": {}});
    istiod_fails(&obj, "kind", "no istiod rules");
}

/// Both checkers take whatever the generator produced: replacing any node of the canonical
/// objects by a value of another shape must give errors, never a panic.
#[test]
fn checkers_never_panic_on_malformed_input() {
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, x)| pointers(x, format!("{at}/{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| pointers(x, format!("{at}/{i}"), out)),
            _ => {}
        }
        out.push(at);
    }
    let replacements = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5),
        json!(99999999999u64),
        json!(""),
        json!("*"),
        json!("unix://"),
        json!([]),
        json!([null, ""]),
        json!({}),
        json!({"": null}),
    ];
    let mut checked = 0;
    for obj in canonical() {
        let mut ptrs = Vec::new();
        pointers(&obj, String::new(), &mut ptrs);
        for p in ptrs {
            for r in &replacements {
                let mut o = obj.clone();
                match o.pointer_mut(&p) {
                    Some(slot) => *slot = r.clone(),
                    None => o = r.clone(),
                }
                let _ = check_schema(&o);
                let _ = check_istiod(&o);
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "only {checked} variants");
}

//! End to end through the real kubectl (and kube-rs) against a real kube-apiserver that calls the
//! webhook: admission of the running example, denials with kubectl's exact error text, warnings,
//! server-side dry-run, UPDATE, DELETE, the namespaceSelector, the webhook's RBAC, the deploy
//! manifests, and the live lookup that keeps a stale cache from denying.
//!
//! One cluster for the whole file (see `e2e/mod.rs`); each test owns its namespaces.

mod e2e;

use std::sync::Arc;
use std::time::Duration;

use e2e::{Kubectl, apply, eventually, inventory, kubectl, namespace, repo_text, shared};
// kube-rs calls take the CRD's type (ObjectMeta); the core's ExternalService is `api::ExternalService`.
use egress_webhook::api::ExternalServiceResource as ExternalService;
use egress_webhook::core::{Object, Options, defaults::default_object};
use egress_webhook::load::{LoadResult, load_text};
use serde_json::{Value, json};

/// kubectl's prefix for a denial (the webhook answers 422 Invalid) of `kubectl apply -f -` that
/// creates.
const DENIED_CREATE: &str = "The request is invalid: error when creating \"STDIN\": admission webhook \"validate.egress-webhook.io\" denied the request: ";

const E25: &str = "TLS origination (mode SIMPLE) without caCertificates or credentialName: the external server's certificate is not verified against a CA you choose (Istio IST0129 on the generated DestinationRule); set caCertificates or credentialName [E25]";

/// The E26 warning of ExternalService `ns/httpbin.org`.
fn e26(ns: &str) -> String {
    format!(
        "Warning: ExternalService {ns}/httpbin.org: spec.ports[0].egressGatewayRoutes: no AccessPolicy selects ExternalService {ns}/httpbin.org: the egress gateway lets every mesh workload reach \"httpbin.org\" until an AccessPolicy (applyToDestinations kind EXTERNAL_SERVICE) selects it [E26]"
    )
}

/// The M1 warning of ExternalService `ns/httpbin.org`: the test cluster has no mesh ConfigMap,
/// so Istio's default ALLOW_ANY is in force.
fn m1(ns: &str) -> String {
    format!(
        "Warning: ExternalService {ns}/httpbin.org: spec.ports[0].egressGatewayRoutes: the mesh's outbound traffic policy is ALLOW_ANY (no ConfigMap istio-system/istio: Istio's default): this host goes through the egress gateway, but workloads still reach every external host no ServiceEntry declares directly from their sidecars, bypassing it; set outboundTrafficPolicy.mode: REGISTRY_ONLY in the mesh config (key mesh of ConfigMap istio-system/istio, meshConfig in Istio's install values) [M1]"
    )
}

fn e25(ns: &str, port: usize) -> String {
    format!("Warning: ExternalService {ns}/httpbin.org: spec.ports[{port}].clientsideTls: {E25}")
}

fn objects(yaml: &str) -> Vec<Object> {
    let mut out = LoadResult::default();
    load_text("test.yaml", yaml, &mut out).expect("test YAML loads");
    out.objects.into_iter().map(|l| l.object).collect()
}

/// The spec of `yaml`'s single object after the core's defaulting, as JSON.
fn defaulted_spec(yaml: &str, opts: &Options) -> Value {
    let obj = objects(yaml).remove(0);
    default_object(obj, opts).to_value()["spec"].clone()
}

fn example(file: &str) -> String {
    repo_text(&format!("manifests/examples/{file}"))
}

/// The running example's VirtualGateway in another namespace (no gateway Service there: V20
/// warns, nothing fails).
fn vg_in(ns: &str) -> String {
    example("30-virtualgateway.yaml")
        .replace("namespace: istio-egress", &format!("namespace: {ns}"))
}

fn stderr_lines(k: &Kubectl) -> Vec<&str> {
    k.stderr.lines().collect()
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn running_example_is_admitted_in_dependency_order_and_stored_with_the_core_defaults() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    for f in [
        "00-namespaces.yaml",
        "10-egress-gateway-service.yaml",
        "20-service-accounts.yaml",
    ] {
        apply(&dev, &example(f), &[]).expect_ok(f);
    }

    // Before its VirtualGateway exists, the ExternalService is denied, naming egress-vg.
    let early = apply(&dev, &example("40-externalservice.yaml"), &[]).expect_err("ES before VG");
    // A denial carries the warnings too; kubectl prints them first.
    assert_eq!(
        stderr_lines(&early),
        [
            e25("global", 0),
            e26("global"),
            m1("global"),
            format!(
                "{DENIED_CREATE}error: ExternalService global/httpbin.org: spec.ports[0].egressGatewayRoutes.virtualGatewayRefs[0]: VirtualGateway istio-egress/egress-vg does not exist [E22]"
            )
        ]
    );
    assert!(early.stderr.contains("egress-vg"));
    let none = kubectl(
        &dev,
        &["get", "externalservices", "-n", "global", "-o", "name"],
    )
    .expect_ok("list");
    assert_eq!(none.stdout, "", "a denied object is not stored");

    // VirtualGateway, then ExternalService, then AccessPolicy: all admitted, with the warnings.
    let vg = apply(&dev, &example("30-virtualgateway.yaml"), &[]).expect_ok("VG");
    assert_eq!(
        vg.stdout,
        "virtualgateway.networking.gloo.solo.io/egress-vg created\n"
    );
    assert_eq!(vg.stderr, "");
    let es = apply(&dev, &example("40-externalservice.yaml"), &[]).expect_ok("ES");
    assert_eq!(
        es.stdout,
        "externalservice.networking.gloo.solo.io/httpbin.org created\n"
    );
    assert_eq!(
        stderr_lines(&es),
        [e25("global", 0), e26("global"), m1("global")]
    );
    let ap = apply(&dev, &example("50-accesspolicy.yaml"), &[]).expect_ok("AP");
    assert_eq!(
        ap.stdout,
        "accesspolicy.security.policy.gloo.solo.io/egress-access-policy created\n"
    );
    assert_eq!(
        stderr_lines(&ap),
        [
            "Warning: AccessPolicy istio-egress/egress-access-policy: spec.config.authz: `authz` is deprecated: move this entry into `authzList` [A6]"
        ]
    );

    // The stored ExternalService shows the injected defaults.
    let yaml = kubectl(
        &dev,
        &["get", "es", "httpbin.org", "-n", "global", "-o", "yaml"],
    )
    .expect_ok("get es -o yaml")
    .stdout;
    let stored: Value = serde_saphyr::from_str(&yaml).expect("kubectl printed YAML");
    let port = &stored["spec"]["ports"][0];
    assert_eq!(port["targetPort"], json!({"number": 443}), "{yaml}");
    assert_eq!(
        port["clientsideTls"],
        json!({"mode": "SIMPLE", "sni": "httpbin.org"}),
        "{yaml}"
    );
    assert_eq!(port["egressGatewayRoutes"]["portMatch"], 80, "{yaml}");
    assert_eq!(
        port["egressGatewayRoutes"]["virtualGatewayRefs"][0],
        json!({"cluster": "cluster1", "name": "egress-vg", "namespace": "istio-egress"}),
        "{yaml}"
    );
    // The apiserver applied our JSONPatch: the stored spec is exactly the core's defaulting.
    let opts = dev.core_options().clone();
    assert_eq!(
        stored["spec"],
        defaulted_spec(&example("40-externalservice.yaml"), &opts)
    );
    for (file, kind, ns, name) in [
        (
            "30-virtualgateway.yaml",
            "virtualgateway",
            "istio-egress",
            "egress-vg",
        ),
        (
            "50-accesspolicy.yaml",
            "accesspolicy",
            "istio-egress",
            "egress-access-policy",
        ),
    ] {
        let got = kubectl(&dev, &["get", kind, name, "-n", ns, "-o", "json"])
            .expect_ok(kind)
            .json();
        assert_eq!(got["spec"], defaulted_spec(&example(file), &opts), "{kind}");
    }

    // Through kube-rs, typed: the same object.
    let typed = dev.block_on(async {
        let client = dev.admin_client().await.expect("admin client");
        kube::Api::<ExternalService>::namespaced(client, "global")
            .get("httpbin.org")
            .await
            .expect("get through kube-rs")
    });
    let Object::ExternalService(expected) = default_object(
        objects(&example("40-externalservice.yaml")).remove(0),
        &opts,
    ) else {
        panic!("the example is an ExternalService");
    };
    assert_eq!(typed.spec, expected.spec);

    // Defaulting is idempotent: applying the same file again stores nothing new. (kubectl still
    // says "configured": for custom resources it sends a merge patch that replaces the whole
    // `ports` list, and the mutating webhook puts the same defaults back.)
    let rv = || {
        kubectl(
            &dev,
            &[
                "get",
                "es",
                "httpbin.org",
                "-n",
                "global",
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ],
        )
        .expect_ok("resourceVersion")
        .stdout
    };
    let before = rv();
    apply(&dev, &example("40-externalservice.yaml"), &[]).expect_ok("re-apply");
    assert_eq!(
        rv(),
        before,
        "a second apply of the same file changed the object"
    );
}

/// The invalid objects of `denials_*`: (what, YAML, the webhook's message).
fn invalid_objects(ns: &str) -> Vec<(&'static str, String, String)> {
    let es = |name: &str, spec: &str| {
        format!(
            "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}"
        )
    };
    vec![
        (
            "ports",
            es(
                "ports.example.com",
                "  hosts: [ports.example.com]\n  ports:\n  - {name: http, number: 80, protocol: HTTP}\n  - {name: http-alt, number: 80, protocol: HTTP}\n",
            ),
            format!(
                "error: ExternalService {ns}/ports.example.com: spec.ports[1].number: port number 80 is already used by spec.ports[0]: port numbers must be unique [E7]"
            ),
        ),
        (
            "protocol",
            es(
                "protocol.example.com",
                "  hosts: [protocol.example.com]\n  ports:\n  - {name: ftp, number: 21, protocol: FTP}\n",
            ),
            format!(
                "error: ExternalService {ns}/protocol.example.com: spec.ports[0].protocol: protocol \"FTP\" is not one of HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS [E6]"
            ),
        ),
        (
            "hosts",
            es(
                "hosts.example.com",
                "  hosts: [\"httpbin..org\"]\n  ports:\n  - {name: http, number: 80, protocol: HTTP}\n",
            ),
            format!(
                "error: ExternalService {ns}/hosts.example.com: spec.hosts[0]: host \"httpbin..org\" is not a fully-qualified domain name (at least two dot-separated DNS-1123 labels of letters, digits and `-`, e.g. `api.example.com`) [E2]"
            ),
        ),
        (
            "TLS",
            es(
                "tls.example.com",
                "  hosts: [tls.example.com]\n  ports:\n  - name: https\n    number: 443\n    protocol: HTTPS\n    clientsideTls: {mode: MUTUAL, credentialName: tls-client, clientCertificate: /etc/certs/client.pem, privateKey: /etc/certs/key.pem}\n",
            ),
            format!(
                "error: ExternalService {ns}/tls.example.com: spec.ports[0].clientsideTls.credentialName: credentialName cannot be combined with clientCertificate, privateKey: the secret \"tls-client\" already provides the certificates; use either the secret or the file paths [E12]"
            ),
        ),
        (
            "AccessPolicy selector",
            format!(
                "apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {{name: selector-policy, namespace: {ns}}}\nspec:\n  applyToDestinations:\n  - kind: EXTERNAL_SERVICE\n    selector: {{name: missing.example.com, namespace: {ns}}}\n  config:\n    authzList:\n    - allowedClients:\n      - serviceAccountSelector: {{name: default, namespace: {ns}}}\n"
            ),
            format!(
                "error: AccessPolicy {ns}/selector-policy: spec.applyToDestinations[0].selector: ExternalService {ns}/missing.example.com does not exist [A14]"
            ),
        ),
    ]
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn denials_of_each_kind_carry_the_webhook_message_in_kubectl_error() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let ns = "e2e-denials";
    namespace(&dev, ns);
    for (what, yaml, message) in invalid_objects(ns) {
        let real = apply(&dev, &yaml, &[]).expect_err(what);
        assert_eq!(
            stderr_lines(&real),
            [format!("{DENIED_CREATE}{message}")],
            "{what}"
        );
    }
    // Nothing was stored.
    let left = kubectl(
        &dev,
        &[
            "get",
            "externalservices,accesspolicies",
            "-n",
            ns,
            "-o",
            "name",
        ],
    )
    .expect_ok("list");
    assert_eq!(left.stdout, "");
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn server_dry_run_gives_the_same_verdicts_and_creates_nothing() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let ns = "e2e-dryrun";
    namespace(&dev, ns);
    apply(&dev, &vg_in(ns), &[]).expect_ok("VG");
    let valid = example("40-externalservice.yaml")
        .replace("namespace: global", &format!("namespace: {ns}"))
        .replace("namespace: istio-egress", &format!("namespace: {ns}"));

    let before = inventory(&dev);
    let dry = apply(&dev, &valid, &["--dry-run=server"]).expect_ok("dry-run of a valid ES");
    assert_eq!(
        dry.stdout,
        "externalservice.networking.gloo.solo.io/httpbin.org created (server dry run)\n"
    );
    assert!(dry.stderr.starts_with("Warning: "), "{}", dry.stderr);
    // The verdict's warnings; the plan preview after them (`would create ...`,
    // tests/e2e_plan_preview.rs) is what only a dry run says.
    let dry_warnings: String = dry
        .stderr
        .lines()
        .filter(|l| !l.starts_with("Warning: would "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        dry.stderr
            .contains("Warning: would create ServiceEntry e2e-dryrun/"),
        "{}",
        dry.stderr
    );
    let mut dry_denials = Vec::new();
    for (what, yaml, message) in invalid_objects(ns) {
        let out = apply(&dev, &yaml, &["--dry-run=server"]).expect_err(what);
        assert_eq!(
            stderr_lines(&out),
            [format!("{DENIED_CREATE}{message}")],
            "dry-run of {what}"
        );
        dry_denials.push(out.stderr);
    }
    // kube-rs: a dry-run create returns the defaulted object and stores nothing.
    let opts = dev.core_options().clone();
    let returned = dev.block_on(async {
        let client = dev.admin_client().await.expect("admin client");
        let es: ExternalService = serde_saphyr::from_str(&valid).expect("typed ES");
        kube::Api::<ExternalService>::namespaced(client, ns)
            .create(
                &kube::api::PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &es,
            )
            .await
            .expect("dry-run create through kube-rs")
    });
    assert_eq!(
        serde_json::to_value(&returned.spec).unwrap(),
        defaulted_spec(&valid, &opts)
    );
    let after = inventory(&dev);
    assert_eq!(before, after, "a server-side dry-run wrote something");

    // The same objects for real: the same verdicts (warnings and denials).
    let real = apply(&dev, &valid, &[]).expect_ok("real apply of the valid ES");
    assert_eq!(real.stderr, dry_warnings);
    for ((what, yaml, _), dry) in invalid_objects(ns).into_iter().zip(dry_denials) {
        let out = apply(&dev, &yaml, &[]).expect_err(what);
        assert_eq!(out.stderr, dry, "{what}: dry-run and real verdicts differ");
    }
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn update_to_a_duplicate_port_match_is_denied_and_a_valid_change_admitted() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let ns = "e2e-update";
    namespace(&dev, ns);
    apply(&dev, &vg_in(ns), &[]).expect_ok("VG");
    let es = |second_port_match: u32| {
        format!(
            "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: httpbin.org, namespace: {ns}}}\nspec:\n  hosts: [httpbin.org]\n  ports:\n  - name: https\n    number: 443\n    protocol: HTTPS\n    egressGatewayRoutes: {{portMatch: 80, virtualGatewayRefs: [{{name: egress-vg}}]}}\n  - name: https-alt\n    number: 8443\n    protocol: HTTPS\n    egressGatewayRoutes: {{portMatch: {second_port_match}, virtualGatewayRefs: [{{name: egress-vg}}]}}\n"
        )
    };
    apply(&dev, &es(8080), &[]).expect_ok("create");
    let port_match = || {
        kubectl(
            &dev,
            &[
                "get",
                "es",
                "httpbin.org",
                "-n",
                ns,
                "-o",
                "jsonpath={.spec.ports[1].egressGatewayRoutes.portMatch}",
            ],
        )
        .expect_ok("get")
        .stdout
    };
    assert_eq!(port_match(), "8080");

    let e19 = format!(
        "admission webhook \"validate.egress-webhook.io\" denied the request: error: ExternalService {ns}/httpbin.org: spec.ports[1].egressGatewayRoutes.portMatch: portMatch 80 is already used by spec.ports[0]: each port routed through an egress gateway needs a unique portMatch [E19]"
    );
    let warnings = [e25(ns, 0), e25(ns, 1), e26(ns), m1(ns)];
    // `kubectl apply` (a PATCH: an UPDATE for the webhook) prints the patch it tried, then why.
    let dup = apply(&dev, &es(80), &[]).expect_err("duplicate portMatch");
    let lines = stderr_lines(&dup);
    assert_eq!(lines[..4], warnings);
    assert_eq!(
        lines[4],
        "The request is invalid: error when applying patch:"
    );
    assert_eq!(
        lines.last().copied(),
        Some(format!("for: \"STDIN\": error when patching \"STDIN\": {e19}").as_str())
    );
    // `kubectl patch`: the same denial in one line.
    let patched = kubectl(
        &dev,
        &[
            "patch",
            "es",
            "httpbin.org",
            "-n",
            ns,
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/ports/1/egressGatewayRoutes/portMatch","value":80}]"#,
        ],
    )
    .expect_err("duplicate portMatch by patch");
    let mut expected: Vec<String> = warnings.to_vec();
    expected.push(format!("The request is invalid: {e19}"));
    assert_eq!(stderr_lines(&patched), expected);
    assert_eq!(port_match(), "8080", "the denied updates changed nothing");

    let ok = apply(&dev, &es(8081), &[]).expect_ok("valid change");
    assert_eq!(
        ok.stdout,
        "externalservice.networking.gloo.solo.io/httpbin.org configured\n"
    );
    assert_eq!(stderr_lines(&ok), warnings);
    assert_eq!(port_match(), "8081");
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn deleting_a_virtual_gateway_in_use_is_allowed_with_a_warning_naming_the_external_service() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let ns = "e2e-delete";
    namespace(&dev, ns);
    apply(&dev, &vg_in(ns), &[]).expect_ok("VG");
    let es = example("40-externalservice.yaml")
        .replace("namespace: global", &format!("namespace: {ns}"))
        .replace("namespace: istio-egress", &format!("namespace: {ns}"));
    apply(&dev, &es, &[]).expect_ok("ES");
    // The warning comes from the watch cache: wait until it has the ExternalService.
    let catalog = dev.webhook_catalog().expect("in-process webhook").clone();
    assert!(
        eventually(Duration::from_secs(10), || catalog
            .read(|s| s.external_service(ns, "httpbin.org").is_some())),
        "the webhook's cache never saw the ExternalService"
    );
    let del =
        kubectl(&dev, &["delete", "virtualgateway", "egress-vg", "-n", ns]).expect_ok("delete VG");
    assert_eq!(
        del.stdout,
        format!(
            "virtualgateway.networking.gloo.solo.io \"egress-vg\" deleted from {ns} namespace\n"
        )
    );
    assert_eq!(
        stderr_lines(&del),
        [format!(
            "Warning: VirtualGateway {ns}/egress-vg: metadata.name: VirtualGateway {ns}/egress-vg is still referenced in the virtualGatewayRefs of ExternalService {ns}/httpbin.org: their egress routes stop working when it is deleted; remove those references first [V21]"
        )]
    );
    let gone = kubectl(&dev, &["get", "virtualgateway", "egress-vg", "-n", ns]);
    assert!(gone.stderr.contains("NotFound"), "{gone:?}");
    assert!(
        del.stderr
            .contains(&format!("ExternalService {ns}/httpbin.org"))
    );
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn namespace_selector_keeps_kube_system_and_the_webhook_namespace_out() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    apply(&dev, &repo_text("manifests/base/namespace.yaml"), &[]).expect_ok("namespace");
    let (_, invalid, _) = invalid_objects("NS")
        .into_iter()
        .find(|(w, _, _)| *w == "protocol")
        .unwrap();
    for ns in ["kube-system", "egress-webhook"] {
        let yaml = invalid.replace("namespace: NS", &format!("namespace: {ns}"));
        let out = apply(&dev, &yaml, &[]).expect_ok(ns);
        assert_eq!(
            out.stdout, "externalservice.networking.gloo.solo.io/protocol.example.com created\n",
            "{ns}"
        );
        assert_eq!(
            out.stderr, "",
            "{ns}: the webhook was not asked, so no warnings"
        );
        // Not mutated either: no defaults.
        let stored = kubectl(
            &dev,
            &["get", "es", "protocol.example.com", "-n", ns, "-o", "json"],
        )
        .expect_ok("get")
        .json();
        assert_eq!(stored["spec"]["ports"][0].get("targetPort"), None, "{ns}");
        kubectl(&dev, &["delete", "es", "protocol.example.com", "-n", ns]).expect_ok("delete");
    }
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn base_manifests_and_webhook_configurations_are_valid_on_the_apiserver() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    apply(&dev, &repo_text("manifests/base/namespace.yaml"), &[]).expect_ok("namespace");
    let base = e2e::repo("manifests/base");
    let out = kubectl(
        &dev,
        &[
            "apply",
            "--dry-run=server",
            "-k",
            &base.display().to_string(),
        ],
    )
    .expect_ok("dry-run apply of manifests/base");
    for object in [
        "namespace/egress-webhook",
        "serviceaccount/egress-webhook",
        "clusterrole.rbac.authorization.k8s.io/egress-webhook",
        "clusterrolebinding.rbac.authorization.k8s.io/egress-webhook",
        "deployment.apps/egress-webhook",
        "service/egress-webhook",
        "poddisruptionbudget.policy/egress-webhook",
        "networkpolicy.networking.k8s.io/egress-webhook",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/egress-webhook",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/egress-webhook",
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{object} ")) && l.ends_with("(server dry run)")),
            "{object} missing in:\n{}",
            out.stdout
        );
    }
    // The local registration is untouched (it still points at 127.0.0.1).
    let url = kubectl(
        &dev,
        &[
            "get",
            "validatingwebhookconfiguration",
            "egress-webhook",
            "-o",
            "jsonpath={.webhooks[0].clientConfig.url}",
        ],
    )
    .expect_ok("get")
    .stdout;
    assert_eq!(url, format!("{}/validate", dev.webhook_url()));

    // The webhook's ServiceAccount may read what it watches, write the companion Istio kinds,
    // and nothing else (tests/e2e_install.rs asks more).
    let user = &dev.webhook_user().name;
    for (verb, resource, expect) in [
        ("watch", "externalservices.networking.gloo.solo.io", "yes"),
        ("list", "virtualgateways.networking.gloo.solo.io", "yes"),
        ("get", "accesspolicies.security.policy.gloo.solo.io", "yes"),
        ("watch", "services", "yes"),
        ("list", "serviceaccounts", "yes"),
        ("create", "externalservices.networking.gloo.solo.io", "no"),
        ("get", "secrets", "no"),
        ("list", "virtualservices.networking.istio.io", "yes"),
        ("patch", "destinationrules.networking.istio.io", "yes"),
        ("delete", "authorizationpolicies.security.istio.io", "yes"),
        ("create", "sidecars.networking.istio.io", "no"),
    ] {
        let out = kubectl(
            &dev,
            &[
                "auth",
                "can-i",
                verb,
                resource,
                "--all-namespaces",
                "--as",
                user,
            ],
        );
        assert_eq!(out.stdout.trim(), expect, "{user} {verb} {resource}");
    }
}

#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn kube_rs_gets_the_same_denial_and_defaults() {
    let Some((dev, _serial)) = shared() else {
        return;
    };
    let ns = "e2e-kube-rs";
    namespace(&dev, ns);
    let (_, invalid, message) = invalid_objects(ns)
        .into_iter()
        .find(|(w, _, _)| *w == "ports")
        .unwrap();
    let opts = dev.core_options().clone();
    let valid = format!(
        "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: api.example.com, namespace: {ns}}}\nspec:\n  hosts: [api.example.com]\n  ports:\n  - {{name: https, number: 443, protocol: https}}\n"
    );
    dev.block_on(async {
        let client = dev.admin_client().await.expect("admin client");
        let api = kube::Api::<ExternalService>::namespaced(client, ns);
        let bad: ExternalService = serde_saphyr::from_str(&invalid).unwrap();
        match api.create(&Default::default(), &bad).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(
                    status.message,
                    format!(
                        "admission webhook \"validate.egress-webhook.io\" denied the request: {message}"
                    )
                );
                assert_eq!(status.code, 422, "{status:?}");
            }
            other => panic!("expected a denial, got {other:?}"),
        }
        let good: ExternalService = serde_saphyr::from_str(&valid).unwrap();
        let created = api
            .create(&Default::default(), &good)
            .await
            .expect("create");
        assert_eq!(
            serde_json::to_value(&created.spec).unwrap(),
            defaulted_spec(&valid, &opts)
        );
        // The protocol was upper-cased by the mutating webhook.
        assert_eq!(
            created.spec.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("HTTPS")
        );
    });
}

/// A reference created a moment ago, before the cache has it: the live lookup finds it.
/// The admission server runs here with catalogs that have no watches at all (the most stale
/// cache there is), once without and once with the live lookup, against the real apiserver.
#[test]
#[cfg_attr(
    egress_skip_cluster_tests,
    ignore = "EGRESS_SKIP_CLUSTER_TESTS=1: needs a control plane"
)]
fn a_reference_missing_from_the_cache_is_looked_up_before_denying() {
    use egress_webhook::admission::{self, ServeConfig, tls::CertFiles};
    use egress_webhook::catalog::Catalog;
    use egress_webhook::cluster::{catalog::LiveRefresher, client_from_kubeconfig};

    let Some((dev, _serial)) = shared() else {
        return;
    };
    let ns = "e2e-live";
    namespace(&dev, ns);
    apply(&dev, &vg_in(ns), &[]).expect_ok("VG");
    let es_yaml = |name: &str, vg: &str| {
        format!(
            "apiVersion: networking.gloo.solo.io/v2\nkind: ExternalService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{name}]\n  ports:\n  - name: https\n    number: 443\n    protocol: HTTPS\n    egressGatewayRoutes: {{virtualGatewayRefs: [{{name: {vg}}}]}}\n"
        )
    };
    apply(&dev, &es_yaml("live.example.com", "egress-vg"), &[]).expect_ok("ES");
    let ap_yaml = |selector: &str| {
        format!(
            "apiVersion: security.policy.gloo.solo.io/v2\nkind: AccessPolicy\nmetadata: {{name: live-policy, namespace: {ns}}}\nspec:\n  applyToDestinations:\n  - kind: EXTERNAL_SERVICE\n    selector: {selector}\n"
        )
    };
    let review = |yaml: &str| {
        let obj: Value = serde_saphyr::from_str(yaml).unwrap();
        let kind = obj["kind"].as_str().unwrap().to_string();
        let group = obj["apiVersion"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "e2e-live",
                "kind": {"group": group, "version": "v2", "kind": kind},
                "resource": {"group": group, "version": "v2", "resource": format!("{}s", kind.to_lowercase())},
                "name": obj["metadata"]["name"],
                "namespace": ns,
                "operation": "CREATE",
                "userInfo": {"username": "admin"},
                "object": obj,
                "dryRun": false
            }
        })
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = dev.webhook_tls_dir().to_path_buf();
    let opts = dev.core_options().clone();
    dev.block_on(async {
        let client = client_from_kubeconfig(&dev.webhook_user().kubeconfig)
            .await
            .expect("the webhook's client");
        let http = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(dev.webhook_ca_pem().as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        let serve = |catalog: Catalog| {
            catalog.mark_synced();
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
        let stale = serve(Catalog::new(&opts)).await.expect("serve");
        let live_catalog = Catalog::new(&opts).with_refresher(Arc::new(LiveRefresher::new(client)));
        let live = serve(live_catalog).await.expect("serve");

        let es = review(&es_yaml("new.example.com", "egress-vg"));
        let denied = validate(stale.addr, es.clone()).await;
        assert_eq!(denied["allowed"], false, "{denied}");
        assert_eq!(
            denied["status"]["message"],
            format!("error: ExternalService {ns}/new.example.com: spec.ports[0].egressGatewayRoutes.virtualGatewayRefs[0]: VirtualGateway {ns}/egress-vg does not exist [E22]")
        );
        let allowed = validate(live.addr, es).await;
        assert_eq!(allowed["allowed"], true, "{allowed}");
        assert!(
            live.state
                .catalog
                .read(|s| s.virtual_gateway(ns, "egress-vg").is_some()),
            "the looked-up VirtualGateway is now cached"
        );
        // What does not exist is still denied after the lookup.
        let missing = validate(live.addr, review(&es_yaml("new.example.com", "no-such-vg"))).await;
        assert_eq!(missing["allowed"], false, "{missing}");
        assert!(
            missing["status"]["message"]
                .as_str()
                .unwrap()
                .ends_with(&format!("VirtualGateway {ns}/no-such-vg does not exist [E22]")),
            "{missing}"
        );

        // A14: a name selector with a namespace (GET) and without one (list by name).
        for selector in [
            format!("{{name: live.example.com, namespace: {ns}}}"),
            "{name: live.example.com}".to_string(),
        ] {
            let ap = review(&ap_yaml(&selector));
            let denied = validate(stale.addr, ap.clone()).await;
            assert_eq!(denied["allowed"], false, "{selector}: {denied}");
            assert!(
                denied["status"]["message"].as_str().unwrap().ends_with("[A14]"),
                "{denied}"
            );
            let live_catalog = Catalog::new(&opts).with_refresher(Arc::new(LiveRefresher::new(
                client_from_kubeconfig(&dev.webhook_user().kubeconfig)
                    .await
                    .unwrap(),
            )));
            let fresh = serve(live_catalog).await.expect("serve");
            let allowed = validate(fresh.addr, ap).await;
            assert_eq!(allowed["allowed"], true, "{selector}: {allowed}");
        }
    });
}

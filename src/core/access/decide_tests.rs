//! Table-driven: one case per Istio precedence rule, on the running example's gateway
//! (`istio-egress`, pods `app=istio-egressgateway,istio=egressgateway`, port 8443).

use serde_json::{Value, json};

use super::decide::{Reason, Verdict, Workload, decide, select};
use super::pattern::TrustDomains;
use super::policy::{Policy, decode};
use super::rule::Request;

const PRODUCTPAGE: &str = "bookinfo/bookinfo-productpage";
const REVIEWS: &str = "bookinfo/bookinfo-reviews";
const GATEWAY: &str =
    r#"{"matchLabels": {"app": "istio-egressgateway", "istio": "egressgateway"}}"#;

fn policy(ns: &str, name: &str, spec: Value, annotations: Value) -> Policy {
    decode(&json!({
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": spec,
    }))
    .unwrap()
}

fn gw(spec: Value) -> Value {
    let mut spec = spec;
    spec["selector"] = serde_json::from_str(GATEWAY).unwrap();
    spec
}

/// The generated ALLOW of the running example: only productpage, for httpbin.org.
fn generated() -> Policy {
    policy(
        "istio-egress",
        "accesspolicy-egress-access-policy-istio-egressgateway",
        gw(json!({"action": "ALLOW", "rules": [{
            "from": [{"source": {"principals": ["cluster.local/ns/bookinfo/sa/bookinfo-productpage"]}}],
            "to": [{"operation": {"hosts": ["httpbin.org", "httpbin.org:*"]}}]}]})),
        json!({}),
    )
}

fn deny_reviews(annotations: Value) -> Policy {
    policy(
        "istio-egress",
        "deny-reviews",
        gw(json!({"action": "DENY", "rules": [{
            "from": [{"source": {"principals": ["cluster.local/ns/bookinfo/sa/bookinfo-reviews"]}}]}]})),
        annotations,
    )
}

struct Case {
    name: &'static str,
    policies: Vec<Policy>,
    from: &'static str,
    host: &'static str,
    trust: TrustDomains,
    verdict: Verdict,
    /// The deciding reason, as `kind[:policy name[ rule]]`.
    reason: &'static str,
}

fn case(
    name: &'static str,
    policies: Vec<Policy>,
    from: &'static str,
    verdict: Verdict,
    reason: &'static str,
) -> Case {
    Case {
        name,
        policies,
        from,
        host: "httpbin.org",
        trust: TrustDomains::new("cluster.local"),
        verdict,
        reason,
    }
}

fn reason_text(r: &Reason) -> String {
    match r {
        Reason::Rule(h) => format!("rule:{} {}", h.policy.name, h.rule),
        Reason::NoAllowPolicy => "no-allow-policy".into(),
        Reason::NoAllowRuleMatched { policies } => format!(
            "no-allow-rule:{}",
            policies
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn run(c: &Case) -> super::Decision {
    let workload = Workload {
        namespace: "istio-egress".into(),
        labels: [("app", "istio-egressgateway"), ("istio", "egressgateway")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let (applied, _) = select(&c.policies, &workload, "istio-system");
    let (ns, sa) = c.from.split_once('/').unwrap();
    let principal = c.trust.principal(ns, sa);
    let req = Request {
        principal: &principal,
        host_header: c.host,
        port: Some(8443),
        trust: &c.trust,
    };
    decide(&applied, &req)
}

#[test]
fn precedence_cases() {
    use Verdict::*;
    let cases = vec![
        case(
            "no policy at all: allowed",
            vec![],
            REVIEWS,
            Allowed,
            "no-allow-policy",
        ),
        case(
            "ALLOW matches the principal",
            vec![generated()],
            PRODUCTPAGE,
            Allowed,
            "rule:accesspolicy-egress-access-policy-istio-egressgateway 0",
        ),
        case(
            "ALLOW policies select the gateway, none matches: denied",
            vec![generated()],
            REVIEWS,
            Denied,
            "no-allow-rule:accesspolicy-egress-access-policy-istio-egressgateway",
        ),
        case(
            "an ALLOW policy without rules allows nothing",
            vec![policy(
                "istio-egress",
                "allow-nothing",
                gw(json!({})),
                json!({}),
            )],
            PRODUCTPAGE,
            Denied,
            "no-allow-rule:allow-nothing",
        ),
        case(
            "ALLOW in another namespace does not apply",
            vec![policy(
                "bookinfo",
                "elsewhere",
                json!({"rules": [{}]}),
                json!({}),
            )],
            REVIEWS,
            Allowed,
            "no-allow-policy",
        ),
        case(
            "root-namespace ALLOW without selector applies to every workload",
            vec![policy(
                "istio-system",
                "mesh-wide",
                json!({"rules": [{"from": [{"source": {"namespaces": ["prod"]}}]}]}),
                json!({}),
            )],
            PRODUCTPAGE,
            Denied,
            "no-allow-rule:mesh-wide",
        ),
        case(
            "a selector for other pods does not apply",
            vec![policy(
                "istio-egress",
                "other-pods",
                json!({"selector": {"matchLabels": {"app": "other"}}}),
                json!({}),
            )],
            REVIEWS,
            Allowed,
            "no-allow-policy",
        ),
        case(
            "targetRefs policies do not bind gateway pods",
            vec![policy(
                "istio-egress",
                "waypoint",
                json!({"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "w"}]}),
                json!({}),
            )],
            REVIEWS,
            Allowed,
            "no-allow-policy",
        ),
        case(
            "DENY before ALLOW",
            vec![generated(), deny_reviews(json!({}))],
            REVIEWS,
            Denied,
            "rule:deny-reviews 0",
        ),
        case(
            "DENY that does not match leaves ALLOW to decide",
            vec![generated(), deny_reviews(json!({}))],
            PRODUCTPAGE,
            Allowed,
            "rule:accesspolicy-egress-access-policy-istio-egressgateway 0",
        ),
        case(
            "DENY with notPrincipals denies everyone else",
            vec![policy(
                "istio-egress",
                "only-productpage",
                gw(
                    json!({"action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["cluster.local/ns/bookinfo/sa/bookinfo-productpage"]}}]}]}),
                ),
                json!({}),
            )],
            REVIEWS,
            Denied,
            "rule:only-productpage 0",
        ),
        case(
            "dry-run DENY is not enforced",
            vec![
                generated(),
                deny_reviews(json!({"istio.io/dry-run": "true"})),
            ],
            PRODUCTPAGE,
            Allowed,
            "rule:accesspolicy-egress-access-policy-istio-egressgateway 0",
        ),
        case(
            "dry-run ALLOW alone: no enforced ALLOW policy, allowed",
            vec![policy(
                "istio-egress",
                "dry-allow",
                gw(json!({"rules": [{"from": [{"source": {"principals": ["nobody"]}}]}]})),
                json!({"istio.io/dry-run": "true"}),
            )],
            REVIEWS,
            Allowed,
            "no-allow-policy",
        ),
        case(
            "AUDIT never decides",
            vec![policy(
                "istio-egress",
                "audit",
                gw(json!({"action": "AUDIT", "rules": [{}]})),
                json!({}),
            )],
            REVIEWS,
            Allowed,
            "no-allow-policy",
        ),
        case(
            "CUSTOM that matches leaves the answer to its provider",
            vec![policy(
                "istio-egress",
                "ext-authz",
                gw(json!({"action": "CUSTOM", "provider": {"name": "opa"}, "rules": [{}]})),
                json!({}),
            )],
            REVIEWS,
            DependsOnRequest,
            "no-allow-policy",
        ),
        case(
            "ALLOW on a method depends on the request",
            vec![policy(
                "istio-egress",
                "get-only",
                gw(json!({"rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]})),
                json!({}),
            )],
            REVIEWS,
            DependsOnRequest,
            "no-allow-rule:get-only",
        ),
        case(
            "a certain ALLOW after a conditional one still allows",
            vec![policy(
                "istio-egress",
                "get-only",
                gw(json!({"rules": [{"to": [{"operation": {"methods": ["GET"]}}]}, {}]})),
                json!({}),
            )],
            REVIEWS,
            Allowed,
            "rule:get-only 1",
        ),
        case(
            "DENY on a path depends on the request",
            vec![
                generated(),
                policy(
                    "istio-egress",
                    "no-admin",
                    gw(
                        json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}),
                    ),
                    json!({}),
                ),
            ],
            PRODUCTPAGE,
            DependsOnRequest,
            "rule:accesspolicy-egress-access-policy-istio-egressgateway 0",
        ),
        case(
            "a conditional DENY before a denial stays a denial",
            vec![
                generated(),
                policy(
                    "istio-egress",
                    "no-admin",
                    gw(
                        json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}),
                    ),
                    json!({}),
                ),
            ],
            REVIEWS,
            Denied,
            "no-allow-rule:accesspolicy-egress-access-policy-istio-egressgateway",
        ),
        case(
            "DENY on an IP block depends on the request",
            vec![policy(
                "istio-egress",
                "no-ip",
                gw(
                    json!({"action": "DENY", "rules": [{"from": [{"source": {"ipBlocks": ["10.1.0.0/16"]}}]}]}),
                ),
                json!({}),
            )],
            REVIEWS,
            DependsOnRequest,
            "no-allow-policy",
        ),
        case(
            "ALLOW on a header condition depends on the request",
            vec![policy(
                "istio-egress",
                "header",
                gw(
                    json!({"rules": [{"when": [{"key": "request.headers[x-team]", "values": ["a"]}]}]}),
                ),
                json!({}),
            )],
            PRODUCTPAGE,
            DependsOnRequest,
            "no-allow-rule:header",
        ),
    ];
    for c in &cases {
        let d = run(c);
        assert_eq!(
            (d.verdict, reason_text(&d.reason).as_str()),
            (c.verdict, c.reason),
            "{}: {d:#?}",
            c.name
        );
    }
}

#[test]
fn dry_run_answer_says_what_enforcing_would_do() {
    let c = case(
        "",
        vec![
            generated(),
            deny_reviews(json!({"istio.io/dry-run": "true"})),
        ],
        REVIEWS,
        Verdict::Denied,
        "",
    );
    let d = run(&c);
    let dry = d.dry_run.expect("a dry-run policy applies");
    assert_eq!(reason_text(&dry.reason), "rule:deny-reviews 0");
    assert!(reason_text(&d.reason).starts_with("no-allow-rule:"));
    // Without a dry-run policy there is no second answer.
    assert!(
        run(&case("", vec![generated()], REVIEWS, Verdict::Denied, ""))
            .dry_run
            .is_none()
    );
}

#[test]
fn conditional_rules_name_what_they_depend_on() {
    let c = case(
        "",
        vec![policy(
            "istio-egress",
            "get-only",
            gw(json!({"rules": [{"to": [{"operation": {"methods": ["GET", "HEAD"]}}]}]})),
            json!({}),
        )],
        REVIEWS,
        Verdict::DependsOnRequest,
        "",
    );
    let d = run(&c);
    assert_eq!(d.conditional.len(), 1);
    assert_eq!(
        d.conditional[0].to_string(),
        "ALLOW AuthorizationPolicy istio-egress/get-only rule 0 (when method in [GET, HEAD])"
    );
}

#[test]
fn hosts_without_port_do_not_match_a_host_header_with_port() {
    let only_exact = policy(
        "istio-egress",
        "exact-host",
        gw(json!({"rules": [{"to": [{"operation": {"hosts": ["httpbin.org"]}}]}]})),
        json!({}),
    );
    let mut c = case("", vec![only_exact], PRODUCTPAGE, Verdict::Denied, "");
    c.host = "httpbin.org:8080";
    assert_eq!(run(&c).verdict, Verdict::Denied);
    c.host = "httpbin.org";
    assert_eq!(run(&c).verdict, Verdict::Allowed);
}

#[test]
fn cluster_local_principals_follow_the_mesh_trust_domain() {
    let mut c = case("", vec![generated()], PRODUCTPAGE, Verdict::Allowed, "");
    c.trust = TrustDomains::new("prod.example.com");
    assert_eq!(run(&c).verdict, Verdict::Allowed);
}

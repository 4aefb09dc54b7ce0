//! Random Gloo objects as raw JSON, built from the API types' fields (src/api): hosts, ports,
//! protocols, TLS modes, selectors, references, authorization rules. Each value is drawn from
//! a pool of good values (the names the seed uses, so references often resolve and many sets
//! are valid) or, one time in five, a pool of bad ones (empty, upper case, out of range,
//! control characters, non-ASCII, wildcards in the wrong place). `wild` then replaces random
//! nodes with JSON of any type, for reviews whose objects do not even decode.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};

/// A good value four times in five, else a bad one.
fn pick(good: &'static [&'static str], bad: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        4 => select(good).prop_map(|s| json!(s)),
        1 => select(bad).prop_map(|s| json!(s)),
    ]
    .boxed()
}

const BAD_TEXT: &[&str] = &[
    "",
    "UPPER",
    "-dash",
    "a b",
    "ctl\u{7}char",
    "nul\u{0}",
    "ünïcode",
    "😀",
    "a..b",
    "*",
    "x/y/z",
    "0123456789012345678901234567890123456789012345678901234567890123456789",
];

fn namespace() -> BoxedStrategy<Value> {
    pick(&["global", "istio-egress", "bookinfo", "default"], BAD_TEXT)
}

fn name() -> BoxedStrategy<Value> {
    pick(
        &[
            "httpbin.org",
            "egress-vg",
            "api",
            "egress-access-policy",
            "a.b-c",
        ],
        BAD_TEXT,
    )
}

fn cluster() -> BoxedStrategy<Value> {
    pick(
        &["cluster1", "cluster1", "cluster2"],
        &["", "CLUSTER", "c l"],
    )
}

fn host() -> BoxedStrategy<Value> {
    pick(
        &[
            "httpbin.org",
            "api.example.com",
            "*.example.com",
            "example.com",
            "www.httpbin.org",
            "10.0.0.1",
        ],
        &[
            "",
            "*",
            "*.",
            "a.*.com",
            "HTTPBIN.ORG",
            "a..b",
            "host:443",
            "http://x.com",
            "nul\u{0}.com",
            "ünï.com",
            "tab\t.com",
            "-a.com",
            "1.2.3.4/24",
        ],
    )
}

fn port_number() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => select(&[80u32, 443, 8080, 9443, 3306][..]).prop_map(|n| json!(n)),
        1 => select(&[0u32, 1, 15001, 15443, 65535, 65536, u32::MAX][..]).prop_map(|n| json!(n)),
    ]
    .boxed()
}

fn protocol() -> BoxedStrategy<Value> {
    pick(
        &["HTTP", "HTTPS", "TCP", "TLS", "GRPC", "HTTP2"],
        &["", "https", "MONGO", "UDP", "bogus"],
    )
}

fn labels() -> BoxedStrategy<Value> {
    proptest::collection::btree_map(
        prop_oneof![
            4 => select(&["app", "istio", "account", "app.kubernetes.io/name"][..]),
            1 => select(&["", "-x", "a/b/c", "ü", "UP/Key"][..]),
        ],
        pick(
            &[
                "productpage",
                "reviews",
                "egressgateway",
                "istio-egressgateway",
            ],
            BAD_TEXT,
        ),
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    .boxed()
}

/// An object of optional fields: each present with probability 0.7.
fn fields(parts: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let (names, strategies): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
    strategies
        .into_iter()
        .map(|s| proptest::option::weighted(0.7, s))
        .collect::<Vec<_>>()
        .prop_map(move |values| {
            let mut m = Map::new();
            for (n, v) in names.iter().zip(values) {
                if let Some(v) = v {
                    m.insert((*n).to_string(), v);
                }
            }
            Value::Object(m)
        })
        .boxed()
}

fn list(s: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    proptest::collection::vec(s, 0..=max)
        .prop_map(Value::Array)
        .boxed()
}

fn boolean() -> BoxedStrategy<Value> {
    any::<bool>().prop_map(|b| json!(b)).boxed()
}

fn reference() -> BoxedStrategy<Value> {
    fields(vec![
        ("name", name()),
        ("namespace", namespace()),
        ("cluster", cluster()),
    ])
}

fn object_selector() -> BoxedStrategy<Value> {
    fields(vec![
        ("labels", labels()),
        ("name", name()),
        ("namespace", namespace()),
        ("cluster", cluster()),
        ("workspace", pick(&["ws"], &["", "Ws"])),
    ])
}

fn port_selector() -> BoxedStrategy<Value> {
    fields(vec![
        ("number", port_number()),
        ("name", pick(&["https", "http"], BAD_TEXT)),
    ])
}

fn external_service_spec() -> BoxedStrategy<Value> {
    let tls = fields(vec![
        (
            "mode",
            pick(
                &["SIMPLE", "DISABLE", "MUTUAL", "ISTIO_MUTUAL"],
                &["", "bogus"],
            ),
        ),
        ("clientCertificate", pick(&["/etc/certs/cert.pem"], &[""])),
        ("privateKey", pick(&["/etc/certs/key.pem"], &[""])),
        ("caCertificates", pick(&["/etc/certs/ca.pem"], &["", "rel"])),
        ("credentialName", pick(&["egress-cred"], BAD_TEXT)),
        ("sni", host()),
        ("insecureSkipVerify", boolean()),
    ]);
    let routes = fields(vec![
        ("portMatch", port_number()),
        ("virtualGatewayRefs", list(reference(), 2)),
    ]);
    let port = fields(vec![
        ("number", port_number()),
        ("targetPort", port_selector()),
        ("name", pick(&["https", "http", "tcp-3306"], BAD_TEXT)),
        ("protocol", protocol()),
        ("clientsideTls", tls),
        ("egressGatewayRoutes", routes),
    ]);
    fields(vec![
        ("hosts", list(host(), 3)),
        (
            "addresses",
            list(pick(&["10.1.2.3", "192.168.0.0/16"], &["", "x", "::g"]), 2),
        ),
        ("ports", list(port, 3)),
        ("selector", labels()),
        ("subjectAltNames", list(host(), 2)),
    ])
}

fn virtual_gateway_spec() -> BoxedStrategy<Value> {
    let workload = fields(vec![
        ("selector", object_selector()),
        ("kind", pick(&["KUBE"], &["VM", "", "bogus"])),
        ("port", port_selector()),
    ]);
    let tls = fields(vec![
        (
            "mode",
            pick(
                &["ISTIO_MUTUAL", "SIMPLE", "PASSTHROUGH", "MUTUAL"],
                &["AUTO_PASSTHROUGH", "OPTIONAL_MUTUAL", "", "bogus"],
            ),
        ),
        ("secretName", pick(&["gw-cert"], BAD_TEXT)),
        (
            "files",
            fields(vec![
                ("serverCert", pick(&["/etc/s.pem"], &[""])),
                ("privateKey", pick(&["/etc/k.pem"], &[""])),
                ("caCerts", pick(&["/etc/ca.pem"], &[""])),
            ]),
        ),
        ("verifySubjectAltName", list(host(), 2)),
        (
            "parameters",
            fields(vec![
                (
                    "minimumProtocolVersion",
                    pick(&["TLSv1_2", "TLS_AUTO"], &["TLSv1_0", "bogus"]),
                ),
                (
                    "maximumProtocolVersion",
                    pick(&["TLSv1_3", "TLS_AUTO"], &["TLSv1_1", ""]),
                ),
                (
                    "cipherSuites",
                    list(pick(&["ECDHE-RSA-AES128-GCM-SHA256"], &["", "X"]), 2),
                ),
            ]),
        ),
    ]);
    let filter = fields(vec![("host", host()), ("selector", object_selector())]);
    let listener = fields(vec![
        ("port", port_selector()),
        ("tls", tls),
        ("httpsRedirect", boolean()),
        ("http", Just(json!({})).boxed()),
        ("tcp", Just(json!({})).boxed()),
        ("exposedExternalServices", list(filter.clone(), 2)),
        ("allowedRouteTables", list(filter, 1)),
        ("appProtocol", pick(&["HTTP", "HTTPS", "TCP"], &["", "x"])),
    ]);
    fields(vec![
        ("workloads", list(workload, 2)),
        ("listeners", list(listener, 3)),
    ])
}

fn access_policy_spec() -> BoxedStrategy<Value> {
    let destination = fields(vec![
        ("selector", object_selector()),
        (
            "kind",
            pick(
                &["EXTERNAL_SERVICE", "SERVICE"],
                &["VIRTUAL_DESTINATION", "", "bogus"],
            ),
        ),
        ("port", port_selector()),
    ]);
    let workloads = fields(vec![(
        "selector",
        fields(vec![
            ("labels", labels()),
            ("namespace", namespace()),
            ("cluster", cluster()),
            ("workspace", pick(&["ws"], &[""])),
        ]),
    )]);
    let client = fields(vec![
        ("serviceAccountSelector", object_selector()),
        ("externalWorkloadSelector", object_selector()),
        (
            "requestIdentityMatcher",
            fields(vec![
                (
                    "requestPrincipals",
                    list(pick(&["*", "issuer/subject"], &["", "a\u{0}"]), 2),
                ),
                ("notRequestPrincipals", list(pick(&["bad/actor"], &[""]), 1)),
            ]),
        ),
    ]);
    let header_values = fields(vec![
        ("values", list(pick(&["v", "*"], &["", "ü"]), 2)),
        ("notValues", list(pick(&["x"], &[""]), 1)),
    ]);
    let authz = fields(vec![
        ("allowedClients", list(client, 2)),
        (
            "allowedPaths",
            list(pick(&["/", "/api/*"], &["", "*", "a b"]), 2),
        ),
        (
            "allowedMethods",
            list(pick(&["GET", "POST"], &["", "get", "BOGUS"]), 2),
        ),
        (
            "match",
            fields(vec![(
                "request",
                fields(vec![(
                    "headers",
                    proptest::collection::btree_map(
                        select(&["x-foo", "user-agent", "", ":authority"][..]),
                        header_values,
                        0..2,
                    )
                    .prop_map(|m| {
                        Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                    })
                    .boxed(),
                )]),
            )]),
        ),
        (
            "allowedIpBlocks",
            list(
                pick(&["10.0.0.0/8", "1.2.3.4"], &["", "300.1.1.1/33", "x"]),
                2,
            ),
        ),
        (
            "allowedRemoteIpBlocks",
            list(pick(&["::1/128"], &["", "::g"]), 1),
        ),
        ("dryRun", boolean()),
    ]);
    fields(vec![
        ("applyToDestinations", list(destination, 2)),
        ("applyToWorkloads", list(workloads, 2)),
        (
            "config",
            fields(vec![
                (
                    "authn",
                    fields(vec![(
                        "tlsMode",
                        pick(&["STRICT", "PERMISSIVE"], &["DISABLE", "", "bogus"]),
                    )]),
                ),
                ("authz", authz.clone()),
                (
                    "enforcementLayers",
                    fields(vec![("cni", boolean()), ("mesh", boolean())]),
                ),
                ("authzList", list(authz, 2)),
            ]),
        ),
    ])
}

/// One Gloo object of a random kind, with a random spec; sometimes with a field our types do
/// not know (it must survive defaulting untouched).
pub fn gloo_object() -> BoxedStrategy<Value> {
    let spec = prop_oneof![
        external_service_spec().prop_map(|s| ("networking.gloo.solo.io/v2", "ExternalService", s)),
        virtual_gateway_spec().prop_map(|s| ("networking.gloo.solo.io/v2", "VirtualGateway", s)),
        access_policy_spec().prop_map(|s| ("security.policy.gloo.solo.io/v2", "AccessPolicy", s)),
    ];
    (
        spec,
        name(),
        namespace(),
        proptest::option::weighted(0.3, labels()),
        any::<bool>(),
    )
        .prop_map(
            |((api_version, kind, mut spec), name, ns, labels, unknown)| {
                if unknown && let Some(m) = spec.as_object_mut() {
                    m.insert("futureField".into(), json!({"kept": [1, "two"]}));
                }
                let mut meta = json!({"name": name, "namespace": ns});
                if let Some(l) = labels {
                    meta["labels"] = l;
                }
                json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec})
            },
        )
        .boxed()
}

/// Any JSON leaf or small container: what a field of the wrong type holds.
pub fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Replace the node at depth-first position `at` (modulo the node count) with `with`.
pub fn replace_node(root: &mut Value, at: usize, with: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut Value, at: &mut usize, with: &mut Option<Value>) {
        if *at == 0 {
            if let Some(w) = with.take() {
                *v = w;
            }
            return;
        }
        *at -= 1;
        match v {
            Value::Array(a) => a.iter_mut().for_each(|c| walk(c, at, with)),
            Value::Object(o) => o.values_mut().for_each(|c| walk(c, at, with)),
            _ => {}
        }
    }
    let mut at = at % count(root);
    walk(root, &mut at, &mut Some(with));
}

/// A Gloo object, and one time in two up to three of its nodes replaced by JSON of any type.
pub fn wild_object() -> BoxedStrategy<Value> {
    (
        gloo_object(),
        proptest::option::of(proptest::collection::vec(
            (any::<usize>(), any_json()),
            1..=3,
        )),
    )
        .prop_map(|(mut obj, edits)| {
            for (at, with) in edits.unwrap_or_default() {
                replace_node(&mut obj, at, with);
            }
            obj
        })
        .boxed()
}

//! Does one AuthorizationPolicy rule match a request through the egress gateway? Fields of a
//! source, an operation and a rule are AND-ed; sources, operations and the values of one field
//! OR-ed; absent fields match everything (Istio's AuthorizationPolicy reference).
//!
//! Known offline: the peer principal (the gateway's server is ISTIO_MUTUAL, so every request
//! carries the client's mesh certificate), its namespace, the Host header and, when the gateway
//! Service maps the port to a number, the destination port. Methods, paths, headers, IPs and
//! JWT claims belong to the request: a field on them is `Depends`, never guessed.

use super::pattern::{TrustDomains, matches, principal_namespace};
use super::policy::{Condition, Operation, Rule, Source};
use super::tri::Tri;

/// What is known about a request at the egress gateway.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The client's mesh identity, `<trust-domain>/ns/<ns>/sa/<sa>`.
    pub principal: &'a str,
    /// The Host header as the gateway sees it: `host`, or `host:port` for a non-default port.
    pub host_header: &'a str,
    /// The port the gateway pod receives on (`destination.port`); `None` when unknown.
    pub port: Option<u16>,
    pub trust: &'a TrustDomains,
}

pub fn rule_matches(rule: &Rule, req: &Request<'_>) -> Tri {
    let from = match &rule.from {
        None => Tri::Yes,
        Some(from) => Tri::any(from.iter().map(|f| {
            f.source
                .as_ref()
                .map_or(Tri::Yes, |s| source_matches(s, req))
        })),
    };
    let to = match &rule.to {
        None => Tri::Yes,
        Some(to) => Tri::any(to.iter().map(|t| {
            t.operation
                .as_ref()
                .map_or(Tri::Yes, |o| operation_matches(o, req))
        })),
    };
    let when = Tri::all(
        rule.when
            .iter()
            .flatten()
            .map(|c| condition_matches(c, req)),
    );
    Tri::all([from, to, when])
}

/// `values` (any matches) and `not_values` (none matches), each only when present.
fn field(
    values: &Option<Vec<String>>,
    not_values: &Option<Vec<String>>,
    one: &dyn Fn(&str) -> Tri,
) -> Tri {
    let pos = values.as_ref().map(|v| Tri::any(v.iter().map(|p| one(p))));
    let neg = not_values
        .as_ref()
        .map(|v| Tri::any(v.iter().map(|p| one(p))).negate());
    Tri::all(pos.into_iter().chain(neg))
}

/// A field on a request attribute we do not know: it depends on the request, except that the
/// presence pattern `*` decides it for attributes every HTTP request has (`always_present`).
fn unknown(
    what: &str,
    values: &Option<Vec<String>>,
    not_values: &Option<Vec<String>>,
    always_present: bool,
) -> Tri {
    let mut parts = Vec::new();
    if let Some(v) = values {
        parts.push(if always_present && v.iter().any(|p| p == "*") {
            Tri::Yes
        } else {
            Tri::depends(format!("{what} in [{}]", v.join(", ")))
        });
    }
    if let Some(v) = not_values {
        parts.push(if always_present && v.iter().any(|p| p == "*") {
            Tri::No
        } else {
            Tri::depends(format!("{what} not in [{}]", v.join(", ")))
        });
    }
    Tri::all(parts)
}

fn source_matches(s: &Source, req: &Request<'_>) -> Tri {
    let principal = |p: &str| Tri::from_bool(req.trust.principal_matches(p, req.principal));
    let namespace = |p: &str| {
        Tri::from_bool(principal_namespace(req.principal).is_some_and(|ns| matches(p, ns, false)))
    };
    Tri::all([
        field(&s.principals, &s.not_principals, &principal),
        field(&s.namespaces, &s.not_namespaces, &namespace),
        unknown(
            "request principal (JWT)",
            &s.request_principals,
            &s.not_request_principals,
            false,
        ),
        unknown("source IP", &s.ip_blocks, &s.not_ip_blocks, false),
        unknown(
            "remote IP",
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
            false,
        ),
    ])
}

fn port_field(
    values: &Option<Vec<String>>,
    not_values: &Option<Vec<String>>,
    req: &Request<'_>,
) -> Tri {
    match req.port {
        Some(port) => field(values, not_values, &|p| {
            Tri::from_bool(p.parse::<u16>().ok() == Some(port))
        }),
        None => unknown("destination port", values, not_values, false),
    }
}

fn operation_matches(o: &Operation, req: &Request<'_>) -> Tri {
    let host = |p: &str| Tri::from_bool(matches(p, req.host_header, true));
    Tri::all([
        field(&o.hosts, &o.not_hosts, &host),
        port_field(&o.ports, &o.not_ports, req),
        unknown("method", &o.methods, &o.not_methods, true),
        unknown("path", &o.paths, &o.not_paths, true),
    ])
}

fn condition_matches(c: &Condition, req: &Request<'_>) -> Tri {
    match c.key.as_str() {
        "source.principal" => field(&c.values, &c.not_values, &|p| {
            Tri::from_bool(req.trust.principal_matches(p, req.principal))
        }),
        "source.namespace" => field(&c.values, &c.not_values, &|p| {
            Tri::from_bool(
                principal_namespace(req.principal).is_some_and(|ns| matches(p, ns, false)),
            )
        }),
        "destination.port" => port_field(&c.values, &c.not_values, req),
        key => unknown(key, &c.values, &c.not_values, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::access::policy::{From, To};

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    fn req<'a>(trust: &'a TrustDomains, principal: &'a str, host: &'a str) -> Request<'a> {
        Request {
            principal,
            host_header: host,
            port: Some(8443),
            trust,
        }
    }

    fn from(s: Source) -> Rule {
        Rule {
            from: Some(vec![From { source: Some(s) }]),
            ..Default::default()
        }
    }

    fn to(o: Operation) -> Rule {
        Rule {
            to: Some(vec![To { operation: Some(o) }]),
            ..Default::default()
        }
    }

    const PP: &str = "cluster.local/ns/bookinfo/sa/bookinfo-productpage";

    #[test]
    fn empty_rule_matches_everything() {
        let t = TrustDomains::new("cluster.local");
        assert_eq!(rule_matches(&Rule::default(), &req(&t, PP, "x")), Tri::Yes);
    }

    #[test]
    fn principals_and_not_principals() {
        let t = TrustDomains::new("cluster.local");
        let r = from(Source {
            principals: strings(&["cluster.local/ns/bookinfo/*"]),
            not_principals: strings(&["*/sa/bookinfo-reviews"]),
            ..Default::default()
        });
        assert_eq!(rule_matches(&r, &req(&t, PP, "h")), Tri::Yes);
        let reviews = "cluster.local/ns/bookinfo/sa/bookinfo-reviews";
        assert_eq!(rule_matches(&r, &req(&t, reviews, "h")), Tri::No);
        let other = "cluster.local/ns/other/sa/x";
        assert_eq!(rule_matches(&r, &req(&t, other, "h")), Tri::No);
    }

    #[test]
    fn namespaces_come_from_the_principal() {
        let t = TrustDomains::new("cluster.local");
        let r = from(Source {
            namespaces: strings(&["book*"]),
            not_namespaces: strings(&["bookstore"]),
            ..Default::default()
        });
        assert_eq!(rule_matches(&r, &req(&t, PP, "h")), Tri::Yes);
        let store = "cluster.local/ns/bookstore/sa/a";
        assert_eq!(rule_matches(&r, &req(&t, store, "h")), Tri::No);
    }

    #[test]
    fn hosts_with_and_without_port() {
        let t = TrustDomains::new("cluster.local");
        let exact = to(Operation {
            hosts: strings(&["httpbin.org"]),
            ..Default::default()
        });
        assert_eq!(rule_matches(&exact, &req(&t, PP, "HTTPBIN.org")), Tri::Yes);
        // Istio compares the Host header as sent: a port in it needs `host:*` (or `host:port`).
        assert_eq!(
            rule_matches(&exact, &req(&t, PP, "httpbin.org:8080")),
            Tri::No
        );
        let any_port = to(Operation {
            hosts: strings(&["httpbin.org:*"]),
            ..Default::default()
        });
        assert_eq!(
            rule_matches(&any_port, &req(&t, PP, "httpbin.org:8080")),
            Tri::Yes
        );
        assert_eq!(
            rule_matches(&any_port, &req(&t, PP, "httpbin.org")),
            Tri::No
        );
        let not_hosts = to(Operation {
            not_hosts: strings(&["*.org"]),
            ..Default::default()
        });
        assert_eq!(
            rule_matches(&not_hosts, &req(&t, PP, "httpbin.org")),
            Tri::No
        );
        assert_eq!(
            rule_matches(&not_hosts, &req(&t, PP, "example.com")),
            Tri::Yes
        );
    }

    #[test]
    fn ports_decide_when_known_and_depend_otherwise() {
        let t = TrustDomains::new("cluster.local");
        let r = to(Operation {
            ports: strings(&["8443"]),
            ..Default::default()
        });
        assert_eq!(rule_matches(&r, &req(&t, PP, "h")), Tri::Yes);
        let mut unknown_port = req(&t, PP, "h");
        unknown_port.port = None;
        assert_eq!(
            rule_matches(&r, &unknown_port),
            Tri::depends("destination port in [8443]")
        );
        let not = to(Operation {
            not_ports: strings(&["8443"]),
            ..Default::default()
        });
        assert_eq!(rule_matches(&not, &req(&t, PP, "h")), Tri::No);
    }

    #[test]
    fn methods_paths_ips_headers_and_jwt_depend_on_the_request() {
        let t = TrustDomains::new("cluster.local");
        let r = Rule {
            from: Some(vec![From {
                source: Some(Source {
                    principals: strings(&[PP]),
                    ip_blocks: strings(&["10.0.0.0/8"]),
                    request_principals: strings(&["issuer/sub"]),
                    ..Default::default()
                }),
            }]),
            to: Some(vec![To {
                operation: Some(Operation {
                    hosts: strings(&["h"]),
                    methods: strings(&["GET"]),
                    paths: strings(&["/get"]),
                    ..Default::default()
                }),
            }]),
            when: Some(vec![Condition {
                key: "request.headers[x-test]".into(),
                values: strings(&["a"]),
                not_values: None,
            }]),
        };
        let Tri::Depends(on) = rule_matches(&r, &req(&t, PP, "h")) else {
            panic!("expected Depends");
        };
        assert_eq!(
            on.into_iter().collect::<Vec<_>>(),
            [
                "method in [GET]",
                "path in [/get]",
                "request principal (JWT) in [issuer/sub]",
                "request.headers[x-test] in [a]",
                "source IP in [10.0.0.0/8]",
            ]
        );
        // A field that is known not to match decides, whatever the request.
        let reviews = "cluster.local/ns/bookinfo/sa/bookinfo-reviews";
        assert_eq!(rule_matches(&r, &req(&t, reviews, "h")), Tri::No);
    }

    #[test]
    fn presence_of_method_or_path_always_holds() {
        let t = TrustDomains::new("cluster.local");
        let r = to(Operation {
            methods: strings(&["*"]),
            ..Default::default()
        });
        assert_eq!(rule_matches(&r, &req(&t, PP, "h")), Tri::Yes);
        let r = to(Operation {
            not_paths: strings(&["*"]),
            ..Default::default()
        });
        assert_eq!(rule_matches(&r, &req(&t, PP, "h")), Tri::No);
    }

    #[test]
    fn conditions_on_known_attributes_decide() {
        let t = TrustDomains::new("cluster.local");
        let cond = |key: &str, values: &[&str]| Rule {
            when: Some(vec![Condition {
                key: key.into(),
                values: strings(values),
                not_values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(
            rule_matches(&cond("source.namespace", &["bookinfo"]), &req(&t, PP, "h")),
            Tri::Yes
        );
        assert_eq!(
            rule_matches(&cond("source.principal", &["*/sa/x"]), &req(&t, PP, "h")),
            Tri::No
        );
        assert_eq!(
            rule_matches(&cond("destination.port", &["8443"]), &req(&t, PP, "h")),
            Tri::Yes
        );
        assert_eq!(
            rule_matches(&cond("connection.sni", &["h"]), &req(&t, PP, "h")),
            Tri::depends("connection.sni in [h]")
        );
    }
}

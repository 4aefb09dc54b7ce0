//! The rule catalogue of API.md §7 (and E25, E26 from DESIGN §5; M1, the mesh's outbound
//! policy, from issue 15): every rule id we enforce.
//! The rule-coverage test checks that each id here has a case that makes it fire.

use crate::core::object::GlooKind;

#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub id: &'static str,
    /// The kind the rule's findings are on (a Gloo kind's name, or EgressGuardrail).
    pub kind: &'static str,
    /// R (reject), W (warn), D (default) or combinations, as in API.md §7.
    pub action: &'static str,
    pub summary: &'static str,
}

const fn es(id: &'static str, action: &'static str, summary: &'static str) -> Rule {
    Rule {
        id,
        kind: GlooKind::ExternalService.as_str(),
        action,
        summary,
    }
}
const fn vg(id: &'static str, action: &'static str, summary: &'static str) -> Rule {
    Rule {
        id,
        kind: GlooKind::VirtualGateway.as_str(),
        action,
        summary,
    }
}
const fn ap(id: &'static str, action: &'static str, summary: &'static str) -> Rule {
    Rule {
        id,
        kind: GlooKind::AccessPolicy.as_str(),
        action,
        summary,
    }
}

const fn guardrail(id: &'static str, action: &'static str, summary: &'static str) -> Rule {
    Rule {
        id,
        kind: crate::core::guardrails::validate::KIND,
        action,
        summary,
    }
}

pub const CATALOGUE: &[Rule] = &[
    es("E1", "R", "exactly one of hosts / addresses is non-empty"),
    es("E2", "R", "each host is an FQDN or *. + FQDN"),
    es("E3", "R", "each address is an IP or CIDR"),
    es(
        "E4",
        "R",
        "addresses are unique among ExternalServices of the namespace",
    ),
    es("E5", "R", "ports is non-empty; number is 1..65535"),
    es(
        "E6",
        "R/D",
        "protocol is one of HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS (upper-cased)",
    ),
    es("E7", "R", "port numbers and names are unique"),
    es(
        "E8",
        "R",
        "targetPort is number xor name; number 1..65535; a name needs a selector",
    ),
    es("E9", "D", "targetPort defaults to the port number"),
    es(
        "E10",
        "R",
        "clientsideTls.mode is known; MUTUAL needs a client certificate and key or credentialName",
    ),
    es(
        "E11",
        "R",
        "ISTIO_MUTUAL carries no certificates or credentialName",
    ),
    es(
        "E12",
        "R",
        "credentialName excludes clientCertificate / privateKey",
    ),
    es(
        "E13",
        "D",
        "HTTPS/TLS ports get clientsideTls SIMPLE; sni defaults to the single host",
    ),
    es(
        "E14",
        "R/W",
        "wildcard hosts: credentialName, certificate files and targetPort limits",
    ),
    es(
        "E15",
        "W",
        "wildcard host without gateway routes or endpoints bypasses REGISTRY_ONLY",
    ),
    es("E16", "R", "egressGatewayRoutes needs hosts, not addresses"),
    es(
        "E17",
        "R",
        "egressGatewayRoutes only on HTTP, HTTP2 or HTTPS ports",
    ),
    es("E18", "D/R", "portMatch defaults to 80 and is 1..65535"),
    es("E19", "R", "portMatch is unique across the ports"),
    es("E20", "W", "portMatch equals another port's number"),
    es(
        "E21",
        "R/D",
        "virtualGatewayRefs is non-empty; namespace and cluster default to the ExternalService's",
    ),
    es("E22", "R", "each referenced VirtualGateway exists"),
    es(
        "E23",
        "W",
        "the VirtualGateway has an http ISTIO_MUTUAL listener exposing the host (strict: error)",
    ),
    es("E24", "W", "subjectAltNames without TLS on any port"),
    es(
        "E25",
        "W",
        "TLS origination without caCertificates or credentialName does not verify the server (IST0129)",
    ),
    es(
        "E26",
        "W",
        "routed through a gateway but no AccessPolicy selects it: open to the mesh",
    ),
    es(
        "E27",
        "R",
        "insecureSkipVerify excludes caCertificates, and credentialName in mode SIMPLE",
    ),
    vg("V1", "R", "listeners has 1..300000 entries"),
    vg(
        "V2",
        "R",
        "each listener has a port number (1..65535) or name",
    ),
    vg(
        "V3",
        "R",
        "at most one of tls / httpsRedirect and of http / tcp",
    ),
    vg("V4", "R", "appProtocol is known and at most 10 characters"),
    vg("V5", "R", "appProtocol fits the listener type and TLS"),
    vg("V6", "R", "httpsRedirect only on http listeners"),
    vg("V7", "R", "appProtocol HTTPS or TLS needs tls"),
    vg("V8", "D", "appProtocol is inferred when unset"),
    vg("V9", "R", "listeners on one port share the appProtocol"),
    vg(
        "V10",
        "R",
        "no two listeners share port, appProtocol and first host",
    ),
    vg(
        "V11",
        "R",
        "TLS SIMPLE needs secretName or serverCert and privateKey files",
    ),
    vg(
        "V12",
        "R",
        "TLS MUTUAL / OPTIONAL_MUTUAL needs secretName or all three files",
    ),
    vg(
        "V13",
        "R",
        "TLS ISTIO_MUTUAL carries neither secretName nor files",
    ),
    vg("V14", "R", "secretName xor files"),
    vg("V15", "R", "verifySubjectAltName needs files.caCerts"),
    vg(
        "V16",
        "R/W",
        "TLSv1_0/1_1 need cipherSuites; cipher suites are known",
    ),
    vg("V17", "W", "tls without mode is PASSTHROUGH"),
    vg(
        "V18",
        "R",
        "allowedRouteTables / exposedExternalServices hosts are present and well-formed",
    ),
    vg(
        "V19",
        "R/W",
        "workloads kind is KUBE or VM; an egress gateway without workloads selects all gateways",
    ),
    vg(
        "V20",
        "R/W",
        "the listener port is a port of a selected gateway Service with a numeric targetPort",
    ),
    vg(
        "V21",
        "W",
        "deleting or changing a VirtualGateway that ExternalServices still use (strict: error)",
    ),
    ap(
        "A1",
        "R",
        "destination kind is SERVICE, VIRTUAL_DESTINATION or EXTERNAL_SERVICE; not VIRTUAL_DESTINATION",
    ),
    ap("A2", "D", "destination kind defaults to SERVICE"),
    ap(
        "A3",
        "R",
        "destination port is number xor name; number 1..65535",
    ),
    ap(
        "A4",
        "W",
        "applyToWorkloads and applyToDestinations both set: destinations ignored",
    ),
    ap(
        "A5",
        "W",
        "neither applyToWorkloads nor applyToDestinations: applies to everything",
    ),
    ap(
        "A6",
        "W",
        "authz is deprecated; ignored when authzList is set",
    ),
    ap("A7", "W", "an empty authz entry is ambiguous"),
    ap("A8", "R", "IP blocks are IPs or CIDRs"),
    ap(
        "A9",
        "R",
        "paths use * only at the start, at the end, or alone",
    ),
    ap("A10", "D/R", "methods are non-empty tokens, upper-cased"),
    ap("A11", "R", "a header match has values or notValues"),
    ap("A12", "R", "authn.tlsMode is DISABLE, PERMISSIVE or STRICT"),
    ap(
        "A13",
        "W",
        "a ServiceAccount selector matches no ServiceAccount",
    ),
    ap("A14", "R/W", "the selected ExternalService exists"),
    ap(
        "A15",
        "W",
        "no selected ExternalService is routed through a gateway: not enforceable",
    ),
    ap("A16", "W", "request principals have the form iss/sub or *"),
    // EgressGuardrails (issue 14): the action is the guardrail's enforcementAction
    // (deny: R, warn: W, audit: reported in the guardrail's status only).
    es(
        "G1",
        "R/W",
        "guardrail allowedHosts: every host is within one of the globs",
    ),
    es(
        "G2",
        "R/W",
        "guardrail deniedHosts: no host reaches a denied glob (deny wins)",
    ),
    es(
        "G3",
        "R/W",
        "guardrail requireEgressGateway: every port has egressGatewayRoutes",
    ),
    es(
        "G4",
        "R/W",
        "guardrail allowedGateways: every VirtualGateway reference is allowed",
    ),
    es(
        "G5",
        "R/W",
        "guardrail requireAccessPolicy: an AccessPolicy selects it (also on AccessPolicy delete/change)",
    ),
    guardrail(
        "G6",
        "R",
        "allowedHosts / deniedHosts entries are DNS globs",
    ),
    guardrail(
        "G7",
        "R",
        "allowedGateways name (name and namespace) an existing VirtualGateway",
    ),
    guardrail(
        "G8",
        "R",
        "namespaceSelector is a valid label selector; enforcementAction is deny, warn or audit",
    ),
    es(
        "M1",
        "W",
        "routed through a gateway while the mesh's outbound policy is ALLOW_ANY: other hosts bypass it",
    ),
];

pub fn rule(id: &str) -> Option<&'static Rule> {
    CATALOGUE.iter().find(|r| r.id == id)
}

//! AdmissionReview in and out, and the decision for one review: decode, call the core, encode.
//! Pure: no I/O, no clock. The HTTP handler (`handlers`) adds metrics, tracing and limits.
//!
//! Decision on bad input: a body that is not an `admission.k8s.io/v1` AdmissionReview with a
//! request and a uid gets HTTP 400 (with an AdmissionReview carrying `allowed: false` and the
//! reason). A well-formed review whose object does not decode into its kind gets HTTP 200 with
//! `allowed: false` and status code 422: the apiserver shows a webhook's message only from a 200
//! answer, and the user should read "spec.ports[0].number: invalid type", not "failed calling webhook".

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bounded::{MAX_OBJECT_VALUES, MAX_PARSED_VALUES, RawObject};
use super::names;
use crate::core::{
    Finding, Object, Operation, Options, Severity, Snapshot,
    defaults::default_object,
    object::{DecodeError, GlooKind},
    rules::{on_apply, validate_defaulted},
    text::{is_unprintable, printable},
};

pub const API_VERSION: &str = "admission.k8s.io/v1";

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct ReviewIn {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<RequestIn>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct RequestIn {
    pub uid: Option<String>,
    pub user_info: Option<UserInfo>,
    pub kind: Option<GroupVersionKind>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub operation: Option<String>,
    /// JSON text, with its number of values, and its tree once asked for (`bounded`).
    pub object: Option<RawObject>,
    pub old_object: Option<RawObject>,
    pub dry_run: Option<bool>,
}

#[derive(Deserialize, Debug, Default, Clone)]
pub struct UserInfo {
    #[serde(default)]
    pub username: String,
}

#[derive(Deserialize, Debug, Default, Clone)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

impl RequestIn {
    /// The object, unless absent or past `MAX_PARSED_VALUES`.
    pub fn readable_object(&self) -> Option<&RawObject> {
        self.object.as_ref().filter(|o| !o.over)
    }

    /// The object's JSON tree (parsed on first use), unless absent or past `MAX_PARSED_VALUES`.
    pub fn object_json(&self) -> Option<&Value> {
        self.readable_object().map(RawObject::value)
    }

    /// The old object's JSON tree, unless absent or past `MAX_PARSED_VALUES`.
    pub fn old_object_json(&self) -> Option<&Value> {
        self.old_object
            .as_ref()
            .filter(|o| !o.over)
            .map(RawObject::value)
    }

    /// JSON values of the objects that deciding types, defaults and validates (what a review
    /// costs to decide, `budget::decide_cost`): those of a Gloo kind within `MAX_OBJECT_VALUES`.
    /// Other kinds are only looked at (the guard reads labels) or not at all.
    pub fn decided_values(&self) -> usize {
        if self.kind.as_ref().and_then(gloo_kind).is_none() {
            return 0;
        }
        [&self.object, &self.old_object]
            .into_iter()
            .flatten()
            .map(|o| o.values)
            .filter(|n| *n <= MAX_OBJECT_VALUES)
            .sum()
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReviewOut {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: ResponseOut,
}

#[derive(Serialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResponseOut {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Base64 of the JSONPatch, as the apiserver's Go decoder expects a `[]byte`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct StatusOut {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Mutate,
    Validate,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// The verdict, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Patched,
    Denied,
    /// The review itself could not be read (HTTP 4xx).
    Invalid,
    /// Not one of our kinds: allowed untouched.
    Ignored,
    /// The body did not arrive before the review's deadline (HTTP 408).
    Timeout,
    /// Refused at `--max-inflight-bytes` (HTTP 429).
    Overloaded,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Patched => "patched",
            Verdict::Denied => "denied",
            Verdict::Invalid => "invalid",
            Verdict::Ignored => "ignored",
            Verdict::Timeout => "timeout",
            Verdict::Overloaded => "overloaded",
        }
    }
}

/// What one review came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub http_status: u16,
    pub review: ReviewOut,
    pub verdict: Verdict,
    pub uid: String,
    pub kind: String,
    /// `kind` as a metric label: one of a fixed set (`labels::kind`).
    pub kind_label: &'static str,
    pub operation: String,
    pub namespace: String,
    pub name: String,
    pub dry_run: bool,
    pub findings: Vec<Finding>,
    /// An allowed CREATE/UPDATE of a Gloo kind at /validate: the object, defaulted, whose
    /// companions the caller writes (unless `dry_run`). Boxed, as `reviewed`: an `Object` is
    /// some 800 bytes, and the outcome is moved from the decision up to the handler, whose
    /// future holds it (`handlers::handle`).
    pub admitted: Option<Box<Object>>,
    /// The object under review at /validate (CREATE/UPDATE, and the stored object of a
    /// DELETE), typed as written: for the catalog's live lookup of its references after a
    /// denial.
    pub reviewed: Option<Box<Object>>,
    /// The EgressGuardrail under review (CREATE/UPDATE): for the live lookup of the
    /// VirtualGateways its `allowedGateways` name (G7) after a denial.
    pub reviewed_guardrail: Option<Box<crate::api::EgressGuardrail>>,
}

impl Outcome {
    fn new(req: &RequestIn) -> Self {
        Outcome {
            http_status: 200,
            review: review(ResponseOut {
                uid: req.uid.clone().unwrap_or_default(),
                allowed: true,
                ..Default::default()
            }),
            verdict: Verdict::Allowed,
            uid: req.uid.clone().unwrap_or_default(),
            // Kind, namespace and name go into messages and log lines: escaped (`text`).
            kind: shown(req.kind.as_ref().map(|k| k.kind.as_str())),
            kind_label: super::labels::kind(req.kind.as_ref()),
            operation: req.operation.clone().unwrap_or_default(),
            namespace: shown(req.namespace.as_deref()),
            name: shown(req.name.as_deref()),
            dry_run: req.dry_run.unwrap_or(false),
            findings: Vec::new(),
            admitted: None,
            reviewed: None,
            reviewed_guardrail: None,
        }
    }

    fn invalid(uid: Option<String>, message: String) -> Self {
        let uid = uid.unwrap_or_default();
        Outcome {
            http_status: 400,
            review: review(ResponseOut {
                uid: uid.clone(),
                allowed: false,
                status: Some(StatusOut {
                    code: 400,
                    reason: "BadRequest",
                    message: printable(&message).into_owned(),
                }),
                ..Default::default()
            }),
            verdict: Verdict::Invalid,
            uid,
            kind: String::new(),
            kind_label: "other",
            operation: String::new(),
            namespace: String::new(),
            name: String::new(),
            dry_run: false,
            findings: Vec::new(),
            admitted: None,
            reviewed: None,
            reviewed_guardrail: None,
        }
    }

    /// Deny with `message`, one finding or reason per line; each line is escaped (`text`), so
    /// what an object holds cannot reach kubectl's terminal or the logs as control characters.
    pub fn deny(&mut self, code: u16, reason: &'static str, message: String) {
        // Rebuilt only when something needs escaping: a denial can be megabytes of lines.
        let message = if message.chars().any(|c| c != '\n' && is_unprintable(c)) {
            message
                .split('\n')
                .map(printable)
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            message
        };
        self.verdict = Verdict::Denied;
        self.review.response.allowed = false;
        self.review.response.status = Some(StatusOut {
            code,
            reason,
            message,
        });
    }
}

/// A request's kind, namespace or name as messages and logs show it.
fn shown(s: Option<&str>) -> String {
    printable(s.unwrap_or_default()).into_owned()
}

fn review(response: ResponseOut) -> ReviewOut {
    ReviewOut {
        api_version: API_VERSION,
        kind: "AdmissionReview",
        response,
    }
}

/// A response to a body we could not read at all (used by the HTTP layer for limits too).
pub fn rejection(code: u16, reason: &'static str, message: String) -> ReviewOut {
    review(ResponseOut {
        allowed: false,
        status: Some(StatusOut {
            code,
            reason,
            message: printable(&message).into_owned(),
        }),
        ..Default::default()
    })
}

/// The Gloo kind of a request, by group and kind (any version: matchPolicy Equivalent).
fn gloo_kind(gvk: &GroupVersionKind) -> Option<GlooKind> {
    match (gvk.group.as_str(), gvk.kind.as_str()) {
        ("networking.gloo.solo.io", "ExternalService") => Some(GlooKind::ExternalService),
        ("networking.gloo.solo.io", "VirtualGateway") => Some(GlooKind::VirtualGateway),
        ("security.policy.gloo.solo.io", "AccessPolicy") => Some(GlooKind::AccessPolicy),
        _ => None,
    }
}

/// Just the uid of a review that did not decode, for the 400 answer: every other field is
/// skipped without being stored (`IgnoredAny`), so this costs no memory beyond the uid.
#[derive(Deserialize)]
struct UidHint {
    request: Option<UidHintRequest>,
}

#[derive(Deserialize)]
struct UidHintRequest {
    uid: Option<String>,
}

fn uid_hint(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<UidHint>(body).ok()?.request?.uid
}

/// Decode the body into a request, or the 400 outcome that says why not.
///
/// One parse: the body goes straight into `RequestIn`, whose `object` and `oldObject` stay JSON
/// text (`bounded`): the defaults patch is computed against their raw JSON, because our typed
/// structs drop fields they do not know. Only a body that fails is scanned a second time, for
/// its uid.
pub fn decode(body: &[u8]) -> Result<RequestIn, Box<Outcome>> {
    let review: ReviewIn = serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_data() {
            "is not an AdmissionReview"
        } else {
            "is not JSON"
        };
        Box::new(Outcome::invalid(
            uid_hint(body),
            format!("the body {what}: {e}"),
        ))
    })?;
    let uid_hint = review.request.as_ref().and_then(|r| r.uid.clone());
    if review.kind.as_deref() != Some("AdmissionReview") {
        return Err(Box::new(Outcome::invalid(
            uid_hint,
            format!(
                "kind is {:?}, not \"AdmissionReview\"",
                review.kind.unwrap_or_default()
            ),
        )));
    }
    if review.api_version.as_deref() != Some(API_VERSION) {
        return Err(Box::new(Outcome::invalid(
            uid_hint,
            format!(
                "apiVersion is {:?}; only {API_VERSION} is served (set admissionReviewVersions: [v1])",
                review.api_version.unwrap_or_default()
            ),
        )));
    }
    let Some(request) = review.request else {
        return Err(Box::new(Outcome::invalid(
            None,
            "the AdmissionReview has no request".to_string(),
        )));
    };
    if request.uid.as_deref().is_none_or(str::is_empty) {
        return Err(Box::new(Outcome::invalid(
            None,
            "the AdmissionReview request has no uid".to_string(),
        )));
    }
    Ok(request)
}

/// Decode the request's object into our types; the 422 denial on a schema mismatch, or when
/// the object is not of the kind the request names (the kind decides which rules run: an
/// object of another kind must not slip through under a request for ours).
fn typed(value: &Value, expected: GlooKind, outcome: &mut Outcome) -> Option<Object> {
    match Object::from_json(value) {
        Ok(o) if o.gloo_kind() == Some(expected) => Some(o),
        Ok(o) => {
            outcome.deny(
                422,
                "Invalid",
                format!(
                    "the object is a {}, but the request is for a {}",
                    o.kind_name(),
                    expected.as_str()
                ),
            );
            None
        }
        Err(DecodeError::Invalid { path, message, .. }) => {
            // The path and the decoder's message may quote keys and values of the object.
            let id = format!("{} {}/{}", outcome.kind, outcome.namespace, outcome.name);
            let (path, message) = (printable(&path), printable(&message));
            outcome.deny(422, "Invalid", format!("{id}: {path}: {message}"));
            None
        }
        Err(DecodeError::Unhandled { api_version, kind }) => {
            outcome.deny(
                422,
                "Invalid",
                format!(
                    "the object is {api_version} {kind}, which does not match the request kind"
                ),
            );
            None
        }
    }
}

/// Handle one review body at `endpoint`, without the guard of generated objects.
pub fn handle(endpoint: Endpoint, body: &[u8], snap: &Snapshot, opts: &Options) -> Outcome {
    handle_guarded(endpoint, body, snap, opts, None)
}

/// `decide` on the decoded body, or the 400 outcome of a body that does not decode.
pub fn handle_guarded(
    endpoint: Endpoint,
    body: &[u8],
    snap: &Snapshot,
    opts: &Options,
    guard: Option<&[String]>,
) -> Outcome {
    match decode(body) {
        Ok(mut req) => decide(endpoint, &mut req, snap, opts, guard),
        Err(outcome) => *outcome,
    }
}

/// Is this a kind egress-webhook generates (and guards)?
fn istio_kind(gvk: &GroupVersionKind) -> bool {
    crate::companions::kinds::KINDS
        .iter()
        .any(|(g, _, k, _)| *g == gvk.group && *k == gvk.kind)
}

/// The verdict on a decoded review. With `guard = Some(identities)`, changes at /validate to
/// the Istio objects we generate are denied to everyone but those identities. At /validate the
/// request is untouched, and the handler may decide again on it after a live lookup; at
/// /mutate the request's object is left defaulted (see `mutate`).
pub fn decide(
    endpoint: Endpoint,
    req: &mut RequestIn,
    snap: &Snapshot,
    opts: &Options,
    guard: Option<&[String]>,
) -> Outcome {
    let mut outcome = Outcome::new(req);
    if let (Some(identities), Endpoint::Validate, Some(gvk)) = (guard, endpoint, req.kind.as_ref())
        && istio_kind(gvk)
    {
        let username = req
            .user_info
            .as_ref()
            .map(|u| u.username.as_str())
            .unwrap_or("");
        let operation = req.operation.as_deref().unwrap_or("");
        // An object we did not keep cannot show whether it is one of ours: refused, unless the
        // guard would not look at it anyway (DELETE, our own identities).
        let unread = [&req.object, &req.old_object]
            .into_iter()
            .flatten()
            .any(|o| o.over);
        if unread && operation != "DELETE" && !identities.iter().any(|i| i == username) {
            outcome.deny(422, "Invalid", too_large(&gvk.kind, MAX_PARSED_VALUES));
            return outcome;
        }
        let verdict = crate::companions::guard::check(
            operation,
            &gvk.kind,
            req.object_json(),
            req.old_object_json(),
            username,
            identities,
        );
        match verdict {
            Some(message) => outcome.deny(403, "Forbidden", message),
            None => outcome.verdict = Verdict::Ignored,
        }
        return outcome;
    }
    if endpoint == Endpoint::Validate
        && req
            .kind
            .as_ref()
            .is_some_and(super::guardrail::is_guardrail)
    {
        super::guardrail::validate(req, &mut outcome, snap);
        return outcome;
    }
    let Some(kind) = req.kind.as_ref().and_then(gloo_kind) else {
        outcome.verdict = Verdict::Ignored;
        return outcome;
    };
    // Defaulting and validating cost memory with every value: a Gloo object past the cap is
    // denied before either (a DELETE only warns, so that such an object can still go).
    let written = req.object.as_ref().map_or(0, |o| o.values);
    if written > MAX_OBJECT_VALUES && matches!(req.operation.as_deref(), Some("CREATE" | "UPDATE"))
    {
        outcome.deny(422, "Invalid", too_large(kind.as_str(), MAX_OBJECT_VALUES));
        return outcome;
    }
    let written = matches!(req.operation.as_deref(), Some("CREATE" | "UPDATE"));
    // At /validate, the object typed from its text when it is plainly one of `kind` (nearly
    // always): no JSON tree is built for it (`Object::gloo_from_text`). Otherwise, and at
    // /mutate, whose defaults patch needs the tree anyway (typing from the text as well cost
    // /mutate 5.8 % more instructions per review, bench/instructions_ab.py), the tree's path
    // below reads it and says what is wrong.
    let fast = (written && endpoint == Endpoint::Validate)
        .then(|| req.readable_object())
        .flatten()
        .and_then(|o| Object::gloo_from_text(o.text(), kind));
    // A name the apiserver would refuse reaches /mutate before the apiserver checks it (and
    // anything reaches us from a client that is not the apiserver): denied here, at both
    // endpoints, naming the field, rather than turned into companion names.
    if written {
        let problem = match &fast {
            Some(obj) => names::bad_name_or_namespace(obj.meta_name(), obj.meta_namespace()),
            None => req.object_json().and_then(names::bad_identity),
        };
        if let Some(problem) = problem {
            let id = format!("{} {}/{}", outcome.kind, outcome.namespace, outcome.name);
            outcome.deny(422, "Invalid", format!("{id}: {problem}"));
            return outcome;
        }
    }
    match endpoint {
        Endpoint::Mutate => mutate(req, kind, &mut outcome, opts),
        Endpoint::Validate => validate(req, kind, &mut outcome, snap, opts, fast),
    }
    outcome
}

fn too_large(kind: &str, cap: usize) -> String {
    format!(
        "the {kind} has more than {cap} JSON values (fields, list items), more than egress-webhook \
         reviews: split it into smaller objects"
    )
}

/// A Gloo object of the review, typed, if it is within `MAX_OBJECT_VALUES` and decodes into
/// `kind`: an old object that is not is treated as absent.
fn small_typed(raw: Option<&RawObject>, kind: GlooKind) -> Option<Object> {
    let raw = raw.filter(|o| o.values <= MAX_OBJECT_VALUES)?;
    Object::gloo_from_text(raw.text(), kind).or_else(|| {
        Object::from_json(raw.value())
            .ok()
            .filter(|o| o.gloo_kind() == Some(kind))
    })
}

/// The typed object of a CREATE or UPDATE, by the tree's path; the denial when it is missing
/// or unreadable.
fn request_object(req: &RequestIn, kind: GlooKind, outcome: &mut Outcome) -> Option<Object> {
    let Some(raw) = req.object_json() else {
        outcome.deny(
            400,
            "BadRequest",
            format!("{} request without an object", outcome.operation),
        );
        return None;
    };
    typed(raw, kind, outcome)
}

/// Defaults as a JSONPatch computed against the raw object: the typed before/after pair names
/// only the fields we default, and the patch is checked to apply to the raw JSON, so fields we
/// do not know survive (typed structs drop them). The check applies the patch to the request's
/// own object, in place, rather than to a copy: a multi-megabyte object is not duplicated
/// (`budget::decide_cost`). A patch that fails is undone by json-patch.
fn mutate(req: &mut RequestIn, kind: GlooKind, outcome: &mut Outcome, opts: &Options) {
    if !matches!(req.operation.as_deref(), Some("CREATE" | "UPDATE")) {
        return;
    }
    let Some(obj) = request_object(req, kind, outcome) else {
        return;
    };
    let before = obj.to_value();
    if let Some(path) = req
        .object_json()
        .and_then(|raw| super::shape::list_for_object(&before, raw))
    {
        let id = format!("{} {}/{}", outcome.kind, outcome.namespace, outcome.name);
        outcome.deny(
            422,
            "Invalid",
            format!("{id}: {path}: is a list, but the schema has an object here"),
        );
        return;
    }
    let after = default_object(obj, opts).to_value();
    let patch = json_patch::diff(&before, &after);
    drop((before, after));
    if patch.0.is_empty() {
        return;
    }
    let Some(raw) = req.object.as_mut().and_then(RawObject::value_mut) else {
        return;
    };
    if let Err(e) = json_patch::patch(raw, &patch) {
        outcome.deny(
            500,
            "InternalError",
            format!("the defaults patch does not apply to the object: {e}"),
        );
        return;
    }
    match serde_json::to_vec(&patch) {
        Ok(bytes) => {
            outcome.verdict = Verdict::Patched;
            outcome.review.response.patch_type = Some("JSONPatch");
            outcome.review.response.patch =
                Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        Err(e) => outcome.deny(500, "InternalError", format!("encoding the patch: {e}")),
    }
}

fn validate(
    req: &RequestIn,
    kind: GlooKind,
    outcome: &mut Outcome,
    snap: &Snapshot,
    opts: &Options,
    fast: Option<Object>,
) {
    let findings = match req.operation.as_deref() {
        Some("CREATE" | "UPDATE") => {
            // Typed from its text already (`decide`), else by the tree's path.
            let Some(obj) = fast.or_else(|| request_object(req, kind, outcome)) else {
                return;
            };
            // An old object we cannot read is validated as a create: no finding depends on it
            // but V21, which only warns.
            let old = small_typed(req.old_object.as_ref(), kind);
            let op = match (&old, req.operation.as_deref()) {
                (Some(old), Some("UPDATE")) => Operation::Update(old),
                _ => Operation::Create,
            };
            let defaulted = default_object(obj.clone(), opts);
            let findings = on_apply(&obj, &defaulted, snap, opts, op);
            outcome.admitted = Some(Box::new(defaulted));
            outcome.reviewed = Some(Box::new(obj));
            findings
        }
        Some("DELETE") => {
            // The apiserver sends the stored object as oldObject on DELETE.
            let Some(old) = small_typed(req.old_object.as_ref(), kind) else {
                if req
                    .old_object
                    .as_ref()
                    .is_some_and(|o| o.values > MAX_OBJECT_VALUES)
                {
                    outcome.review.response.warnings.push(
                        too_large(kind.as_str(), MAX_OBJECT_VALUES)
                            + "; its deletion was not checked",
                    );
                }
                return;
            };
            let defaulted = default_object(old.clone(), opts);
            let findings = validate_defaulted(&old, &defaulted, snap, opts, Operation::Delete);
            // G5 on the delete of an AccessPolicy may come from a cache that lacks another
            // policy, created a moment ago, that selects the same ExternalServices.
            outcome.reviewed = Some(Box::new(old));
            findings
        }
        _ => Vec::new(),
    };
    outcome.review.response.warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(Finding::summary)
        .collect();
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.to_string())
        .collect();
    if !errors.is_empty() {
        outcome.deny(422, "Invalid", errors.join("\n"));
        outcome.admitted = None;
    }
    outcome.findings = findings;
}

//! HTTP handlers: `/mutate`, `/validate`, `/healthz`, `/readyz`, `/metrics`.
//! A review handler reads the body (within `--max-inflight-bytes`), decodes it once, asks
//! `review::decide` for the decision, and records it with label values from a fixed set.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json,
    body::Bytes,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, Version, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::catalog::Catalog;
use crate::core::Options;

use super::answer_body::answer_body;
use super::budget::{self, ByteBudget, Reservation};
use super::labels;
use super::review::{self, Endpoint, ReviewOut};
use crate::metrics::{EndpointLabels, FindingLabels, KindLabels, Metrics, RequestLabels};

#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<Catalog>,
    pub opts: Options,
    pub metrics: Arc<Metrics>,
    /// Serving certificate loaded.
    pub cert_loaded: Arc<AtomicBool>,
    /// Set at the first shutdown signal: `/readyz` turns false at once.
    pub shutting_down: Arc<AtomicBool>,
    /// Upper bound for one review, body read included.
    pub review_timeout: Duration,
    /// Bodies above this get 413.
    pub max_body_bytes: usize,
    /// Review bytes in flight across all connections (`--max-inflight-bytes`); past it, 429.
    pub inflight: ByteBudget,
    /// Writing companions into the cluster (absent with a static catalog: `--objects`).
    pub companions: Option<Arc<CompanionWrites>>,
}

/// What the validating webhook needs to write companions and guard them.
pub struct CompanionWrites {
    /// The one writer of companions (admission's writes go through it too).
    pub controller: Arc<crate::controller::Controller>,
    /// Identities allowed to change generated objects (ours).
    pub guard_identities: Vec<String>,
    /// Budget for the writes of one review, well under the apiserver's timeoutSeconds.
    pub deadline: Duration,
}

impl std::fmt::Debug for CompanionWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompanionWrites")
            .field("guard_identities", &self.guard_identities)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

fn json_response(status: StatusCode, review: ReviewOut) -> Response {
    (status, Json(review)).into_response()
}

pub async fn mutate(State(st): State<Arc<AppState>>, req: Request) -> Response {
    handle(st, Endpoint::Mutate, req).await
}

pub async fn validate(State(st): State<Arc<AppState>>, req: Request) -> Response {
    handle(st, Endpoint::Validate, req).await
}

enum BodyError {
    TooLarge,
    /// The review does not fit in what is left of `--max-inflight-bytes`.
    Overloaded,
    Read(axum::Error),
}

/// The body, up to `cap` bytes, its bytes reserved in `budget` (into `held`) before they are
/// buffered: up front when the request says its length (the apiserver does), else chunk by
/// chunk. Past the cap, or once the budget refuses, the rest is read and dropped (up to `cap`
/// more) before the 413 or 429 goes out: an HTTP/1.1 client is still writing its body, and a
/// server that answers and closes with unread data makes the client's kernel reset the
/// connection, so the client sees "broken pipe" instead of the answer (observed in
/// tests/admission_bad_input.rs). Past twice the cap the client is not worth the bandwidth:
/// the connection is closed.
async fn read_body(
    body: axum::body::Body,
    declared: Option<usize>,
    cap: usize,
    budget: &ByteBudget,
    held: &mut Reservation,
) -> Result<Bytes, BodyError> {
    use futures::StreamExt;
    let mut refused = false;
    let mut buf: Vec<u8> = Vec::new();
    if let Some(n) = declared.filter(|n| *n <= cap) {
        if budget.try_reserve(held, n) {
            buf.reserve_exact(n);
        } else {
            refused = true;
        }
    }
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Read)?;
        seen = seen.saturating_add(chunk.len());
        if seen > cap {
            buf = Vec::new();
            if seen > cap.saturating_mul(2) {
                break;
            }
            continue;
        }
        if refused {
            continue;
        }
        // A body longer than it said, or of unknown length: reserve what is new.
        if seen > held.bytes() && !budget.try_reserve(held, seen - held.bytes()) {
            refused = true;
            buf = Vec::new();
            *held = Reservation::default();
            continue;
        }
        buf.extend_from_slice(&chunk);
    }
    if seen > cap {
        return Err(BodyError::TooLarge);
    }
    if refused {
        *held = Reservation::default();
        return Err(BodyError::Overloaded);
    }
    Ok(Bytes::from(buf))
}

/// The Content-Length of a request, when it has a readable one.
fn declared_length(headers: &axum::http::HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Decrements the in-flight gauge however the handler ends.
struct InFlight<'a>(&'a Metrics);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// One review, from the first byte of its body to the answer. The body is read here rather
/// than by an extractor so that the in-flight gauge, the latency histogram and the request
/// counter cover the body read too, and a review that misses its deadline is counted
/// (`verdict="timeout"`) instead of vanishing from the metrics. The deadline is enforced
/// where the review awaits (body read, companion writes), never by dropping the handler
/// future: a write cut off half-way would skip the writer's rollback.
async fn handle(st: Arc<AppState>, endpoint: Endpoint, req: Request) -> Response {
    let started = Instant::now();
    st.metrics.in_flight.inc();
    let _in_flight = InFlight(&st.metrics);
    let limit = review_deadline(req.uri().query(), st.review_timeout);
    // The review's share of `--max-inflight-bytes`, held until its answer is built: the body,
    // then the parsed request that replaces it.
    let mut held = Reservation::default();
    // Deciding is synchronous and takes microseconds: the awaits are the body read and the
    // companion writes, and each is bounded by the deadline.
    let declared = declared_length(req.headers());
    let read = read_body(
        req.into_body(),
        declared,
        st.max_body_bytes,
        &st.inflight,
        &mut held,
    );
    let body = match tokio::time::timeout(limit, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::Overloaded)) => return overloaded(&st, endpoint, started),
        Ok(Err(e)) => {
            let (status, reason, message) = match e {
                BodyError::TooLarge => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    format!(
                        "the review is larger than {} bytes (--max-body-bytes)",
                        st.max_body_bytes
                    ),
                ),
                BodyError::Read(e) => (
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("reading the review: {e}"),
                ),
                BodyError::Overloaded => unreachable!("answered above"),
            };
            tracing::warn!(
                endpoint = endpoint.as_str(),
                status = status.as_u16(),
                "review body rejected: {message}"
            );
            record(
                &st,
                endpoint,
                "other",
                "other",
                review::Verdict::Invalid,
                started,
            );
            return json_response(status, review::rejection(status.as_u16(), reason, message));
        }
        Err(_) => {
            tracing::warn!(
                endpoint = endpoint.as_str(),
                limit_ms = limit.as_millis() as u64,
                "review deadline passed while reading the body (slow client or overload)"
            );
            record(
                &st,
                endpoint,
                "other",
                "other",
                review::Verdict::Timeout,
                started,
            );
            return json_response(
                StatusCode::REQUEST_TIMEOUT,
                review::rejection(
                    408,
                    "Timeout",
                    format!("the review was not received within {limit:?}"),
                ),
            );
        }
    };
    // The one parse of the body, and what it and the decision may hold, reserved first; the
    // body's bytes are not needed after it (their reservation stays, for the tree's strings).
    if !st
        .inflight
        .try_reserve(&mut held, budget::parse_cost(body.len()))
    {
        return overloaded(&st, endpoint, started);
    }
    let large = body.len() >= OFF_WORKER_BYTES;
    // `decided` in a block of its own: the future keeps a slot for every local alive across an
    // await, and this one would stay next to the outcome moved out of it.
    let (mut outcome, mut req, held) = {
        let decided = if large {
            let shared = st.clone();
            match off_worker(move || decode_and_decide(&shared, endpoint, &body, held)).await {
                Some(decided) => decided,
                None => return stopping(&st, endpoint, started),
            }
        } else {
            let decided = decode_and_decide(&st, endpoint, &body, held);
            drop(body);
            decided
        };
        match decided {
            (None, _) => return overloaded(&st, endpoint, started),
            (Some((outcome, req)), held) => (outcome, req, held),
        }
    };
    let decide = |req: &mut review::RequestIn| {
        let guard = st
            .companions
            .as_ref()
            .map(|c| c.guard_identities.as_slice());
        st.catalog
            .read(|snap| review::decide(endpoint, req, snap, &st.opts, guard))
    };
    // A denial for a missing reference may come from a cache that has not seen a brand-new
    // object yet: look the references up once (cluster catalog only), then decide again.
    if endpoint == Endpoint::Validate
        && st.catalog.may_refresh(&outcome.findings)
        && let Some(req) = &mut req
        // Within what is left of the deadline, like every await of a review.
        && tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            Box::pin(refresh_references(&st.catalog, &mut outcome)),
        )
        .await
        .unwrap_or(false)
    {
        outcome = decide(req);
    }
    // Guardrails select namespaces by label: a namespace the cache has not seen yet (created a
    // moment ago) is read once, only while a guardrail exists, and the review decided again.
    if endpoint == Endpoint::Validate
        && let Some(req) = &mut req
        && let Some(ns) = req.namespace.clone()
        && tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            st.catalog.ensure_namespace(&ns),
        )
        .await
        .unwrap_or(false)
    {
        outcome = decide(req);
    }
    drop(req);
    match (outcome.admitted.take(), st.companions.as_ref()) {
        (Some(obj), Some(c)) if !outcome.dry_run => {
            // Within what is left of the review's deadline: the answer must reach the apiserver
            // before it gives up (the writer rolls back what it wrote when time runs out).
            let budget = c.deadline.min(limit.saturating_sub(started.elapsed()));
            // Boxed, as the live lookup above: the writes' future is some 10 KB (kube's
            // requests), and inline it would make every review's future that large, a
            // 16 KB copy into axum's box per review even where nothing is written.
            Box::pin(write_companions(c, *obj, budget, &mut outcome)).await;
        }
        // A dry run writes nothing, and says what the real apply would write.
        (Some(obj), Some(c)) => {
            let create = outcome.operation == "CREATE";
            let preview = c.controller.preview_admitted(&obj, create);
            outcome.review.response.warnings.extend(preview);
        }
        _ => {}
    }
    log_review(&outcome, endpoint, started.elapsed());
    for f in &outcome.findings {
        st.metrics
            .findings
            .get_or_create(&FindingLabels {
                rule: f.rule,
                severity: f.severity.as_str(),
            })
            .inc();
    }
    record(
        &st,
        endpoint,
        outcome.kind_label,
        labels::operation(&outcome.operation),
        outcome.verdict,
        started,
    );
    let status = StatusCode::from_u16(outcome.http_status).unwrap_or(StatusCode::BAD_REQUEST);
    let review = outcome.review;
    // The answer to a large review (a defaults patch of a multi-megabyte object) is encoded off
    // the workers too.
    let encoded = if large {
        match off_worker(move || serde_json::to_vec(&review)).await {
            Some(encoded) => encoded,
            None => return stopping(&st, endpoint, started),
        }
    } else {
        serde_json::to_vec(&review)
    };
    answer(status, encoded, held, st.review_timeout)
}

/// The review's log line. Denials and unreadable reviews are logged at info and warn; admitted
/// ones (allowed, patched, not ours) at debug: at thousands of reviews per second a line per
/// review was the largest cost of a review after the TLS and TCP work (formatting plus one
/// `write(2)` per line, about a tenth of the CPU in a closed-loop profile), and the counters
/// (`egress_webhook_admission_requests_total`) count them. `RUST_LOG=info,egress_webhook::admission=debug`
/// logs every review again.
fn log_review(outcome: &review::Outcome, endpoint: Endpoint, elapsed: Duration) {
    // One field list for both levels (`span!` needs its level as a constant).
    macro_rules! review_span {
        ($level:expr) => {
            tracing::span!(
                $level,
                "review",
                uid = %outcome.uid,
                kind = %outcome.kind,
                object = %format_args!("{}/{}", outcome.namespace, outcome.name),
                operation = %outcome.operation,
                endpoint = endpoint.as_str(),
                dry_run = outcome.dry_run,
                verdict = outcome.verdict.as_str(),
                duration_us = elapsed.as_micros() as u64,
            )
        };
    }
    match outcome.verdict {
        review::Verdict::Allowed | review::Verdict::Patched => review_span!(tracing::Level::DEBUG)
            .in_scope(|| tracing::debug!(findings = outcome.findings.len(), "review answered")),
        review::Verdict::Ignored => review_span!(tracing::Level::DEBUG)
            .in_scope(|| tracing::debug!("not a kind egress-webhook handles: allowed")),
        review::Verdict::Invalid => review_span!(tracing::Level::INFO).in_scope(|| {
            tracing::warn!(
                reason = outcome
                    .review
                    .response
                    .status
                    .as_ref()
                    .map(|s| s.message.as_str())
                    .unwrap_or(""),
                "unreadable review"
            )
        }),
        _ => review_span!(tracing::Level::INFO)
            .in_scope(|| tracing::info!(findings = outcome.findings.len(), "review answered")),
    }
}

/// Bodies from this size on are parsed, decided and answered on tokio's blocking pool, not on
/// an async worker. Parsing runs at some hundreds of MB/s: a 3 MiB review holds a thread for
/// milliseconds (a 2-core machine has two workers), during which every other review, `/readyz`
/// and the watches on that worker would wait. Below 64 KiB (well over any usual review, which
/// is a few KiB) it is tens of microseconds, less than the hand-off to another thread costs.
/// How many such reviews run at once is bounded by `--max-inflight-bytes`, whose reservation
/// each holds before it gets here.
pub const OFF_WORKER_BYTES: usize = 64 * 1024;

/// Run `f` on the blocking pool; `None` when the runtime is shutting down and cancelled it
/// before it started. A panic in it is raised again here, so that it ends the review the way a
/// panic on the worker does (the catch-panic layer's 500).
async fn off_worker<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

/// The answer to a review the process can no longer decide because it is stopping: 503, for
/// the apiserver to retry against another replica (counted with the refused ones: retry).
fn stopping(st: &AppState, endpoint: Endpoint, started: Instant) -> Response {
    tracing::warn!(
        endpoint = endpoint.as_str(),
        "review refused: the process is stopping"
    );
    refused(
        st,
        endpoint,
        started,
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "the webhook is stopping: retry".to_string(),
    )
}

/// A review refused before it was decided, to be retried (429, 503): counted as overloaded,
/// answered with `Retry-After`.
fn refused(
    st: &AppState,
    endpoint: Endpoint,
    started: Instant,
    status: StatusCode,
    reason: &'static str,
    message: String,
) -> Response {
    record(
        st,
        endpoint,
        "other",
        "other",
        review::Verdict::Overloaded,
        started,
    );
    let mut resp = json_response(status, review::rejection(status.as_u16(), reason, message));
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The live lookup of what the reviewed object (a Gloo kind, or an EgressGuardrail) references
/// and the catalog lacks; true when something was found (decide again).
async fn refresh_references(catalog: &Catalog, outcome: &mut review::Outcome) -> bool {
    if let Some(obj) = outcome.reviewed.take() {
        catalog.refresh_for(&obj, &outcome.findings).await
    } else if let Some(g) = outcome.reviewed_guardrail.take() {
        catalog.refresh_for_guardrail(&g).await
    } else {
        false
    }
}

/// The outcome, and the request when it could be read (for a second decision after a live
/// lookup); `None`: what the parsed review may hold does not fit in `--max-inflight-bytes`.
type Decided = Option<(review::Outcome, Option<review::RequestIn>)>;

/// The one parse of the body and the decision on the current snapshot; the reservation comes
/// back grown by what the parsed request may hold.
fn decode_and_decide(
    st: &AppState,
    endpoint: Endpoint,
    body: &[u8],
    mut held: Reservation,
) -> (Decided, Reservation) {
    let decoded = review::decode(body);
    if let Ok(req) = &decoded
        && !st
            .inflight
            .try_reserve(&mut held, budget::decide_cost(req.decided_values()))
    {
        return (None, held);
    }
    let decided = match decoded {
        Ok(mut req) => {
            let guard = st
                .companions
                .as_ref()
                .map(|c| c.guard_identities.as_slice());
            let outcome = st
                .catalog
                .read(|snap| review::decide(endpoint, &mut req, snap, &st.opts, guard));
            Some((outcome, Some(req)))
        }
        Err(invalid) => Some((*invalid, None)),
    };
    (decided, held)
}

/// The answer to a decided review. Its body keeps what the review reserved, trimmed to the
/// answer's size, until hyper has taken it (`answer_body`): a multi-megabyte defaults patch
/// stays inside `--max-inflight-bytes` until it is on its way.
fn answer(
    status: StatusCode,
    encoded: serde_json::Result<Vec<u8>>,
    held: Reservation,
    deadline: Duration,
) -> Response {
    let bytes = match encoded {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "encoding an answer failed (bug)");
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                review::rejection(
                    500,
                    "InternalError",
                    "encoding the answer failed".to_string(),
                ),
            );
        }
    };
    let len = bytes.len();
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        answer_body(Bytes::from(bytes), held, deadline),
    )
        .into_response()
}

/// The answer to a review that does not fit in `--max-inflight-bytes`: 429 with `Retry-After`.
/// The apiserver's webhook client (client-go's rest client) retries a 429 that carries
/// `Retry-After` within the webhook's timeout; when the retries run out, the webhook's
/// failurePolicy decides (ours is Fail: the user's request fails and can be retried).
fn overloaded(st: &AppState, endpoint: Endpoint, started: Instant) -> Response {
    tracing::warn!(
        endpoint = endpoint.as_str(),
        inflight_bytes = st.inflight.in_use(),
        cap = st.inflight.capacity(),
        "review refused: review bytes in flight at --max-inflight-bytes"
    );
    refused(
        st,
        endpoint,
        started,
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        format!(
            "too many review bytes in flight (--max-inflight-bytes {}): retry",
            st.inflight.capacity()
        ),
    )
}

/// Write the companions of everything the admitted object affects, before answering. The
/// validating phase is the right one: the object is final (every mutation applied), and a
/// failure here can still deny it. On failure the controller has undone the writes.
async fn write_companions(
    c: &CompanionWrites,
    obj: crate::core::Object,
    budget: Duration,
    outcome: &mut review::Outcome,
) {
    let create = outcome.operation == "CREATE";
    if let Err(e) = c.controller.write_admitted(obj, create, budget).await {
        let (code, reason) = match e {
            crate::controller::AdmitError::Write(
                crate::controller::WriteError::Conflict(_)
                | crate::controller::WriteError::Stale(_),
            ) => (409, "Conflict"),
            crate::controller::AdmitError::Busy => (429, "TooManyRequests"),
            _ => (500, "InternalError"),
        };
        let id = format!("{} {}/{}", outcome.kind, outcome.namespace, outcome.name);
        outcome.deny(
            code,
            reason,
            format!(
                "{id}: the companion Istio objects could not be written, nothing was changed: {e}"
            ),
        );
    }
}

fn record(
    st: &AppState,
    endpoint: Endpoint,
    kind: &'static str,
    operation: &'static str,
    verdict: review::Verdict,
    started: Instant,
) {
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            kind,
            operation,
            endpoint: endpoint.as_str(),
            verdict: verdict.as_str(),
        })
        .inc();
    st.metrics
        .duration
        .get_or_create(&EndpointLabels {
            endpoint: endpoint.as_str(),
        })
        .observe(started.elapsed().as_secs_f64());
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let cert = st.cert_loaded.load(Ordering::SeqCst);
    // With companions, the controller's watches count too: it writes nothing before they list.
    let synced = st.catalog.is_synced()
        && st
            .companions
            .as_ref()
            .is_none_or(|c| c.controller.is_ready());
    let stopping = st.shutting_down.load(Ordering::SeqCst);
    if cert && synced && !stopping {
        // Watches that fail (apiserver or etcd down) do not make the webhook unready: it answers
        // from its caches, and says so here and in egress_webhook_watch_connected.
        let failing = st.catalog.health.failing();
        if failing.is_empty() {
            (StatusCode::OK, "ok").into_response()
        } else {
            let kinds: Vec<String> = failing
                .iter()
                .map(|(k, d)| format!("{k} for {}s", d.as_secs()))
                .collect();
            let text = format!(
                "ok: answering from caches; watches failing: {}",
                kinds.join(", ")
            );
            (StatusCode::OK, text).into_response()
        }
    } else {
        let why = format!(
            "certificate loaded: {cert}, catalog synced: {synced}, shutting down: {stopping}"
        );
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    st.metrics.inflight_bytes.set(st.inflight.in_use() as i64);
    for (kind, up) in st.catalog.health.connected() {
        st.metrics
            .watch_connected
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .set(i64::from(up));
    }
    if let Some(outbound) = st.catalog.outbound() {
        st.metrics.set_mesh_outbound_policy(outbound.mode);
    }
    for (kind, n) in st.catalog.counts() {
        st.metrics
            .catalog_objects
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .set(n as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

/// While shutting down, HTTP/1.1 answers carry `Connection: close`, so a client's next request
/// goes out on a new connection: accepted during the shutdown delay, refused after it (a clean
/// connect error). A kept-alive connection would instead be closed as idle when the delay ends,
/// and a request written on it at that moment is lost after it was sent (the apiserver does not
/// retry a POST): observed as `IncompleteMessage` in `tests/admission_lifecycle.rs` before this.
/// HTTP/2 needs nothing: its graceful shutdown sends GOAWAY, which names the last stream served.
pub async fn close_when_draining(
    State(st): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let http1 = req.version() < Version::HTTP_2;
    let mut resp = next.run(req).await;
    if http1 && st.shutting_down.load(Ordering::SeqCst) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The per-review deadline: `--review-timeout`, or less when the apiserver says it gives up
/// sooner (`?timeout=10s` on the URL): we answer before it stops waiting, never after.
fn review_deadline(query: Option<&str>, review_timeout: Duration) -> Duration {
    let from_apiserver = query.and_then(query_timeout).map(|t| t.mul_f64(0.8));
    from_apiserver.map_or(review_timeout, |t| t.min(review_timeout))
}

/// `timeout=10s` (Go duration: the apiserver sends whole seconds) in a query string.
fn query_timeout(query: &str) -> Option<Duration> {
    let v = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("timeout="))?;
    let secs = v.strip_suffix('s')?.parse::<f64>().ok()?;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// A panic in a handler becomes a plain 500 review, never a stack trace on the wire.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a review handler panicked (bug); answered 500");
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        review::rejection(
            500,
            "InternalError",
            "internal error while answering the review".to_string(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// axum boxes each review's future, and the box is filled by copying the whole future:
    /// with the companion writes and the live lookup inline it was 16,000 bytes in a release
    /// build (16.5 KB with axum's wrapper), a copy that callgrind counted as an eighth of a
    /// review's instructions (bench/instructions_ab.py). Those rare awaits are boxed to keep it
    /// small; this says when a change makes it large again. In this test's (debug) build:
    /// 11,424 bytes before, 1,984 after; 1,728 in a release build.
    #[test]
    fn a_review_future_stays_small() {
        let opts = Options::default();
        let st = Arc::new(AppState {
            catalog: Arc::new(Catalog::new(&opts)),
            opts,
            metrics: Arc::new(Metrics::new()),
            cert_loaded: Arc::new(AtomicBool::new(true)),
            shutting_down: Arc::new(AtomicBool::new(false)),
            review_timeout: Duration::from_secs(1),
            max_body_bytes: 1 << 20,
            inflight: ByteBudget::new(1 << 20),
            companions: None,
        });
        let future = validate(State(st), Request::new(axum::body::Body::empty()));
        let size = std::mem::size_of_val(&future);
        assert!(size <= 4 * 1024, "a review's future is {size} bytes");
    }

    #[test]
    fn apiserver_timeouts_are_read() {
        assert_eq!(query_timeout("timeout=10s"), Some(Duration::from_secs(10)));
        assert_eq!(
            query_timeout("a=b&timeout=5s"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(query_timeout("timeout=0s"), None);
        let cap = Duration::from_secs(8);
        assert_eq!(review_deadline(Some("timeout=10s"), cap), cap);
        assert_eq!(
            review_deadline(Some("timeout=5s"), cap),
            Duration::from_secs(4)
        );
        assert_eq!(review_deadline(None, cap), cap);
        assert_eq!(query_timeout("timeout=abc"), None);
        assert_eq!(query_timeout(""), None);
    }
}

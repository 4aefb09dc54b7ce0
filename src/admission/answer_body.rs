//! The body of a review's answer, handed to hyper chunk by chunk while the review's reservation
//! in `--max-inflight-bytes` still counts it.
//!
//! Why: an answer can be megabytes (the defaults patch of an object with thousands of ports).
//! Given to hyper whole, it would be copied into an HTTP/1.1 write buffer or queued on an
//! HTTP/2 stream, outside every bound, and a peer that never reads could park one per
//! connection (or stream). So a large answer keeps its reservation until hyper has taken its
//! last chunk; each chunk is a copy, so that hyper's buffers never pin the whole answer; and
//! one not taken within the deadline is dropped (hyper resets the stream or closes the
//! connection), so that a peer that never reads cannot hold the budget for ever either.

use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use axum::body::{Body, Bytes};

use super::budget::Reservation;
use super::conn_buffers::ANSWER_CHUNK;

struct Pending {
    rest: Bytes,
    _held: Reservation,
}

/// Aborts the deadline's timer when the body goes (sent, or the connection closed).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `bytes` as a body. Up to one chunk: as is (a connection's buffers hold that much,
/// `conn_buffers`) and `held` is released. Larger: `held` (trimmed to the answer's size) goes
/// with it until the last chunk is taken or `deadline` passes. Needs a Tokio runtime.
pub fn answer_body(bytes: Bytes, mut held: Reservation, deadline: Duration) -> Body {
    if bytes.len() <= ANSWER_CHUNK {
        return Body::from(bytes);
    }
    held.shrink_to(bytes.len());
    let state = Arc::new(Mutex::new(Some(Pending {
        rest: bytes,
        _held: held,
    })));
    let timer = tokio::spawn(expire(Arc::downgrade(&state), deadline));
    let guard = AbortOnDrop(timer.abort_handle());
    Body::from_stream(futures::stream::unfold(
        (state, guard),
        |(state, guard)| async move {
            let next = next_chunk(&state)?;
            Some((next, (state, guard)))
        },
    ))
}

async fn expire(state: Weak<Mutex<Option<Pending>>>, deadline: Duration) {
    tokio::time::sleep(deadline).await;
    if let Some(state) = state.upgrade() {
        let dropped = lock(&state).take();
        if dropped.is_some() {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "answer not taken by the client in time: dropped (the client does not read)"
            );
        }
    }
}

fn lock(state: &Mutex<Option<Pending>>) -> std::sync::MutexGuard<'_, Option<Pending>> {
    // A panic while holding this lock cannot leave `Pending` half-changed: recover it.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The next chunk (a copy), the end (`None`, and the reservation goes), or an error once the
/// deadline dropped the answer.
fn next_chunk(state: &Mutex<Option<Pending>>) -> Option<Result<Bytes, std::io::Error>> {
    let mut guard = lock(state);
    let Some(pending) = guard.as_mut() else {
        return Some(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "answer not taken by the client in time",
        )));
    };
    if pending.rest.is_empty() {
        *guard = None;
        return None;
    }
    let n = pending.rest.len().min(ANSWER_CHUNK);
    let chunk = Bytes::copy_from_slice(&pending.rest[..n]);
    pending.rest = pending.rest.slice(n..);
    Some(Ok(chunk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::budget::ByteBudget;

    fn reserved(budget: &ByteBudget, n: usize) -> Reservation {
        let mut r = Reservation::default();
        assert!(budget.try_reserve(&mut r, n));
        r
    }

    #[tokio::test]
    async fn a_large_answer_holds_its_size_until_its_last_chunk_is_taken() {
        let budget = ByteBudget::new(10 << 20);
        let answer: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let body = answer_body(
            Bytes::from(answer.clone()),
            reserved(&budget, 1 << 20),
            Duration::from_secs(60),
        );
        assert_eq!(budget.in_use(), answer.len(), "trimmed to the answer");
        let mut stream = body.into_data_stream();
        let mut got = Vec::new();
        use futures::StreamExt;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= ANSWER_CHUNK);
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, answer);
        assert_eq!(budget.in_use(), 0, "given back at the end");
    }

    #[tokio::test]
    async fn a_small_answer_goes_as_is_and_holds_nothing() {
        let budget = ByteBudget::new(1 << 20);
        let body = answer_body(
            Bytes::from_static(b"{}"),
            reserved(&budget, 1000),
            Duration::from_secs(60),
        );
        assert_eq!(budget.in_use(), 0);
        assert_eq!(axum::body::to_bytes(body, usize::MAX).await.unwrap(), "{}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_not_taken_in_time_is_dropped_with_its_reservation() {
        let budget = ByteBudget::new(10 << 20);
        let body = answer_body(
            Bytes::from(vec![b'x'; 100_000]),
            reserved(&budget, 1 << 20),
            Duration::from_secs(5),
        );
        assert_eq!(budget.in_use(), 100_000);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(
            budget.in_use(),
            0,
            "the budget is back though the body lives"
        );
        let err = axum::body::to_bytes(body, usize::MAX).await.unwrap_err();
        assert!(err.to_string().contains("not taken"), "{err}");
    }
}

//! A global cap on review bytes in flight, across every connection: `--max-inflight-bytes`.
//!
//! Why: `--max-body-bytes` bounds one review and `--max-connections` bounds connections, but
//! their product (7 MiB × 1024 = 7 GiB by default) is no bound at all. Every review reserves its
//! body's bytes here as they arrive and keeps them until its answer is written; a review that
//! would go past the cap is answered 429 with `Retry-After` (see `handlers`), without buffering
//! its body.
//!
//! Worst-case memory (stated in README "Admission server"): what is reserved here is body bytes;
//! each review also holds its parsed JSON tree and typed objects, at most `PARSE_AMPLIFICATION`
//! times its body (measured by `tests/admission_memory.rs` on the shapes that amplify most), so
//! reviews in flight hold at most `max_inflight_bytes × (1 + PARSE_AMPLIFICATION)`. On top of
//! that come the per-connection buffers (hyper, rustls) for at most `--max-connections`
//! connections, and the catalog.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of parsed tree and typed objects per byte of review body, at most. Adversarial JSON
/// (arrays of empty objects: 3 bytes of text become an 80-byte `Value` with `preserve_order`)
/// reaches it; reviews shaped like what the apiserver sends stay under 8.
pub const PARSE_AMPLIFICATION: usize = 32;

/// The default cap: four reviews of the largest size at once, whatever the number of
/// connections. The apiserver's own limit on an object is 3 MiB, so that is at least eight
/// UPDATE reviews of the largest object (object and old object) in parallel, and any number
/// of ordinary (kilobyte) ones.
pub fn default_max_inflight_bytes(max_body_bytes: usize, max_connections: usize) -> usize {
    max_body_bytes
        .saturating_mul(4)
        .min(max_body_bytes.saturating_mul(max_connections.max(1)))
}

#[derive(Clone, Debug)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    capacity: usize,
}

/// Bytes held by one review; returned to the budget when dropped.
#[derive(Debug, Default)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }
}

impl ByteBudget {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        ByteBudget {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes reserved now, by every review in flight.
    pub fn in_use(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    /// Add `bytes` to `held`, or false (and `held` unchanged) when the cap would be passed.
    /// Never waits: a review that does not fit is refused at once, not queued, so that memory
    /// and latency both stay bounded under overload.
    pub fn try_reserve(&self, held: &mut Reservation, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(bytes) else {
            return false;
        };
        match self.permits.clone().try_acquire_many_owned(n) {
            Ok(p) => {
                match &mut held.permit {
                    Some(mine) => mine.merge(p),
                    None => held.permit = Some(p),
                }
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_add_up_to_the_cap_and_return_when_dropped() {
        let budget = ByteBudget::new(100);
        let mut a = Reservation::default();
        let mut b = Reservation::default();
        assert!(budget.try_reserve(&mut a, 60));
        assert!(budget.try_reserve(&mut a, 30));
        assert_eq!(a.bytes(), 90);
        assert!(!budget.try_reserve(&mut b, 11), "90 + 11 > 100");
        assert_eq!(b.bytes(), 0, "a refusal reserves nothing");
        assert!(budget.try_reserve(&mut b, 10));
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert_eq!(budget.in_use(), 10);
        assert!(budget.try_reserve(&mut b, 90));
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn the_default_is_four_bodies_unless_fewer_connections() {
        assert_eq!(default_max_inflight_bytes(7 << 20, 1024), 28 << 20);
        assert_eq!(default_max_inflight_bytes(7 << 20, 2), 14 << 20);
        assert_eq!(default_max_inflight_bytes(usize::MAX, 1024), usize::MAX);
        assert!(!ByteBudget::new(10).try_reserve(&mut Reservation::default(), usize::MAX));
    }
}

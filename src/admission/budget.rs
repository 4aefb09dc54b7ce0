//! A global cap on the memory of reviews in flight, across every connection:
//! `--max-inflight-bytes`.
//!
//! Why: `--max-body-bytes` bounds one body and `--max-connections` bounds connections, but their
//! product (7 MiB × 1024 = 7 GiB by default) is no bound at all, and a review costs more than
//! its body: its parsed tree, and the typed, defaulted and validated objects with their
//! findings, grow with its number of JSON values (`bounded`). So every review reserves, before
//! it holds the memory: its body bytes as they arrive, then `parse_cost` before parsing, then
//! `decide_cost` of the values found before deciding; it keeps them until its answer is built.
//! A review that does not fit is answered 429 with `Retry-After` (`handlers`), without
//! buffering more of its body. The costs are upper bounds measured on the shapes that amplify
//! most (tests/admission_memory.rs holds the code to them).
//!
//! Worst case (README "Bounded memory"): reviews in flight hold at most `--max-inflight-bytes`;
//! add the per-connection buffers of at most `--max-connections` connections, and the catalog.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::bounded::{MAX_OBJECT_VALUES, MAX_PARSED_VALUES};

/// Heap bytes of parsed JSON per value at the peak of parsing, beyond the text of its strings:
/// an 80-byte `Value`, and arrays that grow by doubling (old and new buffer live at once while
/// one is copied) or maps with their index. Measured: 377 for `[0,0,...]` and `[{},{},...]`.
pub const TREE_BYTES_PER_VALUE: usize = 400;

/// Heap bytes of parsed JSON per byte of body, at most: `[0,0,...]` has a value every 2 bytes.
pub const TREE_BYTES_PER_BODY_BYTE: usize = TREE_BYTES_PER_VALUE / 2;

/// Heap bytes per JSON value of a Gloo object to type, default, validate and report on it
/// (an empty port gets defaulted fields and findings with messages).
pub const DECIDE_BYTES_PER_VALUE: usize = 2048;

/// What parsing a body of `len` bytes may hold: the objects' text, kept (`bounded`), at most
/// `len`; their trees, when parsed: their strings, and `TREE_BYTES_PER_VALUE` per value, of
/// which a body has at most one every two bytes and a review at most twice
/// `MAX_PARSED_VALUES` (object and old object; the rest of a review is small typed fields).
pub fn parse_cost(len: usize) -> usize {
    len.saturating_add(
        len.saturating_mul(TREE_BYTES_PER_BODY_BYTE)
            .min(len.saturating_add(2 * MAX_PARSED_VALUES * TREE_BYTES_PER_VALUE)),
    )
}

/// What deciding on objects of `values` JSON values may hold.
pub fn decide_cost(values: usize) -> usize {
    values.saturating_mul(DECIDE_BYTES_PER_VALUE)
}

/// The most one review can reserve: the largest body, parsed, with two objects at the cap.
pub fn max_review_cost(max_body_bytes: usize) -> usize {
    max_body_bytes
        .saturating_add(parse_cost(max_body_bytes))
        .saturating_add(decide_cost(2 * MAX_OBJECT_VALUES))
}

/// The default cap: two of the largest reviews at once (a smaller cap would refuse the
/// largest for ever), which is hundreds of ordinary ones, whatever the number of connections.
pub fn default_max_inflight_bytes(max_body_bytes: usize) -> usize {
    max_review_cost(max_body_bytes).saturating_mul(2)
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

    /// Give back what is held beyond `bytes` (once a review is decided, only its answer is
    /// left to hold).
    pub fn shrink_to(&mut self, bytes: usize) {
        if let Some(p) = &mut self.permit {
            let extra = p.num_permits().saturating_sub(bytes);
            drop(p.split(extra));
            if p.num_permits() == 0 {
                self.permit = None;
            }
        }
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
        b.shrink_to(40);
        assert_eq!((b.bytes(), budget.in_use()), (40, 40));
        b.shrink_to(100);
        assert_eq!(b.bytes(), 40, "shrinking never grows");
        b.shrink_to(0);
        assert_eq!((b.bytes(), budget.in_use()), (0, 0));
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn the_default_holds_two_of_the_largest_reviews() {
        let max = max_review_cost(7 << 20);
        // 7 MiB body + 7 MiB of objects' text + 7 MiB of strings + 20 MB of tree + 41 MB to
        // decide two objects at the cap.
        assert_eq!(max, (7 << 20) * 3 + 2 * 25_000 * 400 + 2 * 10_000 * 2048);
        assert_eq!(default_max_inflight_bytes(7 << 20), 2 * max);
        assert_eq!(
            parse_cost(1000),
            201_000,
            "small bodies: their text and 200 bytes per byte"
        );
        assert_eq!(default_max_inflight_bytes(usize::MAX), usize::MAX);
        assert!(!ByteBudget::new(10).try_reserve(&mut Reservation::default(), usize::MAX));
    }
}

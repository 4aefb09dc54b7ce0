//! [`FreshAfter`]: one expensive read (a full list) shared by the callers who can use it.
//!
//! Why our own: what is wanted is not a cache with a time to live (a stale answer is exactly what
//! a live lookup must not give) but "a read sent after I asked": such a read sees everything that
//! existed when the caller came. Callers that arrive while one read is in flight wait for it to
//! end and share the next; so a burst of callers costs two reads at most, and a steady stream
//! one read at a time, back to back, never one each.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

pub struct FreshAfter<T> {
    last: tokio::sync::Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> Default for FreshAfter<T> {
    fn default() -> Self {
        FreshAfter {
            last: tokio::sync::Mutex::new(None),
        }
    }
}

impl<T> FreshAfter<T> {
    /// The last read if it was sent at or after `asked`, else a new one by `read` (one at a
    /// time). A failed read is not kept.
    pub async fn get<E, Fut>(&self, asked: Instant, read: impl FnOnce() -> Fut) -> Result<Arc<T>, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let mut last = self.last.lock().await;
        if let Some((sent, value)) = last.as_ref()
            && *sent >= asked
        {
            return Ok(value.clone());
        }
        let sent = Instant::now();
        let value = Arc::new(read().await?);
        *last = Some((sent, value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A read that takes 30 ms and returns its own sequence number and when it was sent.
    async fn slow(reads: &AtomicUsize) -> Result<(usize, Instant), String> {
        let sent = Instant::now();
        let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(30)).await;
        Ok((n, sent))
    }

    #[tokio::test]
    async fn a_burst_shares_at_most_two_reads_each_sent_after_its_caller_asked() {
        let shared = Arc::new(FreshAfter::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let mut callers = Vec::new();
        for i in 0..20 {
            let (shared, reads) = (shared.clone(), reads.clone());
            callers.push(tokio::spawn(async move {
                // Spread the arrivals over the first read.
                tokio::time::sleep(Duration::from_millis(i)).await;
                let asked = Instant::now();
                let (_, sent) = *shared.get(asked, || slow(&reads)).await.unwrap();
                assert!(sent >= asked, "caller {i} got a read sent before it asked");
            }));
        }
        for c in callers {
            c.await.unwrap();
        }
        let n = reads.load(Ordering::SeqCst);
        assert!((1..=2).contains(&n), "{n} reads for 20 callers");
        // A caller after the last read gets a new one.
        let (m, _) = *shared.get(Instant::now(), || slow(&reads)).await.unwrap();
        assert_eq!(m, n + 1);
    }

    #[tokio::test]
    async fn a_failed_read_is_not_reused() {
        let shared: FreshAfter<u32> = FreshAfter::default();
        let asked = Instant::now();
        let e = shared.get(asked, || async { Err::<u32, _>("down") }).await;
        assert_eq!(e.unwrap_err(), "down");
        let v = shared
            .get(asked, || async { Ok::<_, &str>(7) })
            .await
            .unwrap();
        assert_eq!(*v, 7);
    }
}

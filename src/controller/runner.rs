//! The work queue: kube-runtime's `scheduler` (deduplicates a parent scheduled twice, delays to
//! a given instant, holds a parent back while its reconcile runs) and a loop that runs up to
//! `concurrency` reconciles at once, with per-parent exponential backoff after a failure.
//!
//! Why not `kube::runtime::Controller`/`applier`: they key the queue by one resource type and
//! skip a key that is missing from their store (`ObjectNotFound`), but our parents are three
//! kinds and a *deleted* parent is exactly the one whose companions must go. The runner that
//! `applier` uses is private to kube-runtime, so the loop below is the small part we write.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, stream::FuturesUnordered};
use kube::runtime::scheduler::{ScheduleRequest, scheduler};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::core::expand::ParentRef;

/// How a reconcile ended.
pub enum Outcome {
    /// Done; nothing more unless something changes.
    Done,
    /// Look again after this long (a change we must not undo yet, an ordering wait).
    Again(Duration),
    /// Failed; retried with this parent's backoff (`min`: at least this long).
    Failed { min: Duration },
}

/// Per-parent backoff: 0.5 s, doubling, at most 5 minutes; reset by a success.
#[derive(Default)]
struct Backoff(HashMap<ParentRef, Duration>);

impl Backoff {
    fn next(&mut self, p: &ParentRef, min: Duration) -> Duration {
        let d = self
            .0
            .get(p)
            .map_or(Duration::from_millis(500), |d| {
                (*d * 2).min(Duration::from_secs(300))
            })
            .max(min);
        self.0.insert(p.clone(), d);
        d
    }

    fn reset(&mut self, p: &ParentRef) {
        self.0.remove(p);
    }
}

/// Where parents are scheduled: a parent and how long from now.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::UnboundedSender<(ParentRef, Duration)>,
    queued: Arc<Mutex<HashSet<ParentRef>>>,
}

impl Queue {
    pub fn new() -> (Queue, mpsc::UnboundedReceiver<(ParentRef, Duration)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Queue {
                tx,
                queued: Arc::default(),
            },
            rx,
        )
    }

    pub fn sender(&self) -> mpsc::UnboundedSender<(ParentRef, Duration)> {
        self.tx.clone()
    }

    pub fn schedule(&self, p: ParentRef, after: Duration) {
        let _ = self.tx.send((p, after));
    }

    /// Parents scheduled and not yet started.
    pub fn depth(&self) -> usize {
        self.queued.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Run the queue until its senders are gone. `ready` gates the first reconcile; `reconcile`
/// gets one parent; `done` hears of every finished one.
pub async fn run<R, F>(
    queue: Queue,
    rx: mpsc::UnboundedReceiver<(ParentRef, Duration)>,
    concurrency: usize,
    ready: impl std::future::Future<Output = ()>,
    reconcile: R,
    done: impl Fn(&ParentRef, &Outcome),
) where
    R: Fn(ParentRef) -> F,
    F: std::future::Future<Output = Outcome>,
{
    let queued = queue.queued.clone();
    let requests = futures::stream::unfold(rx, |mut rx| async move {
        let (p, after) = rx.recv().await?;
        Some(((p, after), rx))
    })
    .map({
        let queued = queued.clone();
        move |(p, after)| {
            queued
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(p.clone());
            ScheduleRequest {
                message: p,
                run_at: Instant::now() + after,
            }
        }
    });
    let mut sched = pin!(scheduler(requests));
    // Nothing is written before every watch has listed once.
    ready.await;
    let in_flight: Mutex<HashSet<ParentRef>> = Mutex::default();
    let mut running = FuturesUnordered::new();
    let mut backoff = Backoff::default();
    loop {
        let next = {
            let can_take = |p: &ParentRef| {
                let f = in_flight.lock().unwrap_or_else(|e| e.into_inner());
                f.len() < concurrency && !f.contains(p)
            };
            let mut ready = sched.as_mut().hold_unless(can_take);
            tokio::select! {
                p = ready.next() => Ok(p),
                Some(finished) = running.next(), if !running.is_empty() => Err(finished),
            }
        };
        match next {
            Ok(None) => break,
            Ok(Some(p)) => {
                queued.lock().unwrap_or_else(|e| e.into_inner()).remove(&p);
                in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(p.clone());
                let fut = reconcile(p.clone());
                running.push(async move { (p, fut.await) });
            }
            Err((p, outcome)) => {
                in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&p);
                let again = match &outcome {
                    Outcome::Done => {
                        backoff.reset(&p);
                        None
                    }
                    Outcome::Again(d) => {
                        backoff.reset(&p);
                        Some(*d)
                    }
                    Outcome::Failed { min } => Some(backoff.next(&p, *min)),
                };
                done(&p, &outcome);
                if let Some(d) = again {
                    queue.schedule(p, d);
                }
            }
        }
    }
    // Let the reconciles that run finish (a write half-sent is better finished).
    while running.next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::object::GlooKind;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn p(name: &str) -> ParentRef {
        ParentRef::new(GlooKind::ExternalService, "ns", name)
    }

    #[tokio::test(start_paused = true)]
    async fn a_parent_runs_once_per_burst_never_twice_at_once_and_backs_off_alone() {
        let (queue, rx) = Queue::new();
        let runs: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let active = Arc::new(AtomicUsize::new(0));
        let fails_left = Arc::new(AtomicUsize::new(2));
        let (q, r, a, f) = (
            queue.clone(),
            runs.clone(),
            active.clone(),
            fails_left.clone(),
        );
        let task = tokio::spawn(run(
            q,
            rx,
            4,
            async {},
            move |parent: ParentRef| {
                let (r, a, f) = (r.clone(), a.clone(), f.clone());
                async move {
                    assert_eq!(a.fetch_add(1, Ordering::SeqCst), 0, "two at once");
                    r.lock()
                        .unwrap()
                        .push((parent.name.clone(), Instant::now()));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    a.fetch_sub(1, Ordering::SeqCst);
                    if parent.name == "bad" && f.fetch_sub(1, Ordering::SeqCst) > 0 {
                        Outcome::Failed {
                            min: Duration::ZERO,
                        }
                    } else {
                        Outcome::Done
                    }
                }
            },
            |_, _| {},
        ));
        let start = Instant::now();
        for _ in 0..5 {
            queue.schedule(p("a"), Duration::ZERO);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(runs.lock().unwrap().len(), 1, "a burst is one run");
        // Scheduled again, and again while that run is under way: one more run after it, not
        // beside it (the `active` check), and not one per request.
        queue.schedule(p("a"), Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(1)).await;
        queue.schedule(p("a"), Duration::ZERO);
        queue.schedule(p("a"), Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let times: Vec<Instant> = runs.lock().unwrap().iter().map(|(_, t)| *t).collect();
        assert_eq!(times.len(), 3, "{times:?}");
        assert!(
            times[2] - times[1] >= Duration::from_millis(10),
            "after, not beside"
        );
        runs.lock().unwrap().clear();
        queue.schedule(p("bad"), Duration::ZERO);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let bad: Vec<Duration> = runs
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| t.duration_since(start))
            .collect();
        assert_eq!(bad.len(), 3, "two failures, one success: {bad:?}");
        assert!(bad[2] - bad[1] > bad[1] - bad[0], "backoff grows: {bad:?}");
        assert_eq!(queue.depth(), 0);
        drop(queue);
        task.abort();
    }
}

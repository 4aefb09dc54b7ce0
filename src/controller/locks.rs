//! One lock per parent, shared by admission and the controller: a parent's companions are never
//! written by two paths of this process at once. Admission and a reconcile alike hold one
//! parent's lock at a time, for that parent's write only (so they cannot deadlock, and parallel
//! admissions that share a parent queue only for its write); `lock_all` takes several in sorted
//! order for callers that need more.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::core::expand::ParentRef;

#[derive(Default)]
pub struct ParentLocks {
    locks: Mutex<HashMap<ParentRef, Arc<AsyncMutex<()>>>>,
}

/// Held locks; dropping releases them and forgets locks nobody else holds or waits for.
pub struct Held<'a> {
    owner: &'a ParentLocks,
    guards: Vec<(ParentRef, OwnedMutexGuard<()>)>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let released: Vec<ParentRef> = self.guards.drain(..).map(|(p, _)| p).collect();
        let mut map = self.owner.locks.lock().unwrap_or_else(|e| e.into_inner());
        for p in released {
            // Only the map holds it now: no holder, no waiter.
            if map.get(&p).is_some_and(|l| Arc::strong_count(l) == 1) {
                map.remove(&p);
            }
        }
    }
}

impl ParentLocks {
    /// Lock every parent of `parents`, in order.
    pub async fn lock_all(&self, parents: &BTreeSet<ParentRef>) -> Held<'_> {
        let mut guards = Vec::with_capacity(parents.len());
        for p in parents {
            let lock = {
                let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
                map.entry(p.clone()).or_default().clone()
            };
            guards.push((p.clone(), lock.lock_owned().await));
        }
        Held {
            owner: self,
            guards,
        }
    }

    /// Locks that exist now (held or waited for).
    pub fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::object::GlooKind;
    use std::time::Duration;

    fn p(name: &str) -> ParentRef {
        ParentRef::new(GlooKind::ExternalService, "ns", name)
    }

    #[tokio::test]
    async fn a_held_parent_waits_and_locks_are_forgotten_after_use() {
        let locks = Arc::new(ParentLocks::default());
        let held = locks.lock_all(&[p("a"), p("b")].into()).await;
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move {
            let _g = l2.lock_all(&[p("b")].into()).await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "b is held");
        // Another parent is not blocked.
        drop(locks.lock_all(&[p("c")].into()).await);
        drop(held);
        waiter.await.unwrap();
        assert!(locks.is_empty(), "locks left behind");
    }
}

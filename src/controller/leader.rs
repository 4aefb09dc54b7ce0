//! One replica reconciles: leader election on a `coordination.k8s.io` Lease with
//! kube-lease-manager (server-side apply on the Lease; a lease not renewed within its duration is
//! taken over). Every replica admits, leader or not. A replica that stops gracefully releases
//! the Lease, so the next one takes over at once instead of after the duration.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The Lease's name, in the namespace the controller is given.
pub const LEASE_NAME: &str = "egress-webhook-controller";
/// A leader that stops renewing is replaced after this many seconds (takeover within 15 s).
pub const LEASE_SECONDS: u64 = 10;
/// The leader renews this long before the lease would run out.
pub const RENEW_GRACE_SECONDS: u64 = 4;

/// Where to hold the Lease, and as whom.
#[derive(Clone, Debug)]
pub struct Election {
    pub namespace: String,
    pub identity: String,
}

/// This replica's identity: host name and process id (unique among running replicas).
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "egress-webhook".to_string());
    format!("{host}-{}", std::process::id())
}

/// The running election; `stop` releases the Lease.
pub struct Elected {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Elected {
    /// Give the Lease up (if held) and end the election, within `budget`.
    pub async fn stop(mut self, budget: Duration) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(budget, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

/// Campaign for the Lease; `leader` follows this replica's state and `changed(true)` is called
/// each time it becomes the leader.
pub fn campaign(
    client: Client,
    election: Election,
    leader: Arc<AtomicBool>,
    changed: impl Fn(bool) + Send + 'static,
) -> Elected {
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut retry = Duration::from_millis(500);
        loop {
            let built = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
                .with_namespace(&election.namespace)
                .with_identity(&election.identity)
                .with_duration(LEASE_SECONDS)
                .with_grace(RENEW_GRACE_SECONDS)
                .build()
                .await;
            let manager = match built {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, namespace = %election.namespace, lease = LEASE_NAME, "cannot use the controller Lease; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(retry) => {}
                        _ = &mut stop_rx => return,
                    }
                    retry = (retry * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            // A Lease that could be used once is retried quickly again after an outage: the
            // apiserver is back when the build succeeds, and every second without a leader is a
            // second without repairs.
            retry = Duration::from_millis(500);
            let (mut state, handle) = manager.watch().await;
            loop {
                let now = *state.borrow_and_update();
                if leader.swap(now, Ordering::SeqCst) != now {
                    tracing::info!(identity = %election.identity, leader = now, "controller leadership changed");
                    changed(now);
                }
                tokio::select! {
                    r = state.changed() => if r.is_err() { break },
                    _ = &mut stop_rx => {
                        // Dropping the receiver makes the manager release the Lease.
                        drop(state);
                        leader.store(false, Ordering::SeqCst);
                        changed(false);
                        let _ = handle.await;
                        return;
                    }
                }
            }
            leader.store(false, Ordering::SeqCst);
            changed(false);
            let _ = handle.await;
        }
    });
    Elected {
        stop: Some(stop_tx),
        task,
    }
}

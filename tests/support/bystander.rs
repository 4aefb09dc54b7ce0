//! Valid reviews sent in the background while a test attacks the server (issue 13, item 2):
//! how many were sent, and every answer that was not a correct one. A hostile-input test
//! asserts that none failed.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use super::server::{Answer, post, url, valid_review};

pub struct Bystander {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

/// The correct answer to the valid review `id`: 200, its uid, allowed.
pub fn answers_allowed(a: &Answer, id: &str) -> bool {
    a.status == 200
        && a.json
            .as_ref()
            .is_some_and(|j| j["response"]["uid"] == id && j["response"]["allowed"] == true)
}

impl Bystander {
    /// Valid reviews one after another, `pause` apart, over `clients` in turn (each keeps its
    /// connection alive, as the apiserver's pool does) and at `endpoints` in turn, until
    /// [`Bystander::finish`]; at least one is sent.
    pub fn start(
        addr: SocketAddr,
        clients: Vec<reqwest::Client>,
        endpoints: &'static [&'static str],
        pause: Duration,
    ) -> Self {
        assert!(!clients.is_empty() && !endpoints.is_empty());
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let (mut sent, mut failed) = (0usize, Vec::new());
                while !stop.load(Ordering::SeqCst) || sent == 0 {
                    let endpoint = endpoints[sent % endpoints.len()];
                    let c = &clients[(sent / endpoints.len()) % clients.len()];
                    let (id, r) = valid_review("bystander");
                    let url = url(addr, &format!("/{endpoint}?timeout=10s"));
                    sent += 1;
                    match post(c, &url, serde_json::to_vec(&r).unwrap()).await {
                        Ok(a) if answers_allowed(&a, &id) => {}
                        Ok(a) => failed.push(format!("HTTP {}: {}", a.status, a.text)),
                        Err(e) => failed.push(format!("{e:?}")),
                    }
                    tokio::time::sleep(pause).await;
                }
                (sent, failed)
            }
        });
        Bystander { stop, task }
    }

    /// Stop; how many were sent, asserting that every one was answered correctly.
    pub async fn finish(self, what: &str) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        let (sent, failed) = self.task.await.unwrap();
        assert!(
            failed.is_empty(),
            "{what}: {} of {sent} valid reviews failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(3)]
        );
        sent
    }
}

//! Traffic while the server changes under it (the reload tests): searches and downloads in a loop, every
//! answer checked whole, until told to stop.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;

/// How long the clients may take for the requests `more` waits for.
const WAIT: Duration = Duration::from_secs(20);

/// Three clients: one searching `search`, two downloading `{address}/studies/{uid}` (which must come whole,
/// `instances` parts), each counting its requests and noting every one that was not a whole 200.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<String>>>,
    clients: Vec<JoinHandle<()>>,
}

impl Traffic {
    pub fn start(server: &Arc<Server>, search: &str, (address, uid): (&str, &str), instances: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
        let clients = (0..3)
            .map(|n| {
                let (server, stop, done, failed) =
                    (Arc::clone(server), Arc::clone(&stop), Arc::clone(&done), Arc::clone(&failed));
                let (search, download) = (search.to_string(), format!("{address}/studies/{uid}"));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let (what, reply) =
                            if n == 0 { ("search", server.get(&search)) } else { ("download", get(&download, &[])) };
                        let whole = reply.status == 200
                            && (what == "search"
                                || parse_multipart(reply.header_or_empty("content-type"), &reply.body)
                                    .is_ok_and(|parts| parts.len() == instances));
                        if !whole {
                            failed.lock().unwrap().push(format!("{what}: {} {}", reply.status, reply.text()));
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let traffic = Traffic { stop, done, failed, clients };
        traffic.more(10);
        traffic
    }

    /// Waits until `n` more requests were answered.
    pub fn more(&self, n: usize) {
        let target = self.done.load(Ordering::SeqCst) + n;
        let deadline = Instant::now() + WAIT;
        while self.done.load(Ordering::SeqCst) < target {
            assert!(Instant::now() < deadline, "the clients made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the clients and checks that no request failed.
    pub fn stop_and_check(self) {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.join().unwrap();
        }
        let failed = self.failed.lock().unwrap();
        let done = self.done.load(Ordering::SeqCst);
        assert!(failed.is_empty(), "{} of {done} requests failed: {:?}", failed.len(), &failed[..]);
    }
}

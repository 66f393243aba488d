//! Accepting connections so that it never stops while the process serves. tiny_http accepts on a thread of
//! its own, and that thread ends for good on the first accept error (EMFILE when descriptors run out) or
//! dies on a failed `try_clone` of a new connection. Each tiny_http server here is a *generation* over a
//! duplicate of the same listening socket; a watchdog notices a generation that stopped accepting and, once
//! descriptors are free again, starts the next one on the same socket. The old generation's connections
//! keep being served: one of its pumps goes on taking their requests.
//!
//! Each generation has one pump more than there are workers. A pump that takes a request nobody waits
//! before serves it itself, when a place in service is free (`queue`) and another pump still waits on
//! tiny_http, so that a request usually goes from tiny_http's thread to the one that answers it in one
//! handoff; anything else it queues for the workers.
//!
//! Invariants: the listening socket is never closed while serving; a new generation is started only when
//! descriptors are free (so an exhausted process does not spin); accept failures are logged at most once a
//! second with a count; past `MAX_GENERATIONS` the listener is reported lost and the process exits non-zero
//! for its supervisor to restart it.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::body::{Arrival, Content, arrival};
use super::conns::Watch;
use super::pool::Pool;
use super::queue::{Job, Peer, Pushed, Queue};
use crate::sys::limits::open_descriptors;
use crate::sys::sockets::accept_queue;

/// How many tiny_http servers may be started over the life of the process before the listener counts as
/// lost. Each one that stopped accepting keeps one pump for its remaining connections.
pub const MAX_GENERATIONS: usize = 64;

/// How often the watchdog looks at the accept queue, and for how many looks in a row connections must wait
/// unaccepted before a generation counts as stopped.
const LOOK_EVERY: Duration = Duration::from_millis(100);
const LOOKS: u32 = 10;

/// Descriptors kept free before a new generation starts: it needs a few for itself and its first clients.
const HEADROOM: usize = 32;

/// A request as the queue holds it: tiny_http's, with its body when the site takes bodies.
pub struct Incoming {
    pub raw: tiny_http::Request,
    pub content: Content,
}

/// Serves one request claimed by a pump.
pub type Serve = Box<dyn Fn(Job<Incoming>) + Send + Sync>;

/// One generation: its tiny_http server and how many of its pumps are still running.
struct Generation {
    server: Arc<tiny_http::Server>,
    pumps: AtomicUsize,
    /// Pumps waiting for a request now, in tiny_http or for their turn to ask it.
    receiving: AtomicUsize,
    /// Held from asking tiny_http for a request until it is queued or claimed, so that the requests of a
    /// connection reach the queue in the order they came (two pumps could otherwise swap them, and the
    /// second would then wait forever on tiny_http's writer order for the first).
    turn: Mutex<()>,
    /// Whether its accept loop was reported ended.
    ended: AtomicBool,
}

pub struct Listener {
    socket: TcpListener,
    soft_limit: u64,
    queue: Arc<Queue<Incoming>>,
    watch: Arc<Watch>,
    /// Where bodies still on their way are read, for a site that takes bodies; `None`: bodies are not read.
    bodies: Option<Arc<Pool>>,
    servers: Mutex<Vec<Arc<Generation>>>,
    /// Pumps per generation.
    pumps: usize,
    /// How a pump serves what it claims; until it is set, pumps only queue.
    serve: std::sync::OnceLock<Serve>,
    /// Set by a pump when its tiny_http server reported an accept error.
    failed: AtomicBool,
    stopping: AtomicBool,
    /// Accept loops that stopped since the last log line about them.
    failures: AtomicU64,
    /// Looks at which a new accept loop was due but descriptors were short, since the last log line.
    short: AtomicU64,
    generations: AtomicUsize,
}

impl Listener {
    /// Starts the first generation on `socket`, whose duplicates every generation accepts on, with `pumps`
    /// pumps; request bodies are read (on `bodies` when still on their way) when `bodies` is given.
    pub fn start(
        socket: TcpListener,
        soft_limit: u64,
        queue: Arc<Queue<Incoming>>,
        watch: Arc<Watch>,
        pumps: usize,
        bodies: Option<Arc<Pool>>,
    ) -> Result<Arc<Listener>, String> {
        let listener = Arc::new(Listener {
            socket,
            soft_limit,
            queue,
            watch,
            bodies,
            servers: Mutex::new(Vec::new()),
            pumps: pumps.max(1),
            serve: std::sync::OnceLock::new(),
            failed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            short: AtomicU64::new(0),
            generations: AtomicUsize::new(0),
        });
        listener.start_generation()?;
        Ok(listener)
    }

    /// From now on pumps serve the requests they claim with `serve`.
    pub fn serve_with(&self, serve: Serve) {
        let _ = self.serve.set(serve);
    }

    /// How many tiny_http servers have been started.
    pub fn generations(&self) -> usize {
        self.generations.load(Ordering::SeqCst)
    }

    fn start_generation(self: &Arc<Self>) -> Result<(), String> {
        let n = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        if n > MAX_GENERATIONS {
            return Err(format!("{MAX_GENERATIONS} accept loops have stopped; the listener is lost"));
        }
        let dup = self.socket.try_clone().map_err(|e| format!("cannot duplicate the listening socket: {e}"))?;
        let server = Arc::new(
            tiny_http::Server::from_listener(dup, None).map_err(|e| format!("cannot start an accept loop: {e}"))?,
        );
        let generation = Arc::new(Generation {
            server,
            pumps: AtomicUsize::new(self.pumps),
            receiving: AtomicUsize::new(0),
            turn: Mutex::new(()),
            ended: AtomicBool::new(false),
        });
        if let Ok(mut servers) = self.servers.lock() {
            servers.push(Arc::clone(&generation));
        }
        for p in 0..self.pumps {
            let (me, mine) = (Arc::clone(self), Arc::clone(&generation));
            let spawned = std::thread::Builder::new().name(format!("pump-{n}-{p}")).spawn(move || me.pump(&mine));
            if let Err(e) = spawned {
                if p == 0 {
                    return Err(format!("cannot start a pump thread: {e}"));
                }
                generation.pumps.fetch_sub(self.pumps - p, Ordering::SeqCst);
                log::warn!("accept loop {n} runs with {p} pumps: cannot start more ({e})");
                break;
            }
        }
        if n > 1 {
            log::warn!("accepting again: accept loop {n} started on the same socket");
        }
        Ok(())
    }

    /// Takes the requests of one generation's connections, serving or queueing each, for as long as the
    /// process serves (or, once the generation's accept loop ended, until its other pumps have gone).
    fn pump(self: &Arc<Self>, generation: &Generation) {
        let server = &generation.server;
        loop {
            generation.receiving.fetch_add(1, Ordering::SeqCst);
            let turn = generation.turn.lock().unwrap_or_else(|e| e.into_inner());
            let received = server.recv();
            // Serving a request here leaves tiny_http to the other pumps: only when one is still waiting, so
            // that requests keep being taken (and refused when too many wait) while pumps serve.
            let others = generation.receiving.fetch_sub(1, Ordering::SeqCst) - 1;
            match received {
                Ok(mut request) => {
                    let peer: Peer = request.remote_addr().copied();
                    let content = match &self.bodies {
                        None => Content::Read(Vec::new()),
                        Some(pool) => match arrival(&mut request) {
                            Arrival::Now(content) => content,
                            Arrival::Later => {
                                drop(turn);
                                self.read_body(pool, peer, request);
                                continue;
                            }
                        },
                    };
                    let claim = others > 0 && self.serve.get().is_some();
                    let pushed = self.enqueue(peer, Incoming { raw: request, content }, claim);
                    drop(turn);
                    if let Some(job) = pushed {
                        if let Some(serve) = self.serve.get() {
                            serve(job);
                        }
                    }
                }
                Err(_) if self.stopping.load(Ordering::SeqCst) => return,
                Err(e) => {
                    drop(turn);
                    // tiny_http reports the accept error that ended its loop once, to one pump; that pump wakes
                    // the others, which end, all but the last, which stays for the connections' requests.
                    if !generation.ended.swap(true, Ordering::SeqCst) {
                        log::debug!("an accept loop ended: {e}");
                        self.failures.fetch_add(1, Ordering::SeqCst);
                        self.failed.store(true, Ordering::SeqCst);
                        for _ in 1..generation.pumps.load(Ordering::SeqCst) {
                            server.unblock();
                        }
                    }
                    let left =
                        generation.pumps.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n > 1).then(|| n - 1));
                    if left.is_ok() {
                        return;
                    }
                }
            }
        }
    }

    /// A request has arrived whole: the watch counts it in flight, and it is queued, or claimed when
    /// `claim` and nothing waits (then the caller serves it). A connection past its share of the queue is
    /// closed.
    fn enqueue(&self, peer: Peer, incoming: Incoming, claim: bool) -> Option<Job<Incoming>> {
        self.watch.started(peer.as_ref());
        match self.queue.push(peer, incoming, claim) {
            Pushed::Queued => None,
            Pushed::Claimed(job) => Some(job),
            Pushed::Overflow(incoming) => {
                // A pipelined burst past its share: close the connection. The request is disposed of without
                // tiny_http's blocking 500: its writer is taken and dropped unused.
                log::warn!("closing a connection from {peer:?} that queued more than its share of requests");
                self.watch.finished(peer.as_ref(), false);
                drop(incoming.raw.into_writer());
                None
            }
        }
    }

    /// Reads a body still on its way on a pool thread, then queues its request. Until then the request is
    /// not in flight, so the watch closes a connection that does not send its body within the read timeout,
    /// and the read ends.
    fn read_body(self: &Arc<Self>, pool: &Arc<Pool>, peer: Peer, mut request: tiny_http::Request) {
        let me = Arc::clone(self);
        let task = Box::new(move || {
            let content = super::body::read(&mut request);
            me.enqueue(peer, Incoming { raw: request, content }, false);
        });
        if let Err((_, e)) = pool.run(task) {
            // The task, and the request in it, are dropped: the connection gets tiny_http's 500.
            log::warn!("cannot start a thread to read a request body from {peer:?}: {e}");
        }
    }

    /// Watches the accept loop until the process stops or the listener is lost; returns the loss.
    pub fn watchdog(self: &Arc<Self>) -> String {
        let mut waiting_looks = 0u32;
        let mut last_log = Instant::now();
        loop {
            std::thread::sleep(LOOK_EVERY);
            if self.stopping.load(Ordering::SeqCst) {
                return String::new();
            }
            let backlog = accept_queue(&self.socket).map_or(0, |(waiting, _)| waiting);
            waiting_looks = if backlog > 0 { waiting_looks + 1 } else { 0 };
            let stopped = self.failed.load(Ordering::SeqCst) || waiting_looks >= LOOKS;
            if stopped {
                let used = open_descriptors();
                if (used as u64) + (HEADROOM as u64) < self.soft_limit {
                    self.failed.store(false, Ordering::SeqCst);
                    waiting_looks = 0;
                    if let Err(e) = self.start_generation() {
                        return e;
                    }
                } else {
                    self.short.fetch_add(1, Ordering::SeqCst);
                }
            }
            let (failures, short) = (self.failures.load(Ordering::SeqCst), self.short.load(Ordering::SeqCst));
            if (failures > 0 || short > 0) && last_log.elapsed() >= Duration::from_secs(1) {
                log::warn!(
                    "not accepting: {failures} accept loops ended, {} ms waiting for descriptors in the last \
                     second ({} of {} in use); accepting again once {HEADROOM} are free",
                    short * LOOK_EVERY.as_millis() as u64,
                    open_descriptors(),
                    self.soft_limit
                );
                self.failures.store(0, Ordering::SeqCst);
                self.short.store(0, Ordering::SeqCst);
                last_log = Instant::now();
            }
        }
    }

    /// Stops the pumps: no request is taken from tiny_http after this.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Ok(servers) = self.servers.lock() {
            for generation in servers.iter() {
                for _ in 0..generation.pumps.load(Ordering::SeqCst) {
                    generation.server.unblock();
                }
            }
        }
    }
}

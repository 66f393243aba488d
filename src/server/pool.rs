//! Writer threads: each writes one response at a time to a client that does not keep up with its worker
//! (or whose body is large), and waits a while for the next one once idle, so that a busy server does not
//! start a thread per response.
//!
//! Invariants: a response handed over is written at once by a thread of its own, never queued behind
//! another client's response (a thread is started when no idle one is free for it); at most `keep` threads
//! stay idle, each for at most `IDLE_FOR`.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The most writer threads kept idle: enough for a handful of concurrent downloads to reuse them.
pub const KEEP_IDLE: usize = 8;

/// How long an idle writer thread waits for another response before it ends.
pub const IDLE_FOR: Duration = Duration::from_secs(5);

type Task = Box<dyn FnOnce() + Send>;

/// The writer threads.
pub struct Pool {
    state: Mutex<State>,
    more: Condvar,
    keep: usize,
}

struct State {
    tasks: VecDeque<Task>,
    /// Threads waiting for a task; each task queued has one of them to itself.
    waiting: usize,
}

impl Pool {
    /// A pool that keeps at most `keep` idle threads.
    pub fn new(keep: usize) -> Arc<Pool> {
        Arc::new(Pool { state: Mutex::new(State { tasks: VecDeque::new(), waiting: 0 }), more: Condvar::new(), keep })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent at every unlock, so a poisoned lock is still good to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `task` on an idle writer thread, or on a new one; gives the task back when no thread can be
    /// started, for the caller to run itself.
    pub fn run(self: &Arc<Self>, task: Task) -> Result<(), (Task, std::io::Error)> {
        let mut state = self.lock();
        if state.waiting > state.tasks.len() {
            state.tasks.push_back(task);
            self.more.notify_one();
            return Ok(());
        }
        drop(state);
        // The task waits in a slot both sides can reach, so that a failed spawn does not lose it.
        let slot = Arc::new(Mutex::new(Some(task)));
        let (taken, pool) = (Arc::clone(&slot), Arc::clone(self));
        let spawned = std::thread::Builder::new().name("writer".into()).spawn(move || {
            if let Some(task) = taken.lock().ok().and_then(|mut s| s.take()) {
                task();
            }
            pool.serve();
        });
        spawned.map(|_| ()).map_err(|e| {
            let task = slot.lock().ok().and_then(|mut s| s.take());
            (task.unwrap_or_else(|| Box::new(|| {})), e)
        })
    }

    /// An idle thread's life: the next task, until none comes within `IDLE_FOR` or enough others idle.
    fn serve(&self) {
        let mut state = self.lock();
        loop {
            if state.waiting >= self.keep {
                return;
            }
            state.waiting += 1;
            let mut waited = false;
            let task = loop {
                if let Some(task) = state.tasks.pop_front() {
                    break Some(task);
                }
                if waited {
                    break None;
                }
                let (next, timeout) = self.more.wait_timeout(state, IDLE_FOR).unwrap_or_else(|e| e.into_inner());
                state = next;
                waited = timeout.timed_out();
            };
            state.waiting -= 1;
            let Some(task) = task else { return };
            drop(state);
            task();
            state = self.lock();
        }
    }

    /// Threads idle now.
    #[cfg(test)]
    fn idle(&self) -> usize {
        let state = self.lock();
        state.waiting - state.tasks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    fn until(what: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !what() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(what());
    }

    #[test]
    fn a_task_never_waits_behind_another_and_idle_threads_are_reused() {
        let pool = Pool::new(4);
        let (release, held) = mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let (done_tx, done) = mpsc::channel::<&str>();
        // A task that blocks until released, as a stalled client does.
        let blocked = Arc::clone(&held);
        let tx = done_tx.clone();
        pool.run(Box::new(move || {
            blocked.lock().unwrap().recv().unwrap();
            tx.send("stalled").unwrap();
        }))
        .map_err(|(_, e)| e)
        .unwrap();
        // Another one is written at once, by a thread of its own.
        let tx = done_tx.clone();
        pool.run(Box::new(move || tx.send("quick").unwrap())).map_err(|(_, e)| e).unwrap();
        assert_eq!(done.recv_timeout(Duration::from_secs(10)).unwrap(), "quick");
        until(|| pool.idle() == 1);
        // The idle thread takes the next task.
        let tx = done_tx.clone();
        pool.run(Box::new(move || tx.send("again").unwrap())).map_err(|(_, e)| e).unwrap();
        assert_eq!(done.recv_timeout(Duration::from_secs(10)).unwrap(), "again");
        release.send(()).unwrap();
        assert_eq!(done.recv_timeout(Duration::from_secs(10)).unwrap(), "stalled");
        until(|| pool.idle() == 2);
    }

    #[test]
    fn no_more_than_keep_threads_stay_idle() {
        let pool = Pool::new(1);
        let (tx, done) = mpsc::channel::<()>();
        let gate = Arc::new(std::sync::Barrier::new(3));
        for _ in 0..3 {
            let (tx, gate) = (tx.clone(), Arc::clone(&gate));
            pool.run(Box::new(move || {
                gate.wait();
                tx.send(()).unwrap();
            }))
            .map_err(|(_, e)| e)
            .unwrap();
        }
        for _ in 0..3 {
            done.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        until(|| pool.idle() == 1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(pool.idle(), 1, "the others ended");
    }
}

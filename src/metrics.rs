//! The numbers behind `GET /metrics`, in the Prometheus text exposition format (version 0.0.4): counters kept
//! in process-wide atomics, a latency histogram with fixed buckets, and gauges read at scrape time.
//!
//! Invariants: recording never blocks a request for long (atomics, or a short lock on a small map) and never
//! fails; this module knows no other module of the crate, so every layer may record into it; no label value
//! comes from a request unchecked (route classes and steps are fixed strings, statuses are numbers).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The upper bounds of the latency histogram's buckets, in seconds.
pub const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];

static REQUESTS: Mutex<BTreeMap<(&'static str, u16), u64>> = Mutex::new(BTreeMap::new());
static BYTES: AtomicU64 = AtomicU64::new(0);
static LATENCY: [AtomicU64; BUCKETS.len()] = [const { AtomicU64::new(0) }; BUCKETS.len()];
static LATENCY_COUNT: AtomicU64 = AtomicU64::new(0);
static LATENCY_MICROS: AtomicU64 = AtomicU64::new(0);
static EHR_CALLS: Mutex<BTreeMap<(&'static str, &'static str), u64>> = Mutex::new(BTreeMap::new());
static CACHE: Mutex<BTreeMap<(&'static str, &'static str), u64>> = Mutex::new(BTreeMap::new());
static AUDIT_WRITTEN: AtomicU64 = AtomicU64::new(0);
static AUDIT_DROPPED: AtomicU64 = AtomicU64::new(0);
static AUDIT_FAILED: AtomicU64 = AtomicU64::new(0);
static CLOSED: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
static KICKS: AtomicU64 = AtomicU64::new(0);
static RELOADS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
static FILE_RECHECKS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
static FILE_REFUSALS: AtomicU64 = AtomicU64::new(0);
static SERVER: Mutex<Option<Arc<dyn Fn() -> Server + Send + Sync>>> = Mutex::new(None);

/// The server's gauges, read at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Server {
    pub open_connections: usize,
    pub busy_workers: usize,
    pub queued: usize,
    pub writers: usize,
    pub workers: usize,
}

/// The index's gauges, read at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct IndexGauges {
    pub studies: usize,
    pub instances: usize,
    /// When the index now serving was loaded (Unix seconds).
    pub loaded: u64,
    /// When the index file says it was written (Unix seconds).
    pub written: i64,
}

/// The inflate budget's gauges and refusals (`server.inflate_budget`), read at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct BudgetGauges {
    pub limit: u64,
    pub reserved: u64,
    /// Requests refused because no room came within the wait (503).
    pub refused_busy: u64,
    /// Requests refused because they alone need more than the whole budget.
    pub refused_too_large: u64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    // A poisoned lock only means another thread panicked while counting: the counts stay usable.
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    *map.entry(key).or_insert(0) += 1;
}

fn snapshot<K: Ord + Clone>(map: &Mutex<BTreeMap<K, u64>>) -> Vec<(K, u64)> {
    let map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

/// One request done: its route class, status, the bytes sent of its body and how long it took.
pub fn request(class: &'static str, status: u16, bytes: u64, took: Duration) {
    bump(&REQUESTS, (class, status));
    BYTES.fetch_add(bytes, Ordering::Relaxed);
    let secs = took.as_secs_f64();
    if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
        LATENCY[i].fetch_add(1, Ordering::Relaxed);
    }
    LATENCY_COUNT.fetch_add(1, Ordering::Relaxed);
    LATENCY_MICROS.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// One call to an EHR: its step (`discovery`, `introspection`, …) and outcome (`ok`, `error`).
pub fn ehr_call(step: &'static str, outcome: &'static str) {
    bump(&EHR_CALLS, (step, outcome));
}

/// One lookup in a cache: which cache, and whether it was a hit.
pub fn cache(name: &'static str, hit: bool) {
    bump(&CACHE, (name, if hit { "hit" } else { "miss" }));
}

pub fn audit_written() {
    AUDIT_WRITTEN.fetch_add(1, Ordering::Relaxed);
}

/// An audit line dropped because the audit writer's buffer was full; the count so far.
pub fn audit_dropped() -> u64 {
    AUDIT_DROPPED.fetch_add(1, Ordering::Relaxed) + 1
}

pub fn audit_failed() {
    AUDIT_FAILED.fetch_add(1, Ordering::Relaxed);
}

/// Connections the connection watch closed, by reason (`read_timeout`, `head_limit`, `input_budget`,
/// `over_cap`).
pub fn connections_closed(reason: &'static str, n: usize) {
    if n > 0 {
        let mut map = CLOSED.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(reason).or_insert(0) += n as u64;
    }
}

/// Threads brought to connections whose input waited unread.
pub fn connections_kicked(n: usize) {
    KICKS.fetch_add(n as u64, Ordering::Relaxed);
}

/// One reload of the configuration and index: `ok` or `refused`.
pub fn reload(outcome: &'static str) {
    bump(&RELOADS, outcome);
}

/// The header of a file whose modification time moved, read again: `same` when it still names the indexed
/// instance.
pub fn file_recheck(same: bool) {
    bump(&FILE_RECHECKS, if same { "same" } else { "other" });
}

/// A request refused because a file no longer holds the instance the index names.
pub fn file_refused() {
    FILE_REFUSALS.fetch_add(1, Ordering::Relaxed);
}

/// Where the server's gauges are read from; set once the server runs.
pub fn set_server(read: Arc<dyn Fn() -> Server + Send + Sync>) {
    *SERVER.lock().unwrap_or_else(|p| p.into_inner()) = Some(read);
}

/// The whole exposition, in the text format.
pub fn render(index: IndexGauges, inflate: BudgetGauges) -> String {
    let server = SERVER.lock().unwrap_or_else(|p| p.into_inner()).clone().map(|read| read()).unwrap_or_default();
    let mut text = String::with_capacity(4096);
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };

    head(&mut text, "smart_imaging_requests_total", "counter", "Requests answered, by route class and status.");
    for ((class, status), n) in snapshot(&REQUESTS) {
        let _ = writeln!(text, "smart_imaging_requests_total{{route=\"{class}\",status=\"{status}\"}} {n}");
    }
    head(&mut text, "smart_imaging_response_bytes_total", "counter", "Response body bytes handed to clients.");
    let _ = writeln!(text, "smart_imaging_response_bytes_total {}", BYTES.load(Ordering::Relaxed));
    head(
        &mut text,
        "smart_imaging_request_duration_seconds",
        "histogram",
        "Time from taking a request to its response done.",
    );
    let mut cumulative = 0;
    for (bound, n) in BUCKETS.iter().zip(&LATENCY) {
        cumulative += n.load(Ordering::Relaxed);
        let _ = writeln!(text, "smart_imaging_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let count = LATENCY_COUNT.load(Ordering::Relaxed).max(cumulative);
    let _ = writeln!(text, "smart_imaging_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
    let sum = LATENCY_MICROS.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(text, "smart_imaging_request_duration_seconds_sum {sum}");
    let _ = writeln!(text, "smart_imaging_request_duration_seconds_count {count}");

    let gauges: [(&str, &str, u64); 5] = [
        ("smart_imaging_open_connections", "Client connections open now.", server.open_connections as u64),
        ("smart_imaging_busy_workers", "Workers handling a request now.", server.busy_workers as u64),
        ("smart_imaging_workers", "Workers in the pool.", server.workers as u64),
        ("smart_imaging_queued_requests", "Requests waiting for a worker.", server.queued as u64),
        ("smart_imaging_writer_threads", "Writer threads writing a slow response now.", server.writers as u64),
    ];
    for (name, help, value) in gauges {
        head(&mut text, name, "gauge", help);
        let _ = writeln!(text, "{name} {value}");
    }

    head(
        &mut text,
        "smart_imaging_connections_closed_total",
        "counter",
        "Connections closed by the server, by reason.",
    );
    let closed = snapshot(&CLOSED);
    for reason in ["read_timeout", "head_limit", "input_budget", "over_cap"] {
        let n = closed.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n);
        let _ = writeln!(text, "smart_imaging_connections_closed_total{{reason=\"{reason}\"}} {n}");
    }
    head(
        &mut text,
        "smart_imaging_connections_woken_total",
        "counter",
        "Connections whose input waited unread and that were brought a thread.",
    );
    let _ = writeln!(text, "smart_imaging_connections_woken_total {}", KICKS.load(Ordering::Relaxed));
    head(&mut text, "smart_imaging_ehr_calls_total", "counter", "Calls to EHRs, by step and outcome.");
    for ((step, outcome), n) in snapshot(&EHR_CALLS) {
        let _ = writeln!(text, "smart_imaging_ehr_calls_total{{step=\"{step}\",outcome=\"{outcome}\"}} {n}");
    }
    head(&mut text, "smart_imaging_cache_lookups_total", "counter", "Cache lookups, by cache and result.");
    for ((cache, result), n) in snapshot(&CACHE) {
        let _ = writeln!(text, "smart_imaging_cache_lookups_total{{cache=\"{cache}\",result=\"{result}\"}} {n}");
    }

    let audit: [(&str, &str, &AtomicU64); 3] = [
        ("smart_imaging_audit_lines_written_total", "Audit lines written.", &AUDIT_WRITTEN),
        ("smart_imaging_audit_lines_dropped_total", "Audit lines dropped on a full buffer.", &AUDIT_DROPPED),
        ("smart_imaging_audit_write_failures_total", "Audit lines that failed to write.", &AUDIT_FAILED),
    ];
    for (name, help, value) in audit {
        head(&mut text, name, "counter", help);
        let _ = writeln!(text, "{name} {}", value.load(Ordering::Relaxed));
    }

    head(&mut text, "smart_imaging_index_studies", "gauge", "Studies in the index now serving.");
    let _ = writeln!(text, "smart_imaging_index_studies {}", index.studies);
    head(&mut text, "smart_imaging_index_instances", "gauge", "Instances in the index now serving.");
    let _ = writeln!(text, "smart_imaging_index_instances {}", index.instances);
    head(
        &mut text,
        "smart_imaging_index_loaded_seconds",
        "gauge",
        "When the index now serving was loaded (Unix time).",
    );
    let _ = writeln!(text, "smart_imaging_index_loaded_seconds {}", index.loaded);
    head(
        &mut text,
        "smart_imaging_index_written_seconds",
        "gauge",
        "When the index now serving was written (Unix time).",
    );
    let _ = writeln!(text, "smart_imaging_index_written_seconds {}", index.written);
    let help = "Reloads of the configuration and index on SIGHUP, by outcome.";
    head(&mut text, "smart_imaging_index_reloads_total", "counter", help);
    let reloads = snapshot(&RELOADS);
    for outcome in ["ok", "refused"] {
        let n = reloads.iter().find(|(o, _)| *o == outcome).map_or(0, |(_, n)| *n);
        let _ = writeln!(text, "smart_imaging_index_reloads_total{{outcome=\"{outcome}\"}} {n}");
    }

    head(
        &mut text,
        "smart_imaging_file_rechecks_total",
        "counter",
        "Headers read again of files modified since indexing: still the indexed instance (same) or not (other).",
    );
    let rechecks = snapshot(&FILE_RECHECKS);
    for verdict in ["same", "other"] {
        let n = rechecks.iter().find(|(v, _)| *v == verdict).map_or(0, |(_, n)| *n);
        let _ = writeln!(text, "smart_imaging_file_rechecks_total{{verdict=\"{verdict}\"}} {n}");
    }
    head(
        &mut text,
        "smart_imaging_file_refusals_total",
        "counter",
        "Requests refused because a file no longer holds the instance the index names.",
    );
    let _ = writeln!(text, "smart_imaging_file_refusals_total {}", FILE_REFUSALS.load(Ordering::Relaxed));
    head(
        &mut text,
        "smart_imaging_inflate_budget_bytes",
        "gauge",
        "Bytes that deflated data sets inflated for responses may hold at once.",
    );
    let _ = writeln!(text, "smart_imaging_inflate_budget_bytes {}", inflate.limit);
    head(&mut text, "smart_imaging_inflate_reserved_bytes", "gauge", "Bytes of the inflate budget held now.");
    let _ = writeln!(text, "smart_imaging_inflate_reserved_bytes {}", inflate.reserved);
    head(
        &mut text,
        "smart_imaging_inflate_refused_total",
        "counter",
        "Requests refused for the inflate budget: no room in time (busy), or more than all of it (too-large).",
    );
    for (reason, n) in [("busy", inflate.refused_busy), ("too-large", inflate.refused_too_large)] {
        let _ = writeln!(text, "smart_imaging_inflate_refused_total{{reason=\"{reason}\"}} {n}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_each_family_once_and_cumulative_buckets() {
        request("test", 200, 10, Duration::from_millis(3));
        request("test", 404, 0, Duration::from_secs(100));
        let inflate = BudgetGauges { limit: 8, reserved: 5, refused_busy: 2, refused_too_large: 0 };
        let text = render(IndexGauges { studies: 2, instances: 3, loaded: 1, written: 0 }, inflate);
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap();
            assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1, "{name}");
        }
        assert!(text.contains("smart_imaging_requests_total{route=\"test\",status=\"404\"} "), "{text}");
        assert!(text.contains("smart_imaging_index_instances 3\n"), "{text}");
        assert!(text.contains("smart_imaging_inflate_reserved_bytes 5\n"), "{text}");
        assert!(text.contains("smart_imaging_inflate_refused_total{reason=\"busy\"} 2\n"), "{text}");
        let buckets: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("smart_imaging_request_duration_seconds_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert!(buckets.last().unwrap() > &buckets[buckets.len() - 2], "100s lands only in +Inf");
    }
}

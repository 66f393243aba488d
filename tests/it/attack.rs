//! The connection model under unfriendly clients, against the real binary: descriptors run out, idle and
//! stalled connections by the hundred, a connection cap, a pipelined burst, a client gone mid-download,
//! ten thousand connections opened and closed, and slow readers of inflated data sets against the inflate
//! budget. None may stop, crash or wedge the server; the figures the model is held to (a well-behaved
//! client's search latency while attacked) are printed, never asserted, but for the memory the inflate
//! budget bounds.
//!
//! The slow-header client (a request dribbled a byte at a time) is
//! `resilience::a_client_dribbling_its_headers_is_disconnected_after_read_timeout_and_holds_no_worker`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::clients::*;
use crate::harness::*;
use crate::sample::{OCTETS, parts_of};

/// Raises this test process's own open-file limit, so that it can hold the connections it attacks with.
pub fn allow_open_files(n: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write a struct on this stack frame.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        if limit.rlim_cur < n.min(limit.rlim_max) {
            limit.rlim_cur = n.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// `n` connections that send nothing.
pub fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n).filter_map(|_| TcpStream::connect(addr).ok()).collect()
}

/// Asks for `/healthz` until it answers 200 or `within` passes; how long it took.
fn healthy_within(addr: SocketAddr, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let sent = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut reply = Vec::new();
            if sent.is_ok() && stream.read_to_end(&mut reply).is_ok() && reply.starts_with(b"HTTP/1.1 200") {
                return Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The last `/healthz` log line's account of the connection model, as `(name, number)` pairs.
fn health_counts(server: &Server) -> Vec<(String, u64)> {
    let before = occurrences(&server.log(), "GET /healthz 200");
    assert_eq!(server.get("/healthz").status, 200);
    let log = server.wait_for_log("a new /healthz line", |l| occurrences(l, "GET /healthz 200") > before);
    let line = log.lines().rev().find(|l| l.contains("GET /healthz 200")).unwrap_or_default().to_string();
    let inside = line.rsplit_once('(').map(|(_, r)| r.trim_end_matches(')')).unwrap_or_default();
    inside
        .split(", ")
        .filter_map(|pair| {
            let (name, n) = pair.rsplit_once(' ')?;
            Some((name.to_string(), n.parse().ok()?))
        })
        .collect()
}

fn count(counts: &[(String, u64)], name: &str) -> u64 {
    counts.iter().find(|(n, _)| n == name).map_or_else(|| panic!("no {name:?} in {counts:?}"), |(_, n)| *n)
}

/// Broke: with descriptors exhausted, tiny_http's accept loop ended and the process exited 0.
#[test]
fn running_out_of_descriptors_neither_ends_nor_stops_the_server() {
    let dir = TempDir::new("emfile");
    // A cap above what the descriptors allow, so that the descriptors, not the cap, run out.
    let config = dir.config(&format!("[server]\nthreads = 2\nmax_connections = 5000\n\n{OPEN}"));
    let server = Launch::new(config).open_files(128).start();
    assert_eq!(server.get("/healthz").status, 200);
    let log = server.wait_for_log("the open-file line", |l| l.contains("open files: soft limit"));
    assert!(log.contains("soft limit 128 raised to 128 (hard 128)"), "{log}");

    // Each connection holds two descriptors in tiny_http: 100 of them exhaust 128.
    let flood = idle_connections(server.addr(), 100);
    server.wait_for_log("the accept failure", |l| l.contains("not accepting") || l.contains("Error accepting"));
    let mut late = TcpStream::connect(server.addr()).expect("the kernel still completes handshakes");
    late.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    drop(flood);
    let after = healthy_within(server.addr(), PATIENCE).expect("serving again once the connections are gone");
    late.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut head = [0u8; 12];
    late.read_exact(&mut head).expect("the request that waited in the backlog is answered");
    assert_eq!(&head, b"HTTP/1.1 200");
    assert_serving(&server, "after the descriptors came back");
    let log = server.log();
    assert!(log.contains("accepting again: accept loop 2"), "a new accept loop on the same socket: {log}");
    let ended =
        |l: &str| l.ends_with("] stopped") || l.contains("shutdown requested") || l.contains("listener is lost");
    assert!(!log.lines().any(ended), "the server did not stop: {log}");
    eprintln!("descriptors exhausted by {} connections; serving again {after:?} after they closed", 100);
}

#[test]
fn past_the_connection_cap_new_connections_get_503_with_retry_after_and_are_closed() {
    let dir = TempDir::new("cap");
    let config = dir.config(&format!("[server]\nthreads = 2\nmax_connections = 20\n\n{OPEN}"));
    let server = Launch::new(config).start();
    assert_eq!(server.get("/healthz").status, 200);
    let mut held = idle_connections(server.addr(), 30);
    let mut closed = vec![false; held.len()];
    // The watch looks four times a second; give it a few looks to reach every connection over the cap.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        for (stream, closed) in held.iter_mut().zip(closed.iter_mut()).filter(|(_, c)| !**c) {
            if let Some((_, got)) = wait_closed(stream, Duration::from_millis(10)) {
                let text = String::from_utf8_lossy(&got);
                assert!(text.starts_with("HTTP/1.1 503"), "a connection over the cap is told why: {text:?}");
                assert!(text.contains("Retry-After: 5"), "{text}");
                *closed = true;
            }
        }
    }
    let refused = closed.iter().filter(|c| **c).count();
    assert_eq!(refused, 10, "30 connections on a cap of 20: the 10 over the cap are refused, the rest stay");
    drop(held);
    assert!(healthy_within(server.addr(), PATIENCE).is_some(), "serving once they are gone");
    eprintln!("cap 20: {refused} of 30 connections answered 503 and closed");
}

/// The figures of the connection model: 1,000 idle connections and 100 stalled downloads while a
/// well-behaved client searches, with the default configuration (but for the index).
#[test]
fn idle_and_stalled_attackers_leave_a_well_behaved_client_served() {
    allow_open_files(4096);
    let big = BigStudy::new("attack", "");
    let server = Launch::new(&big.config).start();
    let pid = server.pid();
    let idle_counts = health_counts(&server);
    let (threads_idle, rss_idle) = (proc_status(pid, "Threads"), proc_status(pid, "VmRSS"));
    let target = big.instance_target(&server);

    let idle = idle_connections(server.addr(), 1000);
    let stalled: Vec<Download> =
        (0..100).map(|_| Download::start(server.addr(), &target, &[("Accept", "application/dicom")])).collect();
    assert!(stalled.iter().all(|d| d.status == 200), "the stalled downloads started");
    // The watch counts connections four times a second (a sweep of 2,000 descriptors takes a while on a
    // loaded machine): ask until it has seen them all.
    let deadline = Instant::now() + PATIENCE;
    let mut attacked = health_counts(&server);
    while count(&attacked, "connections") < 1000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        attacked = health_counts(&server);
    }
    let threads_attacked = proc_status(pid, "Threads");

    let mut latencies = Vec::with_capacity(200);
    for _ in 0..200 {
        let started = Instant::now();
        let reply = server.get("/open/fhir/ImagingStudy");
        latencies.push(started.elapsed());
        assert_eq!(reply.status, 200, "a search while attacked: {}", reply.text());
    }
    latencies.sort();
    let (p50, p99) = (latencies[100], latencies[197]);

    drop(idle);
    drop(stalled);
    // The attackers left: tiny_http's threads for their connections end, and so do the writers.
    let deadline = Instant::now() + PATIENCE;
    while proc_status(pid, "Threads") > threads_idle + 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (threads_after, rss_after) = (proc_status(pid, "Threads"), proc_status(pid, "VmRSS"));
    let after = health_counts(&server);
    assert!(threads_after <= threads_idle + 16, "threads {threads_idle} idle, {threads_after} after the attack");
    assert!(rss_after <= rss_idle * 2 + 32 * 1024, "RSS {rss_idle} kB idle, {rss_after} kB after the attack");
    assert_eq!(count(&after, "writers"), 0, "no writer left: {after:?}");
    assert!(count(&attacked, "connections") >= 1000, "the watch saw the attack: {attacked:?}");
    eprintln!(
        "attacked by 1000 idle connections and 100 stalled downloads: 200 searches, p50 {p50:?}, p99 {p99:?} \
         ({} build); threads {threads_idle} idle, {threads_attacked} attacked, {threads_after} after; \
         RSS {rss_idle} kB idle, {rss_after} kB after; counts idle {idle_counts:?}, attacked {attacked:?}",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
}

#[test]
fn a_client_gone_mid_download_frees_its_writer_and_connection() {
    let big = BigStudy::new("gone", "threads = 1");
    let server = Launch::new(&big.config).start();
    let target = big.instance_target(&server);
    let mut download = Download::start(server.addr(), &target, &[("Accept", "application/dicom")]);
    download.read_until(1 << 20);
    drop(download);
    server.wait_for_log("the cut-short line", |l| l.contains(&format!("/instances/{BIG_SOP} 200")));
    let log = server.log();
    assert!(log.contains("(cut short"), "the log says the response was cut short: {log}");
    let counts = health_counts(&server);
    assert_eq!(count(&counts, "writers"), 0, "{counts:?}");
    assert_serving(&server, "after a client left mid-download");
}

#[test]
fn a_pipelined_burst_is_answered_in_order_while_other_clients_are_served() {
    let dir = TempDir::new("pipeline");
    let config = dir.config(&format!("[server]\nthreads = 2\n\n{OPEN}"));
    let server = Launch::new(config).start();
    let mut burst = TcpStream::connect(server.addr()).unwrap();
    let mut requests = String::new();
    // Each answer names its request: the Bundle's self link carries the `_offset` asked.
    for n in 1..=200 {
        requests.push_str(&format!("GET /open/fhir/ImagingStudy?_count=1&_offset={n} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    burst.write_all(requests.as_bytes()).unwrap();
    // Meanwhile another client is served, not told the server is busy.
    for _ in 0..20 {
        assert_eq!(server.get("/open/fhir/ImagingStudy").status, 200, "another client during the burst");
    }
    burst.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answers = 0;
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while answers < 200 {
        let n = match burst.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("reading the burst's answers after {answers}: {e}"),
        };
        raw.extend_from_slice(&buf[..n]);
        answers = raw.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
    }
    assert_eq!(answers, 200, "every request of the burst is answered 200");
    let text = String::from_utf8_lossy(&raw);
    // The self link is the first link of each Bundle (a `next` link may follow).
    let order: Vec<usize> = text
        .split("HTTP/1.1 200")
        .filter_map(|answer| {
            let at = answer.find("_offset=")? + "_offset=".len();
            answer[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect();
    assert_eq!(order, (1..=200).collect::<Vec<usize>>(), "the answers come in the order of the requests");
    assert_serving(&server, "after a pipelined burst of 200");
}

#[test]
fn ten_thousand_connections_opened_and_closed_leave_the_server_serving() {
    let dir = TempDir::new("churn");
    let config = dir.config(&format!("[server]\nthreads = 2\n\n{OPEN}"));
    let server = Launch::new(config).start();
    let pid = server.pid();
    let threads_idle = proc_status(pid, "Threads");
    let addr = server.addr();
    let started = Instant::now();
    let churners: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut opened = 0;
                for _ in 0..2500 {
                    if TcpStream::connect(addr).is_ok() {
                        opened += 1;
                    }
                }
                opened
            })
        })
        .collect();
    let opened: usize = churners.into_iter().map(|t| t.join().unwrap()).sum();
    let took = started.elapsed();
    let answered = healthy_within(addr, PATIENCE).expect("serving after the churn");
    let deadline = Instant::now() + PATIENCE;
    while proc_status(pid, "Threads") > threads_idle + 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let threads_after = proc_status(pid, "Threads");
    assert!(threads_after <= threads_idle + 16, "threads {threads_idle} before, {threads_after} after");
    assert_serving(&server, "after 10,000 connections came and went");
    eprintln!("{opened} connections opened and closed in {took:?}; /healthz answered {answered:?} later");
}

#[test]
fn a_reader_slower_than_min_send_rate_is_dropped_and_holds_no_worker() {
    let big = BigStudy::new("slowread", "threads = 1\nmin_send_rate = 1000000");
    let server = Launch::new(&big.config).start();
    let target = big.instance_target(&server);
    let mut slow = Download::start(server.addr(), &target, &[("Accept", "application/dicom")]);
    assert_eq!(slow.status, 200);
    // The only worker is free while the slow reader is served by a writer thread.
    assert_eq!(server.get("/healthz").status, 200, "the next request is served at once");
    // 16 KiB every 100 ms is 160 KB/s, under the 1 MB/s asked: dropped after the 10 s window. (What the
    // kernel buffered before the drop still arrives; the log says when the server let go.)
    let started = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    let dropped = "under the minimum of 1000000 bytes/s";
    while !server.log().contains(dropped) {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(n) = slow.stream.read(&mut buf) {
            slow.body.extend_from_slice(&buf[..n]);
        }
        assert!(started.elapsed() < PATIENCE * 2, "the slow reader was never dropped");
    }
    let ended = started.elapsed();
    assert!(slow.body.len() < slow.content_length.unwrap_or(usize::MAX), "the download is not complete");
    let log = server.log();
    assert!(log.contains("(cut short: the client took"), "{log}");
    eprintln!("a 160 KB/s reader was dropped after {ended:?} and {} bytes", slow.body.len());
}

/// Samples `pid`'s VmRSS (kB) every 10 ms until `stop` is set; the largest seen.
fn peak_rss(pid: u32, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            peak = peak.max(proc_status(pid, "VmRSS"));
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    })
}

/// Sends `GET /healthz?a=aaaa…` without ever ending the line, up to `total` bytes; how many bytes went before
/// the server closed the connection (`None` if it never did).
fn endless_request_line(addr: SocketAddr, total: usize) -> Option<usize> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(b"GET /healthz?a=").unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = 0;
    while sent < total {
        match stream.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => return Some(sent),
        }
    }
    // Everything went into socket buffers: the close may still come.
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return Some(sent),
            Ok(_) => {}
        }
    }
}

/// Two connections to `addr` each send a 128 MiB request line without an end while `healthy` is asked: both
/// are closed, the process `pid` grows by less than 64 MiB, and `healthy` answers throughout.
fn endless_request_lines_are_closed(pid: u32, addr: SocketAddr, healthy: impl Fn() -> bool) -> String {
    let before = proc_status(pid, "VmRSS");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = peak_rss(pid, std::sync::Arc::clone(&stop));
    let floods: Vec<_> = (0..2).map(|_| std::thread::spawn(move || endless_request_line(addr, 128 << 20))).collect();
    for _ in 0..10 {
        assert!(healthy(), "answering while flooded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent: Vec<Option<usize>> = floods.into_iter().map(|f| f.join().unwrap()).collect();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak = sampler.join().unwrap();
    let growth_mib = peak.saturating_sub(before) / 1024;
    assert!(sent.iter().all(Option::is_some), "every flooding connection was closed: {sent:?}");
    assert!(growth_mib < 64, "VmRSS grew {growth_mib} MiB under two endless request lines ({before} kB before)");
    format!("closed after {sent:?} bytes sent; VmRSS {before} kB, peak +{growth_mib} MiB")
}

/// Broke: tiny_http buffers a request line without limit before the server sees it, so two unauthenticated
/// connections each sending a 1 GiB line without an end grew the process by 2 GiB.
#[test]
fn endless_request_lines_are_closed_before_they_hold_memory() {
    let dir = TempDir::new("headflood");
    let config = dir.config(&format!("[server]\ninput_budget = {}\n\n{OPEN}", 32 << 20));
    let server = Launch::new(config).start();
    assert_eq!(server.get("/healthz").status, 200);
    let figures =
        endless_request_lines_are_closed(server.pid(), server.addr(), || server.get("/healthz").status == 200);
    let log = server.wait_for_log("the head-limit line", |l| l.contains("without completing a request"));
    assert!(log.contains("closed "), "{log}");
    let metrics = server.get("/metrics").text();
    assert!(!metrics.contains("smart_imaging_connections_closed_total{reason=\"head_limit\"} 0"), "{metrics}");
    assert_serving(&server, "after endless request lines");
    eprintln!("two endless request lines: {figures}");
}

/// Broke: the sandbox EHR's listener had no bound either (one endless line held +513 MiB for as long as the
/// connection stayed open).
#[test]
fn endless_request_lines_to_the_sandbox_are_closed_before_they_hold_memory() {
    let s = crate::sandbox_kit::start_opts(&format!("input_budget = {}", 32 << 20), "");
    let home = || raw_request(s.addr(), "GET", "/", &[]).status == 200;
    assert!(home());
    let figures = endless_request_lines_are_closed(s.server.pid(), s.addr(), home);
    assert!(home(), "the sandbox answers after the flood");
    eprintln!("two endless request lines to the sandbox: {figures}");
}

/// Many connections each holding a request head under the limit, together past `server.input_budget`: the
/// biggest go until the rest fit.
#[test]
fn unfinished_heads_past_the_input_budget_are_closed_biggest_first() {
    let dir = TempDir::new("headbudget");
    let config = dir.config(&format!("[server]\ninput_budget = {}\n\n{OPEN}", 1 << 20));
    let server = Launch::new(config).start();
    // 24 connections of 100 KB each (2.4 MB) and one small one: the budget of 1 MiB keeps about ten.
    let mut held: Vec<TcpStream> = Vec::new();
    for n in 0..25 {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        let len = if n == 0 { 1000 } else { 100_000 };
        stream.write_all(format!("GET /healthz HTTP/1.1\r\nX-Long: {}", "b".repeat(len)).as_bytes()).unwrap();
        held.push(stream);
    }
    let mut closed = vec![false; held.len()];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && closed.iter().filter(|c| **c).count() < 14 {
        for (stream, closed) in held.iter_mut().zip(closed.iter_mut()).filter(|(_, c)| !**c) {
            *closed = wait_closed(stream, Duration::from_millis(10)).is_some();
        }
    }
    let count = closed.iter().filter(|c| **c).count();
    assert!((14..=16).contains(&count), "about 14 of the 100 KB heads closed to fit 1 MiB, not {count}: {closed:?}");
    assert!(!closed[0], "the smallest stays");
    assert_serving(&server, "after unfinished heads past the budget");
}

/// Opens 100 keep-alive connections to `addr` back to back, each sending `GET target`; every one is answered
/// (200, or 503 from workers that are all busy) within 10 s, and fewer than `most_busy` with 503. The slowest
/// answer, and how many were 503.
fn a_burst_is_answered(addr: SocketAddr, target: &str, most_busy: usize) -> (Duration, usize) {
    let started = Instant::now();
    let mut opened = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
        opened.push(stream);
    }
    let deadline = started + Duration::from_secs(10);
    let (mut slowest, mut busy) = (Duration::ZERO, 0);
    for (n, stream) in opened.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        stream.set_read_timeout(Some(left)).unwrap();
        let mut head = [0u8; 12];
        let read = stream.read_exact(&mut head);
        assert!(read.is_ok(), "connection {n} of the burst unanswered after {:?}: {read:?}", started.elapsed());
        // A loaded machine may find the workers busy: a 503 with Retry-After is an answer too.
        match &head {
            b"HTTP/1.1 200" => {}
            b"HTTP/1.1 503" => busy += 1,
            other => panic!("connection {n}: {:?}", String::from_utf8_lossy(other)),
        }
        slowest = slowest.max(started.elapsed());
    }
    assert!(busy < most_busy, "{busy} of 100 answered 503");
    (slowest, busy)
}

/// Broke: tiny_http's pool could leave a newly accepted connection unread while its threads served other
/// connections, so of 100 keep-alive connections opened back to back some waited for the read timeout.
#[test]
fn every_connection_of_a_burst_is_read_and_answered() {
    let dir = TempDir::new("burst");
    // A read timeout far longer than the test waits: a connection left unread would show.
    let config = dir.config(&format!("[server]\nread_timeout = 120\n\n{OPEN}"));
    let server = Launch::new(config).start();
    let (slowest, busy) = a_burst_is_answered(server.addr(), "/healthz", 50);
    eprintln!("100 keep-alive connections opened back to back: all answered within {slowest:?} ({busy} of them 503)");
}

/// Broke: the same with the sandbox EHR, whose slowest connection of the burst waited 99 s. Its 8 workers
/// take 8 requests waiting before they answer 503 with Retry-After, so most of a burst of 100 may be 503s:
/// answered all the same, and at least one served.
#[test]
fn every_connection_of_a_burst_to_the_sandbox_is_read_and_answered() {
    let s = crate::sandbox_kit::start_opts("read_timeout = 120", "");
    let (slowest, _) = a_burst_is_answered(s.addr(), "/fhir/metadata", 100);
    eprintln!("100 keep-alive connections to the sandbox opened back to back: all answered within {slowest:?}");
}

// ---------------------------------------------------------------------------------------------------
// Memory a client can make the server hold: deflated data sets inflated for frames.

const DEFLATED_STUDY: &str = "2.25.6002";
const DEFLATED_SERIES: &str = "2.25.6002.1";
const DEFLATED_SOP: &str = "2.25.6002.1.1";

/// A one-instance study in its own folder, indexed, whose data set is deflated (PS3.5 §A.5: raw deflate)
/// and inflates to a little over `rows` × `columns` × 2 bytes: one frame of 16-bit pixels in a pattern that
/// deflates to almost nothing. Served on the `open` tenant after the given `[server]` keys.
fn deflated_study(label: &str, rows: u16, columns: u16, server_keys: &str) -> (TempDir, PathBuf) {
    use std::io::Write as _;
    let meta: Vec<u8> = [
        element(0x0002, 0x0001, b"OB", &[0x00, 0x01]), // (0002,0001) OB len 2: File Meta Information Version
        element(0x0002, 0x0002, b"UI", &padded(SECONDARY_CAPTURE, 0)), // (0002,0002) UI: Media Storage SOP Class
        element(0x0002, 0x0003, b"UI", &padded(DEFLATED_SOP, 0)), // (0002,0003) UI: Media Storage SOP Instance
        element(0x0002, 0x0010, b"UI", &padded("1.2.840.10008.1.2.1.99", 0)), // (0002,0010) UI: Deflated Explicit
        element(0x0002, 0x0012, b"UI", &padded("2.25.6000", 0)), // (0002,0012) UI: Implementation Class UID
    ]
    .concat();
    let pixels: Vec<u8> = (0..rows as usize * columns as usize * 2).map(|i| (i % 251) as u8).collect();
    let data_set: Vec<u8> = [
        element(0x0008, 0x0016, b"UI", &padded(SECONDARY_CAPTURE, 0)), // (0008,0016) UI: SOP Class UID
        element(0x0008, 0x0018, b"UI", &padded(DEFLATED_SOP, 0)),      // (0008,0018) UI: SOP Instance UID
        element(0x0008, 0x0060, b"CS", &padded("OT", b' ')),           // (0008,0060) CS len 2: Modality
        element(0x0010, 0x0020, b"LO", &padded("DEFLATE-1", b' ')),    // (0010,0020) LO len 10: Patient ID
        element(0x0020, 0x000D, b"UI", &padded(DEFLATED_STUDY, 0)),    // (0020,000D) UI: Study Instance UID
        element(0x0020, 0x000E, b"UI", &padded(DEFLATED_SERIES, 0)),   // (0020,000E) UI: Series Instance UID
        element(0x0028, 0x0002, b"US", &1u16.to_le_bytes()),           // (0028,0002) US len 2: Samples per Pixel 1
        element(0x0028, 0x0004, b"CS", &padded("MONOCHROME2", b' ')),  // (0028,0004) CS len 12: Photometric
        element(0x0028, 0x0010, b"US", &rows.to_le_bytes()),           // (0028,0010) US len 2: Rows
        element(0x0028, 0x0011, b"US", &columns.to_le_bytes()),        // (0028,0011) US len 2: Columns
        element(0x0028, 0x0100, b"US", &16u16.to_le_bytes()),          // (0028,0100) US len 2: Bits Allocated 16
        element(0x0028, 0x0101, b"US", &16u16.to_le_bytes()),          // (0028,0101) US len 2: Bits Stored 16
        element(0x0028, 0x0102, b"US", &15u16.to_le_bytes()),          // (0028,0102) US len 2: High Bit 15
        element(0x0028, 0x0103, b"US", &0u16.to_le_bytes()),           // (0028,0103) US len 2: unsigned pixels
        element(0x7FE0, 0x0010, b"OW", &pixels),                       // (7FE0,0010) OW: Pixel Data, one frame
    ]
    .concat();
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&data_set).unwrap();
    let file = [
        vec![0u8; 128],                                                     // preamble
        b"DICM".to_vec(),                                                   // prefix
        element(0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes()), // (0002,0000) UL len 4: group length
        meta,
        encoder.finish().unwrap(), // the data set, deflated
    ]
    .concat();
    let dir = TempDir::new(label);
    dir.write("dicom/deflated.dcm", file);
    let run = run_cli(&["index", "dicom"], dir.path());
    assert_eq!(run.code(), Some(0), "indexing the deflated file failed:\n{run}");
    let config = write_config(&dir, &dir.path().join("index.toml"), &format!("[server]\n{server_keys}\n\n{OPEN}"));
    (dir, config)
}

/// The request target of the deflated instance's frames `list` on `server`, with a study token minted by a
/// search.
fn deflated_frames(server: &Server, list: &str) -> String {
    let found = addresses(server, "/open/fhir/ImagingStudy");
    let (_, address) = found.iter().find(|(id, _)| id == DEFLATED_STUDY).expect("the deflated study is found");
    let path = address.strip_prefix(server.base()).expect("the address is on the server");
    format!("{path}/studies/{DEFLATED_STUDY}/series/{DEFLATED_SERIES}/instances/{DEFLATED_SOP}/frames/{list}")
}

/// Broke: every response holding an inflated data set held its own copy of it, bounded only per response
/// (40 slow readers of a 60 MiB data set took 2.6 GB).
#[test]
fn slow_readers_of_inflated_frames_share_one_budget_and_the_rest_are_told_to_retry() {
    // 1024 × 1536 × 2 bytes: a data set of 3 MiB and a few hundred bytes, two of which fit in 8 MiB.
    let (_dir, config) = deflated_study("budget", 1024, 1536, "inflate_budget = 8388608");
    let server = Launch::new(&config).start();
    let pid = server.pid();
    let one = deflated_frames(&server, "1");
    let pixels: Vec<u8> = (0..1024 * 1536 * 2).map(|i| (i % 251) as u8).collect();
    let first = parts_of(&server.get(&one), OCTETS, "frame 1 of the deflated instance");
    assert!(first.len() == 1 && first[0].body == pixels, "frame 1 is the inflated Pixel Data");
    let rss_before = proc_status(pid, "VmRSS");

    // Frame 1 sixteen times over is 48 MiB, far more than the sockets buffer: each response stays held.
    let slow = deflated_frames(&server, &["1"; 16].join(","));
    let connections: Vec<TcpStream> = (0..16).map(|_| answered_connection(server.addr())).collect();
    let readers: Vec<Download> = connections
        .into_iter()
        .map(|stream| {
            let slow = slow.clone();
            std::thread::spawn(move || Download::on(stream, &slow, &[]))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("a reader"))
        .collect();
    let rss_held = proc_status(pid, "VmRSS");
    let served = readers.iter().filter(|d| d.status == 200).count();
    let refused = readers.iter().filter(|d| d.status == 503).count();
    assert_eq!(served + refused, 16, "{:?}", readers.iter().map(|d| &d.head).collect::<Vec<_>>());
    assert!((1..=2).contains(&served), "two data sets of 3 MiB fit in 8 MiB, not {served}");
    for reader in readers.iter().filter(|d| d.status == 503) {
        let retry = reader.header("retry-after").unwrap_or_default();
        assert!(retry.parse::<u32>().is_ok_and(|s| s > 0), "a 503 says when to retry: {}", reader.head);
    }
    let grown = rss_held.saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "RSS grew by {grown} kB for 16 readers of 3 MiB with a budget of 8 MiB");
    assert!(metric(&server, "smart_imaging_inflate_refused_total{reason=\"busy\"}") >= refused as u64);
    let reserved = metric(&server, "smart_imaging_inflate_reserved_bytes");
    assert!(reserved > 0 && reserved <= 8 << 20, "{reserved} bytes reserved");
    assert_eq!(metric(&server, "smart_imaging_inflate_budget_bytes"), 8 << 20);

    // Once the readers go, their reservations are given back and the next request is served.
    drop(readers);
    let deadline = Instant::now() + PATIENCE;
    let again = loop {
        let reply = server.get(&one);
        if reply.status == 200 || Instant::now() > deadline {
            break reply;
        }
        assert_eq!(reply.status, 503, "{}", reply.text());
    };
    let again = parts_of(&again, OCTETS, "frame 1 once the readers went");
    assert!(again.len() == 1 && again[0].body == pixels, "the same frame");
    eprintln!(
        "16 slow readers of a 3 MiB inflated data set, budget 8 MiB: {served} served, {refused} refused; \
         RSS {rss_before} kB before, {rss_held} kB held"
    );
}

#[test]
fn a_data_set_larger_than_the_whole_inflate_budget_is_refused_at_once() {
    // 1024 × 1024 × 2 bytes: a data set of a little over 2 MiB, past a budget of 1 MiB.
    let (_dir, config) = deflated_study("toolarge", 1024, 1024, "inflate_budget = 1048576");
    let server = Launch::new(&config).start();
    let started = Instant::now();
    let reply = server.get(&deflated_frames(&server, "1"));
    assert_eq!(reply.status, 406, "no wait could make room: {}", reply.text());
    assert!(started.elapsed() < Duration::from_secs(1), "refused at once, not after a wait");
    assert!(reply.text().contains("inflates to"), "{}", reply.text());
    assert_eq!(metric(&server, "smart_imaging_inflate_refused_total{reason=\"too-large\"}"), 1);
    let log = server.wait_for_log("the refusal", |l| l.contains("more than the whole inflate budget"));
    assert!(log.contains("deflated.dcm"), "the log names the file: {log}");
}

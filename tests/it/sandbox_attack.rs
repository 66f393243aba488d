//! The sandbox EHR under attack: it is served by the same connection model as the imaging server (its own
//! listener, watch, workers and writer threads), and its stores are bounded per client.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::attack::{allow_open_files, idle_connections};
use crate::clients::{PATIENCE, thread_names};
use crate::harness::*;
use crate::sandbox_kit::*;

/// An app's token from the whole flow at patient p1's issuer, for `client`.
fn signed_in(s: &Sandboxed, client: &str) -> String {
    let token = s.flow().set("client_id", client).token();
    token["access_token"].as_str().expect("an access token").to_string()
}

/// The smart tenant's search for p1's studies with an app's token: the imaging server introspects it at
/// the sandbox with its backend token.
fn search(s: &Sandboxed, token: &str) -> Reply {
    s.server.get_with("/smart/fhir/ImagingStudy?patient=p1", &[("Authorization", &format!("Bearer {token}"))])
}

/// Waits until `pred` holds, or fails naming `what`.
fn eventually(what: &str, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !pred() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Broke: the sandbox read request bodies on its 8 threads, with no read timeout; 100 connections that
/// promised a body and never sent it held all of them, and a sign-in timed out.
#[test]
fn two_hundred_stalled_connections_to_the_sandbox_leave_a_sign_in_working() {
    allow_open_files(4096);
    let s = start_opts("read_timeout = 120", "");
    let pid = s.server.pid();
    let mut stalled = idle_connections(s.addr(), 50);
    for _ in 0..50 {
        let mut head = TcpStream::connect(s.addr()).expect("connect");
        head.write_all(b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: appl").unwrap();
        stalled.push(head);
    }
    // Bodies tiny_http reads itself (at most 1024 bytes) and bodies it leaves on the socket.
    for length in [500, 4000] {
        for _ in 0..50 {
            let mut promise = TcpStream::connect(s.addr()).expect("connect");
            let head = format!(
                "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {length}\r\n\r\ngrant_type="
            );
            promise.write_all(head.as_bytes()).unwrap();
            stalled.push(promise);
        }
    }
    // The 50 bodies left on their sockets are each waited on by a thread of their own, none a worker.
    eventually("a thread waits on each body left on its socket", || {
        thread_names(pid).iter().filter(|n| *n == "writer").count() >= 50
    });
    let token = signed_in(&s, "late-app");
    assert_eq!(search(&s, &token).status, 200, "the imaging tenant reaches the sandbox too");
    assert!(!s.backend_token().is_empty());
    drop(stalled);
    eprintln!("200 stalled connections to the sandbox, 100 of them promising a body: a sign-in still works");
}

/// Broke: after a descriptor flood on its port, the sandbox's accept loop had ended for good, and the
/// `smart` tenant answered 503 until a restart.
#[test]
fn the_sandbox_accepts_again_after_its_descriptors_ran_out() {
    let s = start_launched("threads = 2\nmax_connections = 5000", "", |launch| launch.open_files(128));
    let home = || {
        TcpStream::connect(s.addr()).is_ok_and(|mut c| {
            let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
            let mut reply = Vec::new();
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_ok()
                && std::io::Read::read_to_end(&mut c, &mut reply).is_ok()
                && reply.starts_with(b"HTTP/1.1 200")
        })
    };
    assert!(home());
    let flood = idle_connections(s.addr(), 100);
    s.server.wait_for_log("the accept failure", |l| l.contains("not accepting") || l.contains("Error accepting"));
    drop(flood);
    eventually("the sandbox answers again once the connections are gone", home);
    let log = s.server.log();
    assert!(log.contains("accepting again: accept loop 2"), "a new accept loop on the sandbox's socket: {log}");
    let token = signed_in(&s, "after-flood");
    assert_eq!(search(&s, &token).status, 200, "the smart tenant works again: {}", s.server.dump());
}

/// Broke: one app that spent 10,000 codes filled the sandbox's stores: every other sign-in was refused
/// `temporarily_unavailable`, and the `smart` tenant answered 503, even for a token minted before.
#[test]
fn one_app_spending_ten_thousand_codes_stops_nobody_else() {
    let s = start_opts("", "");
    let before = signed_in(&s, "steady-app");
    assert_eq!(search(&s, &before).status, 200, "the imaging tenant holds its backend token from now on");
    let flow = s.flow().set("client_id", "greedy-app");
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let spent: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (flow, agent) = (&flow, &agent);
                scope.spawn(move || {
                    (0..2_500)
                        .filter(|_| {
                            let reply = agent.get(&flow.url()).call().expect("authorize");
                            let location = reply.headers().get("location").and_then(|l| l.to_str().ok());
                            let code = location.and_then(|l| query_param(l, "code")).expect("a code");
                            let form = [
                                ("grant_type", "authorization_code"),
                                ("code", code.as_str()),
                                ("redirect_uri", flow.param("redirect_uri")),
                                ("client_id", "greedy-app"),
                                ("code_verifier", flow.verifier.as_str()),
                            ];
                            agent.post(&flow.token_url).send_form(form).is_ok_and(|r| r.status() == 200)
                        })
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(spent, 10_000, "every code of the greedy app was exchanged");
    let backend = s.backend_token();
    let answer = s.introspect(Some(&backend), &before).json();
    assert_eq!(answer["active"], true, "a token minted before the flood is still active: {answer}");
    let other = signed_in(&s, "another-app");
    assert_eq!(search(&s, &other).status, 200, "another app signs in and the imaging tenant's backend token works");
    assert_eq!(search(&s, &before).status, 200);
    eprintln!("one app spent {spent} codes; the others were not touched");
}

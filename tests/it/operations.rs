//! Running it in production (docs/operations.md, Running it for real; On an edge device): the start-up line, `GET
//! /metrics`, the audit trail and its reopening, the index reloaded on SIGHUP under traffic, the unit file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::clients::signal;
use crate::fake_ehr::{Options, SCOPES, bearer, now, setup_opts};
use crate::harness::*;

/// How long the tests wait for the server to do something it was asked to.
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn the_startup_line_names_version_index_tenants_and_listener() {
    let server = Launch::new(sample_config()).start();
    let index = IndexFile::sample();
    let log = server.wait_for_log("the start-up line", |l| l.contains(" serving "));
    let line = log.lines().find(|l| l.contains(" serving ")).unwrap();
    let expected = format!(
        "smart-imaging {} serving {} studies ({} instances) from ",
        env!("CARGO_PKG_VERSION"),
        index.studies.len(),
        index.instance_count()
    );
    assert!(line.contains(&expected), "{line}");
    assert!(line.contains("written 2025-11-28T00:00:00Z"), "{line}");
    assert!(line.contains("tenants demo (mock), open (mock)"), "{line}");
    assert!(line.contains(&format!("listener http://{}", server.addr())), "{line}");
}

/// The value of one sample line of an exposition, by its name and labels as written.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_requests_bytes_and_latency_and_can_be_turned_off() {
    let server = Launch::new(sample_config()).start();
    let (uid, address) = addresses(&server, "/open/fhir/ImagingStudy").remove(0);
    let download = get(&format!("{address}/studies/{uid}"), &[]);
    assert_eq!(download.status, 200);
    assert_eq!(server.get("/open/fhir/ImagingStudy/2.25.9").status, 404);
    // The counts are made once each response is done, after the client has it: wait for the log line.
    server.wait_for_log("the 404's log line", |l| l.contains("/open/fhir/ImagingStudy/2.25.9 404"));
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = reply.text();
    assert_eq!(
        sample(&text, "smart_imaging_requests_total{route=\"fhir-search\",status=\"200\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "smart_imaging_requests_total{route=\"fhir-read\",status=\"404\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "smart_imaging_requests_total{route=\"wado\",status=\"200\"}"), Some(1.0), "{text}");
    let bytes = sample(&text, "smart_imaging_response_bytes_total").unwrap();
    assert!(bytes >= download.body.len() as f64, "{bytes} bytes counted, {} downloaded", download.body.len());
    assert_eq!(sample(&text, "smart_imaging_request_duration_seconds_count"), Some(3.0), "{text}");
    assert_eq!(sample(&text, "smart_imaging_request_duration_seconds_bucket{le=\"+Inf\"}"), Some(3.0), "{text}");
    assert_eq!(sample(&text, "smart_imaging_busy_workers"), Some(1.0), "the scrape itself: {text}");
    // Counted by the connection watch's sweep, a quarter of a second behind at most: only present.
    assert!(sample(&text, "smart_imaging_open_connections").is_some(), "{text}");
    let index = IndexFile::sample();
    assert_eq!(sample(&text, "smart_imaging_index_instances"), Some(index.instance_count() as f64), "{text}");
    assert_eq!(sample(&text, "smart_imaging_index_reloads_total{outcome=\"ok\"}"), Some(0.0), "{text}");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample line: {line}");
    }

    let dir = TempDir::new("metrics-off");
    let off = Launch::new(dir.config(
        "[server]\nmetrics = false\n\n[tenants.open]\nauthorization.type = \"mock\"\n\
                 authorization.ignorePatient = true\nimages.lookup = \"all-studies\"\n",
    ))
    .start();
    assert_eq!(off.get("/metrics").status, 404, "server.metrics = false");
}

/// The lines of a file, once it holds at least `n` (the audit writer is a thread of its own).
fn wait_for_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(Instant::now() < deadline, "{} holds {} lines, not {n}:\n{text}", path.display(), lines.len());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_audit_trail_has_a_line_per_access_with_who_what_and_how_and_no_token() {
    let audit_dir = TempDir::new("audit");
    let file = audit_dir.path().join("audit.jsonl");
    let tables = format!("[audit]\nfile = {}\n", toml_string(&file.to_string_lossy()));
    let s = setup_opts(Options { tables: &tables, ..Options::default() });
    let token = "at-4f1c9e-the-access-token-no-line-may-hold";
    let answer = json!({"active": true, "client_id": "viewer-app", "sub": "dr-who", "scope": SCOPES,
                            "patient": "Patient/pA", "exp": now() + 600});
    s.ehr.issue(token, answer);
    let auth = bearer(token);
    let headers = [("Authorization", auth.as_str())];

    let search = s.server.get_with("/ehr/fhir/ImagingStudy?patient=pA", &headers);
    assert_eq!(search.status, 200, "{}", search.text());
    let bundle = search.json();
    let study = resources(&bundle)[0].clone();
    let (uid, address) = (study["id"].as_str().unwrap().to_string(), wado_address(&bundle, &study));
    let study_token = study_token(&address).to_string();
    assert_eq!(get(&format!("{address}/studies/{uid}"), &headers).status, 200, "retrieve");
    let cross = s.server.get_with("/ehr/fhir/ImagingStudy?patient=pB", &headers);
    assert_eq!(cross.status, 403, "another patient");
    let bad = s.server.get_with(&format!("/ehr/wado/not-a-study-token/studies/{uid}"), &headers);
    assert!(matches!(bad.status, 401 | 403), "a bad study token: {}", bad.status);

    let lines = wait_for_lines(&file, 4);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let expect = [
        ("fhir-search", 200, Value::Null),
        ("wado", 200, json!(uid)),
        ("fhir-search", 403, Value::Null),
        ("wado", bad.status, json!(uid)),
    ];
    for (line, (route, status, study)) in lines.iter().zip(expect) {
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["study"], study, "{line}");
        assert_eq!(line["tenant"], "ehr", "{line}");
        assert_eq!(line["client_id"], "viewer-app", "{line}");
        assert_eq!(line["subject"], "dr-who", "{line}");
        assert_eq!(line["patient"], "pA", "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        assert!(line["path"].as_str().unwrap().starts_with("/ehr/"), "{line}");
        assert!(line["remote"].as_str().unwrap().starts_with("127.0.0.1:"), "{line}");
        assert!(line["duration_ms"].is_u64(), "{line}");
        let time = line["time"].as_str().unwrap();
        assert!(time.len() == 20 && time.ends_with('Z') && time.starts_with("20"), "{line}");
    }
    assert_eq!(lines[0]["bytes"].as_u64(), Some(search.body.len() as u64));
    assert!(lines[1]["bytes"].as_u64().unwrap() > 0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(token), "the access token is in the audit trail");
    assert!(!text.contains(&study_token), "a study token is in the audit trail");

    // Rotation: the file moved away, SIGHUP, and the next line goes to a new file of the same name.
    let rotated = audit_dir.path().join("audit.jsonl.1");
    std::fs::rename(&file, &rotated).unwrap();
    signal(&s.server, libc::SIGHUP);
    s.server.wait_for_log("the audit file reopened", |l| l.contains("audit: reopened"));
    assert_eq!(s.server.get_with("/ehr/fhir/ImagingStudy?patient=pA", &headers).status, 200);
    let after = wait_for_lines(&file, 1);
    assert_eq!((after.len(), &after[0]["route"]), (1, &json!("fhir-search")), "{after:?}");
    assert_eq!(wait_for_lines(&rotated, 4).len(), 4, "the rotated file keeps its lines");
}

/// The sample index with only the studies given, in a folder that holds a copy of the sample files.
fn index_of(studies: &[&str]) -> String {
    let text = std::fs::read_to_string(sample_index_path()).unwrap();
    let mut parts = text.split("\n[[study]]\n");
    let head = parts.next().unwrap().to_string();
    let kept: Vec<&str> =
        parts.filter(|p| studies.iter().any(|uid| p.contains(&format!("uid = \"{uid}\"\n")))).collect();
    assert_eq!(kept.len(), studies.len(), "the studies are in the sample index");
    kept.iter().fold(head, |out, p| format!("{out}\n[[study]]\n{p}"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Replaces the index file whole, as an operator would (write, then rename over it).
fn replace(dir: &TempDir, text: &str) -> PathBuf {
    let fresh = dir.write("index.toml.new", text);
    let path = dir.path().join("index.toml");
    std::fs::rename(fresh, &path).unwrap();
    path
}

#[test]
fn sighup_reloads_the_index_under_traffic_without_a_failed_request() {
    const KEPT: &str = "2.25.3141592653589793238462643383279.1.1.2";
    const REMOVED: &str = "2.25.3141592653589793238462643383279.1.1.1";
    const ADDED: &str = "2.25.3141592653589793238462643383279.1.2.1";
    let dir = TempDir::new("reload");
    copy_tree(&data_dir().join("dicom"), &dir.path().join("dicom"));
    dir.write("index.toml", index_of(&[REMOVED, KEPT]));
    let config = dir.write(
        "smart-imaging.toml",
        "[server]\nthreads = 4\n\n[images]\nindex = \"index.toml\"\n\n[tenants.open]\n\
         authorization.type = \"mock\"\nauthorization.ignorePatient = true\nimages.lookup = \"all-studies\"\n",
    );
    let server = Arc::new(Launch::new(config).start());
    let before = addresses(&server, "/open/fhir/ImagingStudy");
    assert_eq!(sorted(before.iter().map(|(u, _)| u.clone())), sorted([KEPT.to_string(), REMOVED.to_string()]));
    let address = |uid: &str| before.iter().find(|(u, _)| u == uid).unwrap().1.clone();
    let (kept, removed) = (address(KEPT), address(REMOVED));
    let expected = IndexFile::sample().study(KEPT).instances().len();

    // A stream of downloads (with a token minted before the reload) and searches, until told to stop.
    let traffic = Traffic::start(&server, "/open/fhir/ImagingStudy", (&kept, KEPT), expected);

    // A broken index is refused and the old one keeps serving.
    replace(&dir, "written = \"not a time\"\n");
    signal(&server, libc::SIGHUP);
    server.wait_for_log("the refused reload", |l| l.contains("reload refused"));
    let refused = server.log().lines().filter(|l| l.contains("reload refused")).count();
    assert_eq!(refused, 1, "one log line for a refused index");
    traffic.more(10);
    assert_eq!(server.get(&format!("/open/fhir/ImagingStudy/{REMOVED}")).status, 200, "the old index serves on");

    // A sound one replaces it.
    replace(&dir, &index_of(&[KEPT, ADDED]));
    signal(&server, libc::SIGHUP);
    server.wait_for_log("the reload", |l| l.contains("reload: configuration and index read"));
    traffic.more(10);
    traffic.stop_and_check();

    let after = sorted(addresses(&server, "/open/fhir/ImagingStudy").into_iter().map(|(u, _)| u));
    assert_eq!(after, sorted([KEPT.to_string(), ADDED.to_string()]), "the new study appears");
    assert_eq!(server.get(&format!("/open/fhir/ImagingStudy/{REMOVED}")).status, 404, "the removed study");
    assert_eq!(get(&format!("{removed}/studies/{REMOVED}"), &[]).status, 404, "the removed study's token");
    assert_eq!(get(&format!("{kept}/studies/{KEPT}"), &[]).status, 200, "a token minted before the reload");
    let metrics = server.get("/metrics").text();
    assert_eq!(sample(&metrics, "smart_imaging_index_reloads_total{outcome=\"ok\"}"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "smart_imaging_index_reloads_total{outcome=\"refused\"}"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "smart_imaging_index_studies"), Some(2.0), "{metrics}");
}

/// Broke: a SIGHUP that came while a reload ran was dropped ("a reload is already running"), and the index
/// the first one read kept serving although the file had been replaced again.
#[test]
fn a_sighup_during_a_reload_reads_the_index_once_more_after_it() {
    const FIRST: &str = "2.25.3141592653589793238462643383279.1.1.1";
    const MIDDLE: &str = "2.25.3141592653589793238462643383279.1.1.2";
    const LAST: &str = "2.25.3141592653589793238462643383279.1.2.1";
    let dir = TempDir::new("reload-again");
    dir.write("index.toml", index_of(&[FIRST]));
    let config = dir.write(
        "smart-imaging.toml",
        "[images]\nindex = \"index.toml\"\n\n[tenants.open]\nauthorization.type = \"mock\"\n\
         authorization.ignorePatient = true\nimages.lookup = \"all-studies\"\n",
    );
    let server = Launch::new(config).start();
    // The index file becomes a pipe: the first reload waits in it, so the second SIGHUP surely comes during
    // that reload.
    let path = dir.path().join("index.toml");
    let pipe = dir.path().join("index.fifo");
    let c_pipe = std::ffi::CString::new(pipe.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c_pipe.as_ptr(), 0o600) }, 0, "mkfifo");
    std::fs::rename(&pipe, &path).unwrap();
    signal(&server, libc::SIGHUP);
    server.wait_for_log("the reload's start", |l| l.contains("and its index again"));
    signal(&server, libc::SIGHUP);
    server.wait_for_log("the second SIGHUP", |l| l.contains("SIGHUP during a reload"));
    // Opening the pipe for writing lets the first reload's open return; the file is then replaced for the
    // reload that the second SIGHUP asked for, and the first reads a stale index from the pipe.
    let mut writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    replace(&dir, &index_of(&[LAST]));
    std::io::Write::write_all(&mut writer, index_of(&[MIDDLE]).as_bytes()).unwrap();
    drop(writer);
    server.wait_for_log("two reloads", |l| l.matches("reload: configuration and index read").count() == 2);
    let ids = sorted(addresses(&server, "/open/fhir/ImagingStudy").into_iter().map(|(u, _)| u));
    assert_eq!(ids, vec![LAST.to_string()], "the index as the last SIGHUP found it serves");
    let metrics = server.get("/metrics").text();
    assert_eq!(sample(&metrics, "smart_imaging_index_reloads_total{outcome=\"ok\"}"), Some(2.0), "{metrics}");
}

#[test]
fn the_unit_file_runs_a_dedicated_user_hardened_as_the_docs_install_it() {
    let unit = std::fs::read_to_string(repo().join("packaging/smart-imaging.service")).unwrap();
    let values = |key: &str| -> Vec<String> {
        unit.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).map(str::to_string).collect()
    };
    let one = |key: &str| values(key).pop().unwrap_or_else(|| panic!("the unit sets no {key}"));
    assert_eq!(one("User"), "smart-imaging", "a dedicated user");
    assert_eq!(one("Restart"), "on-failure", "the server exits 1 when its listener is lost");
    assert!(one("LimitNOFILE").parse::<u64>().unwrap() >= 65536, "room for the connection cap");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert!(one("ReadOnlyPaths").split(' ').any(|p| p == "/srv/dicom"), "the data read-only");
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID", "reload is SIGHUP");
    // The server raises its soft open-file limit with setrlimit, which @resources would forbid.
    assert!(values("SystemCallFilter").iter().all(|f| !f.contains("@resources")), "setrlimit must be allowed");
    let exec = one("ExecStart");
    let (binary, args) = exec.split_once(' ').unwrap();
    assert_eq!(args, "serve --config /etc/smart-imaging/smart-imaging.toml");
    let section = doc_section("docs/operations.md", "## On an edge device");
    for step in [
        format!("install -m 0755 smart-imaging {binary}"),
        "useradd --system".to_string(),
        "/etc/systemd/system/smart-imaging.service".to_string(),
        "systemctl enable --now smart-imaging".to_string(),
        "RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release".to_string(),
    ] {
        assert!(section.contains(&step), "the edge-device install lacks {step:?}");
    }
    // `serve --config FILE` is how the command line takes it.
    let run = run_cli(&["serve", "--config", "/nonexistent/smart-imaging.toml"], &repo());
    assert_eq!(run.code(), Some(2), "a start-up error, not a usage error: {run:?}");
    assert!(run.stderr.contains("/nonexistent/smart-imaging.toml"), "{run:?}");
}

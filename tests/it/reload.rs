//! The configuration read again on SIGHUP (docs/operations.md, Reloading the configuration and the index):
//! tenants added, removed and changed, a broken file refused in one line while the old one serves on, the
//! settings that need a restart named and kept, the study-token key read again, an unchanged tenant keeping
//! its EHR client's caches, and no failed request while the configuration is reloaded under traffic.

use std::path::PathBuf;
use std::sync::Arc;

use crate::clients::signal;
use crate::fake_ehr::{Options, SCOPES, active, now, search, setup_opts};
use crate::harness::*;

/// The line a successful reload ends with.
const RELOADED: &str = "reload: configuration and index read";

/// A mock tenant that sees every study.
fn open_tenant(name: &str) -> String {
    format!(
        "[tenants.{name}]\nauthorization.type = \"mock\"\nauthorization.ignorePatient = true\n\
         images.lookup = \"all-studies\"\n"
    )
}

/// Replaces the configuration whole, as an operator's editor or deployment would (write, then rename).
fn rewrite(dir: &TempDir, tables: &str) -> PathBuf {
    let fresh = dir.write("smart-imaging.toml.new", config_text(tables));
    let path = dir.path().join("smart-imaging.toml");
    std::fs::rename(fresh, &path).unwrap();
    path
}

/// Sends SIGHUP and waits for the `n`th reload line (`RELOADED` or a refusal) of the log; returns the log.
fn reload_and_wait(server: &Server, what: &str, n: usize) -> String {
    signal(server, libc::SIGHUP);
    server.wait_for_log(what, |log| log.matches(RELOADED).count() + log.matches("reload refused").count() >= n)
}

/// The lines of `log` that hold `needle`.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn a_tenant_added_answers_after_a_reload_and_one_removed_is_no_tenant() {
    let dir = TempDir::new("reload-tenants");
    let config = dir.config(&format!("{}\n{}", open_tenant("open"), open_tenant("old")));
    let pid_file = dir.path().join("smart-imaging.pid");
    let server = Launch::new(&config).arg("--pid-file").arg(pid_file.to_str().unwrap()).start();
    assert_eq!(server.get("/old/fhir/ImagingStudy").status, 200);
    let before = server.get("/lab/fhir/ImagingStudy");
    assert_eq!(before.status, 404, "{}", before.text());

    // `lab` sees the studies of a patient who owns none: the start-up warning is logged for it at reload.
    let lab = "[tenants.lab]\nauthorization.type = \"mock\"\n\
               authorization.patient = { id = \"nobody\", identifier = [{ value = \"NO-SUCH-ID\" }] }\n\
               images.lookup = \"studies-by-context\"\n";
    rewrite(&dir, &format!("{}\n{lab}\n{}", open_tenant("open"), open_tenant("everything")));
    let run = run_cli(&["reload", "--pid-file", pid_file.to_str().unwrap()], dir.path());
    assert_eq!(run.code(), Some(0), "{run}");
    let log = server.wait_for_log("the reload", |log| log.contains(RELOADED));
    let done = lines_with(&log, RELOADED);
    assert!(done[0].contains("tenants +everything +lab -old;"), "{done:?}");
    let warned = lines_with(&log, "tenant lab: can see no study: its mock patient nobody owns none");
    assert_eq!(warned.len(), 1, "the check's warning, for the new configuration\n{log}");

    let lab = server.get("/lab/fhir/ImagingStudy?patient=nobody");
    assert_eq!((lab.status, &lab.json()["total"]), (200, &serde_json::json!(0)), "{}", lab.text());
    let everything = server.get("/everything/fhir/ImagingStudy").json();
    assert_eq!(everything["total"], IndexFile::sample().uids().len(), "{everything}");
    let old = server.get("/old/fhir/ImagingStudy");
    assert_eq!(old.status, 404, "{}", old.text());
    assert!(old.text().contains("no tenant named \\\"old\\\""), "{}", old.text());
    assert_eq!(server.get("/open/fhir/ImagingStudy").status, 200, "an unchanged tenant serves on");
    let viewer = server.get("/viewer/config.json").json();
    let names: Vec<&str> = viewer["tenants"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["everything", "lab", "open"], "the viewer's tenants follow");
}

#[test]
fn a_broken_configuration_is_refused_in_one_line_and_the_old_one_serves_on() {
    let dir = TempDir::new("reload-broken");
    let config = dir.config(&open_tenant("open"));
    let server = Launch::new(&config).start();

    // An unknown key.
    rewrite(&dir, &format!("[server]\nthread = 4\n\n{}\n{}", open_tenant("open"), open_tenant("lab")));
    let log = reload_and_wait(&server, "the refused reload", 1);
    let refused = lines_with(&log, "reload refused");
    assert_eq!(refused.len(), 1, "{log}");
    assert!(refused[0].contains(&config.display().to_string()) && refused[0].contains("thread"), "{refused:?}");
    assert_eq!(lines_with(&log, "`thread`").len(), 1, "one line names the key\n{log}");
    assert_eq!(server.get("/open/fhir/ImagingStudy").status, 200, "the old configuration serves on");
    assert_eq!(server.get("/lab/fhir/ImagingStudy").status, 404, "nothing of the broken one serves");

    // A key file that cannot be read: the file parses, but is not taken either.
    rewrite(&dir, &format!("[server]\nkey_file = \"missing.key\"\n\n{}\n{}", open_tenant("open"), open_tenant("lab")));
    let log = reload_and_wait(&server, "the second refused reload", 2);
    let refused = lines_with(&log, "reload refused");
    assert_eq!(refused.len(), 2, "{log}");
    assert!(refused[1].contains("server.key_file") && refused[1].contains("missing.key"), "{refused:?}");
    assert_eq!(server.get("/lab/fhir/ImagingStudy").status, 404, "nothing of the refused one serves");

    // A tenant that is not valid.
    rewrite(
        &dir,
        &format!(
            "{}\n[tenants.lab]\nauthorization.type = \"mock\"\nimages.lookup = \"studies-by-context\"\n",
            open_tenant("open")
        ),
    );
    let log = reload_and_wait(&server, "the third refused reload", 3);
    let refused = lines_with(&log, "reload refused");
    assert!(refused[2].contains("tenants.lab.authorization.patient"), "{refused:?}");
    assert_eq!(server.get("/lab/fhir/ImagingStudy").status, 404);
    assert_eq!(server.get("/open/fhir/ImagingStudy").status, 200);
    assert!(!log.contains(RELOADED), "{log}");
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("smart_imaging_index_reloads_total{outcome=\"refused\"} 3"), "{metrics}");
}

#[test]
fn settings_that_need_a_restart_are_named_and_keep_their_running_value() {
    let dir = TempDir::new("reload-restart");
    let config = dir.config(&format!("[server]\nthreads = 4\n\n{}", open_tenant("open")));
    let server = Launch::new(&config).start();
    let workers = |server: &Server| {
        let metrics = server.get("/metrics").text();
        metrics.lines().find_map(|l| l.strip_prefix("smart_imaging_workers ")).map(str::to_string)
    };
    assert_eq!(workers(&server).as_deref(), Some("4"));

    rewrite(
        &dir,
        &format!(
            "[server]\nthreads = 2\nlisten = \"127.0.0.1:9\"\ninput_budget = 2097152\n\n{}\n{}",
            open_tenant("open"),
            open_tenant("lab")
        ),
    );
    let log = reload_and_wait(&server, "the reload", 1);
    let restart = lines_with(&log, "needs a restart");
    assert!(
        restart.iter().any(|l| l.contains("reload: server.threads changed (4 → 2) and needs a restart; keeping 4")),
        "{restart:?}"
    );
    assert!(
        restart.iter().any(|l| l.contains("server.listen changed (\"127.0.0.1:8000\" → \"127.0.0.1:9\")")),
        "{restart:?}"
    );
    assert!(restart.iter().any(|l| l.contains("server.input_budget changed (67108864 → 2097152)")), "{restart:?}");
    assert_eq!(restart.len(), 3, "{restart:?}");
    assert_eq!(workers(&server).as_deref(), Some("4"), "the workers started with serve on");
    assert_eq!(server.get("/lab/fhir/ImagingStudy").status, 200, "the rest of the file is taken");

    // The same file again: the difference is named again, since it still does not serve.
    let log = reload_and_wait(&server, "the second reload", 2);
    assert_eq!(lines_with(&log, "server.threads changed (4 → 2)").len(), 2, "{log}");
}

/// A study token from a search of tenant `open`, as its Endpoint address, for the first sample study.
fn minted(server: &Server) -> (String, String) {
    let bundle = server.get("/open/fhir/ImagingStudy").json();
    let study = &resources(&bundle)[0];
    let uid = study["id"].as_str().unwrap().to_string();
    (wado_address(&bundle, study), uid)
}

#[test]
fn a_new_study_token_key_refuses_the_tokens_of_the_old_one() {
    let dir = TempDir::new("reload-key");
    dir.write("first.key", "the-first-study-token-key-0123456789");
    let config = dir.config(&format!("[server]\nkey_file = \"first.key\"\n\n{}", open_tenant("open")));
    let server = Launch::new(&config).start();
    let (first, uid) = minted(&server);
    assert_eq!(get(&format!("{first}/studies/{uid}/metadata"), &[]).status, 200);

    // The same file, rotated in place.
    std::fs::write(dir.path().join("first.key"), "the-second-study-token-key-0123456789").unwrap();
    reload_and_wait(&server, "the reload", 1);
    assert_eq!(get(&format!("{first}/studies/{uid}/metadata"), &[]).status, 403, "minted under the old key");
    let (second, _) = minted(&server);
    assert_eq!(get(&format!("{second}/studies/{uid}/metadata"), &[]).status, 200, "minted under the new key");

    // Another file.
    dir.write("third.key", "the-third-study-token-key-0123456789");
    rewrite(&dir, &format!("[server]\nkey_file = \"third.key\"\n\n{}", open_tenant("open")));
    let log = reload_and_wait(&server, "the second reload", 2);
    assert!(lines_with(&log, RELOADED)[1].contains("changed server.key_file"), "{log}");
    assert_eq!(get(&format!("{second}/studies/{uid}/metadata"), &[]).status, 403, "minted under the old key");
    let (third, _) = minted(&server);
    assert_eq!(get(&format!("{third}/studies/{uid}/metadata"), &[]).status, 200, "minted under the new key");
}

#[test]
fn a_tenant_whose_settings_did_not_change_keeps_its_ehr_client_and_a_changed_one_gets_a_new_one() {
    let s = setup_opts(Options { tables: &open_tenant("open"), ..Options::default() });
    let config = s._dir.path().join("smart-imaging.toml");
    let token = "reload-cached-token";
    s.ehr.issue(token, active("pA", SCOPES, now() + 3600));
    assert_eq!(search(&s, "pA", token).status, 200);
    let introspections = || s.ehr.counts().2;
    assert_eq!(introspections(), 1);

    // Another tenant added: `ehr` is the same, and its cached introspection answers.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n{}", open_tenant("lab"))).unwrap();
    let log = reload_and_wait(&s.server, "the reload", 1);
    assert!(lines_with(&log, RELOADED)[0].contains("tenants +lab;"), "{log}");
    assert_eq!(search(&s, "pA", token).status, 200);
    assert_eq!(introspections(), 1, "the unchanged tenant kept its cache");

    // `ehr` changed (its timeout): a new client, which asks the EHR again.
    let text = std::fs::read_to_string(&config).unwrap();
    let changed = text.replacen(
        "images.lookup = \"studies-by-context\"",
        "images.lookup = \"studies-by-context\"\nauthorization.timeoutSeconds = 9",
        1,
    );
    assert_ne!(changed, text);
    std::fs::write(&config, changed).unwrap();
    let log = reload_and_wait(&s.server, "the second reload", 2);
    assert!(lines_with(&log, RELOADED)[1].contains("tenants ~ehr;"), "{log}");
    assert_eq!(search(&s, "pA", token).status, 200);
    assert_eq!(introspections(), 2, "the changed tenant asks the EHR afresh");

    // Its client's key file replaced, the table as it was: the tenant changed too.
    let run = run_cli(&["keygen", "--out", "other"], s._dir.path());
    assert_eq!(run.code(), Some(0), "{run}");
    let key = s._dir.path().join("client.private.jwk.json");
    std::fs::rename(s._dir.path().join("other.private.jwk.json"), &key).unwrap();
    let log = reload_and_wait(&s.server, "the third reload", 3);
    assert!(lines_with(&log, RELOADED)[2].contains("tenants ~ehr;"), "{log}");
}

#[test]
fn sighup_reloads_the_configuration_under_traffic_without_a_failed_request() {
    const ROUNDS: usize = 8;
    let dir = TempDir::new("reload-traffic");
    dir.write("study.key", "the-study-token-key-for-reloads-0123");
    let tables = |round: usize| {
        // Every round changes a tenant, a setting a reload takes, and one that needs a restart.
        format!(
            "[server]\nthreads = {}\nkey_file = \"study.key\"\nstudy_token_ttl = {}\n\n{}\n{}",
            4 + round % 2,
            600 + round,
            open_tenant("open"),
            open_tenant(&format!("extra{round}"))
        )
    };
    let config = dir.config(&tables(0));
    let server = Arc::new(Launch::new(&config).start());
    let (address, uid) = minted(&server);
    let expected = IndexFile::sample().study(&uid).instances().len();

    // A stream of downloads (with a token minted before the reloads) and searches, until told to stop.
    let traffic = Traffic::start(&server, "/open/fhir/ImagingStudy", (&address, &uid), expected);
    for round in 1..=ROUNDS {
        rewrite(&dir, &tables(round));
        reload_and_wait(&server, &format!("reload {round}"), round);
        traffic.more(5);
        let extra = server.get(&format!("/extra{round}/fhir/ImagingStudy"));
        assert_eq!(extra.status, 200, "round {round}: {}", extra.text());
    }
    traffic.stop_and_check();
    let log = server.log();
    assert_eq!(lines_with(&log, RELOADED).len(), ROUNDS, "{log}");
    assert_eq!(lines_with(&log, "server.threads changed (4 → 5) and needs a restart; keeping 4").len(), ROUNDS / 2);
    assert_eq!(server.get(&format!("/extra{}/fhir/ImagingStudy", ROUNDS - 1)).status, 404, "removed");
}

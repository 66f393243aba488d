//! `smart-on-fhir` tenants against the fake EHR of `fake_ehr` (docs/ehr.md, Connecting to an EHR; docs/api.md,
//! Errors): the happy paths, the caches, and the EHR failing in the ordinary ways. The red-team cases (an EHR that
//! misbehaves on purpose) are in `redteam`.

use std::time::Duration;

use serde_json::json;

use crate::fake_ehr::*;
use crate::harness::*;

#[test]
fn a_valid_token_sees_only_its_patients_studies_and_downloads_them() {
    let s = setup();
    s.ehr.issue("tA", active("Patient/pA", SCOPES, now() + 600));
    let reply = search(&s, "pA", "tA");
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), s.server.dump());
    let bundle = reply.json();
    let index = IndexFile::sample();
    let expected = sorted(index.studies_of(MRN_A).iter().map(|st| st.uid.clone()));
    assert_eq!(sorted(ids(&bundle)), expected, "only the studies whose PatientID is pA's MR identifier");
    for study in resources(&bundle) {
        assert_eq!(
            study["subject"]["reference"],
            format!("{}/Patient/pA", s.ehr.base),
            "subject is the absolute reference to the EHR's Patient"
        );
        let address = wado_address(&bundle, study);
        let uid = study["id"].as_str().unwrap();
        let got = get(&format!("{address}/studies/{uid}"), &[("Authorization", &bearer("tA"))]);
        assert_eq!(got.status, 200, "download {uid}: {}", got.text());
        assert_dicom_parts(&got, &index.study(uid).instances(), "smart-on-fhir download");
    }
    let read =
        s.server.get_with(&format!("/ehr/fhir/ImagingStudy/{}", expected[0]), &[("Authorization", &bearer("tA"))]);
    assert_eq!(read.status, 200, "read by id: {}", read.text());
    let other = &index.studies_of(MRN_B)[0].uid;
    let read = s.server.get_with(&format!("/ehr/fhir/ImagingStudy/{other}"), &[("Authorization", &bearer("tA"))]);
    assert_eq!(read.status, 404, "another patient's study cannot be read by id");
}

#[test]
fn wrong_patient_is_403() {
    let s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    assert_outcome(&search(&s, "pB", "tA"), 403, "searching another patient");
    let missing = s.server.get_with("/ehr/fhir/ImagingStudy", &[("Authorization", &bearer("tA"))]);
    assert_outcome(&missing, 403, "searching without a patient");
}

#[test]
fn token_failures_are_401_with_the_right_challenge() {
    let s = setup();
    s.ehr.issue("expired", active("pA", SCOPES, now() - 10));
    let none = s.server.get("/ehr/fhir/ImagingStudy?patient=pA");
    assert_outcome(&none, 401, "no token");
    let challenge = none.header_or_empty("www-authenticate");
    assert!(challenge.starts_with("Bearer realm=") && !challenge.contains("error="), "no token: {challenge}");

    let inactive = search(&s, "pA", "never-issued");
    assert_outcome(&inactive, 401, "an inactive token");
    assert!(inactive.header_or_empty("www-authenticate").contains("error=\"invalid_token\""), "inactive challenge");

    let expired = search(&s, "pA", "expired");
    assert_outcome(&expired, 401, "a token whose exp has passed, though the EHR says active");
    assert!(expired.header_or_empty("www-authenticate").contains("error=\"invalid_token\""), "expired challenge");
}

#[test]
fn scope_and_patient_claim_failures_are_403() {
    let s = setup();
    s.ehr.issue("no-imaging", active("pA", "launch/patient patient/Observation.rs user/ImagingStudy.rs", now() + 600));
    s.ehr.issue("no-patient", json!({"active": true, "scope": SCOPES, "exp": now() + 600}));
    let reply = search(&s, "pA", "no-imaging");
    assert_outcome(&reply, 403, "no imaging scope");
    assert!(reply.header_or_empty("www-authenticate").contains("error=\"insufficient_scope\""), "scope challenge");
    assert_outcome(&search(&s, "pA", "no-patient"), 403, "no patient claim");
}

#[test]
fn a_study_token_of_patient_a_is_refused_with_patient_bs_token() {
    let s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    s.ehr.issue("tB", active("pB", SCOPES, now() + 600));
    let bundle = search(&s, "pA", "tA").json();
    let study = resources(&bundle)[0].clone();
    let url = format!("{}/studies/{}", wado_address(&bundle, &study), study["id"].as_str().unwrap());
    let series = &study["series"][0];
    let instance =
        format!("{url}/series/{}/instances/{}", series["uid"], series["instance"][0]["uid"]).replace('"', "");
    for url in [url.clone(), format!("{instance}/rendered"), format!("{instance}/thumbnail")] {
        let refused = get(&url, &[("Authorization", &bearer("tB"))]);
        assert_eq!(refused.status, 403, "patient B's token on patient A's study token: {url}: {}", refused.text());
        assert!(!refused.body_contains(b"DICM") && !refused.body_contains(b"PNG"), "no image bytes in a refusal");
        let none = get(&url, &[]);
        assert_eq!(none.status, 401, "no bearer token on WADO: {url}");
        assert_eq!(get(&url, &[("Authorization", &bearer("tA"))]).status, 200, "patient A's own token: {url}");
    }
}

#[test]
fn a_study_token_serves_only_the_access_token_it_was_minted_under() {
    let s = setup();
    s.ehr.issue("first", active("pA", SCOPES, now() + 600));
    // The same patient's token after a refresh, or another app's: a token of its own.
    s.ehr.issue("refreshed", active("pA", SCOPES, now() + 600));
    let bundle = search(&s, "pA", "first").json();
    let study = resources(&bundle)[0].clone();
    let uid = study["id"].as_str().unwrap();
    let url = format!("{}/studies/{uid}/metadata", wado_address(&bundle, &study));
    assert_eq!(get(&url, &[("Authorization", &bearer("first"))]).status, 200, "the token it was minted under");
    let refused = get(&url, &[("Authorization", &bearer("refreshed"))]);
    assert_eq!(refused.status, 403, "another access token of the same patient: {}", refused.text());
    assert!(refused.text().contains("search again"), "the refusal says what to do: {}", refused.text());
    // The IG's refresh: search again for the study with the new token, retrieve with the fresh address.
    let again = search_with(&s, &format!("patient=pA&identifier=urn:oid:{uid}"), "refreshed").json();
    let fresh = format!("{}/studies/{uid}/metadata", wado_address(&again, &resources(&again)[0]));
    assert_eq!(get(&fresh, &[("Authorization", &bearer("refreshed"))]).status, 200, "the fresh address");
}

#[test]
fn the_ehr_stopped_is_503_with_retry_after_and_never_data() {
    let mut s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    s.ehr.issue("tA2", active("pA", SCOPES, now() + 600));
    assert_eq!(search(&s, "pA", "tA").status, 200, "the EHR up");
    s.ehr.stop();
    let reply = search(&s, "pA", "tA2");
    assert_outcome(&reply, 503, "the EHR stopped");
    let retry = reply.header_or_empty("retry-after");
    assert!(retry.parse::<u32>().is_ok(), "Retry-After is an integer, not {retry:?}");
    // The reply can reach the test before the server's log line does.
    s.server.wait_for_log("the log saying which step failed", |log| log.contains("503: introspection"));
}

#[test]
fn garbage_and_slow_answers_are_503() {
    let s = setup_with("authorization.timeoutSeconds = 1", None);
    s.ehr.issue("t1", active("pA", SCOPES, now() + 600));
    s.ehr.issue("t2", active("pA", SCOPES, now() + 600));
    s.ehr.set_mode(Mode::Garbage);
    assert_outcome(&search(&s, "pA", "t1"), 503, "introspection answering HTML");
    s.ehr.set_mode(Mode::Slow(2500));
    assert_outcome(&search(&s, "pA", "t2"), 503, "introspection slower than the 1 s timeout");
    s.ehr.set_mode(Mode::Normal);
    assert_eq!(search(&s, "pA", "t2").status, 200, "failures are not cached: the same token works once the EHR does");
}

#[test]
fn the_backend_token_and_introspections_are_cached() {
    let s = setup();
    for t in ["t1", "t2", "t3"] {
        s.ehr.issue(t, active("pA", SCOPES, now() + 600));
    }
    for _ in 0..3 {
        assert_eq!(search(&s, "pA", "t1").status, 200);
    }
    let (discovery, token, introspect, patient) = s.ehr.counts();
    assert_eq!(introspect, 1, "the same token is introspected once while cached");
    assert_eq!(token, 1, "one backend token");
    assert_eq!(discovery, 1, "discovery once");
    assert_eq!(patient, 1, "the patient read once");
    assert_eq!(search(&s, "pA", "t2").status, 200);
    assert_eq!(search(&s, "pA", "t3").status, 200);
    let (_, token, introspect, _) = s.ehr.counts();
    assert_eq!(introspect, 3, "each new token is introspected");
    assert_eq!(token, 1, "the backend token is reused across requests and tokens");
    assert!(s.ehr.refusals().is_empty(), "the EHR refused a client assertion: {:?}", s.ehr.refusals());
}

// Regression: when a token's cached introspection expired under load, every concurrent request carrying it
// introspected it (and read its Patient) on its own; at a single-threaded EHR the identical calls queued,
// each holding a place in the tenant's gate, and the gate answered 503 though the EHR was healthy.
#[test]
fn concurrent_requests_with_one_uncached_token_introspect_it_once_and_read_its_patient_once() {
    let s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    let n = 8;
    // Each EHR answer is held until every request has missed the cache and needs it: a request that did
    // not join the fetch in flight calls the EHR itself, and is counted there.
    let metrics = KeptAlive::open(&s.server);
    s.ehr.set_mode(Mode::HoldIntrospection);
    let rx = burst(&s, "/ehr/fhir/ImagingStudy?patient=pA", |_| "tA".to_string(), n);
    wait_for_misses(&metrics, "introspection", n);
    s.ehr.set_mode(Mode::HoldPatient);
    wait_for_misses(&metrics, "patient", n);
    s.ehr.set_mode(Mode::Normal);
    for i in 0..n {
        let reply = next(&rx, "a request of the burst");
        assert_eq!(reply.status, 200, "request {i}: {}", reply.text());
    }
    let (_, _, introspect, patient) = s.ehr.counts();
    assert_eq!(introspect, 1, "one introspection for {n} concurrent requests with one token");
    assert_eq!(patient, 1, "one Patient read for {n} concurrent requests for one patient");
}

// Regression: every request waiting for another's introspection held a place in the tenant's gate, so a
// burst on one popular token at an EHR some tens of milliseconds slow filled the gate behind that one call,
// and the requests beyond the tenant's share were answered 503.
#[test]
fn a_burst_on_one_token_at_a_slow_ehr_waits_for_its_one_introspection_beyond_the_tenants_share() {
    // 4 workers: the tenant has 2 places in its gate.
    let s = setup_opts(Options { server: "threads = 4", ..Options::default() });
    s.ehr.issue("warm", active("pA", SCOPES, now() + 600));
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    assert_eq!(search(&s, "pA", "warm").status, 200, "discovery, the backend token and Patient pA cached");
    s.ehr.set_mode(Mode::Slow(200));
    let n = 4;
    let rx = burst(&s, "/ehr/fhir/ImagingStudy?patient=pA", |_| "tA".to_string(), n);
    for i in 0..n {
        let reply = next(&rx, "a request of the burst");
        assert_eq!(reply.status, 200, "request {i} of {n} on 2 places: {}", reply.text());
    }
    assert_eq!(s.ehr.counts().2, 2, "one introspection for the warm-up, one for the burst");
}

#[test]
fn a_cached_token_is_refused_once_its_exp_passes() {
    let s = setup();
    let exp = now() + 2;
    s.ehr.issue("short", active("pA", SCOPES, exp));
    assert_eq!(search(&s, "pA", "short").status, 200, "valid before exp");
    // The one sleep of this suite: the token's own expiry is what is under test.
    while now() <= exp {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_outcome(&search(&s, "pA", "short"), 401, "after exp, though the introspection was cached for 60 s");
}

/// The revocation window (docs/operations.md, Security): a token revoked at the EHR keeps working here while its
/// introspection is cached; `introspectionCacheSeconds = 0` closes the window.
#[test]
fn a_revoked_token_works_while_cached_and_introspection_cache_seconds_0_disables_the_cache() {
    let s = setup();
    s.ehr.issue("t1", active("pA", SCOPES, now() + 600));
    assert_eq!(search(&s, "pA", "t1").status, 200);
    s.ehr.issue("t1", json!({"active": false}));
    assert_eq!(search(&s, "pA", "t1").status, 200, "revoked at the EHR, but cached for 60 s by default");

    let uncached = setup_with("authorization.introspectionCacheSeconds = 0", None);
    uncached.ehr.issue("t1", active("pA", SCOPES, now() + 600));
    assert_eq!(search(&uncached, "pA", "t1").status, 200);
    assert_eq!(search(&uncached, "pA", "t1").status, 200);
    assert_eq!(uncached.ehr.counts().2, 2, "introspectionCacheSeconds = 0: every request introspects");
    uncached.ehr.issue("t1", json!({"active": false}));
    assert_outcome(&search(&uncached, "pA", "t1"), 401, "revoked, with no positive cache");
}

#[test]
fn a_refused_backend_token_is_replaced_once() {
    let s = setup();
    s.ehr.issue("t1", active("pA", SCOPES, now() + 600));
    s.ehr.issue("t2", active("pA", SCOPES, now() + 600));
    assert_eq!(search(&s, "pA", "t1").status, 200);
    s.ehr.revoke_backend_tokens();
    assert_eq!(search(&s, "pA", "t2").status, 200, "introspection's 401 makes the server get a new backend token");
    let (_, token, introspect, _) = s.ehr.counts();
    assert_eq!((token, introspect), (2, 3), "one new backend token, one retried introspection");
}

#[test]
fn a_failed_discovery_is_retried() {
    let s = setup();
    s.ehr.issue("t1", active("pA", SCOPES, now() + 600));
    s.ehr.set_mode(Mode::DiscoveryFails);
    assert_outcome(&search(&s, "pA", "t1"), 503, "discovery failing");
    s.ehr.set_mode(Mode::Normal);
    assert_eq!(search(&s, "pA", "t1").status, 200, "a failed discovery is not cached");
    assert_eq!(s.ehr.counts().0, 2, "discovery asked twice");
}

#[test]
fn client_secret_basic_works() {
    let s = setup_with("", Some("s3cret:with/odd chars+%"));
    s.ehr.issue("t1", active("pA", SCOPES, now() + 600));
    assert_eq!(search(&s, "pA", "t1").status, 200, "client_secret_basic: {}", s.server.dump());
    assert!(s.ehr.refusals().is_empty(), "{:?}", s.ehr.refusals());
}

#[test]
fn the_imaging_smart_configuration_carries_the_ehrs_endpoints() {
    let s = setup();
    let reply = s.server.get("/ehr/fhir/.well-known/smart-configuration");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let doc = reply.json();
    let host = s.ehr.base.trim_end_matches("/fhir");
    assert_eq!(doc["authorization_endpoint"], format!("{host}/auth/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{host}/auth/token"));
    // The EHR also offers client_credentials and system scopes; neither gets a token this server accepts.
    assert_eq!(doc["grant_types_supported"], serde_json::json!(["authorization_code"]), "{doc}");
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]), "{doc}");
    // The EHR advertises an EHR launch with the patient in context, and this server passes it on.
    let caps: Vec<&str> = doc["capabilities"].as_array().unwrap().iter().filter_map(|c| c.as_str()).collect();
    for cap in [
        "smart-imaging-access",
        "http://fhir.org/argonaut/smart-imaging/capabilities/app-launch",
        "launch-ehr",
        "context-ehr-patient",
    ] {
        assert!(caps.contains(&cap), "{cap} in {caps:?}");
    }
    assert!(!caps.contains(&"launch-standalone"), "the fake EHR does not advertise it: {caps:?}");
    let scopes: Vec<&str> = doc["scopes_supported"].as_array().unwrap().iter().filter_map(|c| c.as_str()).collect();
    assert!(scopes.contains(&"launch") && scopes.contains(&"patient/ImagingStudy.rs"), "{scopes:?}");
}

#[test]
fn a_bad_jwk_stops_the_start_naming_the_key() {
    let dir = TempDir::new("badjwk");
    dir.write("key.json", r#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA","d":"AA"}"#);
    for (client, what) in [
        (r#"{ id = "c", jwk = "missing.json" }"#, "missing.json"),
        (r#"{ id = "c", jwk = "key.json" }"#, "key.json"),
        (r#"{ id = "c" }"#, "client"),
    ] {
        let config = dir.config(&format!(
            "[tenants.ehr]\nauthorization.type = \"smart-on-fhir\"\nauthorization.fhirBaseUrl = \"http://127.0.0.1:9/fhir\"\n\
             authorization.client = {client}\nimages.lookup = \"studies-by-context\"\n"
        ));
        let run = run_cli(&["check", "--config", config.to_str().unwrap()], dir.path());
        assert_eq!(run.code(), Some(2), "{what}: {run:?}");
        assert!(run.stderr.contains("tenants.ehr.authorization.client") && run.stderr.contains(what), "{run:?}");
    }
}

#[test]
fn the_study_search_at_an_endpoint_address_needs_the_bearer_token_of_its_patient() {
    let s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    s.ehr.issue("tB", active("pB", SCOPES, now() + 600));
    let bundle = search(&s, "pA", "tA").json();
    let study = resources(&bundle)[0].clone();
    let uid = study["id"].as_str().unwrap();
    let url = format!("{}/studies?StudyInstanceUID={uid}", wado_address(&bundle, &study));
    assert_eq!(get(&url, &[]).status, 401, "no bearer token");
    let refused = get(&url, &[("Authorization", &bearer("tB"))]);
    assert_eq!(refused.status, 403, "patient B's token on patient A's study token: {}", refused.text());
    assert!(!refused.text().contains(uid), "a refusal says nothing of the study");
    let found = get(&url, &[("Authorization", &bearer("tA"))]);
    assert_eq!(found.status, 200, "patient A's own token: {}", found.text());
    assert_eq!(found.json()[0]["0020000D"]["Value"][0], uid, "the study");
}

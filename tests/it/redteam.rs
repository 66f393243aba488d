//! The red-team pass over the `smart-on-fhir` paths (docs/operations.md, Security): the fake EHR of `fake_ehr`
//! misbehaving on purpose (redirects to an attacker's host on 127.0.0.2, wrong answers, changed
//! identifiers, held answers) and requests an attacker would send. Every case must fail closed. Each test
//! is headed by what broke before its fix.

use serde_json::json;

use crate::fake_ehr::*;
use crate::harness::*;

/// The demo tenant of the repository's configuration, beside the `ehr` tenant.
const DEMO: &str = r#"[tenants.demo]
authorization = { type = "mock", patient = { id = "p1", identifier = [{ value = "MRN-1001", type = "MR" }] } }
images = { lookup = "studies-by-context" }
"#;

// ---------------------------------------------------------------------------------------------------
// The answer must be what was asked.

// Regression: introspection answering 302 to another host was followed (as a GET, without the token or the
// backend credentials) and that host's {"active":true,"patient":"pB"} trusted: a made-up token got B's studies.
#[test]
fn an_introspection_redirect_to_another_host_is_503_and_not_followed() {
    let attacker = Attacker::start();
    let s = setup();
    s.ehr.set_mode(Mode::IntrospectionRedirect(format!("{}/introspect", attacker.base)));
    let reply = search(&s, "pB", "made-up-token");
    assert_outcome(&reply, 503, "introspection redirected to another host");
    assert!(reply.header_or_empty("retry-after").parse::<u32>().is_ok(), "Retry-After");
    assert!(attacker.seen().is_empty(), "the redirect was followed: {:?}", attacker.seen());
}

// Regression: `Patient/{id}` answering 302 to another host was followed unauthenticated, and that host's
// identifiers chose the studies: patient B's studies were served under patient A.
#[test]
fn a_patient_redirect_to_another_host_is_503_and_not_followed() {
    let attacker = Attacker::start();
    let s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    s.ehr.set_mode(Mode::PatientRedirect(attacker.base.clone()));
    assert_outcome(&search(&s, "pA", "tA"), 503, "Patient read redirected to another host");
    assert!(attacker.seen().is_empty(), "the redirect was followed: {:?}", attacker.seen());
}

// Regression: a `Patient/pA` read answered with Patient pB was accepted: B's studies under subject A.
#[test]
fn a_patient_answer_with_another_id_is_refused() {
    let s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    s.ehr.set_patient("pA", patient("pB", MRN_B, "Yuki", "Tanaka"));
    let reply = search(&s, "pA", "tA");
    assert_outcome(&reply, 503, "Patient/pA answered with Patient pB");
    assert!(!reply.text().contains(MRN_B), "nothing of B in the answer");
    s.ehr.set_patient("pA", json!({"resourceType": "Observation", "id": "pA"}));
    assert_outcome(&search(&s, "pA", "tA"), 503, "Patient/pA answered with an Observation");
}

/// An EHR answer over 1 MiB is garbage to us, whatever it holds (docs/operations.md, Security).
#[test]
fn an_oversized_patient_answer_is_503() {
    let s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    let mut big = patient("pA", MRN_A, "Anna", "Müller");
    big["text"] = json!({"status": "generated", "div": "x".repeat(1 << 20)});
    s.ehr.set_patient("pA", big);
    assert_outcome(&search(&s, "pA", "tA"), 503, "a Patient of over 1 MiB");
}

// ---------------------------------------------------------------------------------------------------
// Patient references.

// Regression: `?patient=https://evil.example/fhir/Patient/pA` (or `Group/1/Patient/pA`) was taken for pA,
// in the search parameter and in the introspection's `patient` claim alike.
#[test]
fn patient_references_outside_the_ehrs_base_are_refused() {
    let s = setup();
    let base = s.ehr.base.clone();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    for asked in ["https://evil.example/fhir/Patient/pA", "Group/1/Patient/pA", &format!("{base}x/Patient/pA")] {
        assert_outcome(&search(&s, asked, "tA"), 400, &format!("?patient={asked}"));
    }
    for asked in ["pA", "Patient/pA", &format!("{base}/Patient/pA")] {
        assert_eq!(search(&s, asked, "tA").status, 200, "?patient={asked}");
    }
    for (n, claim) in ["https://evil.example/fhir/Patient/pA", "Group/1/Patient/pA"].iter().enumerate() {
        let token = format!("claim{n}");
        s.ehr.issue(&token, active(claim, SCOPES, now() + 600));
        let reply = search(&s, "pA", &token);
        assert_outcome(&reply, 401, &format!("patient claim {claim}"));
        let challenge = reply.header_or_empty("www-authenticate");
        assert!(challenge.contains("error=\"invalid_token\""), "claim {claim}: {challenge}");
    }
    s.ehr.issue("absolute", active(&format!("{base}/Patient/pA"), SCOPES, now() + 600));
    assert_eq!(search(&s, "pA", "absolute").status, 200, "a claim under the EHR's own base");
}

// ---------------------------------------------------------------------------------------------------
// Study tokens against the grant of now.

// Regression: a study token minted while patient A had MRN-1001 still served that study after the EHR
// changed A's identifiers: the WADO check compared the token's sealed PatientIDs with the index, never
// with the current grant's.
#[test]
fn a_study_token_is_refused_once_the_patients_identifiers_no_longer_hold_its_study() {
    let s = setup_with("authorization.patientCacheSeconds = 0", None);
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    let bundle = search(&s, "pA", "tA").json();
    let study = resources(&bundle)[0].clone();
    let url = format!("{}/studies/{}", wado_address(&bundle, &study), study["id"].as_str().unwrap());
    assert_eq!(get(&url, &[("Authorization", &bearer("tA"))]).status, 200, "while A has MRN-1001");
    s.ehr.set_patient("pA", patient("pA", "MRN-9999", "Anna", "Müller"));
    let refused = get(&url, &[("Authorization", &bearer("tA"))]);
    assert_eq!(refused.status, 403, "A's identifiers changed at the EHR: {}", refused.text());
    assert!(!refused.body_contains(b"DICM"), "no DICOM bytes in the refusal");
}

// ---------------------------------------------------------------------------------------------------
// Which identifiers are DICOM PatientIDs.

/// Patient pC: an SSN and an untyped insurer member id whose value is patient B's MRN; nothing typed MR.
fn patient_c() -> serde_json::Value {
    json!({
        "resourceType": "Patient",
        "id": "pC",
        "identifier": [
            {"system": "http://ssa.example.org", "value": "SSN-pC",
             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]}},
            {"system": "http://insurer.example.org", "value": MRN_B}
        ]
    })
}

// Regression: a patient with no MR-typed identifier had every identifier count as a DICOM PatientID, so
// an insurer id equal to another patient's MRN served that patient's study.
#[test]
fn a_patient_without_an_mr_identifier_owns_no_studies_unless_configured() {
    let s = setup();
    s.ehr.set_patient("pC", patient_c());
    s.ehr.issue("tC", active("pC", SCOPES, now() + 600));
    let reply = search(&s, "pC", "tC");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["total"], 0, "no identifier typed MR: no studies: {}", reply.text());

    let wide = setup_with("images.patientId = { any = true }", None);
    wide.ehr.set_patient("pC", patient_c());
    wide.ehr.issue("tC", active("pC", SCOPES, now() + 600));
    let bundle = search(&wide, "pC", "tC").json();
    let expected = sorted(IndexFile::sample().studies_of(MRN_B).iter().map(|st| st.uid.clone()));
    assert_eq!(sorted(ids(&bundle)), expected, "images.patientId = {{ any = true }}: every identifier counts");
}

// ---------------------------------------------------------------------------------------------------
// Requests an attacker sends.

// Regression: `_count=1&_offset=18446744073709551615` wrapped `offset + count` (release: a `next` link to
// `_offset=0`, so paging looped; debug: a panic, 500).
#[test]
fn paging_that_would_overflow_is_400_and_an_offset_past_the_end_is_an_empty_last_page() {
    let s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    let auth = bearer("tA");
    let page = |query: &str| {
        s.server.get_with(&format!("/ehr/fhir/ImagingStudy?patient=pA&{query}"), &[("Authorization", &auth)])
    };
    let max = usize::MAX;
    for query in [
        format!("_count=1&_offset={max}"),
        format!("_offset={max}&_count=5000"),
        format!("_count=1&_offset={max}0"),
        format!("_count={max}0"),
    ] {
        assert_outcome(&page(&query), 400, &query);
    }
    let past = page("_count=1&_offset=100");
    assert_eq!(past.status, 200, "an offset past the end: {}", past.text());
    let bundle = past.json();
    assert_eq!(bundle["total"], 2, "total counts every match");
    assert!(ids(&bundle).is_empty(), "no entries past the end");
    assert_eq!(link(&bundle, "next"), None, "no next link after the last page");
    let last = page(&format!("_count=1&_offset={}", max - 1)).json();
    assert_eq!(link(&last, "next"), None, "the largest offset that does not wrap: an empty last page");
}

// Regression: with two `Authorization` headers the first won, while a proxy reading the last saw another
// identity.
#[test]
fn two_authorization_headers_are_400() {
    let s = setup_opts(Options { tables: DEMO, ..Options::default() });
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    s.ehr.issue("tB", active("pB", SCOPES, now() + 600));
    let twice = [("Authorization", "Bearer tA"), ("Authorization", "Bearer tB")];
    for path in ["/ehr/fhir/ImagingStudy?patient=pA", "/demo/fhir/ImagingStudy?patient=p1"] {
        let reply = s.server.raw("GET", path, &twice);
        assert_eq!(reply.status, 400, "{path} with two Authorization headers: {}", reply.text());
    }
    assert_eq!(s.ehr.counts().2, 0, "neither token was introspected");
}

// ---------------------------------------------------------------------------------------------------
// The log.

/// A long, distinctive access token, to look for in logs.
const APP_TOKEN: &str = "app-token-Qm4Rt8Wz2Xc6Vb1Nk5Lp9Hd3Jf7Gs0Ay";

/// Fails when any 12 consecutive characters of `secret` are in `log`: the HTTP client's wire log prints
/// what it sends 16 bytes a line, so a whole token never stands on one line there.
fn assert_no_piece(log: &str, secret: &str, what: &str) {
    assert!(secret.len() >= 12, "{what} is too short to look for");
    for start in 0..=secret.len() - 12 {
        let piece = &secret[start..start + 12];
        assert!(!log.contains(piece), "a piece of the {what} ({piece}) is in the log");
    }
}

// Regression: study tokens were logged in full on near-miss paths (`/t/WADO/{st}`, `/t/wado%2F{st}`,
// `/t/fhir/ImagingStudy/{st}`), and at RUST_LOG=trace the HTTP client's wire log printed the backend token.
#[test]
fn no_token_reaches_the_log_even_at_trace() {
    let s = setup_opts(Options { env: &[("RUST_LOG", "trace")], ..Options::default() });
    s.ehr.issue(APP_TOKEN, active("pA", SCOPES, now() + 600));
    let bundle = search(&s, "pA", APP_TOKEN).json();
    let study = resources(&bundle)[0].clone();
    let (address, uid) = (wado_address(&bundle, &study), study["id"].as_str().unwrap().to_string());
    let token = study_token(&address).to_string();
    let auth = bearer(APP_TOKEN);
    let got = get(&format!("{address}/studies/{uid}"), &[("Authorization", &auth)]);
    assert_eq!(got.status, 200, "the download: {}", got.text());
    let near_misses = [
        format!("/ehr/WADO/{token}/studies/{uid}"),
        format!("/ehr/wado%2F{token}/studies/{uid}"),
        format!("/ehr/fhir/ImagingStudy/{token}"),
        format!("/nowhere/{token}"),
        format!("/ehr/fhir/ImagingStudy?patient=pA&access_token={APP_TOKEN}"),
        format!("/ehr/fhir/ImagingStudy?patient=pA&next={token}"),
    ];
    for path in &near_misses {
        let reply = s.server.get_with(path, &[("Authorization", &auth)]);
        assert!(reply.status < 500, "{path}: {}", reply.status);
    }
    let requests = 2 + near_misses.len();
    let log = s.server.wait_for_log("a line for every request", |log| log.matches(" GET /").count() >= requests);
    assert!(log.contains("DEBUG smart_imaging::auth::ehr"), "RUST_LOG=trace is in force: the EHR client's debug lines");
    assert_no_piece(&log, APP_TOKEN, "access token");
    assert_no_piece(&log, &token, "study token");
    let backend = s.ehr.issued_backend_tokens();
    assert!(!backend.is_empty(), "a backend token was issued");
    for t in backend {
        assert_no_piece(&log, &t, "backend token");
    }
    for jwt in s.ehr.assertions() {
        assert_no_piece(&log, &jwt, "client assertion");
    }
}

// ---------------------------------------------------------------------------------------------------
// Slow EHRs: no lock across a call, one fetch at a time, a bounded share of the workers.

// Regression: the backend-token mutex was held during the call to the token endpoint, so concurrent
// requests queued behind it and each made its own call after the previous one timed out (6 requests: 12 s).
#[test]
fn a_held_token_endpoint_is_asked_once_and_every_request_ends_within_its_timeout() {
    let s = setup_with("authorization.timeoutSeconds = 1", None);
    let n = 3;
    for i in 0..n {
        s.ehr.issue(&format!("t{i}"), active("pA", SCOPES, now() + 600));
    }
    s.ehr.set_mode(Mode::HoldToken);
    let rx = burst(&s, "/ehr/fhir/ImagingStudy?patient=pA", |i| format!("t{i}"), n);
    for i in 0..n {
        assert_outcome(&next(&rx, "a request while the token endpoint is held"), 503, &format!("reply {i}"));
    }
    let (_, token, _, _) = s.ehr.counts();
    assert_eq!(token, 1, "one backend-token fetch for {n} concurrent requests: the others waited for it");
    s.ehr.set_mode(Mode::Normal);
    assert_eq!(search(&s, "pA", "t0").status, 200, "once the token endpoint answers, the tenant works");
}

// Regression: each EHR call had its own timeout, so one request could wait `timeoutSeconds` for each of
// discovery, the backend token, introspection and the Patient read in turn.
#[test]
fn all_the_ehr_calls_of_a_request_share_one_timeout() {
    let s = setup_with("authorization.timeoutSeconds = 1", None);
    s.ehr.issue("t1", active("pA", SCOPES, now() + 600));
    s.ehr.issue("t2", active("pA", SCOPES, now() + 600));
    s.ehr.set_mode(Mode::SlowEach(700));
    assert_outcome(&search(&s, "pA", "t1"), 503, "introspection and Patient read 0.7 s each, 1 s for both");
    s.ehr.set_mode(Mode::Normal);
    assert_eq!(search(&s, "pA", "t2").status, 200, "the same EHR answering at once");
}

// Regression: while the EHR's discovery was slow, every request of that tenant held a worker on the
// discovery mutex, so `/healthz` and the other tenants waited for the slow EHR too.
#[test]
fn a_held_discovery_takes_at_most_half_the_workers() {
    // 4 workers: the `ehr` tenant may hold 2 of them waiting on its EHR.
    let s = setup_opts(Options {
        server: "threads = 4",
        tenant: "authorization.timeoutSeconds = 60",
        tables: DEMO,
        ..Options::default()
    });
    let n = 6;
    for i in 0..n {
        s.ehr.issue(&format!("t{i}"), active("pA", SCOPES, now() + 600));
    }
    s.ehr.set_mode(Mode::HoldDiscovery);
    let rx = burst(&s, "/ehr/fhir/ImagingStudy?patient=pA", |i| format!("t{i}"), n);
    s.ehr.wait_for("the discovery request", |c| c.discovery >= 1);
    for i in 0..n - 2 {
        // Refused at the gate (an OperationOutcome), or, when a worker thread was slow to start on a busy
        // machine, by the full queue ("busy"): either way at once, with Retry-After.
        let reply = next(&rx, "the requests beyond the tenant's share");
        assert_eq!(reply.status, 503, "request {i} beyond the share: {}", reply.text());
        assert!(reply.header_or_empty("retry-after").parse::<u32>().is_ok(), "Retry-After");
    }
    // Two requests still wait on the EHR; the other workers serve everything else.
    let health = s.server.get("/healthz");
    assert_eq!(health.status, 200, "/healthz while the EHR is held");
    let demo = s.server.get("/demo/fhir/ImagingStudy?patient=p1");
    assert_eq!(demo.status, 200, "a mock tenant's search while the EHR is held: {}", demo.text());
    let smart = s.server.get("/ehr/fhir/.well-known/smart-configuration");
    assert_outcome(&smart, 503, "an unauthenticated smart-configuration while the tenant's share is taken");
    s.ehr.set_mode(Mode::Normal);
    for i in 0..2 {
        let reply = next(&rx, "the requests that waited");
        assert_eq!(reply.status, 200, "waiting request {i} once discovery answers: {}", reply.text());
    }
    assert_eq!(s.ehr.counts().0, 1, "one discovery for every request");
}

// Regression guard for waiting without a place: the requests that join another's introspection wait without
// a place in the tenant's gate only while it is young, so a held introspection still takes at most the
// tenant's share of the workers, and those beyond it are refused within a moment, not at their timeout.
#[test]
fn a_held_introspection_keeps_the_requests_beyond_the_share_only_briefly() {
    // 4 workers: the `ehr` tenant may hold 2 of them waiting on its EHR.
    let s = setup_opts(Options {
        server: "threads = 4",
        tenant: "authorization.timeoutSeconds = 60",
        ..Options::default()
    });
    s.ehr.issue("t", active("pA", SCOPES, now() + 600));
    s.ehr.set_mode(Mode::HoldIntrospection);
    let n = 4;
    let rx = burst(&s, "/ehr/fhir/ImagingStudy?patient=pA", |_| "t".to_string(), n);
    for i in 0..n - 2 {
        let reply = next(&rx, "the requests beyond the tenant's share");
        assert_outcome(&reply, 503, &format!("request {i} beyond the share, long before its 60 s timeout"));
        assert!(reply.header_or_empty("retry-after").parse::<u32>().is_ok(), "Retry-After");
    }
    assert_eq!(s.server.get("/healthz").status, 200, "/healthz while the introspection is held");
    s.ehr.set_mode(Mode::Normal);
    for i in 0..2 {
        let reply = next(&rx, "the requests in the tenant's places");
        assert_eq!(reply.status, 200, "waiting request {i} once introspection answers: {}", reply.text());
    }
    assert_eq!(s.ehr.counts().2, 1, "one introspection for every request");
}

// Regression: an unauthenticated smart-configuration request waited on the discovery mutex while another
// request's discovery was slow, so anyone could pile requests onto the workers every tenant shares.
#[test]
fn an_unauthenticated_smart_configuration_does_not_wait_on_a_discovery_in_flight() {
    let s = setup_opts(Options {
        server: "threads = 8",
        tenant: "authorization.timeoutSeconds = 60",
        ..Options::default()
    });
    s.ehr.issue("t0", active("pA", SCOPES, now() + 600));
    s.ehr.set_mode(Mode::HoldDiscovery);
    let rx = burst(&s, "/ehr/fhir/ImagingStudy?patient=pA", |i| format!("t{i}"), 1);
    s.ehr.wait_for("the discovery request", |c| c.discovery >= 1);
    for i in 0..3 {
        let smart = s.server.get("/ehr/fhir/.well-known/smart-configuration");
        assert_outcome(&smart, 503, &format!("smart-configuration {i} while discovery is in flight"));
    }
    assert_eq!(s.ehr.counts().0, 1, "the unauthenticated requests started no discovery of their own");
    s.ehr.set_mode(Mode::Normal);
    assert_eq!(next(&rx, "the search").status, 200, "the authenticated search, once discovery answers");
    let smart = s.server.get("/ehr/fhir/.well-known/smart-configuration");
    assert_eq!(smart.status, 200, "smart-configuration from the cached discovery: {}", smart.text());
    assert_eq!(s.ehr.counts().0, 1, "discovery once");
}

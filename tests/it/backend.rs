//! Backend Services (docs/ehr.md, Backend Services): a `smart-on-fhir` tenant whose
//! `authorization.backendServices` lists backend clients, against the fake EHR of `fake_ehr`. A listed client's
//! token with a system ImagingStudy scope names its patient in each search and retrieves what the answer names;
//! every other token with system scopes is refused as before; study tokens of system access are bound to their
//! client and patient; every access is audited as system access of that client.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_ehr::*;
use crate::harness::*;

const BACKEND: &str = "authorization.backendServices = { clients = [\"backend-app\", \"backend-two\"] }";

/// An active system token of `client` with `scope` and no patient, as a Backend Services token is.
fn system(client: &str, scope: &str) -> Value {
    json!({"active": true, "client_id": client, "scope": scope, "exp": now() + 600})
}

fn backend_setup(tables: &str) -> Setup {
    setup_opts(Options { tenant: BACKEND, tables, ..Options::default() })
}

/// The (uid, WADO-RS address) of each study a search answered.
fn found(reply: &Reply) -> Vec<(String, String)> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let bundle = reply.json();
    resources(&bundle).iter().map(|s| (s["id"].as_str().unwrap().to_string(), wado_address(&bundle, s))).collect()
}

/// The JSON lines of the audit file once it holds `n`.
fn audit_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_listed_clients_system_token_searches_the_patient_it_names_retrieves_and_is_audited_as_system() {
    let dir = TempDir::new("backend-audit");
    let file = dir.path().join("audit.jsonl");
    let s = backend_setup(&format!("[audit]\nfile = {}\n", toml_string(&file.to_string_lossy())));
    s.ehr.issue("sys", system("backend-app", "system/ImagingStudy.rs"));
    let index = IndexFile::sample();
    let auth = bearer("sys");
    let headers = [("Authorization", auth.as_str())];

    let a = found(&search(&s, "pA", "sys"));
    assert_eq!(
        sorted(a.iter().map(|(u, _)| u.clone())),
        sorted(index.studies_of(MRN_A).iter().map(|st| st.uid.clone()))
    );
    let b = found(&search(&s, "Patient/pB", "sys"));
    assert_eq!(
        sorted(b.iter().map(|(u, _)| u.clone())),
        sorted(index.studies_of(MRN_B).iter().map(|st| st.uid.clone()))
    );
    let (uid, address) = &a[0];
    let got = get(&format!("{address}/studies/{uid}"), &headers);
    assert_eq!(got.status, 200, "retrieve under system access: {}", got.text());
    assert_dicom_parts(&got, &index.study(uid).instances(), "system access download");

    let bare = s.server.get_with("/ehr/fhir/ImagingStudy", &headers);
    assert_outcome(&bare, 400, "a system search without patient");
    assert!(bare.text().contains("patient"), "the 400 says to name the patient: {}", bare.text());
    let read = s.server.get_with(&format!("/ehr/fhir/ImagingStudy/{uid}"), &headers);
    assert_outcome(&read, 403, "a read by id names no patient under system access");
    assert_outcome(&search(&s, "pZ", "sys"), 403, "a patient the EHR does not know");

    let lines = audit_lines(&file, 6);
    assert_eq!(lines.len(), 6, "{lines:?}");
    let patients = ["pA", "pB", "pA"];
    for (line, patient) in lines.iter().zip(patients) {
        assert_eq!(line["access"], "system", "{line}");
        assert_eq!(line["client_id"], "backend-app", "{line}");
        assert_eq!(line["patient"], patient, "{line}");
        assert_eq!(line["status"], 200, "{line}");
    }
    assert!(lines.iter().all(|l| l["access"] == "system" && l["client_id"] == "backend-app"), "{lines:?}");
    assert!(!std::fs::read_to_string(&file).unwrap().contains("sys\""), "the token is in the audit trail");

    // SMART v1 and wildcard system scopes are read the same way.
    for (token, scope) in [("v1", "system/*.read"), ("wild", "system/*.rs"), ("v1-study", "system/ImagingStudy.read")] {
        s.ehr.issue(token, system("backend-app", scope));
        assert_eq!(search(&s, "pA", token).status, 200, "{scope}");
    }
    // An app's token on the same tenant is audited as patient access.
    s.ehr.issue("app", active("pA", SCOPES, now() + 600));
    assert_eq!(search(&s, "pA", "app").status, 200);
    let lines = audit_lines(&file, 10);
    assert_eq!(lines.last().unwrap()["access"], "patient", "{lines:?}");
}

#[test]
fn system_scopes_grant_nothing_but_to_a_listed_client_and_never_stand_in_for_a_missing_patient() {
    let s = backend_setup("");
    s.ehr.issue("unlisted", system("someone-else", "system/ImagingStudy.rs"));
    s.ehr.issue("no-client", json!({"active": true, "scope": "system/ImagingStudy.rs", "exp": now() + 600}));
    s.ehr.issue("other-scope", system("backend-app", "system/Patient.rs system/Observation.rs"));
    s.ehr.issue("read-only", system("backend-app", "system/ImagingStudy.r"));
    s.ehr.issue(
        "patient-scope-no-patient",
        json!({"active": true, "client_id": "backend-app", "scope": "patient/ImagingStudy.rs", "exp": now() + 600}),
    );
    for token in ["unlisted", "no-client", "other-scope", "read-only"] {
        let reply = search(&s, "pA", token);
        assert_outcome(&reply, 403, token);
        assert!(reply.header_or_empty("www-authenticate").contains("error=\"insufficient_scope\""), "{token}");
    }
    assert_outcome(&search(&s, "pA", "patient-scope-no-patient"), 403, "a patient scope without a patient");

    // Scopes of two contexts are never added up: a listed client's token in patient context for pA that also
    // holds a system scope is an app's token for pA, and another patient is 403.
    let mut both = active("pA", "patient/ImagingStudy.rs system/ImagingStudy.rs", now() + 600);
    both["client_id"] = json!("backend-app");
    s.ehr.issue("both", both);
    assert_eq!(search(&s, "pA", "both").status, 200, "its own patient");
    assert_outcome(&search(&s, "pB", "both"), 403, "a patient-context token's system scope does not widen it");

    // A tenant that lists no backend client honours no system scope at all.
    let plain = setup();
    plain.ehr.issue("sys", system("backend-app", "system/ImagingStudy.rs"));
    let reply = search(&plain, "pA", "sys");
    assert_outcome(&reply, 403, "system access where Backend Services is off");
    assert!(reply.header_or_empty("www-authenticate").contains("error=\"insufficient_scope\""));
}

#[test]
fn a_study_token_of_system_access_serves_only_its_client_and_patient() {
    let s = backend_setup("");
    s.ehr.issue("sys", system("backend-app", "system/ImagingStudy.rs"));
    s.ehr.issue("sys-two", system("backend-two", "system/ImagingStudy.rs"));
    s.ehr.issue("app-a", active("pA", SCOPES, now() + 600));
    let (uid, system_address) = found(&search(&s, "pA", "sys")).remove(0);
    let (app_uid, app_address) = found(&search(&s, "pA", "app-a")).remove(0);
    let retrieve = |address: &str, uid: &str, token: &str| {
        get(&format!("{address}/studies/{uid}/metadata"), &[("Authorization", &bearer(token))])
    };
    assert_eq!(retrieve(&system_address, &uid, "sys").status, 200, "the client it was minted for");
    for (what, reply) in [
        ("another listed client's system token", retrieve(&system_address, &uid, "sys-two")),
        ("an app's token of the same patient", retrieve(&system_address, &uid, "app-a")),
        ("an app's study token under system access", retrieve(&app_address, &app_uid, "sys")),
    ] {
        assert_eq!(reply.status, 403, "{what}: {}", reply.text());
        assert!(!reply.body_contains(b"DICM") && !reply.text().contains("00100020"), "{what} leaked data");
    }
    assert_eq!(retrieve(&app_address, &app_uid, "app-a").status, 200, "the app's own study token still works");
}

#[test]
fn discovery_advertises_backend_services_only_where_it_is_configured() {
    let on = backend_setup("");
    let off = setup();
    let doc = |s: &Setup| s.server.get("/ehr/fhir/.well-known/smart-configuration").json();
    let (with, without) = (doc(&on), doc(&off));
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let backend = "http://fhir.org/argonaut/smart-imaging/capabilities/backend-services".to_string();
    assert!(strings(&with["capabilities"]).contains(&backend), "{with}");
    assert_eq!(with["grant_types_supported"], json!(["authorization_code", "client_credentials"]), "{with}");
    assert!(strings(&with["token_endpoint_auth_methods_supported"]).contains(&"private_key_jwt".to_string()));
    let algorithms = strings(&with["token_endpoint_auth_signing_alg_values_supported"]);
    assert!(algorithms.iter().any(|a| a == "ES384" || a == "RS384"), "{with}");
    assert!(strings(&with["scopes_supported"]).contains(&"system/ImagingStudy.rs".to_string()), "{with}");
    assert!(!strings(&without["capabilities"]).contains(&backend), "{without}");
    assert_eq!(without["grant_types_supported"], json!(["authorization_code"]), "{without}");
    assert!(!strings(&without["scopes_supported"]).iter().any(|s| s.starts_with("system/")), "{without}");
}

#[test]
fn backend_services_settings_are_checked_at_start() {
    let dir = TempDir::new("backend-config");
    for (tenant, says) in [
        (
            "[tenants.m]\nauthorization = { type = \"mock\", ignorePatient = true, backendServices = { clients = [\"x\"] } }\n\
             images = { lookup = \"all-studies\" }\n",
            "backendServices applies only to type = \"smart-on-fhir\"",
        ),
        (
            "[tenants.s]\nauthorization.type = \"smart-on-fhir\"\nauthorization.fhirBaseUrl = \"https://ehr.example.org/fhir\"\n\
             authorization.client = { id = \"i\", secret = \"s\" }\nauthorization.backendServices = { clients = [] }\n\
             images.lookup = \"studies-by-context\"\n",
            "backendServices.clients must name at least one client id",
        ),
    ] {
        let config = dir.write("c.toml", config_text(tenant));
        let run = run_cli(&["check", "--config", config.to_str().unwrap()], dir.path());
        assert_eq!(run.code(), Some(2), "{run}");
        assert!(run.stderr.contains(says), "{says}: {run}");
    }
}

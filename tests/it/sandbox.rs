//! The built-in sandbox EHR (docs/ehr.md, The built-in sandbox EHR; README, Walk the real SMART flow) against the real
//! binary: the repository's own configuration serving its `smart` tenant end to end through the sandbox's
//! authorization-code flow; the patient picker; discovery, metadata and Patient reads; CORS; the
//! `[sandbox]` configuration's refusals; the log, one line per step and no secret in it.

use std::ffi::OsString;

use serde_json::Value;

use crate::harness::*;
use crate::sandbox_kit::*;

const MRN_A: &str = "MRN-1001";
const MRN_B: &str = "MRN-2002";

#[test]
fn the_default_configuration_serves_the_smart_tenant_end_to_end_through_the_sandbox() {
    let k = start_sample();
    let conf = k.server.get("/smart/fhir/.well-known/smart-configuration").json();
    let authorize = conf["authorization_endpoint"].as_str().unwrap();
    assert_eq!(authorize, format!("{}/auth/authorize", k.sandbox), "the imaging server names the sandbox's picker");
    assert!(conf["capabilities"].as_array().unwrap().iter().any(|c| c == "smart-imaging-access"), "{conf}");
    // What choosing Anna on the picker page sends.
    let flow = Flow::new(authorize, conf["token_endpoint"].as_str().unwrap(), &k.imaging_fhir()).set("patient", "p1");
    let token = flow.token();
    assert_eq!(token["patient"], "p1", "{token}");
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let auth = [("Authorization", bearer.as_str())];

    let reply = k.server.get_with("/smart/fhir/ImagingStudy?patient=p1", &auth);
    assert_eq!(reply.status, 200, "search: {}", reply.text());
    let bundle = reply.json();
    let index = IndexFile::sample();
    let expected = sorted(index.studies_of(MRN_A).iter().map(|s| s.uid.clone()));
    assert_eq!(sorted(ids(&bundle)), expected, "the studies of p1's MR identifier");
    for study in resources(&bundle) {
        let uid = study["id"].as_str().unwrap();
        assert_eq!(study["subject"]["reference"], format!("{}/fhir/Patient/p1", k.sandbox));
        let read = k.server.get_with(&format!("/smart/fhir/ImagingStudy/{uid}"), &auth);
        assert_eq!(read.status, 200, "read {uid}: {}", read.text());
        let address = wado_address(&bundle, study);
        let indexed = index.study(uid);
        let dicom = [auth[0], ("Accept", "multipart/related; type=\"application/dicom\"; transfer-syntax=*")];
        let retrieved = get(&format!("{address}/studies/{uid}"), &dicom);
        assert_eq!(retrieved.status, 200, "retrieve {uid}: {}", retrieved.text());
        assert_dicom_parts(&retrieved, &indexed.instances(), "retrieve through the sandbox's token");
        let metadata = get(&format!("{address}/studies/{uid}/metadata"), &auth);
        assert_eq!(metadata.status, 200, "metadata {uid}: {}", metadata.text());
        assert_eq!(metadata.json().as_array().map(Vec::len), Some(indexed.instance_count()), "one object per instance");
        let (series, instance) = (&indexed.series[0], &indexed.series[0].instances[0]);
        let frames =
            get(&format!("{address}/studies/{uid}/series/{}/instances/{}/frames/1", series.uid, instance.uid), &auth);
        assert_eq!(frames.status, 200, "frame 1 of {}: {}", instance.uid, frames.text());
        let parts = parse_multipart(frames.header_or_empty("content-type"), &frames.body).unwrap();
        assert_eq!(parts.len(), 1, "one frame");
    }
    let other = &index.studies_of(MRN_B)[0].uid;
    assert_eq!(k.server.get_with(&format!("/smart/fhir/ImagingStudy/{other}"), &auth).status, 404, "not p1's");
    assert_eq!(k.server.get_with("/smart/fhir/ImagingStudy?patient=p2", &auth).status, 403, "another patient");

    let p2 = Flow::new(&format!("{}/p2/auth/authorize", k.sandbox), &k.token_url(), &k.imaging_fhir()).token();
    let p2_auth = format!("Bearer {}", p2["access_token"].as_str().unwrap());
    let bundle = k.server.get_with("/smart/fhir/ImagingStudy?patient=p2", &[("Authorization", &p2_auth)]).json();
    assert_eq!(sorted(ids(&bundle)), sorted(index.studies_of(MRN_B).iter().map(|s| s.uid.clone())), "p2's issuer");

    let log = k.server.log();
    for step in [
        "sandbox EHR, for teaching and tests only",
        "approved patient p1 for client \"test-app\"",
        "exchanged by client \"test-app\"",
        "client_credentials for backend client \"smart-imaging\"",
        "introspection by \"smart-imaging\": token #",
        "Patient/p1 read by client \"smart-imaging\"",
    ] {
        assert!(log.contains(step), "the log shows {step:?}\n{log}");
    }
    assert!(!log.contains(token["access_token"].as_str().unwrap()), "no access token in the log");
}

#[test]
fn the_picker_asks_which_patient_and_the_per_patient_issuers_do_not() {
    let k = start_sample();
    let flow = Flow::new(&format!("{}/auth/authorize", k.sandbox), &k.token_url(), &k.imaging_fhir())
        .set("client_id", "<script>alert(1)</script>");
    let page = flow.authorize();
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.media_type(), "text/html");
    assert!(page.header_or_empty("content-security-policy").contains("default-src 'none'"));
    let html = page.text();
    assert!(html.contains("for teaching and tests only"), "the page says it is a sandbox");
    assert!(html.contains("Anna Müller") && html.contains("Yuki Tanaka"), "{html}");
    assert!(html.contains("name=patient value=\"p1\"") && html.contains("name=patient value=\"p2\""), "{html}");
    assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"), "reflected values are escaped");
    assert!(!html.contains("src=") && !html.contains("<link"), "no external asset");
    let chosen = flow.clone().set("patient", "p2").token();
    assert_eq!(chosen["patient"], "p2", "the patient chosen");
    let denied = flow.clone().set("deny", "1");
    assert_eq!(redirected_error(&denied, &denied.authorize()), "access_denied");
    let unknown = flow.clone().set("patient", "p9");
    assert_eq!(redirected_error(&unknown, &unknown.authorize()), "invalid_request");

    let at_p1 = k.flow();
    assert!(query_param(&at_p1.approved(), "code").is_some(), "the per-patient issuer approves at once");
    let mismatch = k.flow().set("patient", "p2");
    assert_eq!(redirected_error(&mismatch, &mismatch.authorize()), "invalid_request", "p1's issuer approves p1 only");
    assert_eq!(fetch(&format!("{}/p9/fhir/metadata", k.sandbox), &[]).status, 404, "no issuer for an unknown patient");
    for (what, flow) in [
        ("aud of another server", k.flow().set("aud", "http://127.0.0.1:1/fhir")),
        ("no aud", k.flow().without("aud")),
        ("an EHR launch", k.flow().set("launch", "xyz")),
        ("a response_type other than code", k.flow().set("response_type", "token")),
    ] {
        let error = redirected_error(&flow, &flow.authorize());
        assert!(error == "invalid_request" || error == "unsupported_response_type", "{what}: {error}");
    }
    let own_aud = k.flow().set("aud", &format!("{}/p1/fhir", k.sandbox));
    assert!(query_param(&own_aud.approved(), "code").is_some(), "the issuer's own FHIR base is a good aud");
    let home = fetch(&format!("{}/", k.sandbox), &[]).text();
    assert!(home.contains("for teaching and tests only") && home.contains("/p2/fhir"), "{home}");
}

const APP_LAUNCH: &str = "http://fhir.org/argonaut/smart-imaging/capabilities/app-launch";
/// The default configuration lets the sandbox's `backend-demo` client read the `smart` tenant's images.
const BACKEND_SERVICES: &str = "http://fhir.org/argonaut/smart-imaging/capabilities/backend-services";

#[test]
fn the_smart_tenants_discovery_describes_app_launch_at_the_sandbox_and_only_what_it_accepts() {
    let k = start_sample();
    for accept in ["application/json", "application/fhir+json", "text/html"] {
        let reply = k.server.get_with("/smart/fhir/.well-known/smart-configuration", &[("Accept", accept)]);
        assert_eq!(reply.status, 200, "Accept {accept}: {}", reply.text());
        assert_eq!(reply.media_type(), "application/json", "Accept {accept}");
    }
    let conf = k.server.get("/smart/fhir/.well-known/smart-configuration").json();
    let caps: Vec<&str> = conf["capabilities"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    // The sandbox's EHR launch gives tokens this server accepts, so launch-ehr is said here too; and the default
    // configuration's Backend Services client, so asymmetric client authentication.
    let launches = ["launch-standalone", "launch-ehr", "context-ehr-patient"];
    let backend = [BACKEND_SERVICES, "client-confidential-asymmetric"];
    let others = ["smart-imaging-access", APP_LAUNCH, "client-public", "permission-patient"];
    for cap in others.iter().chain(&launches).chain(&backend) {
        assert!(caps.contains(cap), "{cap} in {caps:?}");
    }
    for cap in ["permission-user", "sso-openid-connect"] {
        assert!(!caps.contains(&cap), "{cap} is not true of this server: {caps:?}");
    }
    let grants = serde_json::json!(["authorization_code", "client_credentials"]);
    assert_eq!(conf["grant_types_supported"], grants, "App Launch and Backend Services: {conf}");
    assert_eq!(conf["code_challenge_methods_supported"], serde_json::json!(["S256"]), "S256, never plain");
    assert_eq!(conf["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(conf["token_endpoint_auth_methods_supported"], serde_json::json!(["private_key_jwt"]), "{conf}");
    let scopes: Vec<&str> = conf["scopes_supported"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for scope in ["patient/ImagingStudy.rs", "system/ImagingStudy.rs"] {
        assert!(scopes.contains(&scope), "{scope} in {scopes:?}");
    }
    assert!(!scopes.iter().any(|s| s.contains("user/") || *s == "system/Patient.rs"), "{scopes:?}");
    let keys: Vec<&String> = conf.as_object().unwrap().keys().collect();
    for key in keys.iter().filter(|k| k.ends_with("_endpoint")) {
        let url = conf[key.as_str()].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/", k.sandbox)), "{key} absolute, at the sandbox: {url}");
    }

    // The sandbox names the tenant with the same SMART Imaging Access capabilities.
    let imaging: Vec<&str> = caps
        .iter()
        .copied()
        .filter(|c| *c == "smart-imaging-access" || c.starts_with("http://fhir.org/argonaut/smart-imaging/"))
        .collect();
    let ehr = fetch(&format!("{}/fhir/.well-known/smart-configuration", k.sandbox), &[]).json();
    let associated = ehr["associated_endpoints"].as_array().unwrap();
    let ours = associated.iter().find(|a| a["url"] == k.imaging_fhir()).unwrap_or_else(|| panic!("{ehr}"));
    assert_eq!(ours["capabilities"], serde_json::json!(imaging), "{ehr}");

    let metadata = k.server.get("/smart/fhir/metadata").json();
    let security = &metadata["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR", "{security}");
}

#[test]
fn discovery_metadata_and_patient_reads() {
    let k = start_sample();
    for issuer in [format!("{}/fhir", k.sandbox), format!("{}/p1/fhir", k.sandbox)] {
        let conf = fetch(&format!("{issuer}/.well-known/smart-configuration"), &[]).json();
        for key in ["authorization_endpoint", "token_endpoint", "introspection_endpoint"] {
            assert!(conf[key].as_str().unwrap().starts_with(&format!("{}/", k.sandbox)), "{key} absolute: {conf}");
        }
        assert_eq!(conf["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        let grants = conf["grant_types_supported"].as_array().unwrap();
        assert!(grants.iter().any(|g| g == "authorization_code") && grants.iter().any(|g| g == "client_credentials"));
        let caps: Vec<&str> = conf["capabilities"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        for cap in
            ["launch-standalone", "context-standalone-patient", "client-public", "client-confidential-asymmetric"]
        {
            assert!(caps.contains(&cap), "{cap} in {caps:?}");
        }
        assert_eq!(
            conf["associated_endpoints"],
            serde_json::json!([{
                "url": k.imaging_fhir(),
                "capabilities": ["smart-imaging-access", APP_LAUNCH, BACKEND_SERVICES]
            }]),
            "the imaging tenant that uses this sandbox"
        );
        let metadata = fetch(&format!("{issuer}/metadata"), &[]);
        assert_eq!(metadata.json()["resourceType"], "CapabilityStatement");
        assert!(metadata.text().contains("oauth-uris"), "the SMART security extension");
    }
    let patient = format!("{}/fhir/Patient/p1", k.sandbox);
    let none = fetch(&patient, &[]);
    assert_eq!(none.status, 401, "a Patient read needs a token");
    assert!(none.header_or_empty("www-authenticate").starts_with("Bearer"));
    let backend = format!("Bearer {}", k.backend_token());
    let read = fetch(&patient, &[("Authorization", &backend)]);
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(read.media_type(), "application/fhir+json");
    let p = read.json();
    assert_eq!((p["resourceType"].as_str(), p["id"].as_str()), (Some("Patient"), Some("p1")));
    let id = &p["identifier"][0];
    assert_eq!((id["value"].as_str(), id["system"].as_str()), (Some(MRN_A), Some("http://hospital.example.org")));
    assert_eq!(id["type"]["coding"][0]["code"], "MR");
    assert_eq!(p["birthDate"], "1970-04-12");
    let app = k.flow().set("scope", "launch/patient patient/Patient.rs").token();
    let app = format!("Bearer {}", app["access_token"].as_str().unwrap());
    assert_eq!(fetch(&patient, &[("Authorization", &app)]).status, 200, "the app's own patient");
    let other = format!("{}/fhir/Patient/p2", k.sandbox);
    assert_eq!(fetch(&other, &[("Authorization", &app)]).status, 403, "another patient");
    let imaging_only = format!("Bearer {}", k.flow().token()["access_token"].as_str().unwrap());
    assert_eq!(fetch(&patient, &[("Authorization", &imaging_only)]).status, 403, "no Patient scope");
    assert_eq!(fetch(&format!("{}/fhir/Patient/p9", k.sandbox), &[("Authorization", &backend)]).status, 404);
}

#[test]
fn every_endpoint_a_browser_app_calls_answers_cors_preflight_included() {
    let k = start_sample();
    let preflight = [
        ("Origin", "http://app.example"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "authorization, content-type, x-app-library"),
    ];
    for path in [
        "/auth/token",
        "/auth/introspect",
        "/fhir/.well-known/smart-configuration",
        "/p1/fhir/metadata",
        "/fhir/Patient/p1",
    ] {
        let reply = raw_request(k.addr(), "OPTIONS", path, &preflight);
        assert_eq!(reply.status, 204, "OPTIONS {path}");
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"), "OPTIONS {path}");
        let methods = reply.header_or_empty("access-control-allow-methods");
        assert!(list_has(methods, "POST") && list_has(methods, "GET"), "{path}: {methods}");
        let headers = reply.header_or_empty("access-control-allow-headers");
        assert!(list_has(headers, "Authorization") && list_has(headers, "Content-Type"), "{path}: {headers}");
        assert!(list_has(headers, "x-app-library"), "{path}: the headers a preflight asks for: {headers}");
        assert!(reply.header("access-control-allow-credentials").is_none(), "no credentials");
    }
    let origin = [("Origin", "http://app.example")];
    let discovery = fetch(&format!("{}/fhir/.well-known/smart-configuration", k.sandbox), &origin);
    let token = post_form(&k.token_url(), &[("grant_type", "nothing")], &origin);
    let patient = fetch(&format!("{}/fhir/Patient/p1", k.sandbox), &origin);
    for (what, reply) in [("discovery", discovery), ("a token refusal", token), ("a Patient refusal", patient)] {
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"), "{what}");
        assert!(list_has(reply.header_or_empty("access-control-expose-headers"), "WWW-Authenticate"), "{what}");
    }
}

#[test]
fn the_sandbox_configuration_is_validated_and_a_remote_address_refused() {
    let dir = TempDir::new("sandbox-config");
    let serve = |tables: &str, extra: &[&str]| {
        let config = dir.write("smart-imaging.toml", config_text(&format!("[tenants.open]\nauthorization = {{ type = \"mock\", ignorePatient = true }}\nimages = {{ lookup = \"all-studies\" }}\n{tables}")));
        let mut args: Vec<OsString> =
            vec!["serve".into(), "--config".into(), config.into(), "--listen".into(), "127.0.0.1:0".into()];
        args.extend(extra.iter().map(OsString::from));
        run_cli(&args, dir.path())
    };
    let sandbox = format!("[sandbox]\nlisten = \"127.0.0.1:0\"\n{PATIENTS}");
    for (what, tables, extra, named) in [
        ("an unknown key", sandbox.replace("[sandbox]", "[sandbox]\ntoken_lifetme = 5"), vec![], "token_lifetme"),
        ("a remote listen address", sandbox.replace("127.0.0.1:0", "0.0.0.0:0"), vec![], "sandbox.allow_remote = true"),
        ("a remote --sandbox-listen", sandbox.clone(), vec!["--sandbox-listen", "0.0.0.0:0"], "--sandbox-listen"),
        ("--sandbox-listen without [sandbox]", String::new(), vec!["--sandbox-listen", "127.0.0.1:0"], "[sandbox]"),
        ("{sandbox} without [sandbox]", "[tenants.smart]\nauthorization.type = \"smart-on-fhir\"\nauthorization.fhirBaseUrl = \"{sandbox}/fhir\"\nauthorization.client = { id = \"c\", secret = \"s\" }\nimages.lookup = \"studies-by-context\"\n".to_string(), vec![], "tenants.smart.authorization.fhirBaseUrl"),
    ] {
        let run = serve(&tables, &extra);
        assert_eq!(run.code(), Some(2), "{what}: {run}");
        assert!(run.stderr.contains(named), "{what}: the message names {named:?}: {run}");
    }
    let run = serve(&sandbox.replace("127.0.0.1:0", "0.0.0.0:0"), &[]);
    assert!(run.stderr.contains("sandbox.listen") && run.stderr.contains("teaching and tests"), "{run}");
}

#[test]
fn one_imaging_worker_is_enough_the_sandbox_answers_on_threads_of_its_own() {
    // Regression guard: were the sandbox served by the imaging workers, the only worker would wait on its
    // own call to the sandbox; the harness's deadline on each request would fail this test.
    let k = start_opts("threads = 1", "");
    for patient in ["p1", "p2", "p1"] {
        let flow = Flow::new(&format!("{}/{patient}/auth/authorize", k.sandbox), &k.token_url(), &k.imaging_fhir());
        let bearer = format!("Bearer {}", flow.token()["access_token"].as_str().unwrap());
        let reply =
            k.server.get_with(&format!("/smart/fhir/ImagingStudy?patient={patient}"), &[("Authorization", &bearer)]);
        assert_eq!(reply.status, 200, "{patient}: {}\n{}", reply.text(), k.server.dump());
    }
    assert!(k.server.log().contains("1 workers"), "the server ran one worker");
}

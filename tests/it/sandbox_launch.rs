//! The EHR launch: a patient's page in the sandbox opens a configured app with `iss` and `launch`; the app's
//! authorization request with the `launch` scope and that value gets the patient without a picker. A launch
//! value is good once, for its own app, and only as the sandbox made it.

use crate::sandbox_kit::*;

const VIEWER: &str = "smart-imaging-viewer";

/// The "Launch app" button of patient `patient`'s page for the first app: where it sends the browser.
fn launched(s: &Sandboxed, patient: &str) -> String {
    let page = fetch(&format!("{}/{patient}/", s.sandbox), &[]);
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains("Launch app: smart-imaging viewer") && html.contains(VIEWER), "{html}");
    let reply = post_form(&format!("{}/launch", s.sandbox), &[("app", "0"), ("patient", patient)], &[]);
    assert_eq!(reply.status, 303, "{}", reply.text());
    reply.header_or_empty("location").to_string()
}

/// The app's authorization request for an EHR launch, as the built-in viewer makes it.
fn ehr_flow(s: &Sandboxed, launch: &str) -> Flow {
    Flow::new(&format!("{}/auth/authorize", s.sandbox), &s.token_url(), &format!("{}/fhir", s.sandbox))
        .set("client_id", VIEWER)
        .set("scope", "launch patient/ImagingStudy.rs patient/Patient.rs")
        .set("launch", launch)
}

#[test]
fn a_patients_page_launches_the_viewer_and_its_token_names_the_patient() {
    let s = start_sample();
    let location = launched(&s, "p1");
    let viewer = s.server.url("/viewer/");
    assert!(location.starts_with(&format!("{viewer}?iss=")), "the viewer at the imaging server: {location}");
    assert_eq!(query_param(&location, "iss").as_deref(), Some(format!("{}/fhir", s.sandbox).as_str()));
    let launch = query_param(&location, "launch").expect("a launch value");
    let flow = ehr_flow(&s, &launch);
    let token = flow.token();
    assert_eq!(token["patient"], "p1", "{token}");
    assert_eq!(token["need_patient_banner"], true, "{token}");
    assert_eq!(token["scope"], "launch patient/ImagingStudy.rs patient/Patient.rs");
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let studies = s.server.get_with("/smart/fhir/ImagingStudy?patient=p1", &[("Authorization", &bearer)]);
    assert_eq!(studies.status, 200, "the imaging server takes the launched app's token: {}", studies.text());
    let discovery = fetch(&format!("{}/fhir/.well-known/smart-configuration", s.sandbox), &[]).json();
    for capability in ["launch-ehr", "context-ehr-patient", "launch-standalone"] {
        assert!(discovery["capabilities"].as_array().unwrap().iter().any(|c| c == capability), "{capability}");
    }
    let log = s.server.log();
    for step in
        ["EHR launch of \"smart-imaging viewer\"", "(EHR launch #", "exchanged by client \"smart-imaging-viewer\""]
    {
        assert!(log.contains(step), "the log shows {step:?}\n{log}");
    }
    assert!(!log.contains(&launch), "no launch value in the log");
}

#[test]
fn a_launch_tampered_unknown_reused_or_for_another_app_is_refused() {
    let s = start_sample();
    let launch = query_param(&launched(&s, "p1"), "launch").unwrap();
    let mut tampered = launch.clone();
    let last = if tampered.ends_with('0') { '1' } else { '0' };
    tampered.pop();
    tampered.push(last);
    for (what, value) in [("tampered", tampered.as_str()), ("unknown", "0123456789abcdef")] {
        let flow = ehr_flow(&s, value);
        assert_eq!(redirected_error(&flow, &flow.authorize()), "invalid_request", "a {what} launch");
    }
    let other_app = ehr_flow(&s, &launch).set("client_id", "another-app");
    assert_eq!(redirected_error(&other_app, &other_app.authorize()), "invalid_request", "another app's launch");
    // That refusal spent it: a launch is good for one authorization request.
    let spent = ehr_flow(&s, &launch);
    assert_eq!(redirected_error(&spent, &spent.authorize()), "invalid_request", "a launch tried before");

    let fresh = query_param(&launched(&s, "p1"), "launch").unwrap();
    assert_eq!(ehr_flow(&s, &fresh).token()["patient"], "p1");
    let reused = ehr_flow(&s, &fresh);
    assert_eq!(redirected_error(&reused, &reused.authorize()), "invalid_request", "a launch used before");

    let p1s = query_param(&launched(&s, "p1"), "launch").unwrap();
    let at_p2 = ehr_flow(&s, &p1s).authorize_url.replace("/auth/authorize", "/p2/auth/authorize");
    let mut wrong_issuer = ehr_flow(&s, &p1s);
    wrong_issuer.authorize_url = at_p2;
    assert_eq!(
        redirected_error(&wrong_issuer, &wrong_issuer.authorize()),
        "invalid_request",
        "p1's launch at p2's issuer"
    );

    let chosen = query_param(&launched(&s, "p1"), "launch").unwrap();
    let other_patient = ehr_flow(&s, &chosen).set("patient", "p2");
    assert_eq!(redirected_error(&other_patient, &other_patient.authorize()), "invalid_request", "another patient");

    // The launch scope without a launch value is not granted, and brings no patient.
    let standalone = ehr_flow(&s, "").without("launch");
    let token = standalone.token();
    assert_eq!(token["scope"], "patient/ImagingStudy.rs patient/Patient.rs", "{token}");
    assert!(token.get("patient").is_none(), "{token}");
    let refused = post_form(&format!("{}/launch", s.sandbox), &[("app", "7"), ("patient", "p1")], &[]);
    assert_eq!(refused.status, 400, "no such app");
}

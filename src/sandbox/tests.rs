//! The sandbox's route table in process: one authorization-code flow from the picker to introspection and
//! the Patient read, and the discovery documents. The rules one by one, against the real binary, are in
//! `tests/it/sandbox*.rs`.

use super::*;
use crate::auth::jwk::{SigningKey, generate_es384};
use crate::auth::patient::Identifier;
use serde_json::json;

const BASE: &str = "http://sandbox.test";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn sandbox() -> (Sandbox, SigningKey) {
    let (private, public) = generate_es384().unwrap();
    let settings = config::Sandbox {
        listen: "127.0.0.1:0".into(),
        base_url: None,
        allow_remote: false,
        token_lifetime: 600,
        code_lifetime: 60,
        clients: vec![config::SandboxClient { id: "backend".into(), keys: vec![public] }],
        patients: vec![SandboxPatient {
            id: "p1".into(),
            name: Some("Anna <Müller>".into()),
            birth_date: Some("1970-04-12".into()),
            gender: Some("female".into()),
            identifiers: vec![Identifier { system: None, value: "MRN-1001".into(), type_code: Some("MR".into()) }],
            chart: Vec::new(),
        }],
        apps: Vec::new(),
    };
    let imaging =
        vec![Associated { url: "http://imaging.test/smart/fhir".into(), capabilities: &["smart-imaging-access"] }];
    (Sandbox::new(BASE.into(), settings, imaging), SigningKey::from_jwk(&private.to_string()).unwrap())
}

/// A request and its body, answered.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn ask(sb: &Sandbox, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        "POST" => Method::Post,
        _ => Method::Other,
    };
    let req = Request {
        method,
        path: path.into(),
        query: query.into(),
        headers: headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())).collect(),
    };
    let resp = handle(sb, &req, body.as_bytes());
    Answer { status: resp.status, headers: resp.headers, body: resp.body.read_all().unwrap() }
}

fn header<'a>(resp: &'a Answer, name: &str) -> &'a str {
    resp.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map_or("", |(_, v)| v.as_str())
}

fn json_of(resp: &Answer) -> Value {
    serde_json::from_slice(&resp.body)
        .unwrap_or_else(|_| panic!("{} {:?}", resp.status, String::from_utf8_lossy(&resp.body)))
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

#[test]
fn the_picker_then_a_code_then_a_token_then_introspection() {
    let (sb, key) = sandbox();
    let authorize = format!(
        "/auth/authorize?response_type=code&client_id=app&redirect_uri=http%3A%2F%2Fapp.test%2Fcb&scope=launch%2Fpatient+\
         patient%2FImagingStudy.rs&state=s%26t&aud=http%3A%2F%2Fimaging.test%2Fsmart%2Ffhir&code_challenge={CHALLENGE}\
         &code_challenge_method=S256"
    );
    let page = ask(&sb, "GET", &authorize, &[], "");
    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains("teaching and tests") && html.contains("Anna &lt;Müller&gt;"), "{html}");
    assert!(html.contains("name=patient value=\"p1\""), "{html}");

    let approved = ask(&sb, "GET", &format!("{authorize}&patient=p1"), &[], "");
    assert_eq!(approved.status, 302);
    let location = header(&approved, "location");
    assert!(location.starts_with("http://app.test/cb?code=") && location.ends_with("&state=s%26t"), "{location}");
    let code = location.split("code=").nth(1).unwrap().split('&').next().unwrap();

    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2Fapp.test%2Fcb&client_id=app&code_verifier={VERIFIER}"
    );
    let token = ask(&sb, "POST", "/auth/token", &[FORM], &form);
    assert_eq!(token.status, 200, "{:?}", String::from_utf8_lossy(&token.body));
    let token = json_of(&token);
    assert_eq!(
        (token["patient"].as_str(), token["scope"].as_str()),
        (Some("p1"), Some("launch/patient patient/ImagingStudy.rs"))
    );
    let app_token = token["access_token"].as_str().unwrap();

    let now = crate::time::now_secs();
    let claims = json!({"iss": "backend", "sub": "backend", "aud": sb.token_url(), "exp": now + 60, "jti": "j"});
    let assertion = key.sign_jwt(&claims).unwrap();
    let form = format!(
        "grant_type=client_credentials&scope=system%2FPatient.rs&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3A\
         client-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    let backend = json_of(&ask(&sb, "POST", "/auth/token", &[FORM], &form));
    let backend = format!("Bearer {}", backend["access_token"].as_str().unwrap());
    let auth = ("Authorization", backend.as_str());
    let answer = json_of(&ask(&sb, "POST", "/auth/introspect", &[FORM, auth], &format!("token={app_token}")));
    assert_eq!(answer["active"], true);
    assert_eq!(answer["patient"], "p1");
    assert_eq!(answer["client_id"], "app");
    let patient = json_of(&ask(&sb, "GET", "/p1/fhir/Patient/p1", &[auth], ""));
    assert_eq!(patient["identifier"][0]["value"], "MRN-1001");
    let as_app = format!("Bearer {app_token}");
    let refused = ask(&sb, "POST", "/auth/introspect", &[FORM, ("Authorization", &as_app)], "token=x");
    assert_eq!(refused.status, 401, "an app's token may not introspect");
}

#[test]
fn discovery_preflight_and_refusals() {
    let (sb, _) = sandbox();
    let doc = json_of(&ask(&sb, "GET", "/p1/fhir/.well-known/smart-configuration", &[], ""));
    assert_eq!(doc["authorization_endpoint"], format!("{BASE}/p1/auth/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{BASE}/auth/token"));
    assert_eq!(
        doc["associated_endpoints"],
        serde_json::json!([{"url": "http://imaging.test/smart/fhir", "capabilities": ["smart-imaging-access"]}]),
        "each imaging tenant with the capabilities it was given"
    );
    let metadata = json_of(&ask(&sb, "GET", "/fhir/metadata", &[], ""));
    assert_eq!(metadata["resourceType"], "CapabilityStatement");
    let preflight = ask(&sb, "OPTIONS", "/auth/token", &[], "");
    assert_eq!(preflight.status, 204);
    assert_eq!(ask(&sb, "GET", "/nobody/fhir/metadata", &[], "").status, 404);
    assert_eq!(ask(&sb, "GET", "/auth/token", &[], "").status, 405);
    let home = ask(&sb, "GET", "/", &[], "");
    assert!(String::from_utf8_lossy(&home.body).contains("for teaching and tests only"));
}

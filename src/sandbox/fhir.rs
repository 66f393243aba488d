//! What each issuer of the sandbox serves as a FHIR base: `.well-known/smart-configuration`, `metadata` (the
//! Patient and chart resources it serves), and `Patient/{id}` from the configured patients.
//!
//! Invariants: the discovery documents name only absolute URLs of this sandbox (and, as
//! `associated_endpoints`, the imaging tenants that use it); a Patient is read only with an active token
//! that allows it (`oauth::may_read_patient`).

use serde_json::{Value, json};

use super::{Issuer, Sandbox, oauth};
use crate::config::SandboxPatient;
use crate::http::{Request, Response};

/// The v2-0203 identifier types FHIR R4 names, by code.
const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

/// `{issuer}/.well-known/smart-configuration` (SMART App Launch 2.x).
pub fn smart_configuration(sb: &Sandbox, issuer: &Issuer) -> Value {
    let associated: Vec<Value> =
        sb.imaging.iter().map(|a| json!({"url": a.url, "capabilities": a.capabilities})).collect();
    json!({
        "authorization_endpoint": issuer.authorize_url(&sb.base),
        "token_endpoint": sb.token_url(),
        "introspection_endpoint": sb.introspection_url(),
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES384", "RS384"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": [
            "launch", "launch/patient", "patient/*.rs", "patient/Patient.rs", "patient/ImagingStudy.rs",
            "patient/ImagingStudy.read", "patient/AllergyIntolerance.rs", "patient/Condition.rs",
            "patient/MedicationRequest.rs", "patient/Observation.rs", "patient/DiagnosticReport.rs", "user/*.rs",
            "system/Patient.rs", "system/*.rs"
        ],
        "capabilities": [
            "launch-ehr", "launch-standalone", "context-ehr-patient", "context-standalone-patient", "client-public",
            "client-confidential-asymmetric", "permission-patient", "permission-user", "permission-v1", "permission-v2"
        ],
        "associated_endpoints": associated,
    })
}

/// `{issuer}/metadata`: a CapabilityStatement with the OAuth URIs as the SMART security extension.
/// `chart` is what the chart serves (`chart::capabilities`).
pub fn capability_statement(sb: &Sandbox, issuer: &Issuer, chart: Vec<Value>) -> Value {
    let mut resources = vec![json!({"type": "Patient", "interaction": [{"code": "read"}]})];
    resources.extend(chart);
    let uri = |name: &str, url: String| json!({"url": name, "valueUri": url});
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-11-28",
        "kind": "instance",
        "software": {"name": "smart-imaging sandbox EHR (for teaching and tests)", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {
            "description": "A SMART on FHIR sandbox for teaching and tests: no login, every app approved",
            "url": issuer.fhir_base(&sb.base)
        },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": true,
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR"
                }]}],
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        uri("authorize", issuer.authorize_url(&sb.base)),
                        uri("token", sb.token_url()),
                        uri("introspect", sb.introspection_url()),
                    ]
                }]
            },
            "resource": resources,
        }]
    })
}

/// The FHIR Patient of a configured patient.
pub fn patient_resource(p: &SandboxPatient) -> Value {
    let mut patient = json!({"resourceType": "Patient", "id": p.id});
    let identifiers: Vec<Value> = p
        .identifiers
        .iter()
        .map(|i| {
            let mut id = json!({"value": i.value});
            if let Some(system) = &i.system {
                id["system"] = json!(system);
            }
            if let Some(code) = &i.type_code {
                id["type"] = json!({"coding": [{"system": V2_0203, "code": code}], "text": code});
            }
            id
        })
        .collect();
    if !identifiers.is_empty() {
        patient["identifier"] = json!(identifiers);
    }
    if let Some(name) = &p.name {
        // "Given … Family": the last word is the family name.
        let words: Vec<&str> = name.split_whitespace().collect();
        let mut human = json!({"text": name});
        if let Some((family, given)) = words.split_last() {
            human["family"] = json!(family);
            if !given.is_empty() {
                human["given"] = json!(given);
            }
        }
        patient["name"] = json!([human]);
    }
    if let Some(g) = &p.gender {
        patient["gender"] = json!(g);
    }
    if let Some(d) = &p.birth_date {
        patient["birthDate"] = json!(d);
    }
    patient
}

/// An OperationOutcome with one issue.
pub fn outcome(status: u16, code: &str, why: &str) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": why}]
    });
    super::fhir(status, &body)
}

/// `GET {issuer}/Patient/{id}`.
pub fn read_patient(sb: &Sandbox, req: &Request, id: &str) -> Response {
    let (client, token) = match oauth::may_read_patient(sb, req, id) {
        Ok(who) => who,
        Err((status, why)) => {
            log::info!(target: "sandbox", "Patient/{id}: refused ({status}): {why}");
            let resp = outcome(status, if status == 401 { "login" } else { "forbidden" }, why);
            return if status == 401 {
                resp.with_header("WWW-Authenticate", "Bearer realm=\"sandbox\", error=\"invalid_token\"")
            } else {
                resp
            };
        }
    };
    match sb.patient(id) {
        Some(p) => {
            log::info!(target: "sandbox", "Patient/{id} read by client {client:?} (token {token})");
            super::fhir(200, &patient_resource(p))
        }
        None => {
            log::info!(target: "sandbox", "Patient/{id}: not found (asked by client {client:?})");
            outcome(404, "not-found", "no such Patient in the sandbox")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::patient::Identifier;

    #[test]
    fn a_patient_with_an_mr_identifier() {
        let p = SandboxPatient {
            id: "p1".into(),
            name: Some("Anna Maria Müller".into()),
            birth_date: Some("1970-04-12".into()),
            gender: Some("female".into()),
            identifiers: vec![Identifier {
                system: Some("http://hospital.example.org".into()),
                value: "MRN-1001".into(),
                type_code: Some("MR".into()),
            }],
            chart: Vec::new(),
        };
        let r = patient_resource(&p);
        assert_eq!(r["identifier"][0]["type"]["coding"][0]["code"], "MR");
        assert_eq!(r["identifier"][0]["type"]["coding"][0]["system"], V2_0203);
        assert_eq!(r["name"][0]["family"], "Müller");
        assert_eq!(r["name"][0]["given"], json!(["Anna", "Maria"]));
        assert_eq!(r["birthDate"], "1970-04-12");
    }
}

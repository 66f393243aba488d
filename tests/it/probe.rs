//! `smart-imaging probe` (docs/probe.md): against this server's tenants every check passes or is skipped
//! with a reason; against `probe_target`, a server that breaks one rule at a time, the check of that rule
//! fails, by name, and every other check still runs.

use serde_json::Value;

use crate::harness::*;
use crate::probe_target::{Fault, Form, OTHER_TOKEN, PATIENT, SAME_PATIENT_TOKEN, TOKEN, Target};
use crate::sandbox_kit::{Flow, start_sample};

/// Every check, in the order the probe reports them (the launch's only with `--sandbox-launch`).
const LAUNCH: [&str; 3] = ["launch.discovery", "launch.authorize", "launch.token"];
const CHECKS: [&str; 32] = [
    "discovery.served",
    "discovery.content-type",
    "discovery.absolute-urls",
    "discovery.required-fields",
    "discovery.pkce",
    "discovery.imaging-capability",
    "discovery.mode-capability",
    "discovery.grant-types",
    "discovery.backend-auth",
    "discovery.cors",
    "metadata.served",
    "metadata.cors",
    "auth.no-token",
    "auth.invalid-token",
    "search.bundle",
    "search.profile",
    "search.endpoint",
    "search.endpoint-same-page",
    "search.include",
    "search.identifier",
    "search.other-patient",
    "wado.no-token",
    "wado.retrieve",
    "wado.parts-dicom",
    "wado.study-uid",
    "wado.accept-explicit-le",
    "wado.accept-unsupported",
    "wado.metadata",
    "wado.tampered-address",
    "wado.other-patient-token",
    "wado.token-binding",
    "wado.other-study",
];

/// A finished `probe … --json`.
struct Probed {
    run: Run,
    doc: Value,
}

impl Probed {
    fn checks(&self) -> &Vec<Value> {
        self.doc["checks"].as_array().unwrap_or_else(|| panic!("no checks in the JSON\n{}", self.run))
    }

    fn names(&self) -> Vec<&str> {
        self.checks().iter().map(|c| c["name"].as_str().unwrap()).collect()
    }

    fn outcome(&self, name: &str) -> &str {
        let check = self.checks().iter().find(|c| c["name"] == name);
        check.and_then(|c| c["outcome"].as_str()).unwrap_or_else(|| panic!("no check {name}\n{}", self.run))
    }

    fn detail(&self, name: &str) -> &str {
        let check = self.checks().iter().find(|c| c["name"] == name);
        check.and_then(|c| c["detail"].as_str()).unwrap_or_else(|| panic!("no check {name}\n{}", self.run))
    }

    fn with(&self, outcome: &str) -> Vec<&str> {
        self.checks().iter().filter(|c| c["outcome"] == outcome).map(|c| c["name"].as_str().unwrap()).collect()
    }
}

fn probe(base: &str, args: &[&str]) -> Probed {
    let mut all = vec!["probe", base, "--json"];
    all.extend_from_slice(args);
    let run = run_cli(&all, &repo());
    let doc: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("the output is not JSON: {e}\n{run}"));
    Probed { run, doc }
}

/// A token of the sandbox's patient `patient`, from its per-patient issuer.
fn sandbox_token(sandbox: &str, patient: &str, aud: &str) -> String {
    let flow = Flow::new(&format!("{sandbox}/{patient}/auth/authorize"), &format!("{sandbox}/auth/token"), aud);
    let reply = flow.exchange(&flow.code());
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["access_token"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------------
// This server.

#[test]
fn the_mock_tenants_pass_every_check_or_skip_the_token_checks_saying_why() {
    let server = Launch::new(sample_config()).start();
    for tenant in ["open", "demo"] {
        let probed = probe(&server.url(&format!("/{tenant}/fhir")), &["--patient", "p1"]);
        assert_eq!(probed.run.code(), Some(0), "{tenant}: {}", probed.run);
        assert_eq!(probed.names(), CHECKS, "{tenant}");
        assert!(probed.with("fail").is_empty(), "{tenant}: {}", probed.run);
        let summary = &probed.doc["summary"];
        assert_eq!(summary["failed"], 0);
        assert_eq!(summary["passed"].as_u64().unwrap() + summary["skipped"].as_u64().unwrap(), CHECKS.len() as u64);
        for name in [
            "auth.no-token",
            "auth.invalid-token",
            "search.other-patient",
            "wado.no-token",
            "wado.other-patient-token",
            "wado.token-binding",
        ] {
            assert_eq!(probed.outcome(name), "skip", "{tenant} {name}");
            assert!(probed.detail(name).contains("takes any bearer token"), "{tenant} {name}: {}", probed.detail(name));
        }
        for name in ["discovery.required-fields", "discovery.pkce", "discovery.grant-types"] {
            assert!(probed.detail(name).contains("names no authorization server"), "{tenant} {name}");
        }
        for name in [
            "search.bundle",
            "search.endpoint",
            "search.endpoint-same-page",
            "search.include",
            "search.identifier",
            "wado.retrieve",
            "wado.parts-dicom",
            "wado.study-uid",
            "wado.accept-explicit-le",
            "wado.accept-unsupported",
            "wado.metadata",
            "wado.tampered-address",
            "wado.other-study",
        ] {
            assert_eq!(probed.outcome(name), "pass", "{tenant} {name}: {}", probed.detail(name));
        }
    }
}

#[test]
fn the_smart_tenant_passes_end_to_end_with_a_sandbox_launch() {
    let sandboxed = start_sample();
    let base = sandboxed.imaging_fhir();
    let other = sandbox_token(&sandboxed.sandbox, "p2", &base);
    let issuer = format!("{}/p1/fhir", sandboxed.sandbox);
    let probed = probe(&base, &["--sandbox-launch", &issuer, "--other-patient-token", &other]);
    assert_eq!(probed.run.code(), Some(0), "{}", probed.run);
    assert_eq!(probed.names(), [LAUNCH.as_slice(), CHECKS.as_slice()].concat());
    assert!(probed.with("fail").is_empty(), "{}", probed.run);
    // The default configuration enables Backend Services for the sandbox's backend client and gives
    // response-local Endpoints, so nothing is left out.
    assert!(probed.with("skip").is_empty(), "{}", probed.run);
    assert!(probed.detail("search.endpoint-same-page").contains("urn:uuid"), "{}", probed.run);
    assert!(probed.detail("launch.token").contains("patient p1"), "{}", probed.run);
    assert!(!probed.run.stdout.contains(&other), "the probe printed a token");
}

#[test]
fn a_tenant_with_contained_endpoints_passes_too() {
    let dir = TempDir::new("probe-contained");
    let server = Launch::new(dir.config(
        "[tenants.demo]\nauthorization.type = \"mock\"\n\
         authorization.patient = { id = \"p1\", identifier = [{ value = \"MRN-1001\", type = \"MR\" }] }\n\
         images = { lookup = \"studies-by-context\", endpoints = \"contained\" }\n",
    ))
    .start();
    let probed = probe(&server.url("/demo/fhir"), &["--patient", "p1"]);
    assert_eq!(probed.run.code(), Some(0), "{}", probed.run);
    assert_eq!(probed.outcome("search.endpoint"), "pass", "{}", probed.run);
    assert_eq!(probed.outcome("search.endpoint-same-page"), "skip", "{}", probed.run);
    assert_eq!(probed.outcome("wado.retrieve"), "pass", "{}", probed.run);
}

#[test]
fn the_text_report_has_one_line_per_check_and_the_summary() {
    let server = Launch::new(sample_config()).start();
    let run = run_cli(&["probe", &server.url("/demo/fhir"), "--patient", "p1"], &repo());
    assert_eq!(run.code(), Some(0), "{run}");
    let lines: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("PASS ") || l.starts_with("SKIP ")).collect();
    assert_eq!(lines.len(), CHECKS.len(), "{run}");
    for (line, name) in lines.iter().zip(CHECKS) {
        assert!(line[5..].starts_with(name), "{line} should be {name}");
        assert!(line.ends_with(']'), "the rule closes the line: {line}");
    }
    let passed = lines.iter().filter(|l| l.starts_with("PASS")).count();
    let summary = format!("{passed} passed, 0 failed, {} skipped", CHECKS.len() - passed);
    assert_eq!(run.stdout.lines().last(), Some(summary.as_str()), "{run}");
}

#[test]
fn a_launch_at_an_issuer_that_asks_a_person_fails_and_the_rest_still_runs() {
    let sandboxed = start_sample();
    let picker = format!("{}/fhir", sandboxed.sandbox);
    let probed = probe(&sandboxed.imaging_fhir(), &["--sandbox-launch", &picker]);
    assert_eq!(probed.run.code(), Some(1), "{}", probed.run);
    assert_eq!(probed.with("fail"), ["launch.authorize"], "{}", probed.run);
    assert!(probed.detail("launch.authorize").contains("ask a person"), "{}", probed.run);
    assert_eq!(probed.outcome("launch.token"), "skip");
    assert_eq!(probed.outcome("auth.no-token"), "pass");
    assert!(probed.detail("search.bundle").contains("no token"), "{}", probed.run);
}

#[test]
fn a_bad_command_line_exits_2() {
    for args in [vec!["probe"], vec!["probe", "ftp://host/fhir"], vec!["probe", "http://h/fhir", "--frob"]] {
        let run = run_cli(&args, &repo());
        assert_eq!(run.code(), Some(2), "{run}");
    }
}

// ---------------------------------------------------------------------------------------------------
// A server that breaks one rule at a time.

fn probe_target(form: Form, fault: Fault) -> Probed {
    let target = Target::start(form, fault);
    let args = ["--token", TOKEN, "--other-patient-token", OTHER_TOKEN, "--same-patient-token", SAME_PATIENT_TOKEN];
    let probed = probe(&target.base, &[args.as_slice(), &["--patient", PATIENT]].concat());
    assert_eq!(probed.names(), CHECKS, "{fault:?}: every check runs\n{}", probed.run);
    probed
}

/// The target with `fault` fails exactly the checks `failing`, and the probe exits 1.
fn breaks(fault: Fault, failing: &[&str]) {
    let probed = probe_target(Form::Contained, fault);
    assert_eq!(probed.with("fail"), failing, "{fault:?}\n{}", probed.run);
    assert_eq!(probed.run.code(), Some(1), "{fault:?}\n{}", probed.run);
}

#[test]
fn each_endpoint_form_passes_when_the_target_keeps_every_rule() {
    for form in [Form::Contained, Form::ResponseLocal, Form::Included] {
        let probed = probe_target(form, Fault::None);
        assert_eq!(probed.run.code(), Some(0), "{form:?}\n{}", probed.run);
        assert!(probed.with("fail").is_empty(), "{form:?}\n{}", probed.run);
        let same_page = if form == Form::ResponseLocal { "pass" } else { "skip" };
        assert_eq!(probed.outcome("search.endpoint-same-page"), same_page, "{form:?}");
        for name in [
            "search.endpoint",
            "search.include",
            "wado.retrieve",
            "wado.study-uid",
            "wado.other-patient-token",
            "wado.token-binding",
        ] {
            assert_eq!(probed.outcome(name), "pass", "{form:?} {name}: {}", probed.detail(name));
        }
    }
}

#[test]
fn no_discovery() {
    let probed = probe_target(Form::Contained, Fault::NoDiscovery);
    assert_eq!(probed.with("fail"), ["discovery.served"], "{}", probed.run);
    assert!(probed.detail("discovery.pkce").contains("no discovery document"), "{}", probed.run);
    assert_eq!(probed.outcome("wado.retrieve"), "pass", "{}", probed.run);
}

#[test]
fn no_token_endpoint() {
    breaks(Fault::NoTokenEndpoint, &["discovery.required-fields"]);
}

#[test]
fn backend_services_without_private_key_jwt() {
    breaks(Fault::BackendServicesWithoutPrivateKeyJwt, &["discovery.backend-auth"]);
}

#[test]
fn plain_pkce_advertised() {
    breaks(Fault::PlainPkce, &["discovery.pkce"]);
}

#[test]
fn discovery_not_application_json() {
    breaks(Fault::DiscoveryFollowsAccept, &["discovery.content-type"]);
}

#[test]
fn a_relative_url_in_discovery() {
    breaks(Fault::RelativeTokenEndpoint, &["discovery.absolute-urls"]);
}

#[test]
fn no_imaging_capability() {
    breaks(Fault::NoImagingCapability, &["discovery.imaging-capability"]);
}

#[test]
fn no_mode_capability() {
    breaks(Fault::NoModeCapability, &["discovery.mode-capability", "discovery.grant-types"]);
}

#[test]
fn client_credentials_without_backend_services() {
    breaks(Fault::ClientCredentialsWithoutBackendServices, &["discovery.grant-types"]);
}

#[test]
fn a_preflight_that_does_not_allow_authorization() {
    breaks(Fault::PreflightWithoutAuthorization, &["discovery.cors", "metadata.cors"]);
}

#[test]
fn metadata_behind_a_token() {
    breaks(Fault::MetadataNeedsToken, &["metadata.served"]);
}

#[test]
fn no_www_authenticate_on_401() {
    breaks(Fault::NoWwwAuthenticate, &["auth.no-token"]);
}

#[test]
fn an_unknown_token_not_called_invalid_token() {
    breaks(Fault::InvalidTokenNotNamed, &["auth.invalid-token"]);
}

#[test]
fn a_searchset_without_total() {
    breaks(Fault::NoTotal, &["search.bundle"]);
}

#[test]
fn a_study_without_subject() {
    breaks(Fault::NoSubject, &["search.profile"]);
}

#[test]
fn a_relative_endpoint_address() {
    breaks(Fault::RelativeAddress, &["search.endpoint", "search.include"]);
}

#[test]
fn a_response_local_endpoint_missing_from_the_page() {
    let probed = probe_target(Form::ResponseLocal, Fault::ResponseLocalEntryMissing);
    assert_eq!(probed.outcome("search.endpoint-same-page"), "fail", "{}", probed.run);
    assert!(probed.detail("search.endpoint-same-page").contains("not on its page"), "{}", probed.run);
    assert_eq!(probed.run.code(), Some(1));
}

#[test]
fn include_refused() {
    breaks(Fault::IncludeRefused, &["search.include"]);
}

#[test]
fn identifier_ignored() {
    breaks(Fault::IdentifierIgnored, &["search.identifier"]);
}

#[test]
fn an_empty_bundle_instead_of_403_for_another_patient() {
    breaks(Fault::EmptyBundleForAnotherPatient, &["search.other-patient"]);
}

#[test]
fn a_wado_address_that_works_without_the_token() {
    breaks(Fault::WadoWithoutToken, &["wado.no-token"]);
}

#[test]
fn a_study_that_is_not_multipart() {
    breaks(Fault::NotMultipart, &["wado.retrieve", "wado.accept-explicit-le"]);
}

#[test]
fn a_part_that_is_not_dicom() {
    breaks(Fault::PartNotDicom, &["wado.parts-dicom", "wado.accept-explicit-le"]);
}

#[test]
fn instances_of_another_study() {
    breaks(Fault::OtherStudysInstances, &["wado.study-uid"]);
}

#[test]
fn explicit_vr_little_endian_asked_and_implicit_served() {
    breaks(Fault::ExplicitIgnored, &["wado.accept-explicit-le"]);
}

#[test]
fn an_unsupported_transfer_syntax_served() {
    breaks(Fault::UnsupportedSyntaxServed, &["wado.accept-unsupported"]);
}

#[test]
fn metadata_not_dicom_json() {
    breaks(Fault::MetadataAsJson, &["wado.metadata"]);
}

#[test]
fn a_tampered_address_that_still_works() {
    breaks(Fault::AnyCapability, &["wado.tampered-address"]);
}

#[test]
fn another_patients_token_that_retrieves() {
    breaks(Fault::OtherPatientTokenServed, &["wado.other-patient-token"]);
}

#[test]
fn an_address_that_serves_any_token_of_its_patient() {
    breaks(Fault::CapabilityNotBoundToToken, &["wado.token-binding"]);
}

#[test]
fn another_studys_uid_under_the_address() {
    breaks(Fault::OtherStudyServed, &["wado.other-study"]);
}

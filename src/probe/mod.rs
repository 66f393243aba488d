//! `smart-imaging probe BASE`: a conformance probe of any SMART Imaging Access server, this one or another.
//! It is a client: it talks HTTP to the server with `client` and knows nothing of this server's handlers,
//! configuration or index. The checks, in the order they run: the launch that gets a token
//! (`launch`, with `--sandbox-launch`), discovery and metadata (`discovery`), tokens and ImagingStudy
//! search (`fhir`, its Endpoints found by `endpoint`), and WADO-RS under each Endpoint address (`wado`,
//! its bodies read by `multipart`). Each check is named by a `rules::Rule`; `report` prints them.
//!
//! Invariants: a check that cannot run is `SKIP` with the reason, never a silent pass; no token is ever
//! printed; the exit status is 1 exactly when a check failed.

mod client;
mod discovery;
mod endpoint;
mod fhir;
mod launch;
mod multipart;
mod report;
mod rules;
mod wado;

use std::process::ExitCode;

use client::Client;
use report::Report;

/// What the command line gave.
#[derive(Debug, Default)]
pub struct Options {
    /// The imaging FHIR base, such as `http://host/tenant/fhir`.
    pub base: String,
    pub token: Option<String>,
    pub other_patient_token: Option<String>,
    /// Another token of the same patient: the Endpoint addresses of the first must not serve it.
    pub same_patient_token: Option<String>,
    pub patient: Option<String>,
    /// An issuer that approves a standalone launch without a person.
    pub sandbox_launch: Option<String>,
    pub json: bool,
}

/// What every check may look at.
pub struct Context<'a> {
    pub client: &'a Client,
    pub base: &'a str,
    /// The token sent with requests for data, when there is one.
    pub token: Option<&'a str>,
    pub other_token: Option<&'a str>,
    /// A second token of the same patient, when there is one.
    pub same_token: Option<&'a str>,
    pub patient: Option<&'a str>,
    /// What discovery says when the server takes any bearer token.
    pub any_token: Option<&'a str>,
}

impl Context<'_> {
    /// Why the checks of how tokens are refused do not apply, when the server takes any token.
    pub fn tokens_moot(&self) -> Option<String> {
        self.any_token.map(|s| format!("its discovery says it takes any bearer token ({s:?})"))
    }

    /// Why the search cannot be made, when it cannot.
    pub fn cannot_search(&self) -> Option<String> {
        if self.token.is_none() && self.any_token.is_none() {
            Some("no token: give --token T, or --sandbox-launch ISS".into())
        } else if self.patient.is_none() {
            Some("no patient: give --patient ID, or --sandbox-launch ISS".into())
        } else {
            None
        }
    }
}

/// Runs the probe, prints its report and returns the exit status: 1 when a check failed, else 0.
pub fn main(options: &Options) -> ExitCode {
    let report = run(options);
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report.json()).unwrap_or_default());
    } else {
        print!("{}", report.text());
    }
    if report.failed() { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn run(options: &Options) -> Report {
    let client = Client::new();
    let base = options.base.trim_end_matches('/');
    let mut report = Report { base: base.to_string(), ..Report::default() };
    let (mut token, mut patient) = (options.token.clone(), options.patient.clone());
    let mut same_token = options.same_patient_token.clone();
    if let Some(iss) = &options.sandbox_launch {
        let (checks, launched) = launch::standalone(&client, iss, base);
        report.checks.extend(checks);
        if let Some(launched) = launched {
            if token.is_none() {
                token = Some(launched.token);
                report.given.push(format!("token: from a standalone launch at {iss}"));
                // A second launch at the same issuer: another token of the same patient.
                if same_token.is_none() {
                    let (_, again) = launch::standalone(&client, iss, base);
                    if let Some(again) = again.filter(|a| a.patient == launched.patient) {
                        same_token = Some(again.token);
                        report.given.push(format!("a second token of the patient: from another launch at {iss}"));
                    }
                }
            }
            patient = patient.or(launched.patient);
        }
    }
    if options.same_patient_token.is_some() {
        report.given.push("a second token of the patient: from --same-patient-token".into());
    }
    if options.token.is_some() {
        report.given.push("token: from --token".into());
    }
    if options.other_patient_token.is_some() {
        report.given.push("another patient's token: from --other-patient-token".into());
    }
    match &patient {
        Some(p) => report.given.push(format!("patient: {p}")),
        None => report.given.push("patient: none".into()),
    }
    let (checks, discovered) = discovery::check(&client, base);
    report.checks.extend(checks);
    let ctx = Context {
        client: &client,
        base,
        token: token.as_deref(),
        other_token: options.other_patient_token.as_deref(),
        same_token: same_token.as_deref(),
        patient: patient.as_deref(),
        any_token: discovered.any_token.as_deref(),
    };
    report.checks.extend(fhir::auth(&ctx));
    let (checks, studies) = fhir::search(&ctx);
    report.checks.extend(checks);
    report.checks.extend(wado::checks(&ctx, studies.as_deref().map_err(String::as_str)));
    report
}

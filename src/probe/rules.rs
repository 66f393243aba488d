//! Every check the probe runs, named once: its stable name (what `--json` and the tests go by) and the rule
//! it comes from; and `Check`, a rule's outcome, made only through its `Rule`, so no check can print a rule
//! that is not in this table.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        }
    }
}

/// The outcome of one rule: what was seen when it passed or failed, why it was not checked when skipped.
#[derive(Debug, Clone)]
pub struct Check {
    pub rule: Rule,
    pub outcome: Outcome,
    pub detail: String,
}

/// One rule of SMART Imaging Access, SMART App Launch, FHIR, DICOM PS3.18/PS3.10 or RFC 6750.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub source: &'static str,
}

impl Rule {
    pub fn pass(self, detail: impl Into<String>) -> Check {
        Check { rule: self, outcome: Outcome::Pass, detail: detail.into() }
    }

    pub fn fail(self, detail: impl Into<String>) -> Check {
        Check { rule: self, outcome: Outcome::Fail, detail: detail.into() }
    }

    pub fn skip(self, why: impl Into<String>) -> Check {
        Check { rule: self, outcome: Outcome::Skip, detail: why.into() }
    }

    /// Passes with `ok` when nothing was found wrong, else fails naming every problem.
    pub fn judge(self, problems: &[String], ok: impl Into<String>) -> Check {
        if problems.is_empty() { self.pass(ok) } else { self.fail(problems.join("; ")) }
    }
}

const fn rule(name: &'static str, source: &'static str) -> Rule {
    Rule { name, source }
}

// The authorization server of `--sandbox-launch`.
pub const LAUNCH_DISCOVERY: Rule =
    rule("launch.discovery", "SMART App Launch 2.2, Conformance: the issuer names its authorize and token endpoints");
pub const LAUNCH_AUTHORIZE: Rule =
    rule("launch.authorize", "SMART App Launch 2.2, standalone launch: a code and the state back at the redirect_uri");
pub const LAUNCH_TOKEN: Rule = rule(
    "launch.token",
    "SMART App Launch 2.2, standalone launch: the code and PKCE verifier give a Bearer token with a patient",
);

// Discovery at the imaging FHIR base.
pub const DISCOVERY_SERVED: Rule =
    rule("discovery.served", "SMART App Launch 2.2, Conformance: .well-known/smart-configuration without a token");
pub const DISCOVERY_CONTENT_TYPE: Rule =
    rule("discovery.content-type", "SMART App Launch 2.2, Conformance: JSON as application/json whatever the Accept");
pub const DISCOVERY_ABSOLUTE_URLS: Rule =
    rule("discovery.absolute-urls", "SMART App Launch 2.2, Conformance: every URL absolute");
pub const DISCOVERY_REQUIRED_FIELDS: Rule = rule(
    "discovery.required-fields",
    "SMART App Launch 2.2, Conformance: token_endpoint, grant_types_supported, capabilities, code_challenge_methods_supported (authorization_endpoint for a launch)",
);
pub const DISCOVERY_PKCE: Rule =
    rule("discovery.pkce", "SMART App Launch 2.2, Conformance: code_challenge_methods_supported has S256, never plain");
pub const DISCOVERY_IMAGING_CAPABILITY: Rule =
    rule("discovery.imaging-capability", "SMART Imaging Access, Discovery: capability smart-imaging-access");
pub const DISCOVERY_MODE_CAPABILITY: Rule = rule(
    "discovery.mode-capability",
    "SMART Imaging Access, Discovery: …/capabilities/app-launch or …/capabilities/backend-services for each mode",
);
pub const DISCOVERY_GRANT_TYPES: Rule = rule(
    "discovery.grant-types",
    "SMART Imaging Access, Discovery: app-launch ⇔ authorization_code, backend-services ⇔ client_credentials",
);
pub const DISCOVERY_BACKEND_AUTH: Rule = rule(
    "discovery.backend-auth",
    "SMART Imaging Access, Backend Services: private_key_jwt with RS384 or ES384 (SMART asymmetric client authentication)",
);
pub const DISCOVERY_CORS: Rule =
    rule("discovery.cors", "Fetch, CORS protocol: a browser app can read discovery (preflight included)");
pub const METADATA_SERVED: Rule = rule(
    "metadata.served",
    "FHIR R4 RESTful API, capabilities: a CapabilityStatement with ImagingStudy search, no token",
);
pub const METADATA_CORS: Rule =
    rule("metadata.cors", "Fetch, CORS protocol: a browser app can read metadata (preflight included)");

// Tokens at the FHIR base.
pub const AUTH_NO_TOKEN: Rule = rule("auth.no-token", "RFC 6750 §3: no token → 401 with WWW-Authenticate: Bearer");
pub const AUTH_INVALID_TOKEN: Rule =
    rule("auth.invalid-token", "RFC 6750 §3.1: an unknown token → 401 with error=\"invalid_token\"");

// ImagingStudy search.
pub const SEARCH_BUNDLE: Rule =
    rule("search.bundle", "SMART Imaging Access, Finding studies; FHIR R4 search: a searchset Bundle with total");
pub const SEARCH_PROFILE: Rule = rule(
    "search.profile",
    "SMART Imaging Access, ImagingStudy profile: identifier urn:dicom:uid = urn:oid:UID, status, subject",
);
pub const SEARCH_ENDPOINT: Rule = rule(
    "search.endpoint",
    "SMART Imaging Access, Endpoint profile: a dicom-wado-rs Endpoint (contained, response-local or included) with an absolute WADO-RS base address",
);
pub const SEARCH_ENDPOINT_SAME_PAGE: Rule = rule(
    "search.endpoint-same-page",
    "SMART Imaging Access, Finding studies: a urn:uuid Endpoint is on the same Bundle page as its study",
);
pub const SEARCH_INCLUDE: Rule =
    rule("search.include", "SMART Imaging Access, Finding studies: _include=ImagingStudy:endpoint");
pub const SEARCH_IDENTIFIER: Rule =
    rule("search.identifier", "SMART Imaging Access, Finding studies: identifier=urn:oid:{uid} narrows to that study");
pub const SEARCH_OTHER_PATIENT: Rule = rule(
    "search.other-patient",
    "SMART Imaging Access, Finding studies: another patient than the token's → 403, never an empty Bundle",
);

// WADO-RS under each Endpoint address.
pub const WADO_NO_TOKEN: Rule =
    rule("wado.no-token", "SMART Imaging Access, Retrieving images; RFC 6750 §3: no token → 401, no DICOM bytes");
pub const WADO_RETRIEVE: Rule = rule(
    "wado.retrieve",
    "SMART Imaging Access, minimum retrieval; PS3.18 §10.4: the study as multipart/related; type=\"application/dicom\"",
);
pub const WADO_PARTS_DICOM: Rule =
    rule("wado.parts-dicom", "PS3.10 §7.1: every part a DICOM file (128-byte preamble, then DICM)");
pub const WADO_STUDY_UID: Rule =
    rule("wado.study-uid", "PS3.18 §10.4: every instance is of the study asked for (StudyInstanceUID)");
pub const WADO_ACCEPT_EXPLICIT_LE: Rule =
    rule("wado.accept-explicit-le", "PS3.18 §8.7: transfer-syntax=1.2.840.10008.1.2.1 gives Explicit VR Little Endian");
pub const WADO_ACCEPT_UNSUPPORTED: Rule =
    rule("wado.accept-unsupported", "PS3.18 §8.7: a transfer syntax the server cannot give → 406, no DICOM bytes");
pub const WADO_METADATA: Rule =
    rule("wado.metadata", "PS3.18 §10.4, Annex F: study metadata as an application/dicom+json array");
pub const WADO_TAMPERED_ADDRESS: Rule = rule(
    "wado.tampered-address",
    "SMART Imaging Access, Endpoint address: one character changed grants nothing (401/403/404, no DICOM bytes)",
);
pub const WADO_OTHER_PATIENT_TOKEN: Rule = rule(
    "wado.other-patient-token",
    "SMART Imaging Access, Retrieving images: another patient's token → 403, no DICOM bytes",
);
pub const WADO_TOKEN_BINDING: Rule = rule(
    "wado.token-binding",
    "SMART Imaging Access, Authorization: a capability is bound to the SMART token of the request that returned it (another token of the same patient → 401/403, no DICOM bytes)",
);
pub const WADO_OTHER_STUDY: Rule = rule(
    "wado.other-study",
    "SMART Imaging Access, Endpoint address: another study's UID under it → 403/404, no DICOM bytes",
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule, in the order the probe reports them.
    const ALL: [Rule; 35] = [
        LAUNCH_DISCOVERY,
        LAUNCH_AUTHORIZE,
        LAUNCH_TOKEN,
        DISCOVERY_SERVED,
        DISCOVERY_CONTENT_TYPE,
        DISCOVERY_ABSOLUTE_URLS,
        DISCOVERY_REQUIRED_FIELDS,
        DISCOVERY_PKCE,
        DISCOVERY_IMAGING_CAPABILITY,
        DISCOVERY_MODE_CAPABILITY,
        DISCOVERY_GRANT_TYPES,
        DISCOVERY_BACKEND_AUTH,
        DISCOVERY_CORS,
        METADATA_SERVED,
        METADATA_CORS,
        AUTH_NO_TOKEN,
        AUTH_INVALID_TOKEN,
        SEARCH_BUNDLE,
        SEARCH_PROFILE,
        SEARCH_ENDPOINT,
        SEARCH_ENDPOINT_SAME_PAGE,
        SEARCH_INCLUDE,
        SEARCH_IDENTIFIER,
        SEARCH_OTHER_PATIENT,
        WADO_NO_TOKEN,
        WADO_RETRIEVE,
        WADO_PARTS_DICOM,
        WADO_STUDY_UID,
        WADO_ACCEPT_EXPLICIT_LE,
        WADO_ACCEPT_UNSUPPORTED,
        WADO_METADATA,
        WADO_TAMPERED_ADDRESS,
        WADO_OTHER_PATIENT_TOKEN,
        WADO_TOKEN_BINDING,
        WADO_OTHER_STUDY,
    ];

    #[test]
    fn names_are_unique_and_dotted() {
        let mut names: Vec<&str> = ALL.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for name in names {
            let (area, what) = name.split_once('.').unwrap();
            assert!(["launch", "discovery", "metadata", "auth", "search", "wado"].contains(&area), "{name}");
            assert!(what.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{name}");
        }
    }
}

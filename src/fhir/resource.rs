//! ImagingStudy resources of the SMART Imaging profile (docs/api.md), each with its WADO-RS Endpoint: contained,
//! or (in a search answer, by default) a response-local Bundle entry the study references by `urn:uuid:`.
//!
//! All of a study's resource but two values is the same for every request, so it is serialized once per form, on
//! first use, and kept as text pieces; a request only fills in the two values that are its own: the Endpoint
//! address (which carries a freshly sealed study token) or the reference to the entry that holds it, and the
//! subject (which names the patient of the grant). This keeps a search of a patient with many studies at the
//! cost of copying text, not of building JSON trees.
//!
//! Invariants: every byte written is serde_json output, or a JSON string serde_json escaped, spliced where
//! serde_json put a placeholder string; a study whose own text happens to contain a placeholder is rendered
//! the slow way, never spliced wrongly; the cache holds one entry per indexed study and no more.

use serde_json::{Value, json};
use std::sync::OnceLock;

use crate::auth::Grant;
use crate::config::Tenant;
use crate::http::ApiError;
use crate::index::{Index, Study};
use crate::time::dicom_to_fhir;
use crate::token::{self, Claims, Sealer};

/// The media type of every FHIR answer.
pub const FHIR_JSON: &str = "application/fhir+json";
/// The profile every ImagingStudy claims (Argonaut SMART Imaging Access).
pub const STUDY_PROFILE: &str = "http://fhir.org/argonaut/smart-imaging/StructureDefinition/smart-imaging-study";
const REQUIRES_TOKEN: &str = "http://fhir.org/argonaut/smart-imaging/StructureDefinition/requires-access-token";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// Placeholders, as JSON strings, for the two per-request values: the contained Endpoint's address or the
/// reference to the Endpoint's entry, and the subject.
const ADDRESS: &str = "\u{1}smart-imaging:address\u{1}";
const SUBJECT: &str = "\u{1}smart-imaging:subject\u{1}";

/// A study's resource as serialized text around the two per-request values, or `None` when the placeholders
/// could not be found exactly once each.
#[derive(Debug)]
pub struct Pieces(Option<Vec<Piece>>);

#[derive(Debug)]
enum Piece {
    Text(String),
    Address,
    Subject,
}

/// Two slots per indexed study, one for each place of its Endpoint, filled on first use.
#[derive(Debug)]
pub struct Studies(Vec<[OnceLock<Pieces>; 2]>);

impl Studies {
    pub fn new(studies: usize) -> Studies {
        Studies((0..studies).map(|_| [OnceLock::new(), OnceLock::new()]).collect())
    }
}

/// Where the Endpoint of one rendered study goes.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    /// Contained in the study, referenced as `#wado`.
    Contained,
    /// An entry of the Bundle with this `fullUrl` (`urn:uuid:…`), which the study references.
    Entry(&'a str),
}

impl Place<'_> {
    fn slot(self) -> usize {
        match self {
            Place::Contained => 0,
            Place::Entry(_) => 1,
        }
    }
}

/// What rendering a tenant's ImagingStudy resources reads.
pub struct Render<'a> {
    pub index: &'a Index,
    pub sealer: &'a Sealer,
    pub studies: &'a Studies,
    /// The public URL of this server, without a trailing slash.
    pub base_url: &'a str,
    pub tenant: &'a Tenant,
    pub study_token_ttl: u64,
    /// The UTC offset, as `+hh:mm`, for study times whose files carry none.
    pub timezone: &'a str,
}

/// The WADO-RS address of `st` for this request: `{base}/{tenant}/wado/{study token}`, the token sealed now.
pub fn address(r: &Render, grant: &Grant, st: &Study, now: u64) -> Result<String, ApiError> {
    let token = mint(r, grant, st, now)?;
    Ok(format!("{}/{}/wado/{token}", r.base_url, r.tenant.name))
}

/// Writes the ImagingStudy of `st` for this request, its Endpoint (holding `address`) contained, or named by
/// reference to the entry the caller writes with `write_endpoint_entry`.
pub fn write_study(
    r: &Render,
    grant: &Grant,
    st: &Study,
    address: &str,
    place: Place,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    let varying = match place {
        Place::Contained => address,
        Place::Entry(full_url) => full_url,
    };
    let subject = subject(r.tenant, grant, st);
    let slot = r.studies.0.get(st.position()).map(|slots| &slots[place.slot()]);
    let pieces = slot.map(|slot| slot.get_or_init(|| split(r, st, place)));
    let written = match pieces.and_then(|p| p.0.as_ref()) {
        Some(pieces) => {
            out.reserve(pieces.iter().map(|p| if let Piece::Text(t) = p { t.len() } else { 256 }).sum());
            pieces.iter().try_for_each(|piece| match piece {
                Piece::Text(text) => {
                    out.extend_from_slice(text.as_bytes());
                    Ok(())
                }
                Piece::Address => serde_json::to_writer(&mut *out, varying),
                Piece::Subject => serde_json::to_writer(&mut *out, &subject),
            })
        }
        None => serde_json::to_writer(&mut *out, &resource(r, st, place, json!(varying), subject)),
    };
    written.map_err(|e| ApiError::Internal(format!("cannot write an ImagingStudy: {e}")))
}

/// The response-local `fullUrl`s of one answer's Endpoint entries: `urn:uuid:` and version-4 UUIDs that
/// share one random draw per answer and count up in their last 48 bits, so each is unique within the answer
/// (all the IG asks of them: they name an entry, they are not an address) at the cost of one draw per answer.
pub struct EntryUrls {
    /// `xxxxxxxx-xxxx-4xxx-Vxxx-` of the draw.
    head: String,
    next: u64,
}

impl EntryUrls {
    pub fn new() -> Result<EntryUrls, ApiError> {
        let hex = crate::random::hex_id(16).map_err(ApiError::Internal)?;
        // Version 4, variant 10: the 13th hex digit is 4, the 17th one of 8, 9, a, b.
        let variant = ["8", "9", "a", "b"][usize::from_str_radix(&hex[16..17], 16).unwrap_or(0) & 3];
        let head = format!("{}-{}-4{}-{variant}{}-", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20]);
        let next = u64::from_str_radix(&hex[20..32], 16).unwrap_or(0);
        Ok(EntryUrls { head, next })
    }

    pub fn next_url(&mut self) -> String {
        let tail = self.next & 0xffff_ffff_ffff;
        self.next = self.next.wrapping_add(1);
        format!("urn:uuid:{}{tail:012x}", self.head)
    }
}

/// Writes the Bundle entry of an Endpoint with `address`, `fullUrl` `full_url`, `search.mode` `include`:
/// text serialized once, around the two values.
pub fn write_endpoint_entry(full_url: &str, address: &str, out: &mut Vec<u8>) -> Result<(), ApiError> {
    static PIECES: OnceLock<[String; 3]> = OnceLock::new();
    let [before, between, after] = PIECES.get_or_init(|| {
        let entry = json!({"fullUrl": SUBJECT, "resource": endpoint(json!(ADDRESS)), "search": {"mode": "include"}});
        let text = entry.to_string();
        // `fullUrl` sorts before `resource`, so the URL's placeholder comes first.
        let (before, rest) = text.split_once(&json!(SUBJECT).to_string()).expect("the fullUrl placeholder");
        let (between, after) = rest.split_once(&json!(ADDRESS).to_string()).expect("the address placeholder");
        [before.to_string(), between.to_string(), after.to_string()]
    });
    let written = (|| {
        out.extend_from_slice(before.as_bytes());
        serde_json::to_writer(&mut *out, full_url)?;
        out.extend_from_slice(between.as_bytes());
        serde_json::to_writer(&mut *out, address)?;
        out.extend_from_slice(after.as_bytes());
        Ok::<(), serde_json::Error>(())
    })();
    written.map_err(|e| ApiError::Internal(format!("cannot write an Endpoint: {e}")))
}

/// The WADO-RS Endpoint with this address; `requires-access-token` for the clients that look for it.
fn endpoint(address: Value) -> Value {
    json!({
        "resourceType": "Endpoint",
        "extension": [{"url": REQUIRES_TOKEN, "valueBoolean": true}],
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "dicom-wado-rs"
        },
        "payloadType": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
            "code": "any"
        }]}],
        "address": address,
    })
}

/// Seals the study token of the Endpoint address (see `token`).
fn mint(r: &Render, grant: &Grant, st: &Study, now: u64) -> Result<String, ApiError> {
    let (token, client) = grant.study_token_binding();
    let claims = Claims {
        tenant: r.tenant.name.clone(),
        study: st.uid().to_string(),
        patient: grant.patient().map(|p| p.id.clone()),
        client,
        token,
        patient_ids: vec![st.patient_id().to_string()],
        expires: token::expiry(now, r.study_token_ttl, grant.expires()),
    };
    r.sealer.seal(&claims).map_err(ApiError::Internal)
}

/// The subject: a reference to the grant's patient when the study is theirs (or the tenant shows only their
/// studies), else the DICOM PatientID as an identifier; with the DICOM name as display.
fn subject(tenant: &Tenant, grant: &Grant, st: &Study) -> Value {
    let mut subject = serde_json::Map::new();
    match grant.patient() {
        Some(p) if p.owns(st.patient_id(), st.issuer_of_patient_id()) || tenant.visibility.by_context() => {
            subject.insert("reference".into(), json!(p.reference));
        }
        // FHIR strings are never empty: a file without a PatientID has no identifier to show.
        _ if !st.patient_id().is_empty() => {
            subject.insert("identifier".into(), json!({"value": st.patient_id()}));
        }
        _ => {}
    }
    match person_name(st.patient_name()) {
        Some(name) => subject.insert("display".into(), json!(name)),
        // A Reference must say something, and `subject` is required.
        None if subject.is_empty() => subject.insert("display".into(), json!("no PatientID or name in the files")),
        None => None,
    };
    Value::Object(subject)
}

/// Serializes the study with placeholders and cuts the text at them. A placeholder is a JSON string, so
/// serde_json writes it with its quotes; DICOM text holding the same characters would be escaped the same
/// way, which is why each must be found exactly once before the cut is trusted.
fn split(r: &Render, st: &Study, place: Place) -> Pieces {
    let text = resource(r, st, place, json!(ADDRESS), json!(SUBJECT)).to_string();
    let (address, subject) = (json!(ADDRESS).to_string(), json!(SUBJECT).to_string());
    if text.matches(&address).count() != 1 || text.matches(&subject).count() != 1 {
        return Pieces(None);
    }
    let (Some(at_address), Some(at_subject)) = (text.find(&address), text.find(&subject)) else {
        return Pieces(None);
    };
    let mut marks = [(at_address, address.len(), Piece::Address), (at_subject, subject.len(), Piece::Subject)];
    marks.sort_by_key(|(at, _, _)| *at);
    let mut pieces = Vec::with_capacity(5);
    let mut from = 0;
    for (at, len, piece) in marks {
        pieces.push(Piece::Text(text[from..at].to_string()));
        pieces.push(piece);
        from = at + len;
    }
    pieces.push(Piece::Text(text[from..].to_string()));
    Pieces(Some(pieces))
}

/// One ImagingStudy with the given subject and, as `place` says, a contained Endpoint with the address
/// `varying` or a reference `varying` to an Endpoint entry.
fn resource(r: &Render, st: &Study, place: Place, varying: Value, subject: Value) -> Value {
    let offset = st.timezone_offset().unwrap_or(r.timezone);
    // A series whose files name no Modality is DICOM's "OT" (other): FHIR codes are never empty.
    let coding = |code: &str| json!({"system": DCM, "code": if code.is_empty() { "OT" } else { code }});
    let series: Vec<Value> = st
        .series()
        .map(|se| {
            let instances: Vec<Value> = se
                .instances()
                .map(|i| {
                    let mut v = json!({
                        "uid": i.uid(),
                        "sopClass": {"system": "urn:ietf:rfc:3986", "code": format!("urn:oid:{}", i.sop_class())},
                    });
                    if let Some(n) = i.number().filter(|n| *n >= 0) {
                        v["number"] = json!(n);
                    }
                    v
                })
                .collect();
            let mut v = json!({
                "uid": se.uid(),
                "modality": coding(se.modality()),
                "numberOfInstances": se.instance_count(),
                "instance": instances,
            });
            if let Some(n) = se.number().filter(|n| *n >= 0) {
                v["number"] = json!(n);
            }
            if !se.description().is_empty() {
                v["description"] = json!(se.description());
            }
            v
        })
        .collect();

    let mut study = json!({
        "resourceType": "ImagingStudy",
        "id": st.uid(),
        "meta": {"lastUpdated": r.index.written(), "profile": [STUDY_PROFILE]},
        "identifier": [{"system": "urn:dicom:uid", "value": format!("urn:oid:{}", st.uid())}],
        "status": "available",
        "subject": subject,
        "endpoint": [{"reference": if let Place::Contained = place { json!("#wado") } else { varying.clone() }}],
        "numberOfSeries": st.series().len(),
        "numberOfInstances": st.instance_count(),
        "series": series,
    });
    // FHIR has no empty arrays: a study none of whose files name a Modality has no `modality`.
    let modalities: Vec<Value> = st.modalities().filter(|m| !m.is_empty()).map(coding).collect();
    if !modalities.is_empty() {
        study["modality"] = json!(modalities);
    }
    if let Place::Contained = place {
        let mut endpoint = endpoint(varying);
        endpoint["id"] = json!("wado");
        study["contained"] = json!([endpoint]);
    }
    if let Some(started) = dicom_to_fhir(st.date(), st.time(), offset) {
        study["started"] = json!(started);
    }
    if let Some(name) = person_name(st.referring_physician_name()) {
        study["referrer"] = json!({"display": name});
    }
    if !st.description().is_empty() {
        study["description"] = json!(st.description());
    }
    if !st.accession_number().is_empty() {
        if let Some(ids) = study["identifier"].as_array_mut() {
            ids.push(json!({
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
                "value": st.accession_number(),
            }));
        }
    }
    study
}

/// A DICOM PN (`Family^Given^Middle^Prefix^Suffix`, alphabetic group) as a display name: `Given Middle Family`.
pub fn person_name(pn: &str) -> Option<String> {
    let alphabetic = pn.split('=').next().unwrap_or_default();
    let parts: Vec<&str> = alphabetic.split('^').map(str::trim).collect();
    let get = |i: usize| parts.get(i).copied().unwrap_or_default();
    let ordered = [get(3), get(1), get(2), get(0), get(4)];
    let name = ordered.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scope::Need;
    use crate::auth::{Access, authorize};
    use crate::config::{Authorization, Config};
    use crate::http::{Method, Request};
    use std::path::Path;

    /// A tenant `demo` whose mocked patient owns the one study, described as given.
    fn world(description: &str) -> (Config, Index, Sealer, Studies) {
        let config = Config::parse(
            "[images]\nindex = \"i.toml\"\n[tenants.demo]\nauthorization.type = \"mock\"\n\
             authorization.patient = { id = \"p1\", identifier = [{ value = \"MRN\", type = \"MR\" }] }\n\
             images.lookup = \"studies-by-context\"\n",
            Path::new("/x/c.toml"),
        )
        .unwrap();
        let index = format!(
            "written = \"2026-01-01T00:00:00Z\"\n[[study]]\nuid = \"1.2.3\"\npatient_id = \"MRN\"\n\
             patient_name = \"Doe^Jane\"\ndescription = {}\ndate = \"20240105\"\n\
             [[study.series]]\nuid = \"1.2.3.1\"\nmodality = \"CT\"\n\
             [[study.series.instance]]\nuid = \"1.2.3.1.1\"\nsop_class = \"1.2\"\n\
             transfer_syntax = \"1.2.840.10008.1.2.1\"\npath = \"a.dcm\"\nsize = 1\n",
            serde_json::to_string(description).unwrap(),
        );
        let index = Index::parse(&index, Path::new("/x/index.toml")).unwrap();
        (config, index, Sealer::from_secret(b"0123456789abcdef"), Studies::new(1))
    }

    fn render<'a>(world: &'a (Config, Index, Sealer, Studies)) -> Render<'a> {
        let (config, index, sealer, studies) = world;
        Render {
            index,
            sealer,
            studies,
            base_url: "http://h",
            tenant: &config.tenants["demo"],
            study_token_ttl: 60,
            timezone: "+00:00",
        }
    }

    /// Renders the study twice (the first fills the cache) and checks both against the slow way.
    fn check(description: &str) {
        let world = world(description);
        let r = render(&world);
        let Authorization::Mock { patient } = &r.tenant.auth else { unreachable!() };
        let req = Request { method: Method::Get, path: "/".into(), query: String::new(), headers: Vec::new() };
        let access = Access::Mock { patient: patient.clone() };
        let grant = authorize(&access, r.tenant.visibility, &req, Need::Search).unwrap();
        let st = &r.index.studies().next().unwrap();
        let full_url = EntryUrls::new().unwrap().next_url();
        for place in [Place::Contained, Place::Entry(&full_url), Place::Contained, Place::Entry(&full_url)] {
            let address = address(&r, &grant, st, 0).unwrap();
            assert!(address.starts_with("http://h/demo/wado/"), "{address}");
            let mut out = Vec::new();
            write_study(&r, &grant, st, &address, place, &mut out).unwrap();
            let got: Value = serde_json::from_slice(&out).expect("valid JSON");
            let varying = if let Place::Entry(url) = place { url } else { &address };
            let expected = resource(&r, st, place, json!(varying), subject(r.tenant, &grant, st));
            assert_eq!(got, expected, "{description:?}");
            assert_eq!(got["subject"]["reference"], "Patient/p1");
            match place {
                Place::Contained => {
                    assert_eq!(got["endpoint"][0]["reference"], "#wado");
                    assert_eq!(got["contained"][0]["address"], address.as_str());
                }
                Place::Entry(url) => {
                    assert_eq!(got["endpoint"][0]["reference"], url);
                    assert!(got.get("contained").is_none(), "{got}");
                }
            }
        }
    }

    #[test]
    fn spliced_resources_equal_built_ones() {
        check("CT CHEST");
        check("quotes \" and \\ backslashes");
    }

    #[test]
    fn text_that_holds_a_placeholder_is_rendered_the_slow_way() {
        check(ADDRESS);
        check(SUBJECT);
        let placeholder = world(ADDRESS);
        let r = render(&placeholder);
        assert!(split(&r, &r.index.studies().next().unwrap(), Place::Contained).0.is_none());
        let plain = world("plain");
        let r = render(&plain);
        assert!(split(&r, &r.index.studies().next().unwrap(), Place::Contained).0.is_some());
        assert!(split(&r, &r.index.studies().next().unwrap(), Place::Entry("urn:uuid:x")).0.is_some());
    }

    #[test]
    fn entry_urls_are_version_4_uuids_unique_in_an_answer_and_fresh_in_the_next() {
        let mut urls = EntryUrls::new().unwrap();
        let (a, b) = (urls.next_url(), urls.next_url());
        assert_ne!(a, b);
        assert_ne!(a[..33], EntryUrls::new().unwrap().next_url()[..33], "another answer draws again");
        let uuid = a.strip_prefix("urn:uuid:").expect("urn:uuid:");
        let groups: Vec<&str> = uuid.split('-').collect();
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{a}");
        assert!(groups[2].starts_with('4'), "version 4: {a}");
        assert!(groups[3].starts_with(['8', '9', 'a', 'b']), "variant 10: {a}");
        assert!(uuid.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
    }

    #[test]
    fn a_spliced_endpoint_entry_equals_a_built_one() {
        for address in ["http://h/demo/wado/abc", "quote \" and \\ backslash"] {
            let mut out = Vec::new();
            write_endpoint_entry("urn:uuid:x", address, &mut out).unwrap();
            let got: Value = serde_json::from_slice(&out).unwrap();
            let built =
                json!({"fullUrl": "urn:uuid:x", "resource": endpoint(json!(address)), "search": {"mode": "include"}});
            assert_eq!(got, built);
        }
    }

    #[test]
    fn names() {
        assert_eq!(person_name("Müller^Anna").as_deref(), Some("Anna Müller"));
        assert_eq!(person_name("Smith^John^Q^Dr^Jr").as_deref(), Some("Dr John Q Smith Jr"));
        assert_eq!(person_name("Tanaka^Yuki=山田^太郎").as_deref(), Some("Yuki Tanaka"));
        assert_eq!(person_name(""), None);
        assert_eq!(person_name("^"), None);
    }
}

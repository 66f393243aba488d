//! Study-scoped QIDO-RS (DICOM PS3.18 §10.6): the sealed study itself (a study search at the Endpoint
//! address answers it alone, or nothing), its series, and its instances or those of one of its series, as
//! DICOM JSON with the attributes of tables 6.7.1-2 (10.6.3-3), 10.6.3-4 and 10.6.3-5.
//!
//! Invariants: only the study the study token opened is ever searched (the router passes it in; there is no
//! way to name another); matching is on the index's values, plus per-instance image attributes read from the
//! instance's own header; the study search reads no file.

use serde_json::{Map, Value, json};

use super::context::{Context, load, refused, unfaulted};
use crate::dicom::json::person_name;
use crate::dicom::{Tag, tags};
use crate::http::accept::negotiate_json;
use crate::http::{ApiError, Response, parse_query};
use crate::index::{Instance, Series, Study};

/// One attribute a search can match or return: tag, keyword and VR.
struct Attr {
    tag: Tag,
    keyword: &'static str,
    vr: &'static str,
}

const fn a(tag: Tag, keyword: &'static str, vr: &'static str) -> Attr {
    Attr { tag, keyword, vr }
}

/// The study attributes of PS3.18 table 6.7.1-2 (every one returned), plus StudyDescription and
/// TimezoneOffsetFromUTC.
const STUDY_ATTRS: &[Attr] = &[
    a(tags::SPECIFIC_CHARACTER_SET, "SpecificCharacterSet", "CS"),
    a(tags::STUDY_DATE, "StudyDate", "DA"),
    a(tags::STUDY_TIME, "StudyTime", "TM"),
    a(tags::ACCESSION_NUMBER, "AccessionNumber", "SH"),
    a(tags::MODALITIES_IN_STUDY, "ModalitiesInStudy", "CS"),
    a(tags::REFERRING_PHYSICIAN_NAME, "ReferringPhysicianName", "PN"),
    a(tags::TIMEZONE_OFFSET_FROM_UTC, "TimezoneOffsetFromUTC", "SH"),
    a(tags::STUDY_DESCRIPTION, "StudyDescription", "LO"),
    a(tags::RETRIEVE_URL, "RetrieveURL", "UR"),
    a(tags::PATIENT_NAME, "PatientName", "PN"),
    a(tags::PATIENT_ID, "PatientID", "LO"),
    a(tags::PATIENT_BIRTH_DATE, "PatientBirthDate", "DA"),
    a(tags::PATIENT_SEX, "PatientSex", "CS"),
    a(tags::STUDY_INSTANCE_UID, "StudyInstanceUID", "UI"),
    a(tags::NUMBER_OF_STUDY_RELATED_SERIES, "NumberOfStudyRelatedSeries", "IS"),
    a(tags::NUMBER_OF_STUDY_RELATED_INSTANCES, "NumberOfStudyRelatedInstances", "IS"),
];

/// Study attributes the index knows beyond those, returned only when `includefield` names them (or `all`).
const STUDY_OPTIONAL: &[Attr] = &[a(tags::ISSUER_OF_PATIENT_ID, "IssuerOfPatientID", "LO")];

/// The series attributes of PS3.18 table 10.6.3-4 this server knows, plus the study's UID.
const SERIES_ATTRS: &[Attr] = &[
    a(tags::SPECIFIC_CHARACTER_SET, "SpecificCharacterSet", "CS"),
    a(tags::MODALITY, "Modality", "CS"),
    a(tags::TIMEZONE_OFFSET_FROM_UTC, "TimezoneOffsetFromUTC", "SH"),
    a(tags::SERIES_DESCRIPTION, "SeriesDescription", "LO"),
    a(tags::RETRIEVE_URL, "RetrieveURL", "UR"),
    a(tags::STUDY_INSTANCE_UID, "StudyInstanceUID", "UI"),
    a(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID", "UI"),
    a(tags::SERIES_NUMBER, "SeriesNumber", "IS"),
    a(tags::NUMBER_OF_SERIES_RELATED_INSTANCES, "NumberOfSeriesRelatedInstances", "IS"),
];

/// The instance attributes of PS3.18 table 10.6.3-5 this server knows, plus the study and series UIDs.
const INSTANCE_ATTRS: &[Attr] = &[
    a(tags::SPECIFIC_CHARACTER_SET, "SpecificCharacterSet", "CS"),
    a(tags::SOP_CLASS_UID, "SOPClassUID", "UI"),
    a(tags::SOP_INSTANCE_UID, "SOPInstanceUID", "UI"),
    a(tags::INSTANCE_AVAILABILITY, "InstanceAvailability", "CS"),
    a(tags::TIMEZONE_OFFSET_FROM_UTC, "TimezoneOffsetFromUTC", "SH"),
    a(tags::RETRIEVE_URL, "RetrieveURL", "UR"),
    a(tags::STUDY_INSTANCE_UID, "StudyInstanceUID", "UI"),
    a(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID", "UI"),
    a(tags::INSTANCE_NUMBER, "InstanceNumber", "IS"),
    a(tags::NUMBER_OF_FRAMES, "NumberOfFrames", "IS"),
    a(tags::ROWS, "Rows", "US"),
    a(tags::COLUMNS, "Columns", "US"),
    a(tags::BITS_ALLOCATED, "BitsAllocated", "US"),
];

/// The level a QIDO-RS search is at (PS3.18 §10.6.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Study,
    Series,
    Instance,
}

impl Level {
    /// The attributes of the level: those always returned, then those returned when asked for.
    fn attrs(self) -> (&'static [Attr], &'static [Attr]) {
        match self {
            Level::Study => (STUDY_ATTRS, STUDY_OPTIONAL),
            Level::Series => (SERIES_ATTRS, &[]),
            Level::Instance => (INSTANCE_ATTRS, &[]),
        }
    }

    fn find(self, name: &str) -> Option<&'static Attr> {
        let (always, optional) = self.attrs();
        always.iter().chain(optional).find(|a| a.keyword == name || a.tag.json_key().eq_ignore_ascii_case(name))
    }
}

/// A parsed QIDO query: attribute filters, the optional attributes asked for, paging.
#[derive(Debug, Default)]
pub struct Query {
    /// (attribute, accepted values) pairs; each value may hold `*` and `?` wildcards, or be a range.
    filters: Vec<(&'static Attr, Vec<String>)>,
    /// Optional attributes `includefield` named; every one with `includefield=all`.
    include: Vec<Tag>,
    include_all: bool,
    limit: Option<usize>,
    offset: usize,
}

impl std::fmt::Debug for Attr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.keyword)
    }
}

impl Query {
    /// Parses a raw query for a level. Unknown attributes are a 400 (PS3.18 §8.3.4.2 lets a server refuse
    /// keys it does not support); `fuzzymatching` is accepted and matching stays exact (§8.3.4.5 lets a
    /// server ignore it); `includefield` names attributes by keyword or tag, repeated or comma-separated, and
    /// one the server does not hold is left out of the answer, as §8.3.4.3 allows.
    pub fn parse(raw: &str, level: Level) -> Result<Query, ApiError> {
        let mut q = Query::default();
        for (name, value) in parse_query(raw)? {
            match name.as_str() {
                "limit" => q.limit = Some(number(&name, &value)?),
                "offset" => q.offset = number(&name, &value)?,
                "fuzzymatching" => {}
                "includefield" => {
                    for field in value.split(',').map(str::trim) {
                        if field == "all" {
                            q.include_all = true;
                        } else if let Some(attr) = level.find(field) {
                            q.include.push(attr.tag);
                        }
                    }
                }
                _ => {
                    let attr = level
                        .find(&name)
                        .ok_or_else(|| ApiError::BadRequest(format!("cannot match on {name:?} at this level")))?;
                    // A UID list is `\`-separated in DICOM (PS3.4 §C.2.2.2.2) and comma-separated in
                    // QIDO-RS URLs (PS3.18 §8.3.4.1); UIDs hold neither. Other values split on `\` alone.
                    let values = match attr.vr {
                        "UI" => value.split([',', '\\']).map(str::to_string).collect(),
                        _ => value.split('\\').map(str::to_string).collect(),
                    };
                    q.filters.push((attr, values));
                }
            }
        }
        Ok(q)
    }

    fn matches(&self, object: &Map<String, Value>) -> bool {
        self.filters.iter().all(|(attr, wanted)| {
            let have: Vec<String> = object
                .get(&attr.tag.json_key())
                .and_then(|e| e.get("Value"))
                .and_then(Value::as_array)
                .map(|vs| vs.iter().map(value_text).collect())
                .unwrap_or_default();
            wanted.iter().any(|w| w.is_empty() || have.iter().any(|h| value_matches(attr.vr, w, h)))
        })
    }

    /// Whether an optional attribute goes into the answer.
    fn includes(&self, tag: Tag) -> bool {
        self.include_all || self.include.contains(&tag)
    }

    fn page(&self, objects: Vec<Value>) -> Vec<Value> {
        objects.into_iter().skip(self.offset).take(self.limit.unwrap_or(usize::MAX)).collect()
    }
}

/// One value against one key: a date or time range (`a-b`, `a-`, `-b`, PS3.4 §C.2.2.2.5) for DA, TM and DT
/// keys, else wildcard matching.
fn value_matches(vr: &str, pattern: &str, have: &str) -> bool {
    match pattern.split_once('-') {
        Some((from, to)) if matches!(vr, "DA" | "TM" | "DT") => {
            // A bound of fewer digits than the value compares with the value cut to its length, so that
            // `-0930` holds 093000 and `-2024` holds 20241231.
            let upto = |bound: &str| have.get(..bound.len()).unwrap_or(have) <= bound;
            !have.is_empty() && (from.is_empty() || have >= from) && (to.is_empty() || upto(to))
        }
        _ => wildcard(pattern, have),
    }
}

fn number(name: &str, value: &str) -> Result<usize, ApiError> {
    value.parse().map_err(|_| ApiError::BadRequest(format!("{name}: {value:?} is not a number")))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        // A person name matches on its alphabetic group.
        Value::Object(name) => name.get("Alphabetic").and_then(Value::as_str).unwrap_or_default().to_string(),
        other => other.to_string(),
    }
}

/// DICOM wildcard matching (PS3.4 §C.2.2.2.4): `*` any run, `?` any one character; otherwise exact.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn put(object: &mut Map<String, Value>, tag: Tag, vr: &str, value: Option<Value>) {
    let mut element = json!({ "vr": vr });
    if let Some(v) = value {
        element["Value"] = json!([v]);
    }
    object.insert(tag.json_key(), element);
}

fn text(s: &str) -> Option<Value> {
    (!s.is_empty()).then(|| json!(s))
}

/// The study, when it matches: an array of it, or empty. `retrieve_base` is the study's WADO-RS URL.
pub fn studies(study: &Study, q: &Query, retrieve_base: &str) -> Vec<Value> {
    let mut object = study_object(study, retrieve_base);
    if !q.matches(&object) {
        return Vec::new();
    }
    for attr in STUDY_OPTIONAL.iter().filter(|a| !q.includes(a.tag)) {
        object.remove(&attr.tag.json_key());
    }
    q.page(vec![Value::Object(object)])
}

fn study_object(study: &Study, retrieve_base: &str) -> Map<String, Value> {
    let name = |pn: &str| Some(person_name(pn)).filter(|v| !v.is_null());
    let mut o = Map::new();
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, "CS", Some(json!("ISO_IR 192")));
    put(&mut o, tags::STUDY_DATE, "DA", text(study.date()));
    put(&mut o, tags::STUDY_TIME, "TM", text(study.time()));
    put(&mut o, tags::ACCESSION_NUMBER, "SH", text(study.accession_number()));
    let modalities: Vec<&str> = study.modalities().collect();
    let mut element = json!({ "vr": "CS" });
    if !modalities.is_empty() {
        element["Value"] = json!(modalities);
    }
    o.insert(tags::MODALITIES_IN_STUDY.json_key(), element);
    put(&mut o, tags::REFERRING_PHYSICIAN_NAME, "PN", name(study.referring_physician_name()));
    if let Some(tz) = study.timezone_offset().and_then(|tz| text(&tz.replace(':', ""))) {
        put(&mut o, tags::TIMEZONE_OFFSET_FROM_UTC, "SH", Some(tz));
    }
    put(&mut o, tags::STUDY_DESCRIPTION, "LO", text(study.description()));
    put(&mut o, tags::RETRIEVE_URL, "UR", Some(json!(retrieve_base)));
    put(&mut o, tags::PATIENT_NAME, "PN", name(study.patient_name()));
    put(&mut o, tags::PATIENT_ID, "LO", text(study.patient_id()));
    put(&mut o, tags::ISSUER_OF_PATIENT_ID, "LO", text(study.issuer_of_patient_id()));
    put(&mut o, tags::PATIENT_BIRTH_DATE, "DA", text(study.patient_birth_date()));
    put(&mut o, tags::PATIENT_SEX, "CS", text(study.patient_sex()));
    put(&mut o, tags::STUDY_INSTANCE_UID, "UI", Some(json!(study.uid())));
    put(&mut o, tags::NUMBER_OF_STUDY_RELATED_SERIES, "IS", Some(json!(study.series().len())));
    put(&mut o, tags::NUMBER_OF_STUDY_RELATED_INSTANCES, "IS", Some(json!(study.instance_count())));
    o
}

/// The series of a study, matched and paged. `retrieve_base` is the study's WADO-RS URL.
pub fn series(study: &Study, q: &Query, retrieve_base: &str) -> Vec<Value> {
    let objects = study
        .series()
        .map(|se| series_object(study, &se, retrieve_base))
        .filter(|o| q.matches(o))
        .map(Value::Object)
        .collect();
    q.page(objects)
}

fn series_object(study: &Study, se: &Series, retrieve_base: &str) -> Map<String, Value> {
    let mut o = Map::new();
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, "CS", Some(json!("ISO_IR 192")));
    put(&mut o, tags::MODALITY, "CS", text(se.modality()));
    if let Some(tz) = study.timezone_offset().and_then(|tz| text(&tz.replace(':', ""))) {
        put(&mut o, tags::TIMEZONE_OFFSET_FROM_UTC, "SH", Some(tz));
    }
    put(&mut o, tags::SERIES_DESCRIPTION, "LO", text(se.description()));
    put(&mut o, tags::RETRIEVE_URL, "UR", Some(json!(format!("{retrieve_base}/series/{}", se.uid()))));
    put(&mut o, tags::STUDY_INSTANCE_UID, "UI", Some(json!(study.uid())));
    put(&mut o, tags::SERIES_INSTANCE_UID, "UI", Some(json!(se.uid())));
    put(&mut o, tags::SERIES_NUMBER, "IS", se.number().map(|n| json!(n)));
    put(&mut o, tags::NUMBER_OF_SERIES_RELATED_INSTANCES, "IS", Some(json!(se.instance_count())));
    o
}

/// Image attributes that only the instance's header holds (Rows, Columns, Bits Allocated).
#[derive(Debug, Default, Clone, Copy)]
pub struct ImageAttrs {
    pub rows: Option<u64>,
    pub columns: Option<u64>,
    pub bits_allocated: Option<u64>,
}

/// Instances of a study (each with its series), matched and paged; `image` reads an instance's image
/// attributes, and the first error it returns is the answer.
pub fn instances<'a>(
    study: &Study,
    members: impl ExactSizeIterator<Item = (Series<'a>, Instance<'a>)>,
    q: &Query,
    retrieve_base: &str,
    image: &dyn Fn(&Instance) -> Result<ImageAttrs, ApiError>,
) -> Result<Vec<Value>, ApiError> {
    let mut objects = Vec::with_capacity(members.len());
    for (se, i) in members {
        let object = instance_object(study, &se, &i, retrieve_base, image(&i)?);
        if q.matches(&object) {
            objects.push(Value::Object(object));
        }
    }
    Ok(q.page(objects))
}

fn instance_object(study: &Study, se: &Series, i: &Instance, base: &str, img: ImageAttrs) -> Map<String, Value> {
    let mut o = Map::new();
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, "CS", Some(json!("ISO_IR 192")));
    put(&mut o, tags::SOP_CLASS_UID, "UI", Some(json!(i.sop_class())));
    put(&mut o, tags::SOP_INSTANCE_UID, "UI", Some(json!(i.uid())));
    put(&mut o, tags::INSTANCE_AVAILABILITY, "CS", Some(json!("ONLINE")));
    if let Some(tz) = study.timezone_offset().and_then(|tz| text(&tz.replace(':', ""))) {
        put(&mut o, tags::TIMEZONE_OFFSET_FROM_UTC, "SH", Some(tz));
    }
    put(&mut o, tags::RETRIEVE_URL, "UR", Some(json!(format!("{base}/series/{}/instances/{}", se.uid(), i.uid()))));
    put(&mut o, tags::STUDY_INSTANCE_UID, "UI", Some(json!(study.uid())));
    put(&mut o, tags::SERIES_INSTANCE_UID, "UI", Some(json!(se.uid())));
    put(&mut o, tags::INSTANCE_NUMBER, "IS", i.number().map(|n| json!(n)));
    if let Some(frames) = i.frames() {
        put(&mut o, tags::NUMBER_OF_FRAMES, "IS", Some(json!(frames)));
    }
    put(&mut o, tags::ROWS, "US", img.rows.map(|v| json!(v)));
    put(&mut o, tags::COLUMNS, "US", img.columns.map(|v| json!(v)));
    put(&mut o, tags::BITS_ALLOCATED, "US", img.bits_allocated.map(|v| json!(v)));
    o
}

/// The study search at the Endpoint address: the sealed study when it matches, answered from the index.
pub fn search_studies(cx: &Context) -> Result<Response, ApiError> {
    let all: Vec<Instance> = cx.study.instances().collect();
    let (tag, unchanged) = cx.tag(&format!("studies?{}", cx.req.query), &all);
    if let Some(not_modified) = unchanged {
        return Ok(not_modified);
    }
    negotiate_json(cx.req.header("accept")).map_err(refused)?;
    let q = Query::parse(&cx.req.query, Level::Study)?;
    let retrieve_base = format!("{}/studies/{}", cx.base, cx.study.uid());
    let found = studies(&cx.study, &q, &retrieve_base);
    Ok(Response::json(200, "application/dicom+json", &Value::Array(found)).with_header("ETag", tag))
}

pub fn search_series(cx: &Context) -> Result<Response, ApiError> {
    let all: Vec<Instance> = cx.study.instances().collect();
    let (tag, unchanged) = cx.tag(&format!("series?{}", cx.req.query), &all);
    if let Some(not_modified) = unchanged {
        return Ok(not_modified);
    }
    negotiate_json(cx.req.header("accept")).map_err(refused)?;
    let q = Query::parse(&cx.req.query, Level::Series)?;
    let retrieve_base = format!("{}/studies/{}", cx.base, cx.study.uid());
    let found = series(&cx.study, &q, &retrieve_base);
    Ok(Response::json(200, "application/dicom+json", &Value::Array(found)).with_header("ETag", tag))
}

/// The instances of one series of the study, or with `None` of the whole study (PS3.18 §10.6.1.2).
pub fn search_instances(cx: &Context, one: Option<&Series>) -> Result<Response, ApiError> {
    let members: Vec<(Series, Instance)> = match one {
        Some(se) => se.instances().map(|i| (*se, i)).collect(),
        None => cx.study.series().flat_map(|se| se.instances().map(move |i| (se, i))).collect(),
    };
    let all: Vec<Instance> = members.iter().map(|(_, i)| *i).collect();
    let what = match one {
        Some(se) => format!("instances {}?{}", se.uid(), cx.req.query),
        None => format!("instances?{}", cx.req.query),
    };
    let (tag, unchanged) = cx.tag(&what, &all);
    if let Some(not_modified) = unchanged {
        return Ok(not_modified);
    }
    negotiate_json(cx.req.header("accept")).map_err(refused)?;
    let q = Query::parse(&cx.req.query, Level::Instance)?;
    let retrieve_base = format!("{}/studies/{}", cx.base, cx.study.uid());
    // Rows, Columns and Bits Allocated are not in the index: read them from each file's header. A file that
    // cannot be read leaves them empty here; retrieving it reports the fault. A deflated file is inflated for
    // them, and when the inflate budget has no room for it the search is answered 503, like any request that
    // needs it: an answer without them would carry the same ETag as the whole one.
    let image = |inst: &Instance| {
        let (bytes, ds) = match load(cx, inst) {
            Ok(loaded) => loaded,
            Err(busy @ ApiError::Saturated) => return Err(busy),
            Err(_) => return Ok(ImageAttrs::default()),
        };
        let read = || {
            let us = |tag| ds.get(tag).and_then(|e| e.first_unsigned(&bytes));
            ImageAttrs { rows: us(tags::ROWS), columns: us(tags::COLUMNS), bits_allocated: us(tags::BITS_ALLOCATED) }
        };
        Ok(unfaulted(cx, inst, read).unwrap_or_default())
    };
    let found = instances(&cx.study, members.into_iter(), &q, &retrieve_base, &image)?;
    Ok(Response::json(200, "application/dicom+json", &Value::Array(found)).with_header("ETag", tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;

    #[test]
    fn wildcards() {
        assert!(wildcard("CT", "CT"));
        assert!(!wildcard("CT", "CTX"));
        assert!(wildcard("C*", "CT"));
        assert!(wildcard("*", ""));
        assert!(wildcard("A?C", "ABC"));
        assert!(!wildcard("A?C", "AC"));
        assert!(wildcard("*SOFT*", "AXIAL 5MM SOFT TISSUE"));
        assert!(!wildcard("*BONE*", "AXIAL 5MM SOFT TISSUE"));
    }

    #[test]
    fn date_and_time_ranges() {
        assert!(value_matches("DA", "20240101-20240131", "20240105"));
        assert!(value_matches("DA", "-2024", "20241231"));
        assert!(value_matches("DA", "20240105-", "20240105"));
        assert!(!value_matches("DA", "20240106-", "20240105"));
        assert!(!value_matches("DA", "-20240104", "20240105"));
        assert!(!value_matches("DA", "20240101-", ""), "a range never holds an empty value");
        assert!(value_matches("TM", "0900-0930", "093000"));
        assert!(!value_matches("TM", "-0929", "093000"));
        assert!(value_matches("SH", "ACC-1", "ACC-1"), "a dash is a range only in dates and times");
        assert!(!value_matches("SH", "ACC-", "ACC-1"));
    }

    #[test]
    fn study_queries_split_uid_lists_both_ways_and_name_fields_by_keyword_or_tag() {
        let q = Query::parse("StudyInstanceUID=1%5C2,3&includefield=00100021,StudyDate", Level::Study).unwrap();
        assert_eq!(q.filters[0].1, ["1", "2", "3"]);
        assert!(q.includes(tags::ISSUER_OF_PATIENT_ID) && !q.include_all);
        assert!(Query::parse("includefield=all", Level::Study).unwrap().includes(tags::ISSUER_OF_PATIENT_ID));
        assert!(Query::parse("Modality=CT", Level::Study).is_err(), "Modality is a series attribute");
        assert!(Query::parse("IssuerOfPatientID=X", Level::Series).is_err());
    }

    /// A study of two series: 1.1 (CT, one instance) and 1.2 (MR, "AX T1", two instances).
    fn index() -> Index {
        let instance = |uid: &str, n| {
            format!(
                "[[study.series.instance]]\nuid = \"{uid}\"\nsop_class = \"1.2\"\nnumber = {n}\n\
                 transfer_syntax = \"\"\npath = \"{uid}.dcm\"\nsize = 0\n"
            )
        };
        let text = format!(
            "written = \"2026-01-01T00:00:00Z\"\n[[study]]\nuid = \"1\"\npatient_id = \"\"\n\
             [[study.series]]\nuid = \"1.1\"\nnumber = 1\nmodality = \"CT\"\n{}\
             [[study.series]]\nuid = \"1.2\"\nnumber = 2\nmodality = \"MR\"\ndescription = \"AX T1\"\n{}{}",
            instance("1.1.1", 1),
            instance("1.2.1", 1),
            instance("1.2.2", 2),
        );
        Index::parse(&text, std::path::Path::new("/x/index.toml")).unwrap()
    }

    fn uids(objects: &[Value], tag: &str) -> Vec<String> {
        objects.iter().map(|o| o[tag]["Value"][0].as_str().unwrap_or_default().to_string()).collect()
    }

    #[test]
    fn series_matching_and_paging() {
        let index = index();
        let st = index.studies().next().unwrap();
        let check = |query: &str, expected: &[&str]| {
            let q = Query::parse(query, Level::Series).unwrap();
            assert_eq!(uids(&series(&st, &q, "B"), "0020000E"), expected, "{query}");
        };
        check("", &["1.1", "1.2"]);
        check("Modality=MR", &["1.2"]);
        check("00080060=CT", &["1.1"]);
        check("SeriesInstanceUID=1.2,1.1", &["1.1", "1.2"]);
        check("SeriesDescription=AX*", &["1.2"]);
        check("SeriesNumber=2", &["1.2"]);
        check("limit=1", &["1.1"]);
        check("limit=1&offset=1", &["1.2"]);
        check("includefield=all&Modality=XA", &[]);
        assert!(Query::parse("PatientName=x", Level::Series).is_err());
        assert!(Query::parse("limit=-1", Level::Series).is_err());
        let q = Query::parse("", Level::Series).unwrap();
        let s = series(&st, &q, "http://x/wado/T/studies/1");
        assert_eq!(s[1]["00201209"]["Value"][0], 2);
        assert_eq!(s[1]["00081190"]["Value"][0], "http://x/wado/T/studies/1/series/1.2");
    }

    #[test]
    fn instance_matching() {
        let index = index();
        let st = index.studies().next().unwrap();
        let q = Query::parse("InstanceNumber=2", Level::Instance).unwrap();
        let img = |_: &Instance| Ok(ImageAttrs { rows: Some(64), columns: Some(64), bits_allocated: Some(16) });
        let se = st.series().nth(1).unwrap();
        let found = instances(&st, se.instances().map(|i| (se, i)), &q, "B", &img).unwrap();
        assert_eq!(uids(&found, "00080018"), vec!["1.2.2"]);
        assert_eq!(found[0]["00280010"]["Value"][0], 64);
        assert_eq!(found[0]["00080056"]["Value"][0], "ONLINE");
    }
}

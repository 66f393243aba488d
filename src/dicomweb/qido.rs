//! Study-scoped QIDO-RS (DICOM PS3.18 §10.6): the series of the sealed study, and the instances of one of
//! its series, as DICOM JSON with the attributes of tables 10.6.3-4 and 10.6.3-5.
//!
//! Invariants: only the study the study token opened is ever searched (the router passes it in; there is no
//! way to name another); matching is on the index's values, plus per-instance image attributes read from the
//! instance's own header.

use serde_json::{Map, Value, json};

use super::context::{Context, load, refused, unfaulted};
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

/// A parsed QIDO query: attribute filters, paging.
#[derive(Debug, Default)]
pub struct Query {
    /// (tag, accepted values) pairs; each value may hold `*` and `?` wildcards.
    filters: Vec<(Tag, Vec<String>)>,
    limit: Option<usize>,
    offset: usize,
}

impl Query {
    /// Parses a raw query for a level. Unknown attributes are a 400 (PS3.18 §8.3.4.2 lets a server refuse
    /// keys it does not support); `includefield` and `fuzzymatching` are accepted, since every known
    /// attribute is always returned.
    pub fn parse(raw: &str, series_level: bool) -> Result<Query, ApiError> {
        let attrs = if series_level { SERIES_ATTRS } else { INSTANCE_ATTRS };
        let mut q = Query::default();
        for (name, value) in parse_query(raw)? {
            match name.as_str() {
                "limit" => q.limit = Some(number(&name, &value)?),
                "offset" => q.offset = number(&name, &value)?,
                "includefield" | "fuzzymatching" => {}
                _ => {
                    let attr = attrs
                        .iter()
                        .find(|a| a.keyword == name || a.tag.json_key().eq_ignore_ascii_case(&name))
                        .ok_or_else(|| ApiError::BadRequest(format!("cannot match on {name:?} at this level")))?;
                    let values = value.split(if attr.vr == "UI" { ',' } else { '\\' }).map(str::to_string).collect();
                    q.filters.push((attr.tag, values));
                }
            }
        }
        Ok(q)
    }

    fn matches(&self, object: &Map<String, Value>) -> bool {
        self.filters.iter().all(|(tag, wanted)| {
            let have: Vec<String> = object
                .get(&tag.json_key())
                .and_then(|e| e.get("Value"))
                .and_then(Value::as_array)
                .map(|vs| vs.iter().map(value_text).collect())
                .unwrap_or_default();
            wanted.iter().any(|w| w.is_empty() || have.iter().any(|h| wildcard(w, h)))
        })
    }

    fn page(&self, objects: Vec<Value>) -> Vec<Value> {
        objects.into_iter().skip(self.offset).take(self.limit.unwrap_or(usize::MAX)).collect()
    }
}

fn number(name: &str, value: &str) -> Result<usize, ApiError> {
    value.parse().map_err(|_| ApiError::BadRequest(format!("{name}: {value:?} is not a number")))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
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

/// The instances of a series, matched and paged; `image` reads an instance's image attributes, and the first
/// error it returns is the answer.
pub fn instances(
    study: &Study,
    se: &Series,
    q: &Query,
    retrieve_base: &str,
    image: &dyn Fn(&Instance) -> Result<ImageAttrs, ApiError>,
) -> Result<Vec<Value>, ApiError> {
    let mut objects = Vec::with_capacity(se.instance_count());
    for i in se.instances() {
        let object = instance_object(study, se, &i, retrieve_base, image(&i)?);
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

pub fn search_series(cx: &Context) -> Result<Response, ApiError> {
    let all: Vec<Instance> = cx.study.instances().collect();
    let (tag, unchanged) = cx.tag(&format!("series?{}", cx.req.query), &all);
    if let Some(not_modified) = unchanged {
        return Ok(not_modified);
    }
    negotiate_json(cx.req.header("accept")).map_err(refused)?;
    let q = Query::parse(&cx.req.query, true)?;
    let retrieve_base = format!("{}/studies/{}", cx.base, cx.study.uid());
    let found = series(&cx.study, &q, &retrieve_base);
    Ok(Response::json(200, "application/dicom+json", &Value::Array(found)).with_header("ETag", tag))
}

pub fn search_instances(cx: &Context, se: &Series) -> Result<Response, ApiError> {
    let all: Vec<Instance> = se.instances().collect();
    let (tag, unchanged) = cx.tag(&format!("instances {}?{}", se.uid(), cx.req.query), &all);
    if let Some(not_modified) = unchanged {
        return Ok(not_modified);
    }
    negotiate_json(cx.req.header("accept")).map_err(refused)?;
    let q = Query::parse(&cx.req.query, false)?;
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
    let found = instances(&cx.study, se, &q, &retrieve_base, &image)?;
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
            let q = Query::parse(query, true).unwrap();
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
        assert!(Query::parse("PatientName=x", true).is_err());
        assert!(Query::parse("limit=-1", true).is_err());
        let q = Query::parse("", true).unwrap();
        let s = series(&st, &q, "http://x/wado/T/studies/1");
        assert_eq!(s[1]["00201209"]["Value"][0], 2);
        assert_eq!(s[1]["00081190"]["Value"][0], "http://x/wado/T/studies/1/series/1.2");
    }

    #[test]
    fn instance_matching() {
        let index = index();
        let st = index.studies().next().unwrap();
        let q = Query::parse("InstanceNumber=2", false).unwrap();
        let img = |_: &Instance| Ok(ImageAttrs { rows: Some(64), columns: Some(64), bits_allocated: Some(16) });
        let found = instances(&st, &st.series().nth(1).unwrap(), &q, "B", &img).unwrap();
        assert_eq!(uids(&found, "00080018"), vec!["1.2.2"]);
        assert_eq!(found[0]["00280010"]["Value"][0], 64);
        assert_eq!(found[0]["00080056"]["Value"][0], "ONLINE");
    }
}

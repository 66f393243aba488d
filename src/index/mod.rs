//! The static index: read once at start, validated once (raw layout → `Index`), never rescanned or changed
//! while serving. `file` is the on-disk layout, `fast` its quick reader, `indexer` writes it and `check`
//! verifies it against the files.
//!
//! Invariants: every file the server opens is named here, by a path relative to the index file that cannot
//! leave its folder, never by URL text; lookups are by exact UID; values are normalised here (the written
//! time parsed, timezone offsets in one form), so handlers never see the on-disk layout.

pub mod check;
mod fast;
mod file;
pub mod indexer;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::dicom::Uid;
use crate::time::{format_rfc3339, normalise_offset, parse_rfc3339};

/// One study, with what the index recorded of it. Text is UTF-8, trimmed of DICOM padding; an absent
/// attribute is empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Study {
    pub uid: String,
    pub patient_id: String,
    pub issuer_of_patient_id: String,
    pub patient_name: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub date: String,
    pub time: String,
    /// TimezoneOffsetFromUTC as `+hh:mm`, when the files carry a well-formed one.
    pub timezone_offset: Option<String>,
    pub accession_number: String,
    pub study_id: String,
    pub description: String,
    pub referring_physician_name: String,
    pub modalities: Vec<String>,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub uid: String,
    pub number: Option<i64>,
    pub modality: String,
    pub description: String,
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instance {
    pub uid: String,
    pub sop_class: String,
    pub number: Option<i64>,
    pub transfer_syntax: String,
    pub frames: Option<u32>,
    /// Path relative to the folder of the index file, with `/` separators, checked to stay inside it.
    pub path: String,
    pub size: u64,
    /// Modification time in whole seconds since the Unix epoch, when the file was indexed; 0 when unknown.
    pub mtime: u64,
    pub pixel_data_offset: Option<u64>,
}

impl Study {
    pub fn instance_count(&self) -> usize {
        self.series.iter().map(|s| s.instances.len()).sum()
    }

    pub fn series(&self, uid: Uid) -> Option<&Series> {
        self.series.iter().find(|s| s.uid == uid.as_str())
    }
}

impl Series {
    pub fn instance(&self, uid: Uid) -> Option<&Instance> {
        self.instances.iter().find(|i| i.uid == uid.as_str())
    }
}

/// Why an index could not be loaded.
#[derive(Debug)]
pub enum IndexError {
    Read(PathBuf, std::io::Error),
    Parse(PathBuf, String),
    Invalid(PathBuf, String),
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Read(p, e) => write!(f, "cannot read index {}: {e}", p.display()),
            IndexError::Parse(p, e) => write!(f, "index {} is not a valid index: {e}", p.display()),
            IndexError::Invalid(p, e) => write!(f, "index {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for IndexError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IndexError::Read(_, e) => Some(e),
            _ => None,
        }
    }
}

/// The loaded index with lookup tables, shared read-only by every request.
#[derive(Debug)]
pub struct Index {
    /// When the index was written, as RFC 3339 UTC (`meta.lastUpdated` of every study).
    written: String,
    /// The same time in Unix seconds, for `_lastUpdated` searches.
    written_secs: i64,
    studies: Vec<Study>,
    /// The folder the instance paths are relative to.
    root: PathBuf,
    by_uid: HashMap<String, usize>,
}

impl Index {
    /// Reads and validates the index file at `path`.
    pub fn load(path: &Path) -> Result<Index, IndexError> {
        let text = std::fs::read_to_string(path).map_err(|e| IndexError::Read(path.to_path_buf(), e))?;
        Index::parse(&text, path)
    }

    /// Validates index text as if read from `path` (whose folder the instance paths are relative to).
    pub fn parse(text: &str, path: &Path) -> Result<Index, IndexError> {
        let raw = match fast::parse(text) {
            Some(raw) => raw,
            None => toml::from_str(text).map_err(|e| IndexError::Parse(path.to_path_buf(), e.to_string()))?,
        };
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Index::validate(raw, root).map_err(|e| IndexError::Invalid(path.to_path_buf(), e))
    }

    /// The one conversion from the on-disk layout: every check and normalisation happens here.
    fn validate(raw: file::IndexFile, root: PathBuf) -> Result<Index, String> {
        let written_secs = parse_rfc3339(&raw.written).ok_or_else(|| {
            format!("written: {:?} is not an RFC 3339 time such as 2025-11-28T00:00:00Z", raw.written)
        })?;
        let written = format_rfc3339(u64::try_from(written_secs).map_err(|_| "written: a time before 1970")?);
        let mut by_uid = HashMap::with_capacity(raw.studies.len());
        let mut studies = Vec::with_capacity(raw.studies.len());
        for (i, study) in raw.studies.into_iter().enumerate() {
            if by_uid.insert(study.uid.clone(), i).is_some() {
                return Err(format!("study {} appears twice", study.uid));
            }
            studies.push(study_of(study)?);
        }
        Ok(Index { written, written_secs, studies, root, by_uid })
    }

    pub fn studies(&self) -> &[Study] {
        &self.studies
    }

    /// When the index was written, as RFC 3339 UTC.
    pub fn written(&self) -> &str {
        &self.written
    }

    pub fn written_secs(&self) -> i64 {
        self.written_secs
    }

    /// Where a study stands in the index, for tables kept beside it.
    pub fn position(&self, uid: &str) -> Option<usize> {
        self.by_uid.get(uid).copied()
    }

    pub fn study(&self, uid: Uid) -> Option<&Study> {
        self.by_uid.get(uid.as_str()).and_then(|&i| self.studies.get(i))
    }

    /// The absolute location of an indexed instance's file.
    pub fn file_path(&self, inst: &Instance) -> PathBuf {
        self.root.join(&inst.path)
    }

    pub fn instance_count(&self) -> usize {
        self.studies.iter().map(Study::instance_count).sum()
    }
}

fn study_of(s: file::Study) -> Result<Study, String> {
    let series = s.series.into_iter().map(|se| series_of(se, &s.uid)).collect::<Result<_, _>>()?;
    Ok(Study {
        timezone_offset: normalise_offset(&s.timezone_offset),
        uid: s.uid,
        patient_id: s.patient_id,
        issuer_of_patient_id: s.issuer_of_patient_id,
        patient_name: s.patient_name,
        patient_birth_date: s.patient_birth_date,
        patient_sex: s.patient_sex,
        date: s.date,
        time: s.time,
        accession_number: s.accession_number,
        study_id: s.study_id,
        description: s.description,
        referring_physician_name: s.referring_physician_name,
        modalities: s.modalities,
        series,
    })
}

fn series_of(se: file::Series, _study: &str) -> Result<Series, String> {
    let instances = se.instances.into_iter().map(instance_of).collect::<Result<_, _>>()?;
    Ok(Series { uid: se.uid, number: se.number, modality: se.modality, description: se.description, instances })
}

fn instance_of(i: file::Instance) -> Result<Instance, String> {
    if !is_safe_relative(&i.path) {
        return Err(format!("instance {} has an unsafe path {:?}", i.uid, i.path));
    }
    Ok(Instance {
        uid: i.uid,
        sop_class: i.sop_class,
        number: i.number,
        transfer_syntax: i.transfer_syntax,
        frames: i.frames,
        path: i.path,
        size: i.size,
        mtime: i.mtime,
        pixel_data_offset: i.pixel_data_offset,
    })
}

/// A path the index may name: relative, `/`-separated, without `..` or empty segments, so that an index
/// file cannot point the server outside its own folder.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
written = "2026-01-01T00:00:00Z"
[[study]]
uid = "1.2.3"
patient_id = "P"
timezone_offset = "+0100"
[[study.series]]
uid = "1.2.3.1"
[[study.series.instance]]
uid = "1.2.3.1.1"
sop_class = "1.2.840.10008.5.1.4.1.1.2"
transfer_syntax = "1.2.840.10008.1.2.1"
path = "x/1.dcm"
size = 10
"#;

    fn parse(text: &str) -> Result<Index, String> {
        Index::parse(text, Path::new("/data/index.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn safe_relative_paths() {
        assert!(is_safe_relative("a/b/c.dcm"));
        assert!(is_safe_relative("dicom/1.dcm"));
        assert!(!is_safe_relative("/etc/passwd"));
        assert!(!is_safe_relative("../secret.dcm"));
        assert!(!is_safe_relative("a/../../b"));
        assert!(!is_safe_relative("a//b"));
        assert!(!is_safe_relative("a\\b"));
        assert!(!is_safe_relative(""));
    }

    #[test]
    fn loads_validates_and_looks_up() {
        let index = parse(ONE).unwrap();
        let uid = |s| Uid::parse(s).unwrap();
        let study = index.study(uid("1.2.3")).unwrap();
        assert_eq!(study.instance_count(), 1);
        assert_eq!(study.timezone_offset.as_deref(), Some("+01:00"), "offsets are normalised once, at load");
        assert!(study.series(uid("1.2.3.1")).unwrap().instance(uid("1.2.3.1.1")).is_some());
        assert!(index.study(uid("1.2")).is_none());
        assert_eq!(index.file_path(&study.series[0].instances[0]), PathBuf::from("/data/x/1.dcm"));
        assert_eq!(index.written(), "2026-01-01T00:00:00Z");
    }

    #[test]
    fn refuses_paths_outside_the_folder() {
        let e = parse(&ONE.replace("x/1.dcm", "../x")).unwrap_err();
        assert!(e.contains("unsafe path") && e.contains("/data/index.toml"), "{e}");
    }

    /// Broke: a `written` that was not a time was read as 0 (1970) without a word.
    #[test]
    fn a_bad_written_time_names_the_file() {
        let e = parse(&ONE.replace("2026-01-01T00:00:00Z", "yesterday")).unwrap_err();
        assert!(e.contains("/data/index.toml") && e.contains("written") && e.contains("yesterday"), "{e}");
    }

    #[test]
    fn a_study_twice_is_refused() {
        let twice = format!("{ONE}\n{}", &ONE[ONE.find("[[study]]").unwrap()..]);
        assert!(parse(&twice).unwrap_err().contains("appears twice"));
    }

    #[test]
    fn a_malformed_offset_is_no_offset() {
        let index = parse(&ONE.replace("+0100", "+25")).unwrap();
        assert_eq!(index.studies()[0].timezone_offset, None);
    }
}

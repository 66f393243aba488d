//! The static index (SPEC §4): what `smart-imaging index` writes and the server reads once at start.
//!
//! Invariants: the index is never rescanned or changed while serving; every file the server opens is
//! named here, by a path relative to the index file, never by URL text; lookups are by exact UID.

pub mod fast;
pub mod indexer;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::dicom::Uid;

/// The on-disk layout. Field names are the TOML keys documented in the README.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IndexFile {
    /// When the index was written, RFC 3339 UTC; served as `meta.lastUpdated`.
    pub written: String,
    #[serde(default, rename = "study")]
    pub studies: Vec<Study>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Study {
    pub uid: String,
    pub patient_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer_of_patient_id: String,
    #[serde(default)]
    pub patient_name: String,
    #[serde(default)]
    pub patient_birth_date: String,
    #[serde(default)]
    pub patient_sex: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timezone_offset: String,
    #[serde(default)]
    pub accession_number: String,
    #[serde(default)]
    pub study_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub referring_physician_name: String,
    #[serde(default)]
    pub modalities: Vec<String>,
    #[serde(default, rename = "series")]
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Series {
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
    #[serde(default)]
    pub modality: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "instance")]
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub uid: String,
    pub sop_class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
    pub transfer_syntax: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    /// Path relative to the folder of the index file, with `/` separators.
    pub path: String,
    pub size: u64,
    /// Modification time in whole seconds since the Unix epoch, when the file was indexed.
    #[serde(default)]
    pub mtime: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    pub file: IndexFile,
    /// The folder the instance paths are relative to.
    pub root: PathBuf,
    /// `file.written` in Unix seconds, for `_lastUpdated` searches.
    pub written_secs: i64,
    by_uid: HashMap<String, usize>,
}

impl Index {
    pub fn load(path: &Path) -> Result<Index, IndexError> {
        let text = std::fs::read_to_string(path).map_err(|e| IndexError::Read(path.to_path_buf(), e))?;
        let file = match crate::index::fast::parse(&text) {
            Some(file) => file,
            None => toml::from_str(&text).map_err(|e| IndexError::Parse(path.to_path_buf(), e.to_string()))?,
        };
        drop(text);
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Index::new(file, root).map_err(|e| IndexError::Invalid(path.to_path_buf(), e))
    }

    pub fn new(file: IndexFile, root: PathBuf) -> Result<Index, String> {
        let mut by_uid = HashMap::with_capacity(file.studies.len());
        for (i, study) in file.studies.iter().enumerate() {
            if by_uid.insert(study.uid.clone(), i).is_some() {
                return Err(format!("study {} appears twice", study.uid));
            }
            for inst in study.series.iter().flat_map(|s| &s.instances) {
                if !is_safe_relative(&inst.path) {
                    return Err(format!("instance {} has an unsafe path {:?}", inst.uid, inst.path));
                }
            }
        }
        let written_secs = crate::time::parse_rfc3339(&file.written).unwrap_or(0);
        Ok(Index { file, root, written_secs, by_uid })
    }

    pub fn studies(&self) -> &[Study] {
        &self.file.studies
    }

    /// Where a study stands in the index, for tables kept beside it.
    pub fn position(&self, uid: &str) -> Option<usize> {
        self.by_uid.get(uid).copied()
    }

    pub fn study(&self, uid: Uid) -> Option<&Study> {
        self.by_uid.get(uid.as_str()).and_then(|&i| self.file.studies.get(i))
    }

    /// The absolute location of an indexed instance's file.
    pub fn file_path(&self, inst: &Instance) -> PathBuf {
        self.root.join(&inst.path)
    }

    pub fn instance_count(&self) -> usize {
        self.file.studies.iter().map(Study::instance_count).sum()
    }
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
    fn round_trip_and_lookup() {
        let file = IndexFile {
            written: "2026-01-01T00:00:00Z".into(),
            studies: vec![Study {
                uid: "1.2.3".into(),
                patient_id: "P".into(),
                series: vec![Series {
                    uid: "1.2.3.1".into(),
                    instances: vec![Instance {
                        uid: "1.2.3.1.1".into(),
                        sop_class: "1.2.840.10008.5.1.4.1.1.2".into(),
                        transfer_syntax: "1.2.840.10008.1.2.1".into(),
                        path: "x/1.dcm".into(),
                        size: 10,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let text = toml::to_string(&file).unwrap();
        let back: IndexFile = toml::from_str(&text).unwrap();
        assert_eq!(back, file);
        let index = Index::new(back, PathBuf::from("/data")).unwrap();
        let uid = |s| Uid::parse(s).unwrap();
        let study = index.study(uid("1.2.3")).unwrap();
        assert_eq!(study.instance_count(), 1);
        assert!(study.series(uid("1.2.3.1")).unwrap().instance(uid("1.2.3.1.1")).is_some());
        assert!(index.study(uid("1.2")).is_none());
    }

    #[test]
    fn refuses_paths_outside_the_folder() {
        let mut file = IndexFile::default();
        file.studies.push(Study {
            uid: "1".into(),
            series: vec![Series {
                uid: "2".into(),
                instances: vec![Instance { uid: "3".into(), path: "../x".into(), ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(Index::new(file, PathBuf::new()).unwrap_err().contains("unsafe path"));
    }
}

//! The on-disk layout of the index: the TOML that `smart-imaging index` writes, read by `serde` (or by the
//! fast reader in `fast`). Private to the `index` folder: the rest of the server sees only the validated
//! `Index`.
//!
//! Invariant: field names are the TOML keys docs/index.md documents; nothing here is trusted before
//! `Index::validate` has checked it.

use serde::{Deserialize, Serialize};

/// The on-disk layout. Field names are the TOML keys documented in docs/index.md.
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

/// What takes the tables of an index as they are read, in file order: each instance belongs to the series and
/// study handed over last.
pub trait Tables {
    fn study(&mut self, study: &Study);
    fn series(&mut self, series: &Series);
    fn instance(&mut self, instance: &Instance);
}

/// The whole layout, kept as read: what `update` works on.
impl Tables for IndexFile {
    fn study(&mut self, study: &Study) {
        self.studies.push(Study { series: Vec::new(), ..study.clone() });
    }

    fn series(&mut self, series: &Series) {
        if let Some(study) = self.studies.last_mut() {
            study.series.push(Series { instances: Vec::new(), ..series.clone() });
        }
    }

    fn instance(&mut self, instance: &Instance) {
        if let Some(series) = self.studies.last_mut().and_then(|s| s.series.last_mut()) {
            series.instances.push(instance.clone());
        }
    }
}

//! The static index: read once at start, validated once (raw layout → `Index`), never rescanned or changed
//! while serving. `file` is the on-disk layout, `fast` its quick streaming reader, `store` how it is held
//! in memory (compact tables over two texts), `view` the studies, series and instances handlers read,
//! `indexer` writes it and `check` verifies it against the files.
//!
//! Invariants: every file the server opens is named here, by a path relative to the index file that cannot
//! leave its folder, never by URL text; lookups are by exact UID; values are normalised here (the written
//! time parsed, timezone offsets in one form), so handlers never see the on-disk layout; the TOML file is
//! the only source: nothing derived from it is written anywhere.

pub mod check;
mod fast;
mod file;
pub mod indexer;
pub mod learnt;
mod store;
pub mod update;
mod view;
mod walk;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::dicom::Uid;
use crate::time::{format_rfc3339, parse_rfc3339};
use store::{Builder, Store};
pub use view::{Instance, Series, Study};

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
#[derive(PartialEq)]
pub struct Index {
    /// When the index was written, as RFC 3339 UTC (`meta.lastUpdated` of every study).
    written: String,
    /// The same time in Unix seconds, for `_lastUpdated` searches.
    written_secs: i64,
    /// The folder the instance paths are relative to.
    root: PathBuf,
    store: Store,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("written", &self.written)
            .field("root", &self.root)
            .field("studies", &self.store.studies.len())
            .field("instances", &self.store.instances.len())
            .finish()
    }
}

impl Index {
    /// Reads and validates the index file at `path`: streamed through the fast reader, or, for a layout it
    /// declines, read whole by the toml crate.
    pub fn load(path: &Path) -> Result<Index, IndexError> {
        let read_error = |e| IndexError::Read(path.to_path_buf(), e);
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        let mut builder = Builder::default();
        if let Some(written) = fast::read(&mut file, &mut builder).map_err(read_error)? {
            return Index::build(builder, &written, path);
        }
        drop(builder);
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        Index::general(&text, path)
    }

    /// Validates index text as if read from `path` (whose folder the instance paths are relative to).
    #[cfg(test)]
    pub fn parse(text: &str, path: &Path) -> Result<Index, IndexError> {
        let mut builder = Builder::default();
        match fast::parse(text, &mut builder) {
            Some(written) => Index::build(builder, &written, path),
            None => Index::general(text, path),
        }
    }

    /// Reads `text` with the toml crate.
    fn general(text: &str, path: &Path) -> Result<Index, IndexError> {
        let raw: file::IndexFile =
            toml::from_str(text).map_err(|e| IndexError::Parse(path.to_path_buf(), e.to_string()))?;
        let mut builder = Builder::default();
        for study in &raw.studies {
            builder.study(study);
            for series in &study.series {
                builder.series(series);
                series.instances.iter().for_each(|i| builder.instance(i));
            }
        }
        Index::build(builder, &raw.written, path)
    }

    /// The end of either reading: the written time is checked first, then what the builder met.
    fn build(builder: Builder, written: &str, path: &Path) -> Result<Index, IndexError> {
        let invalid = |e| IndexError::Invalid(path.to_path_buf(), e);
        let written_secs = parse_rfc3339(written).ok_or_else(|| {
            invalid(format!("written: {written:?} is not an RFC 3339 time such as 2025-11-28T00:00:00Z"))
        })?;
        let secs = u64::try_from(written_secs).map_err(|_| invalid("written: a time before 1970".into()))?;
        let store = builder.finish().map_err(invalid)?;
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Index { written: format_rfc3339(secs), written_secs, root, store })
    }

    /// Every study, in index order.
    pub fn studies(&self) -> impl ExactSizeIterator<Item = Study<'_>> {
        let store = &self.store;
        store.studies.iter().enumerate().map(move |(at, row)| Study::new(store, at as u32, row))
    }

    /// When the index was written, as RFC 3339 UTC.
    pub fn written(&self) -> &str {
        &self.written
    }

    pub fn written_secs(&self) -> i64 {
        self.written_secs
    }

    pub fn study(&self, uid: Uid) -> Option<Study<'_>> {
        self.store.find_study(uid.as_str()).and_then(|at| Study::of(&self.store, at))
    }

    /// The studies whose DICOM PatientID is one of `ids`, in index order, each once: what a patient's
    /// search starts from, without a look at any other study.
    pub fn studies_of_patients<'i>(&self, ids: impl IntoIterator<Item = &'i str>) -> Vec<Study<'_>> {
        let mut found: Vec<u32> = ids.into_iter().flat_map(|id| self.store.studies_of_patient(id)).copied().collect();
        found.sort_unstable();
        found.dedup();
        found.into_iter().filter_map(|at| Study::of(&self.store, at)).collect()
    }

    /// The absolute location of an indexed instance's file.
    pub fn file_path(&self, inst: &Instance) -> PathBuf {
        self.root.join(inst.path())
    }

    pub fn instance_count(&self) -> usize {
        self.store.instances.len()
    }
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
    fn loads_validates_and_looks_up() {
        let index = parse(ONE).unwrap();
        let uid = |s| Uid::parse(s).unwrap();
        let study = index.study(uid("1.2.3")).unwrap();
        assert_eq!(study.instance_count(), 1);
        assert_eq!(study.timezone_offset(), Some("+01:00"), "offsets are normalised once, at load");
        assert!(study.find_series(uid("1.2.3.1")).unwrap().find_instance(uid("1.2.3.1.1")).is_some());
        assert!(index.study(uid("1.2")).is_none());
        let first = study.instances().next().unwrap();
        assert_eq!(index.file_path(&first), PathBuf::from("/data/x/1.dcm"));
        assert_eq!(index.written(), "2026-01-01T00:00:00Z");
    }

    #[test]
    fn an_instance_knows_its_series_in_its_study() {
        let second = r#"
[[study.series]]
uid = "1.2.3.2"
[[study.series.instance]]
uid = "1.2.3.2.1"
sop_class = "1.2.840.10008.5.1.4.1.1.2"
transfer_syntax = "1.2.840.10008.1.2.1"
path = "x/2.dcm"
size = 10
"#;
        let index = parse(&format!("{ONE}{second}")).unwrap();
        let study = index.studies().next().unwrap();
        let series: Vec<String> =
            study.instances().map(|i| study.series_of(&i).map(|s| s.uid().to_string()).unwrap_or_default()).collect();
        assert_eq!(series, ["1.2.3.1", "1.2.3.2"]);
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

    /// The first invalid value in file order is the one reported, whichever check it fails.
    #[test]
    fn the_first_problem_is_reported() {
        let study = &ONE[ONE.find("[[study]]").unwrap()..];
        let bad_path = study.replace("1.2.3", "9.9").replace("x/1.dcm", "/etc/passwd");
        let e = parse(&format!("{ONE}\n{bad_path}\n{study}")).unwrap_err();
        assert!(e.contains("unsafe path"), "{e}");
        let e = parse(&format!("{ONE}\n{study}\n{bad_path}")).unwrap_err();
        assert!(e.contains("appears twice"), "{e}");
        let e = parse(&format!("{}\n{bad_path}", ONE.replace("2026-01-01T00:00:00Z", "soon"))).unwrap_err();
        assert!(e.contains("written"), "the written time is checked first: {e}");
    }

    #[test]
    fn a_malformed_offset_is_no_offset() {
        let index = parse(&ONE.replace("+0100", "+25")).unwrap();
        assert_eq!(index.studies().next().unwrap().timezone_offset(), None);
    }

    /// Every value the layout can hold, as the handlers read it back (all but the three no answer uses).
    fn file_of(index: &Index) -> file::IndexFile {
        let studies = index.studies().map(|st| file::Study {
            uid: st.uid().into(),
            patient_id: st.patient_id().into(),
            issuer_of_patient_id: st.issuer_of_patient_id().into(),
            patient_name: st.patient_name().into(),
            date: st.date().into(),
            time: st.time().into(),
            timezone_offset: st.timezone_offset().unwrap_or_default().into(),
            accession_number: st.accession_number().into(),
            description: st.description().into(),
            referring_physician_name: st.referring_physician_name().into(),
            modalities: st.modalities().map(String::from).collect(),
            series: st
                .series()
                .map(|se| file::Series {
                    uid: se.uid().into(),
                    number: se.number(),
                    modality: se.modality().into(),
                    description: se.description().into(),
                    instances: se
                        .instances()
                        .map(|i| file::Instance {
                            uid: i.uid().into(),
                            sop_class: i.sop_class().into(),
                            number: i.number(),
                            transfer_syntax: i.transfer_syntax().into(),
                            frames: i.frames(),
                            path: i.path(),
                            size: i.size(),
                            mtime: i.mtime(),
                            pixel_data_offset: i.pixel_data_offset(),
                        })
                        .collect(),
                })
                .collect(),
            ..Default::default()
        });
        file::IndexFile { written: index.written().into(), studies: studies.collect() }
    }

    /// A layout with every kind of value: numbers of 64 bits, negative ones, absent ones, files beside the
    /// index, empty and repeated text.
    fn varied() -> file::IndexFile {
        let instance = |uid: &str, path: &str, size, number, frames, pdo| file::Instance {
            uid: uid.into(),
            sop_class: "1.2.840.10008.5.1.4.1.1.2".into(),
            number,
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            frames,
            path: path.into(),
            size,
            mtime: 1_795_878_838,
            pixel_data_offset: pdo,
        };
        let series = |uid: &str, number, instances| file::Series {
            uid: uid.into(),
            number,
            modality: "CT".into(),
            description: "AXIAL".into(),
            instances,
        };
        let study = |uid: &str, patient: &str, series| file::Study {
            uid: uid.into(),
            patient_id: patient.into(),
            patient_name: "Müller^Anna".into(),
            timezone_offset: "+01:00".into(),
            modalities: vec!["CT".into(), "SR".into()],
            series,
            ..Default::default()
        };
        file::IndexFile {
            written: "2026-01-01T00:00:00Z".into(),
            studies: vec![
                study(
                    "1.2.3",
                    "P1",
                    vec![
                        series(
                            "1.2.3.1",
                            Some(1),
                            vec![
                                instance("1.2.3.1.1", "a/b/1.dcm", u64::MAX, Some(-3), Some(4), Some(1312)),
                                instance("1.2.3.1.2", "beside.dcm", 5 << 32, Some(i64::MIN), None, None),
                                instance(
                                    "1.2.3.1.3",
                                    "a/b/3.dcm",
                                    9504,
                                    None,
                                    Some(u32::MAX),
                                    Some(u64::from(u32::MAX)),
                                ),
                            ],
                        ),
                        series("1.2.3.2", None, vec![]),
                    ],
                ),
                study("1.2.4", "P2", vec![]),
                study(
                    "1.2.5",
                    "P1",
                    vec![series(
                        "1.2.5.1",
                        Some(-1),
                        vec![instance("1.2.5.1.1", "c/1.dcm", 0, Some(i64::MAX), Some(0), Some(0))],
                    )],
                ),
            ],
        }
    }

    #[test]
    fn what_is_read_is_what_was_written() {
        let file = varied();
        let text = toml::to_string(&file).unwrap();
        let index = parse(&text).unwrap();
        assert_eq!(file_of(&index), file);
        assert_eq!(index.instance_count(), 4);
        assert_eq!(index.studies().map(|s| s.instance_count()).collect::<Vec<_>>(), [3, 0, 1]);
        assert_eq!(index.store.wide.len(), 6, "only the numbers beyond 32 bits are kept aside");
        let via_toml = Index::general(&text, Path::new("/data/index.toml")).unwrap();
        assert!(via_toml == index, "both readers build the same index");
    }

    #[test]
    fn a_patients_studies_are_found_without_a_scan() {
        let index = parse(&toml::to_string(&varied()).unwrap()).unwrap();
        let uids = |ids: &[&str]| -> Vec<String> {
            index.studies_of_patients(ids.iter().copied()).iter().map(|s| s.uid().to_string()).collect()
        };
        assert_eq!(uids(&["P1"]), ["1.2.3", "1.2.5"]);
        assert_eq!(uids(&["P2", "P1", "P1"]), ["1.2.3", "1.2.4", "1.2.5"], "index order, each once");
        assert!(uids(&["P", "P10", ""]).is_empty());
    }
}

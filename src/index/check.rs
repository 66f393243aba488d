//! `smart-imaging check`: verify that an index still describes the files it names. What a file's header now
//! says differently from the index (`differences_now`) is also what serving asks of a file modified since
//! indexing, so the two never disagree on what "the indexed instance" means.
//!
//! Invariant: `check` fails only when the index no longer describes a file (missing, unreadable, another
//! size or header); a file that was merely touched is reported apart and does not fail it.

use std::fmt;
use std::path::Path;

use super::indexer::{mtime_secs, read_file};
use super::{Index, Instance, Series, Study, file};
use crate::dicom::Header;
use crate::time::format_rfc3339;

/// What `check` found for the files of an index, one line per file, each starting with what happened.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Files that the index no longer describes: `missing: PATH`, `unreadable: PATH: …` and `changed: PATH: …`.
    /// Any of these makes `check` fail: serving would send something other than what the index says.
    pub problems: Vec<String>,
    /// `touched: PATH: …`: files modified since they were indexed whose size and header still match the
    /// index. They are served correctly, so they do not fail `check`: a fresh copy or clone of the same files
    /// looks like this. Re-index to record the new times.
    pub touched: Vec<String>,
}

/// Verifies every indexed file: present, the indexed size, a readable DICOM header that still says what the
/// index recorded, and the indexed modification time.
pub fn check_index(index: &Index) -> CheckReport {
    let mut report = CheckReport::default();
    for study in index.studies() {
        for series in study.series() {
            for inst in series.instances() {
                let path = index.file_path(&inst);
                match check_file(&path, (&study, &series, &inst)) {
                    Finding::Sound => {}
                    Finding::Missing => report.problems.push(format!("missing: {}", path.display())),
                    Finding::Unreadable(why) => report.problems.push(format!("unreadable: {}: {why}", path.display())),
                    Finding::Changed(why) => report.problems.push(format!("changed: {}: {why}", path.display())),
                    Finding::Touched(why) => report.touched.push(format!("touched: {}: {why}", path.display())),
                }
            }
        }
    }
    report
}

/// What became of one indexed file.
#[derive(Debug, PartialEq)]
enum Finding {
    Sound,
    Missing,
    Unreadable(String),
    /// Its size or its header differ from the index.
    Changed(String),
    /// Only its modification time differs.
    Touched(String),
}

fn check_file(path: &Path, (study, series, inst): (&Study, &Series, &Instance)) -> Finding {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Finding::Missing,
        Err(e) => return Finding::Unreadable(e.to_string()),
    };
    let mtime = mtime_secs(&meta);
    // An index written before modification times were recorded holds 0: no time to compare.
    let touched = inst.mtime() != 0 && mtime != inst.mtime();
    let when = format!("modified {}, indexed {}", format_rfc3339(mtime), format_rfc3339(inst.mtime()));
    let with_when = |why: String| if touched { format!("{why}; {when}") } else { why };
    if meta.len() != inst.size() {
        return Finding::Changed(with_when(format!("{} bytes, indexed {}", meta.len(), inst.size())));
    }
    let differences = match differences_now(path, (study, series, inst)) {
        Ok(differences) => differences,
        Err(why) => return Finding::Changed(with_when(format!("no longer a readable DICOM header: {why}"))),
    };
    if !differences.is_empty() {
        Finding::Changed(with_when(differences.iter().map(Difference::to_string).collect::<Vec<_>>().join(", ")))
    } else if touched {
        Finding::Touched(format!("{when}; size and header match the index"))
    } else {
        Finding::Sound
    }
}

/// An attribute whose value in a file's header is not the one the index recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub name: &'static str,
    /// The header's value now, and the index's; "none" for an absent one.
    pub now: String,
    pub indexed: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}, indexed {}", self.name, self.now, self.indexed)
    }
}

/// Reads an indexed file's header again and says in what it no longer holds the instance the index names:
/// nothing for the indexed file or an untouched copy of it. `Err` when its header no longer reads.
pub fn differences_now(
    path: &Path,
    (study, series, inst): (&Study, &Series, &Instance),
) -> Result<Vec<Difference>, String> {
    let (header, _, _) = read_file(path)?;
    Ok(differences(&header, &Recorded::of_views(study, series, inst)))
}

/// What the index recorded of an instance that a header must still say: the attributes that name the
/// instance, its study, series and patient, and those that decide how it is served.
pub(super) struct Recorded<'a> {
    sop_instance_uid: &'a str,
    study_instance_uid: &'a str,
    series_instance_uid: &'a str,
    patient_id: &'a str,
    issuer_of_patient_id: &'a str,
    sop_class: &'a str,
    transfer_syntax: &'a str,
    frames: Option<u32>,
    pixel_data_offset: Option<u64>,
}

impl<'a> Recorded<'a> {
    fn of_views(study: &Study<'a>, series: &Series<'a>, inst: &Instance<'a>) -> Recorded<'a> {
        Recorded {
            sop_instance_uid: inst.uid(),
            study_instance_uid: study.uid(),
            series_instance_uid: series.uid(),
            patient_id: study.patient_id(),
            issuer_of_patient_id: study.issuer_of_patient_id(),
            sop_class: inst.sop_class(),
            transfer_syntax: inst.transfer_syntax(),
            frames: inst.frames(),
            pixel_data_offset: inst.pixel_data_offset(),
        }
    }

    /// The same, from the layout as read by `update`.
    pub fn of_file(study: &'a file::Study, series: &'a file::Series, inst: &'a file::Instance) -> Recorded<'a> {
        Recorded {
            sop_instance_uid: &inst.uid,
            study_instance_uid: &study.uid,
            series_instance_uid: &series.uid,
            patient_id: &study.patient_id,
            issuer_of_patient_id: &study.issuer_of_patient_id,
            sop_class: &inst.sop_class,
            transfer_syntax: &inst.transfer_syntax,
            frames: inst.frames,
            pixel_data_offset: inst.pixel_data_offset,
        }
    }
}

/// What `header` now says differently from what the index recorded.
pub(super) fn differences(header: &Header, r: &Recorded) -> Vec<Difference> {
    let shown = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    let text = |now: &str, indexed: &str| (Some(now.to_string()), Some(indexed.to_string()));
    let fields = [
        ("SOP Instance UID", text(&header.sop_instance_uid, r.sop_instance_uid)),
        ("Study Instance UID", text(&header.study_instance_uid, r.study_instance_uid)),
        ("Series Instance UID", text(&header.series_instance_uid, r.series_instance_uid)),
        ("Patient ID", text(&header.patient_id, r.patient_id)),
        ("Issuer of Patient ID", text(&header.issuer_of_patient_id, r.issuer_of_patient_id)),
        ("SOP Class UID", text(&header.sop_class_uid, r.sop_class)),
        ("Transfer Syntax UID", text(&header.transfer_syntax, r.transfer_syntax)),
        ("Number of Frames", (header.number_of_frames.map(|n| n.to_string()), r.frames.map(|n| n.to_string()))),
        (
            "Pixel Data offset",
            (header.pixel_data_offset.map(|n| n.to_string()), r.pixel_data_offset.map(|n| n.to_string())),
        ),
    ];
    fields
        .into_iter()
        .filter(|(_, (now, indexed))| now != indexed)
        .map(|(name, (now, indexed))| Difference { name, now: shown(now), indexed: shown(indexed) })
        .collect()
}

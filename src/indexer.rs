//! `smart-imaging index` and `smart-imaging check` (SPEC §2, §4): scan a folder into the static index,
//! and verify that an index still matches the files it names.
//!
//! Invariants: a file that cannot be read or is not DICOM is reported (path and reason) and skipped, never
//! fatal; the index written is deterministic for the same files (set `SOURCE_DATE_EPOCH` to fix its time);
//! paths in it are relative to the index file's folder and never climb out of it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::dicom::{Header, read_header};
use crate::index::{Index, IndexFile, Instance, Series, Study};
use crate::time::{format_rfc3339, now_secs};

/// What an indexing run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub indexed: usize,
    pub studies: usize,
    pub skipped: usize,
    pub duplicates: usize,
}

/// Indexes every file under `dir` into `out`. Problems with single files go to `report`; the error is for
/// the run as a whole (the folder or the output cannot be used).
pub fn index_dir(dir: &Path, out: &Path, report: &mut dyn Write) -> Result<Summary, String> {
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    if !dir.is_dir() {
        return Err(format!("{} is not a folder", dir.display()));
    }
    let out_dir = out
        .parent()
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .unwrap_or(Path::new("."))
        .canonicalize()
        .map_err(|e| format!("{}: {e}", out.display()))?;
    if !dir.starts_with(&out_dir) {
        return Err(format!(
            "the index {} must be written in {} or a folder above it, so its paths stay inside its folder",
            out.display(),
            dir.display()
        ));
    }
    let out_file = out_dir.join(out.file_name().unwrap_or_default());

    let mut files = Vec::new();
    walk(&dir, &mut files, report);
    files.sort();

    let mut summary = Summary::default();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut studies: BTreeMap<String, Study> = BTreeMap::new();
    for path in files {
        if path == out_file {
            continue;
        }
        let (header, size, mtime) = match read_file(&path) {
            Ok(v) => v,
            Err(why) => {
                let _ = writeln!(report, "{}: {why}", path.display());
                summary.skipped += 1;
                continue;
            }
        };
        if let Some(first) = seen.get(&header.sop_instance_uid) {
            let _ = writeln!(
                report,
                "{}: duplicate of {} (SOP Instance UID {}), skipped",
                path.display(),
                first.display(),
                header.sop_instance_uid
            );
            summary.duplicates += 1;
            continue;
        }
        seen.insert(header.sop_instance_uid.clone(), path.clone());
        let rel = relative(&out_dir, &path);
        add(&mut studies, header, rel, size, mtime);
        summary.indexed += 1;
    }

    let mut file = IndexFile { written: written_time(), studies: studies.into_values().collect() };
    for study in &mut file.studies {
        finish_study(study);
    }
    summary.studies = file.studies.len();
    if summary.indexed > 0 {
        let text = toml::to_string(&file).map_err(|e| format!("cannot encode the index: {e}"))?;
        let heading = "# Written by `smart-imaging index`; see the README for the layout.\n";
        std::fs::write(&out_file, format!("{heading}{text}")).map_err(|e| format!("{}: {e}", out_file.display()))?;
    }
    Ok(summary)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, report: &mut dyn Write) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            let _ = writeln!(report, "{}: cannot list folder: {e}", dir.display());
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Symbolic links are not followed, so a link cannot take the index outside the folder or into a loop.
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, files, report),
            Ok(t) if t.is_file() => files.push(path),
            _ => {}
        }
    }
}

fn read_file(path: &Path) -> Result<(Header, u64, u64), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    let map = crate::mmap::map_file(path).map_err(|e| format!("cannot read: {e}"))?;
    let header = read_header(&map).map_err(|e| e.to_string())?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
    Ok((header, meta.len(), mtime))
}

fn relative(base: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

fn add(studies: &mut BTreeMap<String, Study>, h: Header, path: String, size: u64, mtime: u64) {
    let study = studies.entry(h.study_instance_uid.clone()).or_insert_with(|| Study {
        uid: h.study_instance_uid.clone(),
        patient_id: h.patient_id.clone(),
        issuer_of_patient_id: h.issuer_of_patient_id.clone(),
        patient_name: h.patient_name.clone(),
        patient_birth_date: h.patient_birth_date.clone(),
        patient_sex: h.patient_sex.clone(),
        date: h.study_date.clone(),
        time: h.study_time.clone(),
        timezone_offset: h.timezone_offset.clone(),
        accession_number: h.accession_number.clone(),
        study_id: h.study_id.clone(),
        description: h.study_description.clone(),
        referring_physician_name: h.referring_physician_name.clone(),
        ..Default::default()
    });
    let series = match study.series.iter_mut().position(|s| s.uid == h.series_instance_uid) {
        Some(i) => &mut study.series[i],
        None => {
            study.series.push(Series {
                uid: h.series_instance_uid.clone(),
                number: h.series_number,
                modality: h.modality.clone(),
                description: h.series_description.clone(),
                instances: Vec::new(),
            });
            let last = study.series.len() - 1;
            &mut study.series[last]
        }
    };
    series.instances.push(Instance {
        uid: h.sop_instance_uid,
        sop_class: h.sop_class_uid,
        number: h.instance_number,
        transfer_syntax: h.transfer_syntax,
        frames: h.number_of_frames,
        path,
        size,
        mtime,
        pixel_data_offset: h.pixel_data_offset,
    });
}

/// Orders series and instances by number then UID, and lists the study's modalities.
fn finish_study(study: &mut Study) {
    study.series.sort_by(|a, b| (a.number, &a.uid).cmp(&(b.number, &b.uid)));
    for s in &mut study.series {
        s.instances.sort_by(|a, b| (a.number, &a.uid).cmp(&(b.number, &b.uid)));
    }
    let mut modalities: Vec<String> =
        study.series.iter().map(|s| s.modality.clone()).filter(|m| !m.is_empty()).collect();
    modalities.sort();
    modalities.dedup();
    study.modalities = modalities;
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org) when set, else now.
fn written_time() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.parse().ok()).unwrap_or_else(now_secs);
    format_rfc3339(secs)
}

/// What `check` found for the files of an index.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Files that cannot be served as indexed: missing, another size, not the indexed instance.
    pub problems: Vec<String>,
    /// Files whose modification time differs but whose size and header still match (a fresh copy or clone
    /// of the same files looks like this).
    pub notes: Vec<String>,
}

/// Verifies every indexed file: present, the indexed size, a readable DICOM header for the same instance,
/// and the indexed modification time.
pub fn check_index(index: &Index) -> CheckReport {
    let mut report = CheckReport::default();
    for study in index.studies() {
        for inst in study.series.iter().flat_map(|s| &s.instances) {
            let path = index.file_path(inst);
            match check_file(&path, inst) {
                Err(why) => report.problems.push(format!("{}: {why}", path.display())),
                Ok(Some(note)) => report.notes.push(format!("{}: {note}", path.display())),
                Ok(None) => {}
            }
        }
    }
    report
}

fn check_file(path: &Path, inst: &Instance) -> Result<Option<String>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("missing or unreadable: {e}"))?;
    if meta.len() != inst.size {
        return Err(format!("size changed: {} bytes, indexed {}", meta.len(), inst.size));
    }
    let (header, _, mtime) = read_file(path)?;
    if header.sop_instance_uid != inst.uid {
        return Err(format!("holds SOP Instance UID {}, indexed {}", header.sop_instance_uid, inst.uid));
    }
    Ok((inst.mtime != 0 && mtime != inst.mtime)
        .then(|| format!("modification time {mtime} differs from the indexed {}; size and header match", inst.mtime)))
}

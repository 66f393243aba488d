//! `smart-imaging index`: scan a folder into the static index (`check` verifies it later).
//!
//! Invariants: a file that cannot be read or is not DICOM is reported (path and reason) and skipped, never
//! fatal; the index written is deterministic for the same files (set `SOURCE_DATE_EPOCH` to fix its time);
//! paths in it are relative to the index file's folder and never climb out of it. Files are read through a
//! memory map and only as far as their header (`dicom::read_header`), never whole into memory.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::file::{IndexFile, Instance, Series, Study};
use crate::dicom::{Header, read_header};
use crate::time::{format_rfc3339, now_secs};

/// What an indexing run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub indexed: usize,
    pub studies: usize,
    /// Files that could not be read or are not DICOM.
    pub skipped: usize,
    /// Files holding a SOP Instance UID that an earlier file (in path order) already holds.
    pub duplicates: usize,
    /// Every file looked at, and their bytes on disk.
    pub files: usize,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64().max(1e-6);
        let megabytes = self.bytes as f64 / 1e6;
        write!(
            f,
            "indexed {} files in {} studies; skipped {} unreadable, {} duplicates; \
             read {} files ({megabytes:.1} MB) in {seconds:.2} s: {:.0} files/s, {:.1} MB/s",
            self.indexed,
            self.studies,
            self.skipped,
            self.duplicates,
            self.files,
            self.files as f64 / seconds,
            megabytes / seconds,
        )
    }
}

/// The progress line of a long run, kept on a terminal's stderr: redrawn in place with `\r` at most every
/// [`Progress::EVERY`], and erased before any other line is written so that lines never mix.
struct Progress {
    enabled: bool,
    started: Instant,
    drawn: Option<Instant>,
    /// Whether a progress line is on the screen now.
    shown: bool,
}

impl Progress {
    const EVERY: Duration = Duration::from_millis(250);

    fn new(enabled: bool) -> Progress {
        Progress { enabled, started: Instant::now(), drawn: None, shown: false }
    }

    /// Redraws the line with `text()` when the last drawing is old enough.
    fn tick(&mut self, out: &mut dyn Write, text: impl FnOnce(Duration) -> String) {
        if !self.enabled || self.drawn.is_some_and(|at| at.elapsed() < Self::EVERY) {
            return;
        }
        self.drawn = Some(Instant::now());
        // `\x1b[K` erases what a longer earlier line left to the right.
        let _ = write!(out, "\r{}\x1b[K", text(self.started.elapsed()));
        let _ = out.flush();
        self.shown = true;
    }

    /// Writes one line of its own, first erasing the progress line.
    fn line(&mut self, out: &mut dyn Write, line: fmt::Arguments<'_>) {
        self.clear(out);
        let _ = writeln!(out, "{line}");
    }

    fn clear(&mut self, out: &mut dyn Write) {
        if self.shown {
            let _ = write!(out, "\r\x1b[K");
            let _ = out.flush();
            self.shown = false;
        }
    }
}

/// The text of the progress line.
fn progress_text(done: usize, total: usize, bytes: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-6);
    format!(
        "indexing: {done}/{total} files, {:.0} files/s, {:.1} MB/s",
        done as f64 / seconds,
        bytes as f64 / 1e6 / seconds
    )
}

/// Indexes every file under `dir` into `out`. Problems with single files go to `report`, one line each; with
/// `progress` (for a terminal) a progress line is kept there too. The error is for the run as a whole (the
/// folder or the output cannot be used).
pub fn index_dir(dir: &Path, out: &Path, report: &mut dyn Write, progress: bool) -> Result<Summary, String> {
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

    let mut progress = Progress::new(progress);
    let mut files = Vec::new();
    walk(&dir, &mut files, report, &mut progress);
    files.retain(|path| *path != out_file);
    files.sort();

    let mut summary = Summary::default();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut studies: BTreeMap<String, Study> = BTreeMap::new();
    for path in &files {
        summary.files += 1;
        let read = read_file(path);
        summary.bytes += match &read {
            Ok((_, size, _)) => *size,
            Err(_) => std::fs::symlink_metadata(path).map_or(0, |m| m.len()),
        };
        progress.tick(report, |elapsed| progress_text(summary.files, files.len(), summary.bytes, elapsed));
        let (header, size, mtime) = match read {
            Ok(v) => v,
            Err(why) => {
                progress.line(report, format_args!("{}: {why}", path.display()));
                summary.skipped += 1;
                continue;
            }
        };
        if let Some(first) = seen.get(&header.sop_instance_uid) {
            progress.line(
                report,
                format_args!(
                    "{}: duplicate of {} (SOP Instance UID {}), skipped",
                    path.display(),
                    first.display(),
                    header.sop_instance_uid
                ),
            );
            summary.duplicates += 1;
            continue;
        }
        seen.insert(header.sop_instance_uid.clone(), path.clone());
        let rel = relative(&out_dir, path);
        add(&mut studies, header, rel, size, mtime);
        summary.indexed += 1;
    }
    progress.clear(report);
    summary.elapsed = progress.started.elapsed();

    let mut file = IndexFile { written: written_time(), studies: studies.into_values().collect() };
    for study in &mut file.studies {
        finish_study(study);
    }
    summary.studies = file.studies.len();
    if summary.indexed > 0 {
        let text = toml::to_string(&file).map_err(|e| format!("cannot encode the index: {e}"))?;
        let heading = "# Written by `smart-imaging index`; docs/index.md describes the layout.\n";
        // Written beside and renamed over, so that a reader never meets half an index.
        let partial = out_file.with_extension("toml.partial");
        std::fs::write(&partial, format!("{heading}{text}")).map_err(|e| format!("{}: {e}", partial.display()))?;
        std::fs::rename(&partial, &out_file).map_err(|e| format!("{}: {e}", out_file.display()))?;
    }
    Ok(summary)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, report: &mut dyn Write, progress: &mut Progress) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            progress.line(report, format_args!("{}: cannot list folder: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Symbolic links are not followed, so a link cannot take the index outside the folder or into a loop;
        // nor are FIFOs, sockets and devices, which could block a read forever.
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, files, report, progress),
            Ok(t) if t.is_file() => {
                files.push(path);
                progress.tick(report, |_| format!("finding files: {}", files.len()));
            }
            _ => {}
        }
    }
}

/// Reads a file's header through a memory map: only the pages up to the header are ever touched.
pub(super) fn read_file(path: &Path) -> Result<(Header, u64, u64), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() == 0 {
        return Err("not DICOM: the file is empty".into());
    }
    let map = crate::sys::map::map_file(path).map_err(|e| format!("cannot read: {e}"))?;
    let header = read_header(&map).map_err(|e| e.to_string())?;
    Ok((header, meta.len(), mtime_secs(&meta)))
}

/// A file's modification time in whole seconds since the Unix epoch, as the index records it; 0 when unknown.
pub fn mtime_secs(meta: &std::fs::Metadata) -> u64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
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

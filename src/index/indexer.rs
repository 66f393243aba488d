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
pub(super) use super::walk::Found;
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
    /// What an update (`--update`) did with the index it found; `None` for a whole run.
    pub update: Option<Updated>,
}

/// What an update did with the entries of the index it found.
#[derive(Debug, Default)]
pub struct Updated {
    /// Entries whose file has the indexed size and time: kept without reading the file.
    pub kept: usize,
    /// Entries whose file's time alone moved and whose header still says what the index recorded: kept,
    /// with the new time.
    pub touched: usize,
    /// Entries whose file changed (its size, or its header): dropped, and the file read again.
    pub changed: usize,
    /// Entries whose file is gone: dropped.
    pub removed: usize,
    /// Whether the index was written: not when nothing changed.
    pub written: bool,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64().max(1e-6);
        let megabytes = self.bytes as f64 / 1e6;
        if let Some(u) = &self.update {
            write!(
                f,
                "updated: kept {} unchanged and {} touched, dropped {} changed and {} removed; ",
                u.kept, u.touched, u.changed, u.removed
            )?;
        }
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
pub(super) struct Progress {
    enabled: bool,
    pub started: Instant,
    drawn: Option<Instant>,
    /// Whether a progress line is on the screen now.
    shown: bool,
}

impl Progress {
    const EVERY: Duration = Duration::from_millis(250);

    pub fn new(enabled: bool) -> Progress {
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
    pub fn line(&mut self, out: &mut dyn Write, line: fmt::Arguments<'_>) {
        self.clear(out);
        let _ = writeln!(out, "{line}");
    }

    pub fn clear(&mut self, out: &mut dyn Write) {
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

/// Where an indexing run reads and writes: the folder, and the index file in it or in a folder above it.
pub(super) struct Target {
    pub dir: PathBuf,
    /// The index file's folder, which the paths in it are relative to.
    pub out_dir: PathBuf,
    pub out_file: PathBuf,
}

impl Target {
    pub fn of(dir: &Path, out: &Path) -> Result<Target, String> {
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
        Ok(Target { dir, out_dir, out_file })
    }

    /// The file written beside the index and renamed over it.
    fn partial(&self) -> PathBuf {
        self.out_file.with_extension("toml.partial")
    }

    /// The file whose lock an indexing run holds while it reads and writes the index.
    fn lock_file(&self) -> PathBuf {
        let mut name = self.out_file.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.out_file.with_file_name(name)
    }

    /// Takes the index's lock, or says who holds it: two runs writing one index would each drop what the
    /// other added. The lock is the kernel's (`flock`), so a run that dies leaves none behind; the file stays.
    pub fn lock(&self) -> Result<std::fs::File, String> {
        let path = self.lock_file();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match crate::sys::lock::try_lock(&file) {
            Ok(true) => Ok(file),
            Ok(false) => Err(format!(
                "another `smart-imaging index` is writing {} (it holds {}); not run, as the two would each drop \
                 what the other added: run again when it is done",
                self.out_file.display(),
                path.display()
            )),
            Err(e) => Err(format!("{}: cannot lock: {e}", path.display())),
        }
    }

    /// Every regular file under the folder but the index's own, with its size and time when they can be read,
    /// in path order.
    pub fn files(&self, report: &mut dyn Write, progress: &mut Progress) -> Vec<Found> {
        let rel = relative(&self.out_dir, &self.dir);
        let (mut files, problems) =
            super::walk::files(&self.dir, &rel, |n| progress.tick(report, |_| format!("finding files: {n}")));
        for line in problems {
            progress.line(report, format_args!("{line}"));
        }
        let own = [&self.out_file, &self.partial(), &self.lock_file()].map(|p| relative(&self.out_dir, p));
        files.retain(|f| !own.contains(&f.rel));
        files
    }

    /// Writes `file` beside the index and renames it over, so that a reader never meets half an index.
    pub fn write(&self, file: &mut IndexFile) -> Result<(), String> {
        for study in &mut file.studies {
            finish_study(study);
        }
        let partial = self.partial();
        let written = std::fs::File::create(&partial).and_then(|mut out| super::write::write(file, &mut out));
        written.map_err(|e| format!("{}: {e}", partial.display()))?;
        std::fs::rename(&partial, &self.out_file).map_err(|e| format!("{}: {e}", self.out_file.display()))
    }
}

/// Indexes every file under `dir` into `out`. Problems with single files go to `report`, one line each; with
/// `progress` (for a terminal) a progress line is kept there too. The error is for the run as a whole (the
/// folder or the output cannot be used, or another run holds the index).
pub fn index_dir(dir: &Path, out: &Path, report: &mut dyn Write, progress: bool) -> Result<Summary, String> {
    let target = Target::of(dir, out)?;
    let _lock = target.lock()?;
    let mut progress = Progress::new(progress);
    let files = target.files(report, &mut progress);
    let mut summary = Summary::default();
    let mut studies: BTreeMap<String, Study> = BTreeMap::new();
    let mut reader = Reader::new(&target.out_dir, files.len());
    for found in &files {
        let path = found.path(&target.out_dir);
        if let Some((header, rel, size, mtime)) = reader.read(&path, &mut summary, report, &mut progress) {
            add(&mut studies, header, rel, size, mtime);
        }
    }
    progress.clear(report);
    summary.elapsed = progress.started.elapsed();
    let mut file = IndexFile { written: written_time(), studies: studies.into_values().collect() };
    summary.studies = file.studies.len();
    if summary.indexed > 0 {
        target.write(&mut file)?;
    }
    Ok(summary)
}

/// Reads files' headers in path order for a run, counting and reporting as it goes, and skipping a file
/// whose SOP Instance UID an earlier one holds.
pub(super) struct Reader<'a> {
    out_dir: &'a Path,
    total: usize,
    seen: BTreeMap<String, PathBuf>,
}

impl<'a> Reader<'a> {
    pub fn new(out_dir: &'a Path, total: usize) -> Reader<'a> {
        Reader { out_dir, total, seen: BTreeMap::new() }
    }

    /// Says that an instance is already held, by the file at `path`.
    pub fn held(&mut self, uid: String, path: PathBuf) {
        self.seen.insert(uid, path);
    }

    /// The header of the file at `path`, its path relative to the index, size and time; `None` (reported)
    /// when it cannot be read or holds an instance already held.
    pub fn read(
        &mut self,
        path: &Path,
        summary: &mut Summary,
        report: &mut dyn Write,
        progress: &mut Progress,
    ) -> Option<(Header, String, u64, u64)> {
        let read = read_file(path);
        self.admit(path, read, summary, report, progress)
    }

    /// As `read`, for a header read already.
    pub fn admit(
        &mut self,
        path: &Path,
        read: Result<(Header, u64, u64), String>,
        summary: &mut Summary,
        report: &mut dyn Write,
        progress: &mut Progress,
    ) -> Option<(Header, String, u64, u64)> {
        summary.files += 1;
        summary.bytes += match &read {
            Ok((_, size, _)) => *size,
            Err(_) => std::fs::symlink_metadata(path).map_or(0, |m| m.len()),
        };
        let total = self.total;
        progress.tick(report, |elapsed| progress_text(summary.files, total, summary.bytes, elapsed));
        let (header, size, mtime) = match read {
            Ok(v) => v,
            Err(why) => {
                progress.line(report, format_args!("{}: {why}", path.display()));
                summary.skipped += 1;
                return None;
            }
        };
        if let Some(first) = self.seen.get(&header.sop_instance_uid) {
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
            return None;
        }
        self.seen.insert(header.sop_instance_uid.clone(), path.to_path_buf());
        summary.indexed += 1;
        Some((header, relative(self.out_dir, path), size, mtime))
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

pub(super) fn relative(base: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

/// Adds the instance of `h` at `path` to its study and series, which the first file of each makes.
pub(super) fn add(studies: &mut BTreeMap<String, Study>, h: Header, path: String, size: u64, mtime: u64) {
    let study = studies.entry(h.study_instance_uid.clone()).or_insert_with(|| study_of(&h));
    let series = match study.series.iter().position(|s| s.uid == h.series_instance_uid) {
        Some(i) => i,
        None => {
            study.series.push(series_of(&h));
            study.series.len() - 1
        }
    };
    study.series[series].instances.push(Instance {
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

/// The study attributes of a header, without series.
pub(super) fn study_of(h: &Header) -> Study {
    Study {
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
    }
}

/// The series attributes of a header, without instances.
pub(super) fn series_of(h: &Header) -> Series {
    Series {
        uid: h.series_instance_uid.clone(),
        number: h.series_number,
        modality: h.modality.clone(),
        description: h.series_description.clone(),
        instances: Vec::new(),
    }
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
pub(super) fn written_time() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.parse().ok()).unwrap_or_else(now_secs);
    format_rfc3339(secs)
}

//! `smart-imaging index DIR --update`: the index brought up to date with its folder, reading only the files
//! that are new or changed since it was written, so that adding a study to a large index costs about what
//! listing the folder costs.
//!
//! Invariants: an entry is kept without reading its file only when the file has the indexed size and
//! modification time; a file whose time alone moved is read, and its entry kept (with the new time) only
//! when its header still says what the index recorded (`check::differences`, which `check` and serving
//! ask too); entries of files no longer there are dropped; new and changed files are read as a whole run
//! reads them, in path order, a study's and a series' attributes coming from their first file in path
//! order; the index is written as a whole run writes it, under the same lock, or not at all when nothing
//! changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use super::check::{Recorded, differences};
use super::file::{IndexFile, Study};
use super::indexer::{
    Found, Progress, Reader, Summary, Target, Updated, add, read_file, series_of, study_of, written_time,
};
use crate::dicom::Header;

/// Updates the index `out` of the files under `dir` (a missing index is an empty one). Problems with single
/// files go to `report`, as for a whole run.
pub fn update_dir(dir: &Path, out: &Path, report: &mut dyn Write, progress: bool) -> Result<Summary, String> {
    let target = Target::of(dir, out)?;
    let _lock = target.lock()?;
    let mut progress = Progress::new(progress);
    // The folder is listed (a `stat` a file) on a thread of its own while the index is read: for a large
    // index each takes about as long as the other.
    let (files, old) = std::thread::scope(|scope| {
        let listing = scope.spawn(|| {
            let mut lines = Vec::new();
            let files = target.files(&mut lines, &mut Progress::new(false));
            (files, lines)
        });
        let old = read_index(&target.out_file);
        let (files, lines) = listing.join().map_err(|_| "listing the folder failed".to_string())?;
        let _ = report.write_all(&lines);
        old.map(|old| (files, old))
    })?;
    let on_disk: HashMap<&str, usize> = files.iter().enumerate().map(|(at, f)| (f.rel.as_str(), at)).collect();

    let mut sorted = Sorted::new(files.len());
    let mut studies: BTreeMap<String, Study> = BTreeMap::new();
    for mut study in old.studies {
        for mut series in std::mem::take(&mut study.series) {
            for mut inst in std::mem::take(&mut series.instances) {
                let Some(&at) = on_disk.get(inst.path.as_str()).filter(|&&at| !sorted.claimed(at)) else {
                    sorted.updated.removed += 1;
                    continue;
                };
                match files[at].stat {
                    Some((size, mtime)) if (size, mtime) == (inst.size, inst.mtime) => sorted.updated.kept += 1,
                    Some((size, _)) if size == inst.size => {
                        let read = read_file(&files[at].path);
                        match &read {
                            Ok((header, _, mtime))
                                if differences(header, &Recorded::of_file(&study, &series, &inst)).is_empty() =>
                            {
                                inst.mtime = *mtime;
                                sorted.updated.touched += 1;
                            }
                            _ => {
                                sorted.changed(at, Some(read));
                                continue;
                            }
                        }
                    }
                    _ => {
                        sorted.changed(at, None);
                        continue;
                    }
                }
                series.instances.push(inst);
            }
            if !series.instances.is_empty() {
                study.series.push(series);
            }
        }
        if !study.series.is_empty() {
            studies.insert(study.uid.clone(), study);
        }
    }
    let unchanged = sorted.updated.changed == 0 && sorted.updated.removed == 0 && sorted.claimed.iter().all(|&c| c);
    let reads = sorted.read_all(&files);

    // An instance a kept file holds keeps its place; a new file holding it too is its duplicate.
    let mut summary = Summary::default();
    let mut reader = Reader::new(&target.out_dir, reads.len());
    let new_uids: HashSet<&str> =
        reads.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|(h, _, _)| h.sop_instance_uid.as_str()).collect();
    for inst in studies.values().flat_map(|s| &s.series).flat_map(|s| &s.instances) {
        if new_uids.contains(inst.uid.as_str()) {
            reader.held(inst.uid.clone(), target.out_dir.join(&inst.path));
        }
    }
    let mut firsts = Firsts::default();
    for (at, read) in reads {
        if let Some((header, rel, size, mtime)) =
            reader.admit(&files[at].path, read, &mut summary, report, &mut progress)
        {
            firsts.take_attributes(&mut studies, &header, &rel);
            add(&mut studies, header, rel, size, mtime);
        }
    }
    progress.clear(report);
    let mut file = IndexFile { written: written_time(), studies: studies.into_values().collect() };
    summary.studies = file.studies.len();
    summary.indexed = file.studies.iter().flat_map(|s| &s.series).map(|s| s.instances.len()).sum();
    if !(unchanged && target.out_file.exists()) {
        target.write(&mut file)?;
        sorted.updated.written = true;
    }
    // The headers read of touched files count among the files read.
    summary.files += sorted.updated.touched;
    summary.update = Some(sorted.updated);
    summary.elapsed = progress.started.elapsed();
    Ok(summary)
}

/// The index as written, or an empty one when there is none yet.
fn read_index(path: &Path) -> Result<IndexFile, String> {
    let mut source = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(IndexFile::default()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut file = IndexFile::default();
    match super::fast::read(&mut source, &mut file).map_err(|e| format!("{}: {e}", path.display()))? {
        Some(written) => file.written = written,
        // A layout the fast reader declines (edited by hand): the toml crate reads it whole.
        None => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            file = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(file)
}

/// The files found, sorted by what becomes of them: claimed by an entry of the index (kept, or changed and
/// to be read), or new.
struct Sorted {
    /// By the position of the file in `files`.
    claimed: Vec<bool>,
    /// Changed files, with their header when it was read already.
    changed: Vec<(usize, Option<Result<(Header, u64, u64), String>>)>,
    updated: Updated,
}

impl Sorted {
    /// Whether the file at `at` belongs to an entry already; the first entry naming it takes it.
    fn new(files: usize) -> Sorted {
        Sorted { claimed: vec![false; files], changed: Vec::new(), updated: Updated::default() }
    }

    fn claimed(&mut self, at: usize) -> bool {
        std::mem::replace(&mut self.claimed[at], true)
    }

    fn changed(&mut self, at: usize, read: Option<Result<(Header, u64, u64), String>>) {
        self.updated.changed += 1;
        self.changed.push((at, read));
    }

    /// The headers of the changed and the new files, in path order (the order of `files`).
    fn read_all(&mut self, files: &[Found]) -> Vec<(usize, Result<(Header, u64, u64), String>)> {
        let mut reads: Vec<_> = std::mem::take(&mut self.changed)
            .into_iter()
            .map(|(at, read)| (at, read.unwrap_or_else(|| read_file(&files[at].path))))
            .collect();
        let new = (0..files.len()).filter(|&at| !self.claimed[at]);
        reads.extend(new.map(|at| (at, read_file(&files[at].path))).collect::<Vec<_>>());
        reads.sort_by_key(|(at, _)| *at);
        reads
    }
}

/// The first path (in path order) among each study's and series' instances, found when a new file joins it:
/// a file that comes before all of them gives its attributes, as in a whole run.
#[derive(Default)]
struct Firsts {
    studies: HashMap<String, String>,
    series: HashMap<(String, String), String>,
}

impl Firsts {
    fn take_attributes(&mut self, studies: &mut BTreeMap<String, Study>, h: &Header, rel: &str) {
        let Some(study) = studies.get_mut(&h.study_instance_uid) else { return };
        let first = self
            .studies
            .entry(study.uid.clone())
            .or_insert_with(|| first_path(study.series.iter().flat_map(|s| &s.instances).map(|i| i.path.as_str())));
        if Path::new(rel) < Path::new(first.as_str()) {
            *first = rel.to_string();
            let series = std::mem::take(&mut study.series);
            *study = Study { series, ..study_of(h) };
        }
        let Some(series) = study.series.iter_mut().find(|s| s.uid == h.series_instance_uid) else { return };
        let key = (study.uid.clone(), series.uid.clone());
        let first =
            self.series.entry(key).or_insert_with(|| first_path(series.instances.iter().map(|i| i.path.as_str())));
        if Path::new(rel) < Path::new(first.as_str()) {
            *first = rel.to_string();
            let instances = std::mem::take(&mut series.instances);
            *series = super::file::Series { instances, ..series_of(h) };
        }
    }
}

fn first_path<'a>(paths: impl Iterator<Item = &'a str>) -> String {
    paths.min_by(|a, b| Path::new(a).cmp(Path::new(b))).unwrap_or_default().to_string()
}

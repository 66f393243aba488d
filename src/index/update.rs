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
use std::hash::{BuildHasher, Hasher};
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
    let mut phases = Phases::from_env();
    // The folder is listed (a `stat` a file) on threads of their own while the index is read and its
    // entries looked up by path: for a large index each takes about as long as the other.
    let (files, (old, mut by_path)) = std::thread::scope(|scope| {
        let listing = scope.spawn(|| {
            let mut lines = Vec::new();
            let files = target.files(&mut lines, &mut Progress::new(false));
            (files, lines, progress.started.elapsed())
        });
        let old = read_index(&target.out_file).map(|mut old| {
            let by_path = ByPath::of(&mut old);
            (old, by_path)
        });
        let read = progress.started.elapsed();
        let (files, lines, listed) = listing.join().map_err(|_| "listing the folder failed".to_string())?;
        let _ = report.write_all(&lines);
        phases.say(report, format_args!("listed {} files in {listed:.2?}, read the index in {read:.2?}", files.len()));
        old.map(|old| (files, old))
    })?;
    // Which entry each file is (the first entry naming its path); which file each entry's is.
    let owners = by_path.owners(&files);

    let mut sorted = Sorted::new(files.len());
    let mut studies: BTreeMap<String, Study> = BTreeMap::new();
    let mut entry = 0;
    for mut study in old.studies {
        for mut series in std::mem::take(&mut study.series) {
            // The common case, every file of the series unchanged: the series is kept as it is.
            let first = entry;
            let unchanged = series.instances.iter().enumerate().all(|(k, inst)| {
                let at = owners[first + k].checked_sub(1);
                at.is_some_and(|at| files[at as usize].stat == Some((inst.size, inst.mtime)))
            });
            if unchanged {
                for inst in &mut series.instances {
                    sorted.claimed[owners[entry] as usize - 1] = true;
                    inst.path = std::mem::take(&mut by_path.paths[entry]);
                    entry += 1;
                }
                sorted.updated.kept += series.instances.len();
                if !series.instances.is_empty() {
                    study.series.push(series);
                }
                continue;
            }
            let instances = std::mem::take(&mut series.instances);
            series.instances.reserve_exact(instances.len());
            for mut inst in instances {
                let owner = owners[entry];
                inst.path = std::mem::take(&mut by_path.paths[entry]);
                entry += 1;
                let Some(at) = owner.checked_sub(1).map(|at| at as usize) else {
                    sorted.updated.removed += 1;
                    continue;
                };
                sorted.claimed[at] = true;
                match files[at].stat {
                    Some((size, mtime)) if (size, mtime) == (inst.size, inst.mtime) => sorted.updated.kept += 1,
                    Some((size, _)) if size == inst.size => {
                        let read = read_file(&files[at].path(&target.out_dir));
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
    phases.mark(report, "compared the index with the files");
    let unchanged = sorted.updated.changed == 0 && sorted.updated.removed == 0 && sorted.claimed.iter().all(|&c| c);
    let reads = sorted.read_all(&files, &target.out_dir);

    // An instance a kept file holds keeps its place; a new file holding it too is its duplicate.
    let mut summary = Summary::default();
    let mut reader = Reader::new(&target.out_dir, reads.len());
    let mut new_uids: HashSet<&str, Quick> = HashSet::with_hasher(Quick);
    new_uids.extend(reads.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|(h, _, _)| h.sop_instance_uid.as_str()));
    if !new_uids.is_empty() {
        for inst in studies.values().flat_map(|s| &s.series).flat_map(|s| &s.instances) {
            if new_uids.contains(inst.uid.as_str()) {
                reader.held(inst.uid.clone(), target.out_dir.join(&inst.path));
            }
        }
    }
    let mut firsts = Firsts::default();
    for (at, read) in reads {
        if let Some((header, rel, size, mtime)) =
            reader.admit(&files[at].path(&target.out_dir), read, &mut summary, report, &mut progress)
        {
            firsts.take_attributes(&mut studies, &header, &rel);
            add(&mut studies, header, rel, size, mtime);
        }
    }
    progress.clear(report);
    phases.mark(report, "read the new and changed files");
    let mut file = IndexFile { written: written_time(), studies: studies.into_values().collect() };
    summary.studies = file.studies.len();
    summary.indexed = file.studies.iter().flat_map(|s| &s.series).map(|s| s.instances.len()).sum();
    if !(unchanged && target.out_file.exists()) {
        target.write(&mut file)?;
        sorted.updated.written = true;
        phases.mark(report, "wrote the index");
    }
    // The headers read of touched files count among the files read.
    summary.files += sorted.updated.touched;
    summary.update = Some(sorted.updated);
    summary.elapsed = progress.started.elapsed();
    // A million entries take about a tenth of a second to free, which the command's answer need not wait
    // for: they are freed on a thread of their own (which the process, when it ends, may cut short).
    std::thread::spawn(move || drop((file, files, owners, by_path)));
    Ok(summary)
}

/// The entries of the index found by their path, in a table of its own (a part of a hash and the entry's
/// number in index order, eight bytes an entry): made on the thread that reads the index while the folder is
/// listed, and asked on two threads, as a million lookups take memory's time more than the processor's. The
/// paths are taken out of the entries into a list of their own, in index order, so that a lookup goes
/// from its slot straight to the path; `update_dir` gives each entry it keeps its path back.
struct ByPath {
    /// Open addressing, probed one slot after another: the hash's top 32 bits, and the entry's number + 1
    /// (0 for an empty slot).
    slots: Vec<(u32, u32)>,
    /// Each entry's path, by its number.
    paths: Vec<String>,
}

impl ByPath {
    fn of(file: &mut IndexFile) -> ByPath {
        let instances = file.studies.iter_mut().flat_map(|s| &mut s.series).flat_map(|s| &mut s.instances);
        let paths: Vec<String> = instances.map(|i| std::mem::take(&mut i.path)).collect();
        let size = (paths.len() + paths.len() / 4 + 1).next_power_of_two().max(16);
        let mut table = ByPath { slots: vec![(0, 0); size], paths };
        for entry in 0..table.paths.len() {
            // A second entry of one path is not found: the first takes the file, the second is dropped.
            if let Err(slot) = table.find(&table.paths[entry]) {
                table.slots[slot] = (tag(&table.paths[entry]), entry as u32 + 1);
            }
        }
        table
    }

    /// The number of the entry naming `path`, or the empty slot where it would go.
    fn find(&self, path: &str) -> Result<usize, usize> {
        let hash = Quick.hash_one(path);
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            match self.slots[slot] {
                (_, 0) => return Err(slot),
                (t, entry) if t == (hash >> 32) as u32 && self.paths[entry as usize - 1] == path => {
                    return Ok(entry as usize - 1);
                }
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// For each entry in index order, the position in `files` + 1 of the file it names, or 0 when none does.
    /// Two files of one path (names that are not UTF-8, told apart by their bytes only) go to the later one.
    fn owners(&self, files: &[Found]) -> Vec<u32> {
        let mut named = vec![0u32; files.len()];
        let half = files.len().div_ceil(2).max(1);
        std::thread::scope(|scope| {
            for (part, found) in named.chunks_mut(half).zip(files.chunks(half)) {
                scope.spawn(move || {
                    for (named, f) in part.iter_mut().zip(found) {
                        *named = self.find(&f.rel).map_or(0, |entry| entry as u32 + 1);
                    }
                });
            }
        });
        let mut owners = vec![0u32; self.paths.len()];
        for (at, &entry) in named.iter().enumerate() {
            if let Some(entry) = entry.checked_sub(1) {
                owners[entry as usize] = at as u32 + 1;
            }
        }
        owners
    }
}

/// The part of a path's hash kept in its slot.
fn tag(path: &str) -> u32 {
    (Quick.hash_one(path) >> 32) as u32
}

/// With `SMART_IMAGING_TIMING=1` in the environment, a line on how long each phase of an update took, for
/// benches/index/update.sh and whoever looks into a slow update; nothing otherwise.
struct Phases {
    last: Option<std::time::Instant>,
}

impl Phases {
    fn from_env() -> Phases {
        let on = std::env::var_os("SMART_IMAGING_TIMING").is_some_and(|v| v == "1");
        Phases { last: on.then(std::time::Instant::now) }
    }

    fn say(&mut self, report: &mut dyn Write, what: std::fmt::Arguments<'_>) {
        if self.last.is_some() {
            let _ = writeln!(report, "timing: {what}");
            self.last = Some(std::time::Instant::now());
        }
    }

    fn mark(&mut self, report: &mut dyn Write, what: &str) {
        if let Some(last) = self.last {
            self.say(report, format_args!("{what} in {:.2?}", last.elapsed()));
        }
    }
}

/// The hashing of paths and UIDs for the lookups of an update, a million of them: a multiply and a rotation
/// a word (as rustc's FxHash does), where std's SipHash, made to withstand keys chosen to collide, takes
/// several times as long. The keys are the names of the index's own folder and the UIDs of its files.
#[derive(Clone, Copy, Default)]
struct Quick;

impl BuildHasher for Quick {
    type Hasher = QuickHasher;
    fn build_hasher(&self) -> QuickHasher {
        QuickHasher(0)
    }
}

struct QuickHasher(u64);

impl QuickHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for QuickHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(byte.into());
    }

    fn finish(&self) -> u64 {
        self.0
    }
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
    /// By the position of the file in `files`: whether an entry of the index names it.
    claimed: Vec<bool>,
    /// Changed files, with their header when it was read already.
    changed: Vec<(usize, Option<Result<(Header, u64, u64), String>>)>,
    updated: Updated,
}

impl Sorted {
    fn new(files: usize) -> Sorted {
        Sorted { claimed: vec![false; files], changed: Vec::new(), updated: Updated::default() }
    }

    fn changed(&mut self, at: usize, read: Option<Result<(Header, u64, u64), String>>) {
        self.updated.changed += 1;
        self.changed.push((at, read));
    }

    /// The headers of the changed and the new files, in path order (the order of `files`).
    fn read_all(&mut self, files: &[Found], out_dir: &Path) -> Vec<(usize, Result<(Header, u64, u64), String>)> {
        let mut reads: Vec<_> = std::mem::take(&mut self.changed)
            .into_iter()
            .map(|(at, read)| (at, read.unwrap_or_else(|| read_file(&files[at].path(out_dir)))))
            .collect();
        let new = (0..files.len()).filter(|&at| !self.claimed[at]);
        reads.extend(new.map(|at| (at, read_file(&files[at].path(out_dir)))).collect::<Vec<_>>());
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

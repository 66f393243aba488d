//! Tests of `smart-imaging index DIR --update` (docs/index.md, Keeping an index up to date): what it keeps
//! without reading, what it reads, what it drops, that its index is the one a whole run writes, and that a
//! second run is refused while one holds the index.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;
use crate::indexer::set_mtime;

/// Indexes `dir/dicom` into `dir/index.toml` (`--update` when `update`).
fn index(dir: &Path, update: bool) -> Run {
    let mut args: Vec<OsString> = vec!["index".into(), dir.join("dicom").into(), "--out".into()];
    args.push(dir.join("index.toml").into());
    if update {
        args.push("--update".into());
    }
    run_cli(&args, dir)
}

/// The index's text without its `written` line, which says when it was written.
fn tables(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().filter(|l| !l.starts_with("written = ")).collect::<Vec<_>>().join("\n")
}

/// `n` sample CT instances written as `dicom/{a,b,…}.dcm`.
fn sample_files(dir: &TempDir, n: usize) -> Vec<PathBuf> {
    let sample = IndexFile::sample();
    sample.studies[0].series[0].instances[..n]
        .iter()
        .enumerate()
        .map(|(i, inst)| dir.write(&format!("dicom/{}.dcm", (b'a' + i as u8) as char), inst.file_bytes()))
        .collect()
}

#[test]
fn update_reads_only_new_and_changed_files_and_writes_what_a_whole_run_writes() {
    let dir = TempDir::new("update-mixed");
    let files = sample_files(&dir, 6);
    let run = index(dir.path(), false);
    assert_eq!(run.code(), Some(0), "{run}");
    let [grown, gone, touched, replaced, _kept, garbled] = &files[..] else { unreachable!() };

    std::fs::OpenOptions::new().append(true).open(grown).unwrap().write_all(&[0; 10]).unwrap();
    std::fs::remove_file(gone).unwrap();
    set_mtime(touched, Duration::from_secs(3600));
    // Another instance of the same size in the place of one: its time moved, its header says another UID.
    let sample = IndexFile::sample();
    let other = sample.studies[0].series[0]
        .instances
        .iter()
        .skip(6)
        .find(|i| i.size == std::fs::metadata(replaced).unwrap().len());
    let other = other.expect("a sample CT instance of the same size");
    std::fs::write(replaced, other.file_bytes()).unwrap();
    set_mtime(replaced, Duration::from_secs(7200));
    // A file whose bytes changed under the same size and time is not read again: the index is trusted for
    // it (this is why `check` reads every file). Here it proves that unchanged files are not read.
    let meta = std::fs::metadata(garbled).unwrap();
    std::fs::write(garbled, vec![b'x'; meta.len() as usize]).unwrap();
    std::fs::File::options().write(true).open(garbled).unwrap().set_modified(meta.modified().unwrap()).unwrap();
    // New files: a series of another study.
    for (i, inst) in sample.studies[1].series[0].instances.iter().take(3).enumerate() {
        dir.write(&format!("dicom/new/{i}.dcm"), inst.file_bytes());
    }

    let run = index(dir.path(), true);
    assert_eq!(run.code(), Some(0), "{run}");
    assert!(
        run.stderr.contains(
            "updated: kept 2 unchanged and 1 touched, dropped 2 changed and 1 removed; indexed 8 files in 2 studies"
        ),
        "{run}"
    );
    assert!(run.stderr.contains("read 6 files"), "the touched, the two changed and the three new files\n{run}");
    let updated = IndexFile::load(&dir.path().join("index.toml"));
    let all: Vec<&IndexInstance> = updated.studies.iter().flat_map(|s| s.instances()).collect();
    let garbled_entry = all.iter().find(|i| garbled.ends_with(&i.path)).map(|i| i.uid.clone());
    assert_eq!(garbled_entry.as_deref(), Some(sample.studies[0].series[0].instances[5].uid.as_str()), "kept unread");
    let uids: Vec<String> = all.iter().map(|i| i.uid.clone()).collect();
    assert!(uids.contains(&other.uid), "the replacing instance is indexed");
    assert!(!uids.contains(&sample.studies[0].series[0].instances[3].uid), "the replaced one is not");
    assert!(!uids.contains(&sample.studies[0].series[0].instances[1].uid), "the removed one is not");

    // Restored, the garbled file is read by a whole run as by an update: the two indexes are the same text.
    std::fs::write(garbled, sample.studies[0].series[0].instances[5].file_bytes()).unwrap();
    std::fs::File::options().write(true).open(garbled).unwrap().set_modified(meta.modified().unwrap()).unwrap();
    let whole = dir.path().join("whole.toml");
    let run = run_cli(
        &[OsString::from("index"), dir.path().join("dicom").into(), "--out".into(), whole.clone().into()],
        dir.path(),
    );
    assert_eq!(run.code(), Some(0), "{run}");
    assert_eq!(tables(&dir.path().join("index.toml")), tables(&whole), "an update writes what a whole run writes");
}

#[test]
fn update_without_changes_writes_nothing_and_without_an_index_makes_one() {
    let dir = TempDir::new("update-first");
    std::fs::create_dir_all(dir.path().join("dicom")).unwrap();
    let run = index(dir.path(), true);
    assert_eq!(run.code(), Some(0), "an empty folder is an empty index, not a failure\n{run}");
    assert!(run.stderr.contains("indexed 0 files in 0 studies"), "{run}");
    assert!(tables(&dir.path().join("index.toml")).lines().all(|l| l.is_empty() || l.starts_with('#')), "empty");

    sample_files(&dir, 3);
    let run = index(dir.path(), true);
    assert_eq!(run.code(), Some(0), "{run}");
    assert!(run.stderr.contains("kept 0 unchanged") && run.stderr.contains("indexed 3 files in 1 studies"), "{run}");
    let written = std::fs::read_to_string(dir.path().join("index.toml")).unwrap();

    let run = index(dir.path(), true);
    assert_eq!(run.code(), Some(0), "{run}");
    assert!(run.stderr.contains("kept 3 unchanged and 0 touched, dropped 0 changed and 0 removed"), "{run}");
    assert!(run.stderr.contains("is up to date: not written"), "{run}");
    assert_eq!(std::fs::read_to_string(dir.path().join("index.toml")).unwrap(), written, "not rewritten");
}

#[test]
fn a_second_run_is_refused_while_one_holds_the_index() {
    let dir = TempDir::new("update-locked");
    sample_files(&dir, 2);
    let lock = std::fs::File::create(dir.path().join("index.toml.lock")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` on the descriptor of a file open for the whole call.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0, "the test holds the lock");
    for update in [true, false] {
        let run = index(dir.path(), update);
        assert_eq!(run.code(), Some(2), "update {update}: refused while the lock is held\n{run}");
        assert!(run.stderr.contains("another `smart-imaging index` is writing"), "{run}");
        assert!(run.stderr.contains("index.toml.lock"), "names the lock file\n{run}");
        assert!(!dir.path().join("index.toml").exists(), "nothing written\n{run}");
    }
    drop(lock);
    let run = index(dir.path(), true);
    assert_eq!(run.code(), Some(0), "once the lock is released\n{run}");
    assert!(run.stderr.contains("indexed 2 files"), "{run}");
}

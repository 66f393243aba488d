//! The folder an indexing run reads, listed in path order with each file's size and time, on several threads:
//! listing a million files is mostly the kernel's work (a `stat` a file), which two cores do in about half
//! the time of one.
//!
//! Invariants: the files come in path order, each folder's entries sorted by name (byte by byte) and a
//! subfolder's files before the next entry, whatever the number of threads; symbolic links are not
//! followed, so a link cannot take the index outside the folder or into a loop; nor are FIFOs, sockets and
//! devices listed, which could block a read forever.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sys::dir::{Dir, Entries, Kind};

/// A file found under the folder: its path as the index names it, and its size and modification time from
/// the folder's listing.
pub(super) struct Found {
    /// The path relative to the index's folder, with `/` separators, as the index names it.
    pub rel: String,
    pub stat: Option<(u64, u64)>,
    /// The file's own path when a name on the way is not UTF-8 (`rel` then holds a stand-in for it).
    raw: Option<PathBuf>,
}

impl Found {
    /// The file's path; `out_dir` is the index's folder.
    pub fn path(&self, out_dir: &Path) -> PathBuf {
        self.raw.clone().unwrap_or_else(|| out_dir.join(&self.rel))
    }
}

/// Every regular file under `root`, in path order; `rel` is the root's path relative to the index's folder
/// ("" for that folder). Folders that cannot be listed are said in the lines returned (path order too).
/// `tick` is called now and then on the calling thread with the count of files found so far, and at the end
/// with the count of all.
pub(super) fn files(root: &Path, rel: &str, tick: impl FnMut(usize)) -> (Vec<Found>, Vec<String>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    files_on(root, rel, threads, tick)
}

fn files_on(root: &Path, rel: &str, threads: usize, mut tick: impl FnMut(usize)) -> (Vec<Found>, Vec<String>) {
    let mut walker = Walker { root, entries: Vec::new() };
    let dir = match Dir::open(root) {
        Ok(dir) => dir,
        Err(e) => return (Vec::new(), vec![format!("{}: cannot list folder: {e}", root.display())]),
    };
    // The top of the tree, cut into parts: each subfolder a part of its own, walked by whichever thread is
    // free; the top folder's own files, and folders that hold few subfolders, listed here first.
    let mut parts = Vec::new();
    let top = Part::Folder { sub: String::new(), rel: rel.to_string(), raw: None };
    walker.expand(&dir, top, &mut parts);
    for _ in 0..2 {
        if parts.iter().filter(|p| matches!(p, Part::Folder { .. })).count() >= 8 * threads {
            break;
        }
        let mut deeper = Vec::new();
        for part in parts {
            match part {
                Part::Folder { .. } => walker.expand(&dir, part, &mut deeper),
                done => deeper.push(done),
            }
        }
        parts = deeper;
    }

    let next = AtomicUsize::new(0);
    let found = AtomicUsize::new(0);
    let done: Mutex<Vec<Walked>> = Mutex::new(Vec::new());
    let work = |tick: &mut dyn FnMut(usize)| {
        let mut walker = Walker { root, entries: Vec::new() };
        let mut mine = Vec::new();
        loop {
            let at = next.fetch_add(1, Ordering::Relaxed);
            let Some(part) = parts.get(at) else { break };
            let Part::Folder { sub, rel, raw } = part else { continue };
            let (mut files, mut problems) = (Vec::new(), Vec::new());
            let mut rel = rel.clone();
            walker.folder(&dir, sub, &mut rel, raw.as_deref(), &mut files, &mut problems);
            let total = found.fetch_add(files.len(), Ordering::Relaxed) + files.len();
            tick(total);
            mine.push((at, files, problems));
        }
        done.lock().unwrap_or_else(|e| e.into_inner()).append(&mut mine);
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|| work(&mut |_| {}));
        }
        work(&mut tick);
    });

    let mut walked = done.into_inner().unwrap_or_else(|e| e.into_inner());
    walked.sort_unstable_by_key(|(at, _, _)| *at);
    let mut walked = walked.into_iter().peekable();
    let total = parts.iter().filter(|p| matches!(p, Part::File(_))).count() + found.into_inner();
    tick(total);
    let (mut files, mut problems) = (Vec::with_capacity(total), Vec::new());
    for (at, part) in parts.into_iter().enumerate() {
        match part {
            Part::File(f) => files.push(f),
            Part::Problem(line) => problems.push(line),
            Part::Folder { .. } => {
                if let Some((_, mut f, mut p)) = walked.next_if(|(w, _, _)| *w == at) {
                    files.append(&mut f);
                    problems.append(&mut p);
                }
            }
        }
    }
    (files, problems)
}

/// A part walked: its position among the parts, its files and the folders that could not be listed.
type Walked = (usize, Vec<Found>, Vec<String>);

/// A piece of the tree, in path order among its fellows.
enum Part {
    File(Found),
    /// A folder still to be walked: its path relative to the root (`sub`) and to the index's folder (`rel`).
    Folder {
        sub: String,
        rel: String,
        raw: Option<PathBuf>,
    },
    Problem(String),
}

/// One thread's walk: the entries of each folder on its way down, kept for the next folder at that depth.
struct Walker<'a> {
    root: &'a Path,
    entries: Vec<Entries>,
}

impl Walker<'_> {
    /// Lists a `Part::Folder` (anything else is pushed as it is) into `out`: its files, and its subfolders as
    /// parts still to be walked.
    fn expand(&mut self, root: &Dir, part: Part, out: &mut Vec<Part>) {
        let Part::Folder { sub, rel, raw } = part else {
            out.push(part);
            return;
        };
        let mut entries = self.entries.pop().unwrap_or_default();
        let dir = match self.list(root, &sub, raw.as_deref(), &mut entries) {
            Ok(dir) => dir,
            Err(line) => {
                out.push(Part::Problem(line));
                self.entries.push(entries);
                return;
            }
        };
        for i in 0..entries.len() {
            let Some((kind, stat)) = classify(&dir, &entries, i) else { continue };
            let name = entries.name(i);
            let child_rel = join(&rel, name);
            let child_raw = raw_path(raw.as_deref(), self.root, &sub, name);
            match kind {
                Kind::Dir => {
                    let child_sub = join(&sub, name);
                    out.push(Part::Folder { sub: child_sub, rel: child_rel, raw: child_raw });
                }
                _ => out.push(Part::File(Found { rel: child_rel, stat, raw: child_raw })),
            }
        }
        self.entries.push(entries);
    }

    /// Opens and lists the folder at `sub` (relative to the root; "" for the root itself), sorted.
    fn list(&self, root: &Dir, sub: &str, raw: Option<&Path>, entries: &mut Entries) -> Result<Dir, String> {
        let opened = if sub.is_empty() { Dir::open(self.root) } else { open_sub(root, sub, raw) };
        let listed = opened.and_then(|dir| dir.entries(entries).map(|()| dir));
        match listed {
            Ok(dir) => {
                entries.sort();
                Ok(dir)
            }
            Err(e) => Err(format!("{}: cannot list folder: {e}", self.root.join(sub).display())),
        }
    }

    /// Walks the folder at `sub` (relative to the root) whole into `files`; `rel` is its path relative to the
    /// index's folder, and is given back as it came.
    fn folder(
        &mut self,
        root: &Dir,
        sub: &str,
        rel: &mut String,
        raw: Option<&Path>,
        files: &mut Vec<Found>,
        problems: &mut Vec<String>,
    ) {
        match open_sub(root, sub, raw) {
            Ok(dir) => self.walk(&dir, sub, rel, raw, files, problems),
            Err(e) => problems.push(format!("{}: cannot list folder: {e}", self.root.join(sub).display())),
        }
    }

    /// Walks the open folder `dir`, whose path relative to the root is `sub` (for messages and for names
    /// that are not UTF-8 only).
    fn walk(
        &mut self,
        dir: &Dir,
        sub: &str,
        rel: &mut String,
        raw: Option<&Path>,
        files: &mut Vec<Found>,
        problems: &mut Vec<String>,
    ) {
        let mut entries = self.entries.pop().unwrap_or_default();
        if let Err(e) = dir.entries(&mut entries) {
            problems.push(format!("{}: cannot list folder: {e}", self.root.join(sub).display()));
            self.entries.push(entries);
            return;
        }
        entries.sort();
        let len = rel.len();
        for i in 0..entries.len() {
            let Some((kind, stat)) = classify(dir, &entries, i) else { continue };
            let name = entries.name(i);
            push_name(rel, name);
            let child_raw = raw_path(raw, self.root, sub, name);
            match kind {
                Kind::Dir => match dir.open_at(entries.c_name(i)) {
                    Ok(child) => self.walk(&child, &join(sub, name), rel, child_raw.as_deref(), files, problems),
                    Err(e) => {
                        let path = self.root.join(sub).join(std::ffi::OsStr::from_bytes(name));
                        problems.push(format!("{}: cannot list folder: {e}", path.display()));
                    }
                },
                _ => files.push(Found { rel: rel.clone(), stat, raw: child_raw }),
            }
            rel.truncate(len);
        }
        self.entries.push(entries);
    }
}

/// What entry `i` of `dir` is: a folder, or a regular file with its size and time when they can be read;
/// `None` for anything else, which is not listed.
fn classify(dir: &Dir, entries: &Entries, i: usize) -> Option<(Kind, Option<(u64, u64)>)> {
    match entries.kind(i) {
        Kind::Dir => Some((Kind::Dir, None)),
        Kind::File => Some((Kind::File, dir.stat(entries.c_name(i)).ok().map(|s| (s.size, s.mtime)))),
        Kind::Other => None,
        // The file system did not say: its status tells (and is the file's, if it is one).
        Kind::Unknown => match dir.stat(entries.c_name(i)).ok()? {
            s if s.kind == Kind::Dir => Some((Kind::Dir, None)),
            s if s.kind == Kind::File => Some((Kind::File, Some((s.size, s.mtime)))),
            _ => None,
        },
    }
}

/// Opens the folder at `sub`, a path relative to the root no part of which is a link (each was listed as a
/// folder), or at `raw` when its path is not UTF-8.
fn open_sub(root: &Dir, sub: &str, raw: Option<&Path>) -> std::io::Result<Dir> {
    let path = raw.map_or(sub.as_bytes(), |raw| raw.as_os_str().as_bytes());
    let name = std::ffi::CString::new(path).map_err(std::io::Error::other)?;
    root.open_at(&name)
}

/// `base/name`, or `name` when `base` is empty; a name that is not UTF-8 is written as its lossy form.
fn join(base: &str, name: &[u8]) -> String {
    let mut out = String::with_capacity(base.len() + 1 + name.len());
    out.push_str(base);
    push_name(&mut out, name);
    out
}

fn push_name(rel: &mut String, name: &[u8]) {
    if !rel.is_empty() {
        rel.push('/');
    }
    rel.push_str(&String::from_utf8_lossy(name));
}

/// The real path of a child of the folder at `sub` (relative to `root`), when it cannot be told from its
/// lossy `rel`: its folder's name or its own is not UTF-8.
fn raw_path(parent_raw: Option<&Path>, root: &Path, sub: &str, name: &[u8]) -> Option<PathBuf> {
    let name = std::ffi::OsStr::from_bytes(name);
    match parent_raw {
        Some(parent) => Some(parent.join(name)),
        None if std::str::from_utf8(name.as_bytes()).is_err() => Some(root.join(sub).join(name)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    /// The files under `dir` as a plain recursive walk through std lists them: the order and stats to match.
    type Listed = (String, Option<PathBuf>, Option<(u64, u64)>);

    fn reference(dir: &Path, rel: &str, out: &mut Vec<Listed>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let lossy = name.to_str().is_none();
            let rel = if rel.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            match entry.file_type().unwrap() {
                t if t.is_dir() => reference(&entry.path(), &rel, out),
                t if t.is_file() => {
                    let m = entry.metadata().unwrap();
                    let raw = (lossy || entry.path().to_str().is_none()).then(|| entry.path());
                    out.push((rel, raw, Some((m.len(), crate::index::indexer::mtime_secs(&m)))));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn lists_in_path_order_on_any_number_of_threads_without_links_or_fifos() {
        let root = std::env::temp_dir().join(format!("smart-imaging-walk-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let top = root.join("top");
        // Few folders at the top and many below (the walk cuts the tree deeper), files at every depth, names
        // that sort differently as bytes and as text, a name that is not UTF-8, links and a FIFO.
        for a in ["a", "b", "a b", "a-", "B"] {
            for b in 0..7 {
                let dir = top.join(a).join(format!("s{b}"));
                std::fs::create_dir_all(dir.join("deep")).unwrap();
                for f in 0..3 {
                    std::fs::write(dir.join(format!("{f}.dcm")), vec![0; f]).unwrap();
                }
                std::fs::write(dir.join("deep/x.dcm"), b"x").unwrap();
            }
            std::fs::write(top.join(a).join("file"), b"12").unwrap();
        }
        std::fs::write(top.join("z.dcm"), b"").unwrap();
        std::fs::write(top.join("\u{e9}.dcm"), b"").unwrap();
        let odd = top.join(std::ffi::OsString::from_vec(b"odd\xff".to_vec()));
        std::fs::create_dir_all(odd.join("in")).unwrap();
        std::fs::write(odd.join("in/1.dcm"), b"1").unwrap();
        std::fs::write(top.join(std::ffi::OsString::from_vec(b"f\xfe.dcm".to_vec())), b"1").unwrap();
        std::os::unix::fs::symlink(top.join("a"), top.join("link-to-folder")).unwrap();
        std::os::unix::fs::symlink(top.join("z.dcm"), top.join("link-to-file")).unwrap();
        let fifo = std::ffi::CString::new(top.join("fifo").into_os_string().into_vec()).unwrap();
        // A FIFO made with `mkfifo(1)`, as std has no call for it.
        let made = std::process::Command::new("mkfifo").arg(fifo.to_str().unwrap()).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");

        let mut expected = Vec::new();
        reference(&top, "top", &mut expected);
        assert!(expected.len() > 140, "{}", expected.len());
        for threads in [1, 2, 3, 8] {
            let mut last = 0;
            let (found, problems) = files_on(&top, "top", threads, |n| last = n);
            assert!(problems.is_empty(), "{problems:?}");
            let got: Vec<_> = found.iter().map(|f| (f.rel.clone(), f.raw.clone(), f.stat)).collect();
            assert_eq!(got, expected, "{threads} threads");
            assert_eq!(last, found.len(), "the last count is of every file");
            for f in &found {
                assert!(f.path(&root).is_file(), "{}", f.path(&root).display());
            }
        }
        let (found, problems) = files_on(&top.join("missing"), "", 2, |_| {});
        assert!(found.is_empty() && problems.len() == 1 && problems[0].contains("cannot list folder"), "{problems:?}");
        let _ = std::fs::remove_dir_all(&root);
    }
}

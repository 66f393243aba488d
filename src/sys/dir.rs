//! Folders read by descriptor, for the indexer's walk over a million files: a folder is opened relative to
//! one already open (`openat`), its entries come with their types (`readdir`), and a file's size and time are
//! looked up relative to its folder (`fstatat`), so that no whole path is ever built or resolved, and the
//! names of a folder are kept in one buffer rather than one allocation each.
//!
//! Invariant: nothing here follows a symbolic link: a folder is opened with `O_NOFOLLOW`, and a file's
//! status is its own (`AT_SYMLINK_NOFOLLOW`).

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An open folder; closed when dropped.
pub struct Dir {
    fd: libc::c_int,
}

/// What an entry is, as far as the walk cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    /// A symbolic link, FIFO, socket or device: never followed or read.
    Other,
    /// The file system did not say (`DT_UNKNOWN`): `Dir::stat` tells.
    Unknown,
}

/// A file's type, size and modification time (whole seconds since the Unix epoch, 0 before it).
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub kind: Kind,
    pub size: u64,
    pub mtime: u64,
}

/// The entries of one folder but `.` and `..`, their names in one buffer: reused from folder to folder.
#[derive(Default)]
pub struct Entries {
    /// Each name followed by its NUL.
    names: Vec<u8>,
    /// Where each name starts in `names`, its length (without the NUL) and its kind.
    entries: Vec<(usize, usize, Kind)>,
}

impl Entries {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The name of entry `i`, without its NUL.
    pub fn name(&self, i: usize) -> &[u8] {
        let (at, len, _) = self.entries[i];
        &self.names[at..at + len]
    }

    /// The name of entry `i` as the C string the calls here take.
    pub fn c_name(&self, i: usize) -> &CStr {
        let (at, len, _) = self.entries[i];
        // The name was read up to its NUL, and `readdir` names hold no other.
        CStr::from_bytes_with_nul(&self.names[at..at + len + 1]).unwrap_or_default()
    }

    pub fn kind(&self, i: usize) -> Kind {
        self.entries[i].2
    }

    /// Orders the entries by name, byte by byte: the order of the paths themselves.
    pub fn sort(&mut self) {
        let names = &self.names;
        self.entries.sort_unstable_by(|a, b| names[a.0..a.0 + a.1].cmp(&names[b.0..b.0 + b.1]));
    }
}

impl Dir {
    /// Opens the folder at `path` (a symbolic link to a folder is followed here, for the walk's own root).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: `open` reads a NUL-terminated path that lives for the whole call.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 { Err(io::Error::last_os_error()) } else { Ok(Dir { fd }) }
    }

    /// Opens the folder `name` (a name, or a relative path whose last part is not a link) inside this one.
    pub fn open_at(&self, name: &CStr) -> io::Result<Dir> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: `openat` takes this folder's descriptor, open for the whole call, and a NUL-terminated name.
        let fd = unsafe { libc::openat(self.fd, name.as_ptr(), flags) };
        if fd < 0 { Err(io::Error::last_os_error()) } else { Ok(Dir { fd }) }
    }

    /// The status of `name` inside this folder, a link's own.
    pub fn stat(&self, name: &CStr) -> io::Result<Stat> {
        // SAFETY: `stat` is plain data, all zeros a valid value; `fstatat` fills it from a descriptor open for
        // the whole call and a NUL-terminated name.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::fstatat(self.fd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            _ => Kind::Other,
        };
        // A time before the epoch counts as 0, as `SystemTime::duration_since` makes it; so does the second
        // before it, which only its nanoseconds reach.
        let mtime = u64::try_from(st.st_mtime).unwrap_or(0);
        Ok(Stat { kind, size: st.st_size as u64, mtime })
    }

    /// Reads the folder's entries into `out` (emptied first), unsorted.
    pub fn entries(&self, out: &mut Entries) -> io::Result<()> {
        out.names.clear();
        out.entries.clear();
        // `fdopendir` takes the descriptor it is given, and `closedir` closes it: it gets a duplicate, so that
        // this folder stays open for `open_at` and `stat`.
        // SAFETY: `dup` of a descriptor open for the whole call.
        let fd = unsafe { libc::fcntl(self.fd, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fdopendir` takes ownership of the fresh duplicate; on failure it is still ours to close.
        let dirp = unsafe { libc::fdopendir(fd) };
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: the duplicate is open and owned here.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        // The duplicate shares its offset with this descriptor: start from the first entry.
        // SAFETY: `dirp` is the stream just opened.
        unsafe { libc::rewinddir(dirp) };
        let result = loop {
            // `readdir` says end and error alike with NULL; errno, cleared first, tells them apart.
            // SAFETY: `__errno_location` is the calling thread's errno.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `dirp` is open until `closedir` below; the entry it returns stays valid until the next
            // call on the same stream, and is copied out before then.
            let entry = unsafe { libc::readdir(dirp) };
            if entry.is_null() {
                let errno = io::Error::last_os_error();
                break if errno.raw_os_error() == Some(0) { Ok(()) } else { Err(errno) };
            }
            // SAFETY: `d_name` is a NUL-terminated name inside the entry, valid until the next `readdir`.
            let (name, d_type) = unsafe { (CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes(), (*entry).d_type) };
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match d_type {
                libc::DT_DIR => Kind::Dir,
                libc::DT_REG => Kind::File,
                libc::DT_UNKNOWN => Kind::Unknown,
                _ => Kind::Other,
            };
            out.entries.push((out.names.len(), name.len(), kind));
            out.names.extend_from_slice(name);
            out.names.push(0);
        };
        // SAFETY: the stream is open, and closed once (with the duplicate it owns).
        unsafe { libc::closedir(dirp) };
        result
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this value's own, open, and closed once.
        unsafe { libc::close(self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_sorted_names_with_their_kinds_and_stats_without_following_links() {
        let root = std::env::temp_dir().join(format!("smart-imaging-dir-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("b.dcm"), b"12345").unwrap();
        std::fs::write(root.join("a b.dcm"), b"").unwrap();
        std::os::unix::fs::symlink(root.join("sub"), root.join("link")).unwrap();
        let dir = Dir::open(&root).unwrap();
        let mut entries = Entries::default();
        dir.entries(&mut entries).unwrap();
        entries.sort();
        let names: Vec<&[u8]> = (0..entries.len()).map(|i| entries.name(i)).collect();
        assert_eq!(names, [&b"a b.dcm"[..], b"b.dcm", b"link", b"sub"]);
        let kinds: Vec<Kind> = (0..entries.len()).map(|i| dir.stat(entries.c_name(i)).unwrap().kind).collect();
        assert_eq!(kinds, [Kind::File, Kind::File, Kind::Other, Kind::Dir], "the link is not followed");
        let stat = dir.stat(entries.c_name(1)).unwrap();
        let meta = std::fs::metadata(root.join("b.dcm")).unwrap();
        assert_eq!((stat.size, stat.mtime), (5, crate::index::indexer::mtime_secs(&meta)));
        assert!(dir.open_at(c"link").is_err(), "a link to a folder is not opened");
        let sub = dir.open_at(c"sub").unwrap();
        sub.entries(&mut entries).unwrap();
        assert_eq!(entries.len(), 0);
        dir.entries(&mut entries).unwrap();
        assert_eq!(entries.len(), 4, "listed again from the start");
        let _ = std::fs::remove_dir_all(&root);
    }
}

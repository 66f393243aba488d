//! The one place that maps files into memory, and the one module allowed `unsafe`.
//!
//! Invariant: a map is only made of a file named by the index, and its length is checked against the
//! indexed size before any byte of it is served.

#![allow(unsafe_code)]

use memmap2::Mmap;
use std::fs::File;
use std::io;
use std::path::Path;

/// Maps the whole file read-only. An empty file cannot be mapped and yields an empty `Vec`-backed view
/// elsewhere; here it is an error, since no indexed DICOM file is empty.
pub fn map_file(path: &Path) -> io::Result<Mmap> {
    let file = File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file is empty"));
    }
    // SAFETY: the map is read-only and private to this process. Another process may still truncate or
    // rewrite the file while it is mapped; the index records each file's size, callers compare the map's
    // length with it before serving, and the README warns that indexed files must not be modified in
    // place while the server runs.
    unsafe { Mmap::map(&file) }
}

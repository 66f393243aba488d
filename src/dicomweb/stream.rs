//! Response bodies streamed from the indexed files while they are sent: a file as stored, a range of a
//! map, bytes in memory, a range sent byte-swapped, or a file transcoded to Explicit VR Little Endian.
//!
//! Invariants: the length is known before the first byte is sent; no part is copied into memory whole: a file
//! sent as stored is opened when its first byte is needed, handed to the sink a range at a time (a socket
//! sends it with `sendfile`, without a map or a copy) or, from [`MAP_FROM`] bytes on, mapped and written
//! from the map, and closed or unmapped when its last byte has gone; a transcoded one (`dicom::transcode`)
//! is mapped and produced through one buffer of [`TRANSCODE_CHUNK`] bytes; a file whose length is not the
//! indexed one, that ends before its indexed length while it is sent, or whose transcoding no longer has
//! the promised length, fails the read instead of sending other bytes than promised.

use memmap2::Mmap;
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use crate::dicom::transcode::{self, Plan, Progress};
use crate::http::multipart::{Content, Part, frame};
use crate::http::{Body, Sink, Source};

/// Bytes in memory that responses share, kept (with whatever their owner holds with them) until the last
/// response sending them is dropped.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A piece of a response body.
pub enum Segment {
    Bytes(Vec<u8>),
    /// An indexed file and the size the index promised.
    File(PathBuf, u64),
    /// A range of a file already mapped (frames, bulk data).
    Slice(Arc<Mmap>, Range<usize>),
    /// A range of bytes in memory: of a deflated file's inflated data set (frames, bulk data).
    Shared(SharedBytes, Range<usize>),
    /// A range of a mapped file whose numbers of this many bytes are sent byte-swapped: big endian frames
    /// and bulk data sent little endian.
    Swapped(Arc<Mmap>, Range<usize>, usize),
    /// An indexed file and the size the index promised, sent as Explicit VR Little Endian: `len` bytes, as
    /// `dicom::transcode` measured when the response was made. The file is planned again when its first
    /// byte is needed, so that only one plan is held at a time.
    Transcoded {
        path: PathBuf,
        size: u64,
        len: u64,
    },
}

impl Content for Segment {
    fn len(&self) -> u64 {
        match self {
            Segment::Bytes(b) => b.len() as u64,
            Segment::File(_, size) => *size,
            Segment::Slice(_, r) | Segment::Shared(_, r) | Segment::Swapped(_, r, _) => r.len() as u64,
            Segment::Transcoded { len, .. } => *len,
        }
    }

    fn bytes(bytes: Vec<u8>) -> Self {
        Segment::Bytes(bytes)
    }
}

/// A `multipart/related` body of `parts`, streamed.
pub fn multipart(boundary: &str, parts: Vec<Part<Segment>>) -> Body {
    stream(frame(boundary, parts))
}

/// A body of the segments in order.
pub fn stream(segments: Vec<Segment>) -> Body {
    let len = segments.iter().map(Content::len).sum();
    Body::Stream { len, reader: Box::new(Parts { segments: segments.into_iter(), current: None }) }
}

/// Reads the segments in order, mapping each file only while its bytes are being sent.
struct Parts {
    segments: std::vec::IntoIter<Segment>,
    current: Option<(Current, usize)>,
}

enum Current {
    Bytes(Vec<u8>),
    /// A small file sent as stored: the open file, its path and its indexed size.
    File(std::fs::File, PathBuf, u64),
    /// A large file sent as stored, mapped.
    Map(Mmap, PathBuf),
    Slice(Arc<Mmap>, Range<usize>),
    Shared(SharedBytes, Range<usize>),
    Produced(Box<Produced>),
}

/// Files from this size on are mapped and written from the map; smaller ones are handed to the sink as
/// files (`sendfile` on a socket), for which mapping and unmapping costs more than the copy it saves
/// (benches/README.md has the figures).
pub const MAP_FROM: u64 = 256 << 10;

/// The largest piece of a transcoded file produced at once: the buffer a transcoded part holds.
pub const TRANSCODE_CHUNK: usize = 256 << 10;

/// A file being sent as a plan produces it: the plan, how far it got, and the bytes produced but not yet
/// taken.
struct Produced {
    map: Arc<Mmap>,
    path: Option<PathBuf>,
    plan: Plan,
    progress: Progress,
    buffer: Vec<u8>,
    /// How much of `buffer` was taken.
    taken: usize,
    /// Bytes produced so far, and how many were promised.
    produced: u64,
    len: u64,
}

impl Current {
    fn path(&self) -> Option<&std::path::Path> {
        match self {
            Current::Map(_, path) => Some(path),
            _ => None,
        }
    }

    fn data(&self) -> &[u8] {
        match self {
            Current::Bytes(b) => b,
            Current::File(..) => &[],
            Current::Map(m, _) => m,
            Current::Slice(m, r) => m.get(r.clone()).unwrap_or_default(),
            Current::Shared(b, r) => (**b).as_ref().get(r.clone()).unwrap_or_default(),
            Current::Produced(p) => p.buffer.get(p.taken..).unwrap_or_default(),
        }
    }

    /// Whether bytes are left to send from `pos` on.
    fn has_more(&self, pos: usize) -> bool {
        match self {
            Current::Produced(p) => p.taken < p.buffer.len() || p.produced < p.len,
            Current::File(_, _, size) => (pos as u64) < *size,
            other => pos < other.data().len(),
        }
    }
}

impl Produced {
    /// Writes from the buffer, or refills it first, or writes a large copy straight from the map.
    fn write_some(&mut self, out: &mut dyn Sink) -> io::Result<usize> {
        if self.taken == self.buffer.len() {
            if let Some(range) = self.plan.direct(&self.progress) {
                let end = range.end.min(range.start + WRITE_CHUNK);
                let bytes = self.map.get(range.start..end).unwrap_or_default();
                let n = written(self.path.as_deref(), || out.write(bytes))?.min(bytes.len());
                self.plan.advance(&mut self.progress, n);
                self.produced += n as u64;
                return Ok(n);
            }
            self.buffer.clear();
            self.taken = 0;
            let (plan, map, progress, buffer) = (&self.plan, &self.map, &mut self.progress, &mut self.buffer);
            let filled = crate::sys::map::unfaulted(|| plan.fill(map, progress, buffer, TRANSCODE_CHUNK))
                .map_err(|_| truncated(self.path.as_deref()))?
                .map_err(|e| changed(self.path.as_deref(), &e))?;
            self.produced += filled as u64;
            if self.produced > self.len || (filled == 0 && self.produced < self.len) {
                return Err(changed(self.path.as_deref(), "it no longer transcodes to the promised length"));
            }
        }
        let rest = self.buffer.get(self.taken..).unwrap_or_default();
        let n = out.write(rest)?.min(rest.len());
        self.taken += n;
        Ok(n)
    }
}

/// Runs a write from a map, turning a fault (the file shrank) into an error. When the write goes to a socket
/// the kernel copies from the map itself, and a page gone with a truncation is EFAULT there instead of SIGBUS.
fn written(path: Option<&std::path::Path>, write: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
    match crate::sys::map::unfaulted(write) {
        Err(_) => Err(truncated(path)),
        Ok(Err(e)) if e.raw_os_error() == Some(libc::EFAULT) => Err(truncated(path)),
        Ok(result) => result,
    }
}

fn open(segment: Segment) -> io::Result<Current> {
    match segment {
        Segment::Bytes(b) => Ok(Current::Bytes(b)),
        Segment::Slice(m, r) => Ok(Current::Slice(m, r)),
        Segment::Shared(b, r) => Ok(Current::Shared(b, r)),
        Segment::File(path, size) if size >= MAP_FROM => {
            let map = crate::sys::map::map_indexed(&path, size).inspect_err(|e| log::error!("{e}"))?;
            Ok(Current::Map(map, path))
        }
        Segment::File(path, size) => {
            let file = crate::sys::map::open_indexed(&path, size).inspect_err(|e| log::error!("{e}"))?;
            Ok(Current::File(file, path, size))
        }
        Segment::Swapped(map, range, width) => {
            let len = range.len() as u64;
            Ok(produced(map, None, Plan::swapped(range, width), len))
        }
        Segment::Transcoded { path, size, len } => {
            let map = Arc::new(crate::sys::map::map_indexed(&path, size).inspect_err(|e| log::error!("{e}"))?);
            let plan = crate::sys::map::unfaulted(|| transcode::plan_file(&map, Some(len)))
                .map_err(|_| truncated(Some(&path)))?
                .map_err(|e| changed(Some(&path), &e.to_string()))?;
            if plan.len() != len {
                return Err(changed(Some(&path), "it no longer transcodes to the promised length"));
            }
            Ok(produced(map, Some(path), plan, len))
        }
    }
}

fn produced(map: Arc<Mmap>, path: Option<PathBuf>, plan: Plan, len: u64) -> Current {
    let buffer = Vec::new();
    Current::Produced(Box::new(Produced {
        map,
        path,
        plan,
        progress: Progress::default(),
        buffer,
        taken: 0,
        produced: 0,
        len,
    }))
}

impl Parts {
    /// Makes `current` a segment with bytes left to send, opening the next ones as needed; `false` at the end.
    fn advance(&mut self) -> io::Result<bool> {
        loop {
            match &self.current {
                Some((c, pos)) if c.has_more(*pos) => return Ok(true),
                _ => match self.segments.next() {
                    Some(seg) => self.current = Some((open(seg)?, 0)),
                    None => {
                        self.current = None;
                        return Ok(false);
                    }
                },
            }
        }
    }

    /// Offers up to `max` bytes of the current segment to `out`, which takes some of them (its count), and
    /// fails if the file shrank meanwhile: a map read past its file's end, or a file that ends early.
    fn send(&mut self, max: usize, out: &mut dyn Sink) -> io::Result<usize> {
        let Some((current, pos)) = &mut self.current else { return Ok(0) };
        if let Current::File(file, path, size) = current {
            let n = usize::try_from(*size - *pos as u64).unwrap_or(usize::MAX).min(max);
            let taken = out.send_file(file, *pos as u64, n)?.min(n);
            if taken == 0 {
                return Err(truncated(Some(path)));
            }
            *pos += taken;
            return Ok(taken);
        }
        let rest = current.data().get(*pos..).unwrap_or_default();
        let n = rest.len().min(max);
        let taken = written(current.path(), || out.write(&rest[..n]))?.min(n);
        *pos += taken;
        Ok(taken)
    }
}

/// The largest piece offered to one write: large enough that each write is one cheap system call, small
/// enough that a file truncated under us is noticed (through `sys::map::unfaulted`) before much is sent.
const WRITE_CHUNK: usize = 4 << 20;

impl Source for Parts {
    /// Writes from the current segment's file, map or bytes, without copying through a buffer of ours.
    fn write_some(&mut self, out: &mut dyn Sink) -> io::Result<usize> {
        if !self.advance()? {
            return Ok(0);
        }
        if let Some((Current::Produced(produced), _)) = &mut self.current {
            return produced.write_some(out);
        }
        self.send(WRITE_CHUNK, out)
    }
}

fn changed(path: Option<&std::path::Path>, why: &str) -> io::Error {
    let name = path.map_or_else(|| "an indexed file".to_string(), |p| p.display().to_string());
    log::error!("{name} cannot be transcoded as promised ({why}); run `smart-imaging check`");
    io::Error::new(io::ErrorKind::InvalidData, "an indexed file changed while it was transcoded")
}

fn truncated(path: Option<&std::path::Path>) -> io::Error {
    // A mapped file shrank while its bytes were copied: the SIGBUS guard supplied zeros for the missing
    // pages, or the kernel refused to copy them. Never let zeros pass as data; end the response short so the
    // client sees it failed.
    let name = path.map_or_else(|| "an indexed file".to_string(), |p| p.display().to_string());
    log::error!("{name} was truncated while it was being sent; run `smart-imaging check`");
    io::Error::new(io::ErrorKind::InvalidData, "an indexed file was truncated while it was sent")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: Body) -> (u64, io::Result<Vec<u8>>) {
        let len = body.len();
        (len, body.read_all())
    }

    /// The same body written in small pieces, as to a socket that takes a few bytes at a time, must give the
    /// same bytes.
    fn write(body: Body) -> io::Result<Vec<u8>> {
        struct Trickle(Vec<u8>);
        impl std::io::Write for Trickle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(3);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Sink for Trickle {}
        let mut source = body.into_source();
        let mut out = Trickle(Vec::new());
        while source.write_some(&mut out)? > 0 {}
        Ok(out.0)
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("si-stream-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_multipart_body_streams_its_files_and_maps_exactly() {
        let dir = temp("framing");
        let (a, b) = (dir.join("a.dcm"), dir.join("b.dcm"));
        std::fs::write(&a, b"AAAA").unwrap();
        std::fs::write(&b, b"BB\r\n--").unwrap();
        let map = Arc::new(crate::sys::map::map_file(&b).unwrap());
        let parts_of = |a: &PathBuf, map: &Arc<Mmap>| {
            vec![
                Part { content_type: "application/dicom".into(), content: vec![Segment::File(a.clone(), 4)] },
                Part {
                    content_type: "application/octet-stream".into(),
                    content: vec![Segment::Slice(map.clone(), 0..2), Segment::Slice(map.clone(), 4..6)],
                },
            ]
        };
        let make = || multipart("XYZ", parts_of(&a, &map));
        let (len, body) = read(make());
        let expected = "--XYZ\r\nContent-Type: application/dicom\r\nContent-Length: 4\r\n\r\nAAAA\
                        \r\n--XYZ\r\nContent-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\nBB--\
                        \r\n--XYZ--\r\n";
        assert_eq!(String::from_utf8(body.unwrap()).unwrap(), expected);
        assert_eq!(len, expected.len() as u64);
        assert_eq!(String::from_utf8(write(make()).unwrap()).unwrap(), expected, "the fast path writes the same");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn small_files_go_as_files_and_large_ones_from_maps_byte_for_byte() {
        let dir = temp("sizes");
        let (small, large) = (dir.join("small.dcm"), dir.join("large.dcm"));
        let bytes = |n: u64| (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
        std::fs::write(&small, bytes(MAP_FROM - 1)).unwrap();
        std::fs::write(&large, bytes(MAP_FROM + 4097)).unwrap();
        let segments = || {
            vec![
                Segment::Bytes(b"<".to_vec()),
                Segment::File(small.clone(), MAP_FROM - 1),
                Segment::File(large.clone(), MAP_FROM + 4097),
                Segment::Bytes(b">".to_vec()),
            ]
        };
        let mut expected = b"<".to_vec();
        expected.extend(bytes(MAP_FROM - 1));
        expected.extend(bytes(MAP_FROM + 4097));
        expected.push(b'>');
        assert_eq!(read(stream(segments())).1.unwrap(), expected);
        assert_eq!(write(stream(segments())).unwrap(), expected, "in small writes too");
        // Either kind, once shorter than indexed, fails instead of sending other bytes.
        for (path, size) in [(&small, MAP_FROM - 1), (&large, MAP_FROM + 4097)] {
            std::fs::write(path, bytes(size - 1)).unwrap();
            assert!(read(stream(vec![Segment::File(path.clone(), size)])).1.is_err(), "{}", path.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_changed_size_fails_the_read() {
        let dir = temp("size");
        let a = dir.join("a.dcm");
        std::fs::write(&a, b"AAAA").unwrap();
        let (_, body) = read(stream(vec![Segment::Bytes(b"x".to_vec()), Segment::File(a.clone(), 5)]));
        assert!(body.is_err());
        assert!(write(stream(vec![Segment::File(a, 5)])).is_err(), "the fast path refuses it too");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn transcoded_and_swapped_segments_stream_what_was_promised() {
        let dir = temp("transcoded");
        let file = [
            vec![0; 128],
            b"DICM".to_vec(),
            // (0002,0000) UL len 4: 28 bytes follow; (0002,0010) UI len 18 (+2): Implicit VR Little Endian
            vec![2, 0, 0, 0, b'U', b'L', 4, 0, 28, 0, 0, 0],
            [&[2, 0, 0x10, 0, b'U', b'I', 20, 0][..], b"1.2.840.10008.1.2\0\0\0"].concat(),
            vec![0x08, 0, 0x60, 0, 2, 0, 0, 0, b'C', b'T'], // (0008,0060) implicit len 2: Modality
            [&[0xE0, 0x7F, 0x10, 0, 4, 0, 0, 0][..], &[1, 2, 3, 4]].concat(), // (7FE0,0010) len 4: Pixel Data
        ]
        .concat();
        let path = dir.join("implicit.dcm");
        std::fs::write(&path, &file).unwrap();
        let plan = transcode::plan_file(&file, None).unwrap();
        let mut expected = Vec::new();
        plan.fill(&file, &mut Progress::default(), &mut expected, usize::MAX).unwrap();
        let size = file.len() as u64;
        let segment = || Segment::Transcoded { path: path.clone(), size, len: plan.len() };
        let (len, body) = read(stream(vec![segment()]));
        assert_eq!((len, body.unwrap()), (expected.len() as u64, expected.clone()));
        assert_eq!(write(stream(vec![segment()])).unwrap(), expected, "written a few bytes at a time");
        let wrong = Segment::Transcoded { path: path.clone(), size, len: plan.len() + 1 };
        assert!(read(stream(vec![wrong])).1.is_err(), "a length that is no longer the file's fails the read");

        let map = Arc::new(crate::sys::map::map_file(&path).unwrap());
        let pixels = file.len() - 4..file.len();
        let (_, swapped) = read(stream(vec![Segment::Swapped(map, pixels, 2)]));
        assert_eq!(swapped.unwrap(), [2, 1, 4, 3]);
        let (_, shared) = read(stream(vec![Segment::Shared(Arc::new(vec![5, 6, 7]), 1..3)]));
        assert_eq!(shared.unwrap(), [6, 7]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! What one DICOMweb request works in: the study its token opened, the base URL under which it hands out
//! links, and the lookups and file reads every handler shares.
//!
//! Invariants: every resource is looked up inside the opened study; files are reached only through the
//! index and mapped only after their size is checked, and after their header when their modification time
//! moved since indexing (`check_file`); a read of a map that faulted is an error; a data set
//! is inflated only into bytes already reserved from the server's inflate budget, which it holds until the
//! last response using it is dropped.

use memmap2::Mmap;
use std::sync::Arc;

use super::etag::etag;
use super::stream::{Segment, SharedBytes};
use crate::budget::{self, Budget, Reservation};
use crate::dicom::Uid;
use crate::dicom::dataset::{self, DataSet};
use crate::http::accept::Refused;
use crate::http::{ApiError, Request, Response};
use crate::index::check::differences_now;
use crate::index::indexer::mtime_secs;
use crate::index::learnt::{Lengths, Verdicts};
use crate::index::{Index, Instance, Series, Study};

/// What a WADO-RS or QIDO-RS path under the study token names: the study search at its root, or a resource
/// under `…/studies/{st}`.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    StudySearch,
    Study,
    StudyMetadata,
    StudyInstanceSearch,
    SeriesSearch,
    Series(Uid<'a>),
    SeriesMetadata(Uid<'a>),
    InstanceSearch(Uid<'a>),
    Instance(Uid<'a>, Uid<'a>),
    InstanceMetadata(Uid<'a>, Uid<'a>),
    Frames(Uid<'a>, Uid<'a>, &'a str),
    Bulk(Uid<'a>, Uid<'a>, &'a [&'a str]),
    /// A frame of an instance as an image: the frame named, else the first.
    Rendered(Uid<'a>, Uid<'a>, Option<&'a str>, Rendition),
}

/// How a frame is made an image: at its own size (PS3.18 §8.3.5), or as a thumbnail (§9.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendition {
    Rendered,
    Thumbnail,
}

/// Where the answers of one request live: the WADO-RS base of the study token, for the URLs we hand out.
pub struct Context<'a> {
    pub index: &'a Index,
    /// The lengths of instances measured so far under this index.
    pub lengths: &'a Lengths,
    /// Whether files modified since indexing still hold their instances, as found so far under this index.
    pub verdicts: &'a Verdicts,
    /// What the inflated data sets of every response are reserved from, server-wide.
    pub inflate_budget: &'a Budget,
    pub req: &'a Request,
    /// `{base}/{tenant}/wado/{studyToken}`.
    pub base: String,
    pub study: Study<'a>,
}

impl Context<'_> {
    /// The tag of the representation `what` made of `instances`, and the 304 that answers the request when
    /// it already holds it: decided from the index and the request, before any file is touched.
    pub fn tag(&self, what: &str, instances: &[Instance]) -> (String, Option<Response>) {
        let tag = etag(self.index, &self.study, what, instances);
        let unchanged = super::etag::unchanged(self.req, &tag);
        (tag, unchanged)
    }
}

pub fn series<'a>(study: &Study<'a>, uid: Uid) -> Result<Series<'a>, ApiError> {
    study.find_series(uid).ok_or_else(|| ApiError::NotFound(format!("series {} is not in this study", uid.as_str())))
}

pub fn instance<'a>(study: &Study<'a>, se: Uid, sop: Uid) -> Result<(Series<'a>, Instance<'a>), ApiError> {
    let s = series(study, se)?;
    let i = s
        .find_instance(sop)
        .ok_or_else(|| ApiError::NotFound(format!("instance {} is not in this series", sop.as_str())))?;
    Ok((s, i))
}

pub fn refused(r: Refused) -> ApiError {
    match r {
        Refused::Malformed(m) => ApiError::BadRequest(m),
        Refused::NotAcceptable(m) => ApiError::NotAcceptable(m),
    }
}

/// An instance's file, mapped, after checking it is still the indexed instance (`check_file`) and has the
/// indexed size: a file truncated under a running server must answer an error, not a fault.
pub fn map_instance(cx: &Context, inst: &Instance) -> Result<Arc<Mmap>, ApiError> {
    check_file(cx, inst)?;
    crate::sys::map::map_indexed(&cx.index.file_path(inst), inst.size())
        .map(Arc::new)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Checks, before any byte of it is served, that an indexed file still holds the instance the index names: it
/// has the indexed size, and when its modification time is no longer the indexed one (a copy, a `touch`, or
/// another file put in its place), its header still names the indexed instance, series, study and patient.
/// Another file is refused as absent (404) rather than served under this study's token: it may be another
/// patient's. A missing file, or one of another size, is a fault (500).
pub fn check_file(cx: &Context, inst: &Instance) -> Result<(), ApiError> {
    let path = cx.index.file_path(inst);
    let meta = crate::sys::map::check_size(&path, inst.size()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mtime = mtime_secs(&meta);
    // An index written before modification times were recorded holds 0: there is no time to compare.
    if inst.mtime() == 0 || mtime == inst.mtime() {
        return Ok(());
    }
    let key = (inst.path(), inst.size(), mtime);
    let same = match cx.verdicts.get(&key) {
        Some(same) => same,
        None => {
            let same = reread(cx, inst, &path);
            cx.verdicts.put(key, same);
            same
        }
    };
    if same {
        return Ok(());
    }
    crate::metrics::file_refused();
    Err(ApiError::NotFound(format!("instance {} is not available: its file no longer holds it", inst.uid())))
}

/// Reads the header of a file modified since indexing and says whether it still names the indexed instance;
/// when it does not, logs once why, naming the attributes that differ but not their values (which may be
/// another patient's).
fn reread(cx: &Context, inst: &Instance, path: &std::path::Path) -> bool {
    let found = match cx.study.series_of(inst) {
        Some(series) => differences_now(path, (&cx.study, &series, inst)),
        None => Err("its instance is not in the study's series".into()),
    };
    let why = match found {
        Ok(differences) if differences.is_empty() => {
            crate::metrics::file_recheck(true);
            return true;
        }
        Ok(differences) => {
            let names: Vec<&str> = differences.iter().map(|d| d.name).collect();
            format!("its {} differ from the index", names.join(", "))
        }
        Err(why) => format!("its header no longer reads: {why}"),
    };
    crate::metrics::file_recheck(false);
    log::warn!(
        "{}: modified since it was indexed and no longer the indexed instance ({why}); not served until it is \
         indexed again (see `smart-imaging check`)",
        path.display()
    );
    false
}

/// The bytes an instance's data set is read from: its map, or, for a deflated file, the file with its data
/// set inflated in memory, reserved from the server's inflate budget for as long as a response holds it.
pub enum InstanceBytes {
    Map(Arc<Mmap>),
    Inflated(Arc<Inflated>),
}

/// A deflated file with its data set inflated, and the bytes of the inflate budget it holds: they are given
/// back when the last response sending from it is dropped, whether it was sent whole or cut short.
pub struct Inflated {
    bytes: Vec<u8>,
    _reserved: Reservation,
}

impl AsRef<[u8]> for Inflated {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::ops::Deref for InstanceBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            InstanceBytes::Map(map) => map,
            InstanceBytes::Inflated(inflated) => &inflated.bytes,
        }
    }
}

impl InstanceBytes {
    /// A range of the bytes as a body segment, its numbers of `swap` bytes reversed (big endian values sent
    /// little endian).
    pub fn segment(&self, range: std::ops::Range<usize>, swap: usize) -> Segment {
        match self {
            InstanceBytes::Map(map) if swap > 1 => Segment::Swapped(Arc::clone(map), range, swap),
            InstanceBytes::Map(map) => Segment::Slice(Arc::clone(map), range),
            InstanceBytes::Inflated(inflated) => Segment::Shared(Arc::clone(inflated) as SharedBytes, range),
        }
    }
}

/// An instance's bytes and its whole data set, read from them.
pub fn load(cx: &Context, inst: &Instance) -> Result<(InstanceBytes, DataSet), ApiError> {
    let map = map_instance(cx, inst)?;
    let unreadable = |e: crate::dicom::error::DicomError| {
        ApiError::Internal(format!("indexed file {} no longer reads: {e}", cx.index.file_path(inst).display()))
    };
    if crate::dicom::transfer_syntax::is_deflated(inst.transfer_syntax()) {
        let inflated = inflate(cx, inst, &map)?;
        let data_set = dataset::read_inflated_data_set(&inflated.bytes).map_err(unreadable)?;
        return Ok((InstanceBytes::Inflated(Arc::new(inflated)), data_set));
    }
    let data_set = unfaulted(cx, inst, || dataset::read_data_set(&map))?.map_err(unreadable)?;
    Ok((InstanceBytes::Map(map), data_set))
}

/// A deflated instance's file with its data set inflated: measured first (once per index, a piece at a time),
/// then its length reserved from the inflate budget, then inflated into memory of exactly that length.
fn inflate(cx: &Context, inst: &Instance, map: &Mmap) -> Result<Inflated, ApiError> {
    let path = inst.path();
    let cannot = |e: crate::dicom::error::DicomError| {
        // A length measured before may be what no longer holds: the next request measures again.
        cx.lengths.inflated.forget(&path);
        ApiError::NotAcceptable(format!("instance {} cannot be read inflated: {e}", inst.uid()))
    };
    let len = match cx.lengths.inflated.get(&path).and_then(|n| usize::try_from(n).ok()) {
        Some(len) => len,
        None => {
            let len = unfaulted(cx, inst, || dataset::inflated_file_len(map))?.map_err(cannot)?;
            cx.lengths.inflated.put(&path, len as u64);
            len
        }
    };
    let reserved = cx.inflate_budget.reserve(len as u64).map_err(|refused| {
        let budget = cx.inflate_budget.limit();
        let file = cx.index.file_path(inst);
        match refused {
            budget::Refused::Busy => {
                log::warn!(
                    "{}: no room within the inflate budget of {budget} bytes for its {len} inflated bytes: 503",
                    file.display()
                );
                ApiError::Saturated
            }
            budget::Refused::TooLarge => {
                log::warn!(
                    "{}: its {len} inflated bytes are more than the whole inflate budget of {budget} bytes \
                     (server.inflate_budget): 406",
                    file.display()
                );
                ApiError::NotAcceptable(format!(
                    "instance {} inflates to {len} bytes, more than this server holds inflated at once",
                    inst.uid()
                ))
            }
        }
    })?;
    let bytes = unfaulted(cx, inst, || dataset::inflate_file(map, len))?.map_err(cannot)?;
    Ok(Inflated { bytes, _reserved: reserved })
}

/// Runs `read` over an instance's map and fails if the file shrank meanwhile (see `mmap`'s SIGBUS guard):
/// what was read may then hold zeros that are not the file's.
pub fn unfaulted<T>(cx: &Context, inst: &Instance, read: impl FnOnce() -> T) -> Result<T, ApiError> {
    crate::sys::map::unfaulted(read).map_err(|_| {
        ApiError::Internal(format!(
            "indexed file {} was truncated while it was read; run `smart-imaging check`",
            cx.index.file_path(inst).display()
        ))
    })
}

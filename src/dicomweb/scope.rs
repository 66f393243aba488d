//! What one DICOMweb request works in: the study its token opened, the base URL under which it hands out
//! links, and the lookups and file reads every handler shares.
//!
//! Invariants: every resource is looked up inside the opened study; files are reached only through the
//! index and mapped only after their size is checked; a read of a map that faulted is an error; a data set
//! is inflated only into bytes already reserved from the server's inflate budget, which it holds until the
//! last response using it is dropped.

use memmap2::Mmap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::stream::{Segment, SharedBytes};
use crate::budget::{self, Budget, Reservation};
use crate::dicom::Uid;
use crate::dicom::dataset::{self, DataSet};
use crate::http::accept::Refused;
use crate::http::{ApiError, Request};
use crate::index::{Index, Instance, Series, Study};

/// What a WADO-RS or QIDO-RS path under `…/studies/{st}` names.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Study,
    StudyMetadata,
    SeriesSearch,
    Series(Uid<'a>),
    SeriesMetadata(Uid<'a>),
    InstanceSearch(Uid<'a>),
    Instance(Uid<'a>, Uid<'a>),
    InstanceMetadata(Uid<'a>, Uid<'a>),
    Frames(Uid<'a>, Uid<'a>, &'a str),
    Bulk(Uid<'a>, Uid<'a>, &'a [&'a str]),
}

/// Where the answers of one request live: the WADO-RS base of the study token, for the URLs we hand out.
pub struct Scope<'a> {
    pub index: &'a Index,
    /// The lengths of instances measured so far under this index.
    pub lengths: &'a Lengths,
    /// What the inflated data sets of every response are reserved from, server-wide.
    pub inflate_budget: &'a Budget,
    pub req: &'a Request,
    /// `{base}/{tenant}/wado/{studyToken}`.
    pub base: String,
    pub study: Study<'a>,
}

/// The lengths of instances learnt the first time each is needed, kept with the index they were measured
/// under.
#[derive(Debug, Default)]
pub struct Lengths {
    /// As Explicit VR Little Endian, when transcoded.
    pub transcoded: Measured,
    /// Of a deflated file with its data set inflated (`dicom::dataset::inflated_file_len`).
    pub inflated: Measured,
}

/// One length for each instance, by its path: at most one entry per indexed file, which the static index
/// bounds, and no value that outlives the index.
#[derive(Debug, Default)]
pub struct Measured(Mutex<HashMap<String, u64>>);

impl Measured {
    pub fn get(&self, path: &str) -> Option<u64> {
        self.0.lock().ok()?.get(path).copied()
    }

    pub fn put(&self, path: &str, length: u64) {
        if let Ok(mut lengths) = self.0.lock() {
            lengths.insert(path.to_string(), length);
        }
    }

    /// Forgets a length that no longer holds, so that the next request measures again.
    pub fn forget(&self, path: &str) {
        if let Ok(mut lengths) = self.0.lock() {
            lengths.remove(path);
        }
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

/// An instance's file, mapped, after checking it still has the indexed size: a file truncated under a
/// running server must answer an error, not a fault.
pub fn map_instance(scope: &Scope, inst: &Instance) -> Result<Arc<Mmap>, ApiError> {
    crate::sys::map::map_indexed(&scope.index.file_path(inst), inst.size())
        .map(Arc::new)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The bytes an instance's data set is read from: its map, or, for a deflated file, the file with its data
/// set inflated in memory, reserved from the server's inflate budget for as long as a response holds it.
pub enum Loaded {
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

impl std::ops::Deref for Loaded {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Loaded::Map(map) => map,
            Loaded::Inflated(inflated) => &inflated.bytes,
        }
    }
}

impl Loaded {
    /// A range of the bytes as a body segment, its numbers of `swap` bytes reversed (big endian values sent
    /// little endian).
    pub fn segment(&self, range: std::ops::Range<usize>, swap: usize) -> Segment {
        match self {
            Loaded::Map(map) if swap > 1 => Segment::Swapped(Arc::clone(map), range, swap),
            Loaded::Map(map) => Segment::Slice(Arc::clone(map), range),
            Loaded::Inflated(inflated) => Segment::Shared(Arc::clone(inflated) as SharedBytes, range),
        }
    }
}

/// An instance's bytes and its whole data set, read from them.
pub fn load(scope: &Scope, inst: &Instance) -> Result<(Loaded, DataSet), ApiError> {
    let map = map_instance(scope, inst)?;
    let unreadable = |e: crate::dicom::error::DicomError| {
        ApiError::Internal(format!("indexed file {} no longer reads: {e}", scope.index.file_path(inst).display()))
    };
    if crate::dicom::transfer_syntax::is_deflated(inst.transfer_syntax()) {
        let inflated = inflate(scope, inst, &map)?;
        let data_set = dataset::read_inflated_data_set(&inflated.bytes).map_err(unreadable)?;
        return Ok((Loaded::Inflated(Arc::new(inflated)), data_set));
    }
    let data_set = unfaulted(scope, inst, || dataset::read_data_set(&map))?.map_err(unreadable)?;
    Ok((Loaded::Map(map), data_set))
}

/// A deflated instance's file with its data set inflated: measured first (once per index, a piece at a time),
/// then its length reserved from the inflate budget, then inflated into memory of exactly that length.
fn inflate(scope: &Scope, inst: &Instance, map: &Mmap) -> Result<Inflated, ApiError> {
    let path = inst.path();
    let cannot = |e: crate::dicom::error::DicomError| {
        // A length measured before may be what no longer holds: the next request measures again.
        scope.lengths.inflated.forget(&path);
        ApiError::NotAcceptable(format!("instance {} cannot be read inflated: {e}", inst.uid()))
    };
    let len = match scope.lengths.inflated.get(&path).and_then(|n| usize::try_from(n).ok()) {
        Some(len) => len,
        None => {
            let len = unfaulted(scope, inst, || dataset::inflated_file_len(map))?.map_err(cannot)?;
            scope.lengths.inflated.put(&path, len as u64);
            len
        }
    };
    let reserved = scope.inflate_budget.reserve(len as u64).map_err(|refused| {
        let budget = scope.inflate_budget.limit();
        let file = scope.index.file_path(inst);
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
    let bytes = unfaulted(scope, inst, || dataset::inflate_file(map, len))?.map_err(cannot)?;
    Ok(Inflated { bytes, _reserved: reserved })
}

/// Runs `read` over an instance's map and fails if the file shrank meanwhile (see `mmap`'s SIGBUS guard):
/// what was read may then hold zeros that are not the file's.
pub fn unfaulted<T>(scope: &Scope, inst: &Instance, read: impl FnOnce() -> T) -> Result<T, ApiError> {
    crate::sys::map::unfaulted(read).map_err(|_| {
        ApiError::Internal(format!(
            "indexed file {} was truncated while it was read; run `smart-imaging check`",
            scope.index.file_path(inst).display()
        ))
    })
}

//! DICOM encoding, and nothing of HTTP, FHIR or the index layout: reading the header of a Part 10 file
//! (`header`), reading its whole data set (`dataset`), and from that its DICOM JSON (`json`), the byte
//! ranges of its frames (`frames`) and its transcoding to Explicit VR Little Endian (`transcode`), on the
//! shared framing of `element` and the character sets of `charset`.
//!
//! Invariants: no reader here reads past the end of the bytes it is given or panics on them, and none
//! can be made to hang or exhaust memory (loops always advance, sequences nest at most
//! `element::MAX_DEPTH` deep, inflating stops at `inflate::MAX_INFLATED`). The folder uses only `std`,
//! `flate2`, `serde_json` and `encoding_rs`, and its modules name each other only as `super::…`, so that the fuzz
//! target in `fuzz/` can include it by path. Their imports form no cycle: `tags`, `text`, `charset`,
//! `transfer_syntax`, `inflate` and `uid` import no sibling, `error` and `dictionary` only `tags`;
//! `element` imports those four below it; `header` and `dataset` import `element` and below; `json`,
//! `frames` and `transcode` import `dataset` and sit on top. The test-only `fixtures` imports no sibling. This file holds
//! only declarations and re-exports.

pub mod charset;
pub mod dataset;
pub mod dictionary;
pub mod element;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod frames;
pub mod header;
pub mod inflate;
pub mod json;
pub mod tags;
pub mod text;
pub mod transcode;
pub mod transfer_syntax;
pub mod uid;

pub use header::{Header, read_header};
pub use tags::Tag;
pub use uid::Uid;

//! Why a file could not be read as DICOM: [`DicomError`], shared by every reader in this folder.
//! Invariants: offsets in an error are byte offsets from the start of the file, or from the first
//! inflated byte inside [`DicomError::InInflated`]; the message names the element where one is known.
//! This module imports only `tags`.

use std::fmt;

use super::tags::Tag;

/// Why the header of a file could not be read. Offsets are byte offsets from the start of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DicomError {
    /// There is no "DICM" prefix after the preamble (PS3.10 §7.1), and the bytes do not start
    /// like a bare implicit VR little endian data set either.
    NotDicom,
    /// An element header or value runs past the end of the bytes. `tag` is `None` when the bytes
    /// end inside the tag itself at top level.
    Truncated { tag: Option<Tag>, offset: usize },
    /// An element is structurally invalid: a VR that is not two letters, an item where none may be,
    /// or sequences nested deeper than the reader allows.
    Malformed { tag: Tag, offset: usize, problem: &'static str },
    /// The transfer syntax is one this reader cannot decode.
    UnsupportedTransferSyntax { uid: String, reason: &'static str },
    /// A required attribute is absent or empty.
    Missing { attribute: &'static str, tag: Tag },
    /// A DICOMDIR (PS3.10 §8): a directory of other files, not an instance.
    Directory,
    /// The deflated data set (PS3.5 §A.5) that starts at `offset` cannot be inflated as far as the
    /// recorded attributes: the stream is corrupt, ends early, or inflates beyond the 64 MiB that
    /// `inflate::MAX_INFLATED` allows.
    Deflate { offset: usize, problem: String },
    /// A problem inside an inflated data set; its offsets count from the first inflated byte.
    InInflated(Box<DicomError>),
}

impl fmt::Display for DicomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The prefix follows the 128-byte preamble (PS3.10 §7.1), which `element::PREAMBLE_LEN` names; a
            // test there keeps the two equal.
            DicomError::NotDicom => write!(f, "not DICOM: no DICM prefix at byte 128 and no bare data set at byte 0"),
            DicomError::Truncated { tag: Some(tag), offset } => {
                write!(f, "truncated in element {tag} at byte {offset}")
            }
            DicomError::Truncated { tag: None, offset } => {
                write!(f, "truncated in an element tag at byte {offset}")
            }
            DicomError::Malformed { tag, offset, problem } => {
                write!(f, "malformed element {tag} at byte {offset}: {problem}")
            }
            DicomError::UnsupportedTransferSyntax { uid, reason } => {
                write!(f, "unsupported transfer syntax {uid} ({reason})")
            }
            DicomError::Missing { attribute, tag } => write!(f, "missing {attribute} {tag}"),
            DicomError::Directory => write!(f, "a DICOMDIR, which lists other files and is not an instance"),
            DicomError::Deflate { offset, problem } => write!(f, "deflated data set at byte {offset}: {problem}"),
            DicomError::InInflated(inner) => write!(f, "in the inflated data set: {inner}"),
        }
    }
}

impl std::error::Error for DicomError {}

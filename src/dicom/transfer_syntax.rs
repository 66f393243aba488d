//! The Transfer Syntax UIDs (PS3.6 Table A-1) that decide how this folder reads a data set: the three
//! uncompressed encodings and the deflated ones. Invariants: every transfer syntax UID the folder
//! compares against is named here and nowhere else, [`is_deflated`] is the one answer to whether a data
//! set is a deflate stream, and [`is_native`] to whether it can be transcoded. This module imports nothing from its siblings.

/// Implicit VR Little Endian, the DICOM default (PS3.5 §A.1).
pub const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
/// Explicit VR Little Endian (PS3.5 §A.2).
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
/// Explicit VR Big Endian, retired but still read (PS3.5 §A.3).
pub const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
/// Deflated Explicit VR Little Endian (PS3.5 §A.5).
pub const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1.99";
/// JPIP Referenced Deflate (PS3.5 §A.7): a deflated data set whose pixel data is referenced, not held.
pub const JPIP_REFERENCED_DEFLATE: &str = "1.2.840.10008.1.2.4.95";
/// JPIP HTJ2K Referenced Deflate (PS3.5 §A.12), deflated like the one above.
pub const JPIP_HTJ2K_REFERENCED_DEFLATE: &str = "1.2.840.10008.1.2.4.205";

/// The transfer syntaxes whose data set, after the File Meta Information, is one deflate stream
/// (PS3.5 §A.5, §A.7, §A.12).
pub const DEFLATED: [&str; 3] =
    [DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, JPIP_REFERENCED_DEFLATE, JPIP_HTJ2K_REFERENCED_DEFLATE];

/// The native (uncompressed) transfer syntaxes, which can be sent as Explicit VR Little Endian (PS3.5
/// §A.1-§A.3, §A.5).
pub const NATIVE: [&str; 4] =
    [IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN];

/// Whether a data set in this transfer syntax is native: its pixel data, if any, is not compressed.
pub fn is_native(uid: &str) -> bool {
    NATIVE.contains(&uid)
}

/// Whether a data set in this transfer syntax is deflated, so that its elements exist only once inflated.
pub fn is_deflated(uid: &str) -> bool {
    DEFLATED.contains(&uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_native_transfer_syntaxes() {
        for uid in NATIVE {
            assert!(is_native(uid), "{uid}");
        }
        for uid in ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.95", ""] {
            assert!(!is_native(uid), "{uid:?}");
        }
    }

    #[test]
    fn tells_the_deflated_transfer_syntaxes() {
        for uid in ["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"] {
            assert!(is_deflated(uid), "{uid}");
        }
        for uid in [
            IMPLICIT_VR_LITTLE_ENDIAN,
            EXPLICIT_VR_LITTLE_ENDIAN,
            EXPLICIT_VR_BIG_ENDIAN,
            "1.2.840.10008.1.2.4.50",  // JPEG Baseline
            "1.2.840.10008.1.2.4.94",  // JPIP Referenced, not deflated
            "1.2.840.10008.1.2.4.204", // JPIP HTJ2K Referenced, not deflated
            "1.2.840.10008.1.2.1.99 ", // Padded: callers decode a UID before they ask.
            "",
        ] {
            assert!(!is_deflated(uid), "{uid:?}");
        }
    }
}

//! Data element tags (PS3.5 §7.1): the [`Tag`] type and one table naming every attribute the crate
//! refers to by name (PS3.6 §6). Invariants: a constant's name is the attribute's keyword in upper snake
//! case, its value the tag PS3.6 registers for it, and the table stays in ascending tag order with no tag
//! named twice. This module imports nothing from its siblings.

use std::fmt;

/// A data element tag: (group,element), shown the way DICOM writes it, e.g. `(0010,0010)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag {
    pub group: u16,
    pub element: u16,
}

impl Tag {
    pub const fn new(group: u16, element: u16) -> Tag {
        Tag { group, element }
    }

    /// The tag as a DICOM JSON attribute key (PS3.18 §F.2.1.1): eight upper-case hexadecimal digits,
    /// group then element, e.g. `00080060` for Modality.
    pub fn json_key(&self) -> String {
        format!("{:04X}{:04X}", self.group, self.element)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:04X},{:04X})", self.group, self.element)
    }
}

// The File Meta Information, group 0002 (PS3.10 §7.1), comes first in a file.
pub const MEDIA_STORAGE_SOP_CLASS_UID: Tag = Tag::new(0x0002, 0x0002);
pub const MEDIA_STORAGE_SOP_INSTANCE_UID: Tag = Tag::new(0x0002, 0x0003);
pub const TRANSFER_SYNTAX_UID: Tag = Tag::new(0x0002, 0x0010);
// The attributes of the data set follow it.
pub const SPECIFIC_CHARACTER_SET: Tag = Tag::new(0x0008, 0x0005);
pub const SOP_CLASS_UID: Tag = Tag::new(0x0008, 0x0016);
pub const SOP_INSTANCE_UID: Tag = Tag::new(0x0008, 0x0018);
pub const STUDY_DATE: Tag = Tag::new(0x0008, 0x0020);
pub const STUDY_TIME: Tag = Tag::new(0x0008, 0x0030);
pub const ACCESSION_NUMBER: Tag = Tag::new(0x0008, 0x0050);
pub const INSTANCE_AVAILABILITY: Tag = Tag::new(0x0008, 0x0056);
pub const MODALITY: Tag = Tag::new(0x0008, 0x0060);
pub const MODALITIES_IN_STUDY: Tag = Tag::new(0x0008, 0x0061);
pub const REFERRING_PHYSICIAN_NAME: Tag = Tag::new(0x0008, 0x0090);
pub const TIMEZONE_OFFSET_FROM_UTC: Tag = Tag::new(0x0008, 0x0201);
pub const STUDY_DESCRIPTION: Tag = Tag::new(0x0008, 0x1030);
pub const SERIES_DESCRIPTION: Tag = Tag::new(0x0008, 0x103E);
pub const RETRIEVE_URL: Tag = Tag::new(0x0008, 0x1190);
pub const PATIENT_NAME: Tag = Tag::new(0x0010, 0x0010);
pub const PATIENT_ID: Tag = Tag::new(0x0010, 0x0020);
pub const ISSUER_OF_PATIENT_ID: Tag = Tag::new(0x0010, 0x0021);
pub const PATIENT_BIRTH_DATE: Tag = Tag::new(0x0010, 0x0030);
pub const PATIENT_SEX: Tag = Tag::new(0x0010, 0x0040);
pub const STUDY_INSTANCE_UID: Tag = Tag::new(0x0020, 0x000D);
pub const SERIES_INSTANCE_UID: Tag = Tag::new(0x0020, 0x000E);
pub const STUDY_ID: Tag = Tag::new(0x0020, 0x0010);
pub const SERIES_NUMBER: Tag = Tag::new(0x0020, 0x0011);
pub const INSTANCE_NUMBER: Tag = Tag::new(0x0020, 0x0013);
pub const NUMBER_OF_STUDY_RELATED_SERIES: Tag = Tag::new(0x0020, 0x1206);
pub const NUMBER_OF_STUDY_RELATED_INSTANCES: Tag = Tag::new(0x0020, 0x1208);
pub const NUMBER_OF_SERIES_RELATED_INSTANCES: Tag = Tag::new(0x0020, 0x1209);
pub const SAMPLES_PER_PIXEL: Tag = Tag::new(0x0028, 0x0002);
pub const PHOTOMETRIC_INTERPRETATION: Tag = Tag::new(0x0028, 0x0004);
pub const PLANAR_CONFIGURATION: Tag = Tag::new(0x0028, 0x0006);
pub const NUMBER_OF_FRAMES: Tag = Tag::new(0x0028, 0x0008);
pub const ROWS: Tag = Tag::new(0x0028, 0x0010);
pub const COLUMNS: Tag = Tag::new(0x0028, 0x0011);
pub const BITS_ALLOCATED: Tag = Tag::new(0x0028, 0x0100);
pub const BITS_STORED: Tag = Tag::new(0x0028, 0x0101);
pub const PIXEL_REPRESENTATION: Tag = Tag::new(0x0028, 0x0103);
pub const WINDOW_CENTER: Tag = Tag::new(0x0028, 0x1050);
pub const WINDOW_WIDTH: Tag = Tag::new(0x0028, 0x1051);
pub const RESCALE_INTERCEPT: Tag = Tag::new(0x0028, 0x1052);
pub const RESCALE_SLOPE: Tag = Tag::new(0x0028, 0x1053);
pub const VOI_LUT_FUNCTION: Tag = Tag::new(0x0028, 0x1056);
pub const LUT_DESCRIPTOR: Tag = Tag::new(0x0028, 0x3002);
pub const EXTENDED_OFFSET_TABLE: Tag = Tag::new(0x7FE0, 0x0001);
pub const FLOAT_PIXEL_DATA: Tag = Tag::new(0x7FE0, 0x0008);
pub const DOUBLE_FLOAT_PIXEL_DATA: Tag = Tag::new(0x7FE0, 0x0009);
pub const PIXEL_DATA: Tag = Tag::new(0x7FE0, 0x0010);
// Items and delimiters (PS3.5 §7.5) carry no VR in any transfer syntax.
pub const ITEM: Tag = Tag::new(0xFFFE, 0xE000);
pub const ITEM_DELIMITATION: Tag = Tag::new(0xFFFE, 0xE00D);
pub const SEQUENCE_DELIMITATION: Tag = Tag::new(0xFFFE, 0xE0DD);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_tags_as_dicom_writes_them() {
        assert_eq!(PATIENT_NAME.to_string(), "(0010,0010)");
        assert_eq!(ITEM.to_string(), "(FFFE,E000)");
    }

    #[test]
    fn json_keys_are_eight_upper_case_hex_digits() {
        assert_eq!(Tag::new(0x0008, 0x0060).json_key(), "00080060");
        assert_eq!(Tag::new(0x7FE0, 0x0010).json_key(), "7FE00010");
        assert_eq!(Tag::new(0, 0).json_key(), "00000000");
        assert_eq!(Tag::new(0xFFFE, 0xE0DD).json_key(), "FFFEE0DD");
    }

    /// The tags QIDO-RS writes by their JSON keys, each named here under its keyword.
    #[test]
    fn names_the_tags_qido_writes() {
        let named = [
            (SPECIFIC_CHARACTER_SET, "00080005"),
            (SOP_CLASS_UID, "00080016"),
            (SOP_INSTANCE_UID, "00080018"),
            (INSTANCE_AVAILABILITY, "00080056"),
            (MODALITY, "00080060"),
            (TIMEZONE_OFFSET_FROM_UTC, "00080201"),
            (SERIES_DESCRIPTION, "0008103E"),
            (RETRIEVE_URL, "00081190"),
            (STUDY_INSTANCE_UID, "0020000D"),
            (SERIES_INSTANCE_UID, "0020000E"),
            (SERIES_NUMBER, "00200011"),
            (INSTANCE_NUMBER, "00200013"),
            (NUMBER_OF_SERIES_RELATED_INSTANCES, "00201209"),
            (NUMBER_OF_FRAMES, "00280008"),
            (ROWS, "00280010"),
            (COLUMNS, "00280011"),
            (BITS_ALLOCATED, "00280100"),
        ];
        for (tag, key) in named {
            assert_eq!(tag.json_key(), key, "{tag}");
        }
        assert!(named.windows(2).all(|pair| pair[0].0 < pair[1].0), "in tag order");
    }
}

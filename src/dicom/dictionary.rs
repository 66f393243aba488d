//! The data dictionary of implicit VR (PS3.6 §6): the VR of every attribute the standard registers, for the
//! whole-data-set reader, which finds no VR in an implicit VR file. The registry itself is
//! `dictionary.txt` beside this file (one fixed-width record per attribute, `ggggeeee VR`, sorted by tag),
//! and the repeating groups (overlays 60xx, curves 50xx, …) are [`REPEATERS`] here; both are written by
//! `tests/interop/dictionary.py` from the registry as pydicom ships it, and the interop suite checks they
//! still match. Invariants: the records are sorted by tag with no tag twice, and each VR is one of PS3.5
//! §6.2 or one of the three ambiguous ones ("US or SS", "OB or OW", "US or OW") whose choice is left to
//! the reader; a tag neither table holds has no VR here. It imports `tags`, and `element` in its tests only.

use super::tags::Tag;

/// The records of the registry: `ggggeeee VR` and a newline, twelve bytes each, sorted by tag. An ambiguous
/// VR is written in lower case: `xs` "US or SS", `ox` "OB or OW", `uo` "US or OW".
static RECORDS: &str = include_str!("dictionary.txt");
const RECORD_LEN: usize = 12;

/// The dictionary VR of a public attribute as PS3.6 writes it: two letters, or one of the ambiguous
/// "US or SS", "OB or OW" and "US or OW". `None` for an attribute the registry does not hold.
pub(crate) fn lookup(tag: Tag) -> Option<&'static str> {
    let key = (u32::from(tag.group) << 16) | u32::from(tag.element);
    let vr = exact(key).or_else(|| {
        let repeater = REPEATERS.iter().find(|(mask, value, _)| key & mask == *value)?;
        std::str::from_utf8(&repeater.2).ok()
    })?;
    Some(match vr {
        "xs" => "US or SS",
        "ox" => "OB or OW",
        "uo" => "US or OW",
        vr => vr,
    })
}

/// The VR of the record for `key`, found by binary search over the fixed-width records.
fn exact(key: u32) -> Option<&'static str> {
    let record_key = |i: usize| {
        let hex = RECORDS.get(i * RECORD_LEN..i * RECORD_LEN + 8)?;
        u32::from_str_radix(hex, 16).ok()
    };
    let (mut low, mut high) = (0, RECORDS.len() / RECORD_LEN);
    while low < high {
        let middle = low + (high - low) / 2;
        match record_key(middle)?.cmp(&key) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => return RECORDS.get(middle * RECORD_LEN + 9..middle * RECORD_LEN + 11),
        }
    }
    None
}

/// The repeating-group attributes of PS3.6 (PS3.5 §7.6): a tag whose bits under the mask equal the value
/// has the VR. Sorted as the registry sorts them; the first match wins.
#[rustfmt::skip]
static REPEATERS: [(u32, u32, [u8; 2]); 88] = [
    (0xFFFF_FF00, 0x0020_3100, *b"CS"), // SourceImageIDs
    (0xFFFF_FF0F, 0x0028_0400, *b"US"), // RowsForNthOrderCoefficients
    (0xFFFF_FF0F, 0x0028_0401, *b"US"), // ColumnsForNthOrderCoefficients
    (0xFFFF_FF0F, 0x0028_0402, *b"LO"), // CoefficientCoding
    (0xFFFF_FF0F, 0x0028_0403, *b"AT"), // CoefficientCodingPointers
    (0xFFFF_FF0F, 0x0028_0800, *b"CS"), // CodeLabel
    (0xFFFF_FF0F, 0x0028_0802, *b"US"), // NumberOfTables
    (0xFFFF_FF0F, 0x0028_0803, *b"AT"), // CodeTableLocation
    (0xFFFF_FF0F, 0x0028_0804, *b"US"), // BitsForCodeWord
    (0xFFFF_FF0F, 0x0028_0808, *b"AT"), // ImageDataLocation
    (0xFFFF_000F, 0x1000_0000, *b"US"), // EscapeTriplet
    (0xFFFF_000F, 0x1000_0001, *b"US"), // RunLengthTriplet
    (0xFFFF_000F, 0x1000_0002, *b"US"), // HuffmanTableSize
    (0xFFFF_000F, 0x1000_0003, *b"US"), // HuffmanTableTriplet
    (0xFFFF_000F, 0x1000_0004, *b"US"), // ShiftTableSize
    (0xFFFF_000F, 0x1000_0005, *b"US"), // ShiftTableTriplet
    (0xFFFF_0000, 0x1010_0000, *b"US"), // ZonalMap
    (0xFF00_FFFF, 0x5000_0005, *b"US"), // CurveDimensions
    (0xFF00_FFFF, 0x5000_0010, *b"US"), // NumberOfPoints
    (0xFF00_FFFF, 0x5000_0020, *b"CS"), // TypeOfData
    (0xFF00_FFFF, 0x5000_0022, *b"LO"), // CurveDescription
    (0xFF00_FFFF, 0x5000_0030, *b"SH"), // AxisUnits
    (0xFF00_FFFF, 0x5000_0040, *b"SH"), // AxisLabels
    (0xFF00_FFFF, 0x5000_0103, *b"US"), // DataValueRepresentation
    (0xFF00_FFFF, 0x5000_0104, *b"US"), // MinimumCoordinateValue
    (0xFF00_FFFF, 0x5000_0105, *b"US"), // MaximumCoordinateValue
    (0xFF00_FFFF, 0x5000_0106, *b"SH"), // CurveRange
    (0xFF00_FFFF, 0x5000_0110, *b"US"), // CurveDataDescriptor
    (0xFF00_FFFF, 0x5000_0112, *b"US"), // CoordinateStartValue
    (0xFF00_FFFF, 0x5000_0114, *b"US"), // CoordinateStepValue
    (0xFF00_FFFF, 0x5000_1001, *b"CS"), // CurveActivationLayer
    (0xFF00_FFFF, 0x5000_2000, *b"US"), // AudioType
    (0xFF00_FFFF, 0x5000_2002, *b"US"), // AudioSampleFormat
    (0xFF00_FFFF, 0x5000_2004, *b"US"), // NumberOfChannels
    (0xFF00_FFFF, 0x5000_2006, *b"UL"), // NumberOfSamples
    (0xFF00_FFFF, 0x5000_2008, *b"UL"), // SampleRate
    (0xFF00_FFFF, 0x5000_200A, *b"UL"), // TotalTime
    (0xFF00_FFFF, 0x5000_200C, *b"ox"), // AudioSampleData
    (0xFF00_FFFF, 0x5000_200E, *b"LT"), // AudioComments
    (0xFF00_FFFF, 0x5000_2500, *b"LO"), // CurveLabel
    (0xFF00_FFFF, 0x5000_2600, *b"SQ"), // CurveReferencedOverlaySequence
    (0xFF00_FFFF, 0x5000_2610, *b"US"), // CurveReferencedOverlayGroup
    (0xFF00_FFFF, 0x5000_3000, *b"ox"), // CurveData
    (0xFF00_FFFF, 0x6000_0010, *b"US"), // OverlayRows
    (0xFF00_FFFF, 0x6000_0011, *b"US"), // OverlayColumns
    (0xFF00_FFFF, 0x6000_0012, *b"US"), // OverlayPlanes
    (0xFF00_FFFF, 0x6000_0015, *b"IS"), // NumberOfFramesInOverlay
    (0xFF00_FFFF, 0x6000_0022, *b"LO"), // OverlayDescription
    (0xFF00_FFFF, 0x6000_0040, *b"CS"), // OverlayType
    (0xFF00_FFFF, 0x6000_0045, *b"LO"), // OverlaySubtype
    (0xFF00_FFFF, 0x6000_0050, *b"SS"), // OverlayOrigin
    (0xFF00_FFFF, 0x6000_0051, *b"US"), // ImageFrameOrigin
    (0xFF00_FFFF, 0x6000_0052, *b"US"), // OverlayPlaneOrigin
    (0xFF00_FFFF, 0x6000_0060, *b"CS"), // OverlayCompressionCode
    (0xFF00_FFFF, 0x6000_0061, *b"SH"), // OverlayCompressionOriginator
    (0xFF00_FFFF, 0x6000_0062, *b"SH"), // OverlayCompressionLabel
    (0xFF00_FFFF, 0x6000_0063, *b"CS"), // OverlayCompressionDescription
    (0xFF00_FFFF, 0x6000_0066, *b"AT"), // OverlayCompressionStepPointers
    (0xFF00_FFFF, 0x6000_0068, *b"US"), // OverlayRepeatInterval
    (0xFF00_FFFF, 0x6000_0069, *b"US"), // OverlayBitsGrouped
    (0xFF00_FFFF, 0x6000_0100, *b"US"), // OverlayBitsAllocated
    (0xFF00_FFFF, 0x6000_0102, *b"US"), // OverlayBitPosition
    (0xFF00_FFFF, 0x6000_0110, *b"CS"), // OverlayFormat
    (0xFF00_FFFF, 0x6000_0200, *b"US"), // OverlayLocation
    (0xFF00_FFFF, 0x6000_0800, *b"CS"), // OverlayCodeLabel
    (0xFF00_FFFF, 0x6000_0802, *b"US"), // OverlayNumberOfTables
    (0xFF00_FFFF, 0x6000_0803, *b"AT"), // OverlayCodeTableLocation
    (0xFF00_FFFF, 0x6000_0804, *b"US"), // OverlayBitsForCodeWord
    (0xFF00_FFFF, 0x6000_1001, *b"CS"), // OverlayActivationLayer
    (0xFF00_FFFF, 0x6000_1100, *b"US"), // OverlayDescriptorGray
    (0xFF00_FFFF, 0x6000_1101, *b"US"), // OverlayDescriptorRed
    (0xFF00_FFFF, 0x6000_1102, *b"US"), // OverlayDescriptorGreen
    (0xFF00_FFFF, 0x6000_1103, *b"US"), // OverlayDescriptorBlue
    (0xFF00_FFFF, 0x6000_1200, *b"US"), // OverlaysGray
    (0xFF00_FFFF, 0x6000_1201, *b"US"), // OverlaysRed
    (0xFF00_FFFF, 0x6000_1202, *b"US"), // OverlaysGreen
    (0xFF00_FFFF, 0x6000_1203, *b"US"), // OverlaysBlue
    (0xFF00_FFFF, 0x6000_1301, *b"IS"), // ROIArea
    (0xFF00_FFFF, 0x6000_1302, *b"DS"), // ROIMean
    (0xFF00_FFFF, 0x6000_1303, *b"DS"), // ROIStandardDeviation
    (0xFF00_FFFF, 0x6000_1500, *b"LO"), // OverlayLabel
    (0xFF00_FFFF, 0x6000_3000, *b"ox"), // OverlayData
    (0xFF00_FFFF, 0x6000_4000, *b"LT"), // OverlayComments
    (0xFF00_FFFF, 0x7F00_0010, *b"ox"), // VariablePixelData
    (0xFF00_FFFF, 0x7F00_0011, *b"US"), // VariableNextDataGroup
    (0xFF00_FFFF, 0x7F00_0020, *b"OW"), // VariableCoefficientsSDVN
    (0xFF00_FFFF, 0x7F00_0030, *b"OW"), // VariableCoefficientsSDHN
    (0xFF00_FFFF, 0x7F00_0040, *b"OW"), // VariableCoefficientsSDDN
];

#[cfg(test)]
mod tests {
    use super::super::element::KNOWN_VRS;
    use super::*;

    #[test]
    fn dictionary_is_sorted_and_well_formed() {
        assert_eq!(RECORDS.len() % RECORD_LEN, 0, "fixed-width records");
        let ambiguous = [*b"xs", *b"ox", *b"uo"];
        let mut previous = None;
        for record in RECORDS.as_bytes().chunks(RECORD_LEN) {
            let text = String::from_utf8_lossy(record);
            let key = u32::from_str_radix(&text[..8], 16).unwrap();
            assert!(previous < Some(key), "sorted, no tag twice: {text}");
            previous = Some(key);
            let vr = [record[9], record[10]];
            assert!(KNOWN_VRS.contains(&vr) || ambiguous.contains(&vr), "{text}");
            assert_eq!((record[8], record[11]), (b' ', b'\n'), "{text}");
        }
        for (mask, value, vr) in REPEATERS {
            assert_eq!(value & !mask, 0, "{value:08X}");
            assert!(KNOWN_VRS.contains(&vr) || ambiguous.contains(&vr), "{value:08X}");
        }
    }

    #[test]
    fn looks_up_public_and_repeating_group_attributes() {
        assert_eq!(lookup(Tag::new(0x0010, 0x0010)), Some("PN"));
        assert_eq!(lookup(Tag::new(0x0028, 0x0106)), Some("US or SS"));
        assert_eq!(lookup(Tag::new(0x6000, 0x3000)), Some("OB or OW"));
        assert_eq!(lookup(Tag::new(0x601E, 0x0010)), Some("US"), "any overlay group");
        assert_eq!(lookup(Tag::new(0x0008, 0x9999)), None);
        assert_eq!(lookup(Tag::new(0x0018, 0x9004)), Some("CS"), "ContentQualification, any public attribute");
        assert_eq!(lookup(Tag::new(0x0028, 0x3006)), Some("US or OW"));
        assert_eq!(lookup(Tag::new(0x5002, 0x3000)), Some("OB or OW"), "CurveData, a repeating group");
        assert_eq!(lookup(Tag::new(0xFFFE, 0xE000)), None, "items have no VR");
        assert_eq!(lookup(Tag::new(0x0000, 0x0000)), Some("UL"), "CommandGroupLength");
    }
}

//! Reading the header of a DICOM Part 10 file (PS3.10 §7.1) into the attributes the index records: the
//! File Meta Information and the top-level data set up to Pixel Data.
//!
//! Invariants: it never reads past the end of the bytes it is given and never panics on them; every
//! loop steps over at least one element header; a deflated data set is inflated into memory only as far
//! as the recorded attributes and never past [`MAX_INFLATED`] bytes, so no input can make it hang or
//! exhaust memory. It finds its way through a file with `element`, as the whole-data-set reader does,
//! and decodes values with `text`.

use super::charset::Charset;
use super::element::{
    Layout, Syntax, is_zero_padding, locate, read_element, read_file_meta, skip_value, sniff_little_endian,
};
use super::error::DicomError;
use super::inflate::{FIRST_INFLATE, Inflater, MAX_INFLATED, StreamEnd};
use super::tags::{
    ACCESSION_NUMBER, INSTANCE_NUMBER, ISSUER_OF_PATIENT_ID, ITEM, ITEM_DELIMITATION, MEDIA_STORAGE_SOP_CLASS_UID,
    MEDIA_STORAGE_SOP_INSTANCE_UID, MODALITY, NUMBER_OF_FRAMES, PATIENT_BIRTH_DATE, PATIENT_ID, PATIENT_NAME,
    PATIENT_SEX, PIXEL_DATA, REFERRING_PHYSICIAN_NAME, SEQUENCE_DELIMITATION, SERIES_DESCRIPTION, SERIES_INSTANCE_UID,
    SERIES_NUMBER, SOP_CLASS_UID, SOP_INSTANCE_UID, SPECIFIC_CHARACTER_SET, STUDY_DATE, STUDY_DESCRIPTION, STUDY_ID,
    STUDY_INSTANCE_UID, STUDY_TIME, TIMEZONE_OFFSET_FROM_UTC, TRANSFER_SYNTAX_UID, Tag,
};
use super::text::{decode_uid, parse_integer_string, trim_text};

/// The attributes of one instance that the index records.
/// Text values are decoded to UTF-8 and trimmed of DICOM padding; an absent attribute is empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    pub transfer_syntax: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub patient_id: String,
    pub issuer_of_patient_id: String,
    pub patient_name: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub study_date: String,
    pub study_time: String,
    pub timezone_offset: String,
    pub accession_number: String,
    pub study_id: String,
    pub study_description: String,
    pub referring_physician_name: String,
    pub series_number: Option<i64>,
    pub modality: String,
    pub series_description: String,
    pub instance_number: Option<i64>,
    pub number_of_frames: Option<u32>,
    /// Byte offset, from the start of the file, of the first byte of the Pixel Data value.
    pub pixel_data_offset: Option<u64>,
}

/// The SOP Class of a DICOMDIR (PS3.4 Annex F).
const MEDIA_STORAGE_DIRECTORY_STORAGE: &str = "1.2.840.10008.1.3.10";

/// The File Meta Information attributes whose values are kept.
const META_RECORDED: [Tag; 3] = [MEDIA_STORAGE_SOP_CLASS_UID, MEDIA_STORAGE_SOP_INSTANCE_UID, TRANSFER_SYNTAX_UID];

/// The top-level data set attributes whose values are kept for the header.
const RECORDED: [Tag; 22] = [
    SPECIFIC_CHARACTER_SET,
    SOP_CLASS_UID,
    SOP_INSTANCE_UID,
    STUDY_DATE,
    STUDY_TIME,
    ACCESSION_NUMBER,
    MODALITY,
    REFERRING_PHYSICIAN_NAME,
    TIMEZONE_OFFSET_FROM_UTC,
    STUDY_DESCRIPTION,
    SERIES_DESCRIPTION,
    PATIENT_NAME,
    PATIENT_ID,
    ISSUER_OF_PATIENT_ID,
    PATIENT_BIRTH_DATE,
    PATIENT_SEX,
    STUDY_INSTANCE_UID,
    SERIES_INSTANCE_UID,
    STUDY_ID,
    SERIES_NUMBER,
    INSTANCE_NUMBER,
    NUMBER_OF_FRAMES,
];

/// The last of [`RECORDED`] in tag order: a deflated data set is inflated only up to the element
/// after it, as the attributes of a data set come in ascending tag order (PS3.5 §7.1).
const LAST_RECORDED: Tag = NUMBER_OF_FRAMES;

/// Reads the File Meta Information and the top-level data set of a DICOM file up to Pixel Data.
///
/// Accepts a Part 10 file (preamble, "DICM", group 0002) in every transfer syntax, a meta group
/// without the preamble and prefix, and a bare little endian data set (no preamble, no meta group)
/// that starts with a group 0008 element, as older writers produced. A deflated data set is inflated
/// in memory as far as the recorded attributes; its Pixel Data offset is not recorded, as it would be
/// an offset in the inflated bytes, not in the file.
///
/// # Errors
///
/// Returns a [`DicomError`] when the bytes are not DICOM, are truncated or malformed before Pixel
/// Data, hold a deflated data set that does not inflate, or lack the SOP Instance, Study Instance or
/// Series Instance UID.
pub fn read_header(bytes: &[u8]) -> Result<Header, DicomError> {
    let layout = locate(bytes)?;
    let mut found = Found::default();
    if !layout.meta.is_empty() {
        read_file_meta(bytes, layout.meta.start, layout.meta_syntax, |tag, value| {
            if META_RECORDED.contains(&tag) {
                found.record(tag, value);
            }
        })?;
    }
    if layout.deflated {
        return read_deflated(bytes, &layout, &found);
    }
    read_data_set(bytes, layout.data_set_start, layout.syntax, Until::PixelData, &mut found)?;
    build_header(&found, layout.transfer_syntax)
}

/// Inflates the deflated data set that follows the meta group a little at a time, until the
/// recorded attributes have been read or the stream ends; `meta` holds the meta group's values.
fn read_deflated(bytes: &[u8], layout: &Layout, meta: &Found<'_>) -> Result<Header, DicomError> {
    let start = layout.data_set_start;
    let deflate_error = |problem: String| DicomError::Deflate { offset: start, problem };
    let mut inflater = Inflater::new(bytes.get(start..).unwrap_or_default());
    let mut want = FIRST_INFLATE;
    loop {
        inflater.fill(want).map_err(deflate_error)?;
        let inflated = inflater.out.as_slice();
        let mut found = meta.clone();
        // Some writers deflate an implicit VR data set; the inflated bytes are sniffed like plain ones.
        let outcome = read_data_set(inflated, 0, sniff_little_endian(inflated, 0), Until::Recorded, &mut found);
        match (outcome, inflater.end) {
            (Ok(Stop::PastRecorded | Stop::PixelData), _) | (Ok(Stop::End), Some(StreamEnd::Complete)) => {
                return build_header(&found, layout.transfer_syntax.clone());
            }
            (Ok(Stop::End) | Err(DicomError::Truncated { .. }), Some(StreamEnd::InputUsedUp)) => {
                return Err(deflate_error(format!(
                    "truncated: the compressed stream ends after {} inflated bytes, before its last block",
                    inflated.len()
                )));
            }
            // Only part of the stream is inflated yet: inflate more and read again.
            (Ok(Stop::End) | Err(DicomError::Truncated { .. }), None) => {}
            (Err(error), _) => return Err(DicomError::InInflated(Box::new(error))),
        }
        if want >= MAX_INFLATED {
            return Err(deflate_error(format!(
                "it inflates to more than {} MiB before the attributes the index reads end",
                MAX_INFLATED >> 20
            )));
        }
        want = want.saturating_mul(2).min(MAX_INFLATED);
    }
}

/// The raw values of the recorded attributes, borrowed from the file, and where Pixel Data starts.
#[derive(Default, Clone)]
struct Found<'a> {
    values: Vec<(Tag, &'a [u8])>,
    pixel_data_offset: Option<u64>,
}

impl<'a> Found<'a> {
    /// Keeps the first value seen for a tag; a repeated tag is invalid and is ignored.
    fn record(&mut self, tag: Tag, value: &'a [u8]) {
        if self.get(tag).is_none() {
            self.values.push((tag, value));
        }
    }

    fn get(&self, tag: Tag) -> Option<&'a [u8]> {
        self.values.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
    }
}

/// Where [`read_data_set`] may stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// At Pixel Data, whose offset is recorded once a defined length is found to fit in the bytes.
    PixelData,
    /// At the first top-level element past [`LAST_RECORDED`]: all that a deflated data set needs.
    Recorded,
}

/// Where [`read_data_set`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    PixelData,
    PastRecorded,
    /// At the end of the bytes, or at zero padding that runs to the end.
    End,
}

/// Reads the top-level data set from `start`, recording the wanted attributes, and stops as `until`
/// says or at the end of the bytes, whichever comes first.
fn read_data_set<'a>(
    bytes: &'a [u8],
    start: usize,
    syntax: Syntax,
    until: Until,
    found: &mut Found<'a>,
) -> Result<Stop, DicomError> {
    let mut pos = start;
    while pos < bytes.len() {
        if is_zero_padding(bytes, pos)? {
            return Ok(Stop::End);
        }
        let element = read_element(bytes, pos, syntax)?;
        if until == Until::Recorded && element.tag > LAST_RECORDED {
            return Ok(Stop::PastRecorded);
        }
        pos = match element.tag {
            PIXEL_DATA => {
                // A defined length can be checked cheaply; an undefined one (encapsulated pixel
                // data, PS3.5 §A.4) is left for whoever reads the fragments.
                if !element.has_undefined_length() {
                    element.value_end(bytes)?;
                }
                found.pixel_data_offset = Some(element.value_start as u64);
                return Ok(Stop::PixelData);
            }
            // Some writers leave a stray delimiter after a sequence; stepping over it is harmless.
            ITEM_DELIMITATION | SEQUENCE_DELIMITATION => element.value_start,
            ITEM => {
                return Err(DicomError::Malformed {
                    tag: element.tag,
                    offset: pos,
                    problem: "an item outside any sequence",
                });
            }
            tag if RECORDED.contains(&tag) && !element.has_undefined_length() => {
                let value = element.value(bytes)?;
                found.record(tag, value);
                element.value_start + value.len()
            }
            _ => skip_value(bytes, &element, syntax, 0)?,
        };
    }
    Ok(Stop::End)
}

/// Decodes the recorded values into a `Header` and checks the identifying UIDs are present.
fn build_header(found: &Found<'_>, transfer_syntax: String) -> Result<Header, DicomError> {
    let charset = Charset::from_value(found.get(SPECIFIC_CHARACTER_SET));
    let uid = |tag| found.get(tag).map(decode_uid).unwrap_or_default();
    // The meta group repeats the SOP class and instance (PS3.10 §7.1), a fallback for data sets
    // that omit them.
    let uid_or = |tag, fallback| match uid(tag) {
        value if value.is_empty() => uid(fallback),
        value => value,
    };
    // PN, LO, SH and similar VRs use the Specific Character Set; DA, TM and CS are restricted to
    // the default repertoire, which Latin-1 decodes identically. Each value of a multi-valued string is
    // decoded on its own (code extensions return to value 1's designations at each `\`, PS3.5
    // §6.1.2.5.3) and loses its own padding; the backslashes between them stay.
    let decode = |tag, person_name: bool| {
        let value = found.get(tag).map(trim_text).unwrap_or_default();
        let values: Vec<String> = value
            .split(|&b| b == b'\\')
            .map(trim_text)
            .map(|v| if person_name { charset.decode_person_name(v) } else { charset.decode(v) })
            .collect();
        values.join("\\")
    };
    let text = |tag| decode(tag, false);
    let name = |tag| decode(tag, true);
    let code = |tag| Charset::LATIN1.decode(found.get(tag).map(trim_text).unwrap_or_default());
    let integer = |tag| found.get(tag).and_then(parse_integer_string);

    let header = Header {
        transfer_syntax,
        sop_class_uid: uid_or(SOP_CLASS_UID, MEDIA_STORAGE_SOP_CLASS_UID),
        sop_instance_uid: uid_or(SOP_INSTANCE_UID, MEDIA_STORAGE_SOP_INSTANCE_UID),
        study_instance_uid: uid(STUDY_INSTANCE_UID),
        series_instance_uid: uid(SERIES_INSTANCE_UID),
        patient_id: text(PATIENT_ID),
        issuer_of_patient_id: text(ISSUER_OF_PATIENT_ID),
        patient_name: name(PATIENT_NAME),
        patient_birth_date: code(PATIENT_BIRTH_DATE),
        patient_sex: code(PATIENT_SEX),
        study_date: code(STUDY_DATE),
        study_time: code(STUDY_TIME),
        timezone_offset: text(TIMEZONE_OFFSET_FROM_UTC),
        accession_number: text(ACCESSION_NUMBER),
        study_id: text(STUDY_ID),
        study_description: text(STUDY_DESCRIPTION),
        referring_physician_name: name(REFERRING_PHYSICIAN_NAME),
        series_number: integer(SERIES_NUMBER),
        modality: code(MODALITY),
        series_description: text(SERIES_DESCRIPTION),
        instance_number: integer(INSTANCE_NUMBER),
        number_of_frames: integer(NUMBER_OF_FRAMES).and_then(|n| u32::try_from(n).ok()),
        pixel_data_offset: found.pixel_data_offset,
    };

    if header.sop_class_uid == MEDIA_STORAGE_DIRECTORY_STORAGE {
        return Err(DicomError::Directory);
    }
    require(&header.sop_instance_uid, "SOP Instance UID", SOP_INSTANCE_UID)?;
    require(&header.study_instance_uid, "Study Instance UID", STUDY_INSTANCE_UID)?;
    require(&header.series_instance_uid, "Series Instance UID", SERIES_INSTANCE_UID)?;
    Ok(header)
}

/// The index cannot place an instance without its three UIDs, so their absence is an error.
fn require(value: &str, attribute: &'static str, tag: Tag) -> Result<(), DicomError> {
    if value.is_empty() { Err(DicomError::Missing { attribute, tag }) } else { Ok(()) }
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;

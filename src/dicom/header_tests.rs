//! The unit tests of `header`: [`read_header`] on byte fixtures in every transfer syntax and layout it
//! accepts, on deflated data sets, and on truncated, malformed and mutated files. Invariants: each
//! fixture is a list of elements, one per line, commented with its tag, VR and length, and no test
//! reads a file from disk.

use super::super::fixtures::*;
use super::super::transfer_syntax::{
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
};
use super::*;

/// The three identifying UIDs, explicit VR little endian.
fn uids_ex() -> Vec<u8> {
    [
        ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
        ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
    ]
    .concat()
}

fn explicit_little_endian_file() -> Vec<u8> {
    [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        ex(0x0008, 0x0005, b"CS", b"ISO_IR 100"), // (0008,0005) CS len 10: Character Set
        ex(0x0008, 0x0016, b"UI", CT_IMAGE_STORAGE), // (0008,0016) UI len 26: SOP Class
        ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        ex(0x0008, 0x0020, b"DA", b"20240131"),   // (0008,0020) DA len 8: Study Date
        ex(0x0008, 0x0030, b"TM", b"101500.25 "), // (0008,0030) TM len 10: Study Time
        ex(0x0008, 0x0050, b"SH", b"ACC-1 "),     // (0008,0050) SH len 6: Accession Number
        ex(0x0008, 0x0060, b"CS", b"CT"),         // (0008,0060) CS len 2: Modality
        ex(0x0008, 0x0090, b"PN", b"Who^Doctor"), // (0008,0090) PN len 10: Referring Phys.
        ex(0x0008, 0x0201, b"SH", b"+0100 "),     // (0008,0201) SH len 6: Timezone Offset
        ex(0x0008, 0x1030, b"LO", b" Head CT "),  // (0008,1030) LO len 9, odd: Study Descr.
        ex(0x0008, 0x103E, b"LO", b"Axial 5mm "), // (0008,103E) LO len 10: Series Descr.
        // (0010,0010) PN len 8: Patient Name, written out byte by byte to check the builder.
        vec![0x10, 0x00, 0x10, 0x00, b'P', b'N', 0x08, 0x00],
        b"Doe^Jane".to_vec(),
        ex(0x0010, 0x0020, b"LO", b"P-42"),        // (0010,0020) LO len 4: Patient ID
        ex(0x0010, 0x0021, b"LO", b"HOSP"),        // (0010,0021) LO len 4: Issuer of Patient ID
        ex(0x0010, 0x0030, b"DA", b"19700101"),    // (0010,0030) DA len 8: Patient Birth Date
        ex(0x0010, 0x0040, b"CS", b"F "),          // (0010,0040) CS len 2: Patient Sex
        ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),   // (0020,000D) UI len 8: Study UID
        ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"), // (0020,000E) UI len 10: Series UID
        ex(0x0020, 0x0010, b"SH", b"S1"),          // (0020,0010) SH len 2: Study ID
        ex(0x0020, 0x0011, b"IS", b"3 "),          // (0020,0011) IS len 2: Series Number
        ex(0x0020, 0x0013, b"IS", b"17"),          // (0020,0013) IS len 2: Instance Number
        ex(0x0028, 0x0010, b"US", &[2, 0]),        // (0028,0010) US len 2: Rows, not recorded
        // (7FE0,0010) OW len 8: Pixel Data, 2x2 16-bit pixels, written out byte by byte.
        vec![0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 0x08, 0x00, 0x00, 0x00],
        vec![1, 0, 2, 0, 3, 0, 4, 0],
    ]
    .concat()
}

fn implicit_little_endian_file() -> Vec<u8> {
    [
        part10(IMPLICIT_VR_LITTLE_ENDIAN),
        im(0x0008, 0x0016, CT_IMAGE_STORAGE), // (0008,0016) UI len 26: SOP Class
        im(0x0008, 0x0018, b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        im(0x0008, 0x0060, b"MR"),            // (0008,0060) CS len 2: Modality
        im(0x0010, 0x0010, b"Roe^Richard "),  // (0010,0010) PN len 12: Patient Name
        im(0x0020, 0x000D, b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
        im(0x0020, 0x000E, b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
        im(0x0028, 0x0008, b"12"),            // (0028,0008) IS len 2: Number of Frames
        im(0x7FE0, 0x0010, &[0; 4]),          // (7FE0,0010) OW len 4: Pixel Data
    ]
    .concat()
}

#[test]
fn reads_explicit_vr_little_endian_part10_file() {
    let file = explicit_little_endian_file();
    let header = read_header(&file).unwrap();
    let expected = Header {
        transfer_syntax: EXPLICIT_VR_LITTLE_ENDIAN.into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
        sop_instance_uid: "1.2.3.4.5.6".into(),
        study_instance_uid: "1.2.3.4".into(),
        series_instance_uid: "1.2.3.4.5".into(),
        patient_id: "P-42".into(),
        issuer_of_patient_id: "HOSP".into(),
        patient_name: "Doe^Jane".into(),
        patient_birth_date: "19700101".into(),
        patient_sex: "F".into(),
        study_date: "20240131".into(),
        study_time: "101500.25".into(),
        timezone_offset: "+0100".into(),
        accession_number: "ACC-1".into(),
        study_id: "S1".into(),
        study_description: "Head CT".into(),
        referring_physician_name: "Who^Doctor".into(),
        series_number: Some(3),
        modality: "CT".into(),
        series_description: "Axial 5mm".into(),
        instance_number: Some(17),
        number_of_frames: None,
        pixel_data_offset: Some(file.len() as u64 - 8),
    };
    assert_eq!(header, expected);
}

#[test]
fn reads_implicit_vr_little_endian_part10_file() {
    let file = implicit_little_endian_file();
    let header = read_header(&file).unwrap();
    assert_eq!(header.transfer_syntax, IMPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");
    assert_eq!(header.modality, "MR");
    assert_eq!(header.patient_name, "Roe^Richard");
    assert_eq!(header.number_of_frames, Some(12));
    assert_eq!(header.pixel_data_offset, Some(file.len() as u64 - 4));
}

#[test]
fn reads_explicit_vr_big_endian_file() {
    let file = [
        part10(EXPLICIT_VR_BIG_ENDIAN),                 // meta group stays little endian
        ex_be(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        ex_be(0x0010, 0x0010, b"PN", b"Big^Endian"),    // (0010,0010) PN len 10: Patient Name
        ex_be(0x0018, 0x1030, b"SQ", &[]),              // (0018,1030) SQ len 0: empty sequence
        ex_be(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
        ex_be(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
        ex_be(0x0020, 0x0013, b"IS", b"260 "),          // (0020,0013) IS len 4: Instance Number
        ex_be(0x0028, 0x0010, b"US", &[0x01, 0x00]),    // (0028,0010) US len 2: Rows = 256
        ex_be(0x7FE0, 0x0010, b"OW", &[0, 1, 0, 2]),    // (7FE0,0010) OW len 4: Pixel Data
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.transfer_syntax, EXPLICIT_VR_BIG_ENDIAN);
    assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");
    assert_eq!(header.patient_name, "Big^Endian");
    assert_eq!(header.series_instance_uid, "1.2.3.4.5");
    assert_eq!(header.instance_number, Some(260));
    assert_eq!(header.pixel_data_offset, Some(file.len() as u64 - 4));
}

#[test]
fn records_offset_of_encapsulated_pixel_data() {
    let before_pixel_data = [
        part10(JPEG_BASELINE),
        uids_ex(),
        ex(0x0028, 0x0008, b"IS", b"2 "), // (0028,0008) IS len 2: Number of Frames
    ]
    .concat();
    let file = [
        before_pixel_data.clone(),
        ex_undefined(0x7FE0, 0x0010, b"OB"), // (7FE0,0010) OB undefined: Pixel Data
        item(0),                             // (FFFE,E000) len 0: empty Basic Offset Table
        item(4),                             // (FFFE,E000) len 4: first fragment
        vec![0xFF, 0xD8, 0xFF, 0xD9],        // JPEG SOI, EOI
        seq_end(),                           // (FFFE,E0DD) len 0: end of fragments
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.transfer_syntax, JPEG_BASELINE);
    assert_eq!(header.number_of_frames, Some(2));
    // The value starts after tag (4), VR (2), reserved (2) and length (4).
    assert_eq!(header.pixel_data_offset, Some(before_pixel_data.len() as u64 + 12));
}

#[test]
fn reads_bare_implicit_data_set_without_preamble() {
    let file = [
        im(0x0008, 0x0016, CT_IMAGE_STORAGE), // (0008,0016) UI len 26: SOP Class
        im(0x0008, 0x0018, b"9.8.7.6\0"),     // (0008,0018) UI len 8: SOP Instance
        im(0x0010, 0x0020, b"ID7 "),          // (0010,0020) LO len 4: Patient ID
        im(0x0020, 0x000D, b"9.8\0"),         // (0020,000D) UI len 4: Study UID
        im(0x0020, 0x000E, b"9.8.7\0"),       // (0020,000E) UI len 6: Series UID
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.transfer_syntax, IMPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(header.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
    assert_eq!(header.sop_instance_uid, "9.8.7.6");
    assert_eq!(header.patient_id, "ID7");
    assert_eq!(header.study_instance_uid, "9.8");
    assert_eq!(header.series_instance_uid, "9.8.7");
    assert_eq!(header.pixel_data_offset, None);
}

#[test]
fn skips_nested_undefined_length_sequences() {
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        uids_ex(),
        ex_undefined(0x0008, 0x1115, b"SQ"), // (0008,1115) SQ undefined: Referenced Series
        item(u32::MAX),                      //   (FFFE,E000) undefined: item 1
        ex(0x0010, 0x0010, b"PN", b"Nested"), //     (0010,0010) PN len 6: not top level
        ex_undefined(0x0008, 0x1140, b"SQ"), //     (0008,1140) SQ undefined: nested
        item(u32::MAX),                      //       (FFFE,E000) undefined: item
        ex(0x0008, 0x1155, b"UI", b"1.9\0"), //         (0008,1155) UI len 4: Ref. SOP
        ex(0x7FE0, 0x0010, b"OB", &[0; 2]),  //         (7FE0,0010) OB len 2: icon pixels
        item_end(),                          //       (FFFE,E00D): end of item
        item(12),                            //       (FFFE,E000) len 12: defined length
        ex(0x0008, 0x1150, b"UI", b"1.8\0"), //         (0008,1150) UI len 4: Ref. Class
        seq_end(),                           //     (FFFE,E0DD): end of nested sequence
        item_end(),                          //   (FFFE,E00D): end of item 1
        item(u32::MAX),                      //   (FFFE,E000) undefined: item 2, empty
        item_end(),                          //   (FFFE,E00D): end of item 2
        seq_end(),                           // (FFFE,E0DD): end of Referenced Series
        ex(0x0010, 0x0010, b"PN", b"Top^Level "), // (0010,0010) PN len 10: Patient Name
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.patient_name, "Top^Level");
    assert_eq!(header.pixel_data_offset, None);
}

#[test]
fn skips_defined_length_sequence() {
    let inner = [
        item(12),                            // (FFFE,E000) len 12: item
        ex(0x0008, 0x1150, b"UI", b"1.8\0"), //   (0008,1150) UI len 4: Ref. SOP Class
    ]
    .concat();
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        ex(0x0008, 0x0060, b"CS", b"US"),  // (0008,0060) CS len 2: Modality
        ex(0x0008, 0x1110, b"SQ", &inner), // (0008,1110) SQ len 20: Ref. Study
        uids_ex(),
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.modality, "US");
    assert_eq!(header.study_instance_uid, "1.2.3.4");
}

#[test]
fn reads_un_of_undefined_length_as_implicit_vr() {
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        ex_undefined(0x0009, 0x1010, b"UN"),         // (0009,1010) UN undefined: private SQ
        item(u32::MAX),                              //   (FFFE,E000) undefined: item
        im(0x0009, 0x1020, b"private"),              //     (0009,1020) implicit len 7 (odd)
        im_undefined(0x0009, 0x1030),                //     (0009,1030) implicit SQ undefined
        item(u32::MAX),                              //       (FFFE,E000) undefined: item
        im(0x0009, 0x1040, b"x "),                   //         (0009,1040) implicit len 2
        item_end(),                                  //       (FFFE,E00D): end of item
        seq_end(),                                   //     (FFFE,E0DD): end of sequence
        item_end(),                                  //   (FFFE,E00D): end of item
        seq_end(),                                   // (FFFE,E0DD): end of UN
        ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
        ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.series_instance_uid, "1.2.3.4.5");
}

#[test]
fn decodes_latin1_name() {
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        ex(0x0008, 0x0005, b"CS", b"ISO_IR 100"), // (0008,0005) CS len 10: Latin-1
        uids_ex(),
        ex(0x0010, 0x0010, b"PN", b"M\xFCller^Hans "), // (0010,0010) PN len 12: "Müller^Hans"
    ]
    .concat();
    assert_eq!(read_header(&file).unwrap().patient_name, "Müller^Hans");
}

#[test]
fn decodes_utf8_name() {
    let name = "Dvořák^Antonín"; // 16 bytes in UTF-8
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        ex(0x0008, 0x0005, b"CS", b"ISO_IR 192"), // (0008,0005) CS len 10: UTF-8
        uids_ex(),
        ex(0x0010, 0x0010, b"PN", name.as_bytes()), // (0010,0010) PN len 16: Patient Name
    ]
    .concat();
    assert_eq!(read_header(&file).unwrap().patient_name, name);
}

#[test]
fn default_character_set_maps_high_bytes_as_latin1_and_keeps_backslashes() {
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        uids_ex(),
        ex(0x0010, 0x0010, b"PN", b"S\xE9n^A\\Alias"), // (0010,0010) PN len 12: two values
    ]
    .concat();
    assert_eq!(read_header(&file).unwrap().patient_name, "Sén^A\\Alias");
}

#[test]
fn parses_padded_integer_strings() {
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        uids_ex(),
        ex(0x0020, 0x0011, b"IS", b" +12 "), // (0020,0011) IS len 5: Series Number, padded
        ex(0x0020, 0x0013, b"IS", b"-4\\5 "), // (0020,0013) IS len 5: Instance Number
        ex(0x0028, 0x0008, b"IS", b"x1"),    // (0028,0008) IS len 2: Frames, not a number
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.series_number, Some(12));
    assert_eq!(header.instance_number, Some(-4));
    assert_eq!(header.number_of_frames, None);
    assert_eq!(parse_integer_string(b"7\0"), Some(7));
    assert_eq!(parse_integer_string(b""), None);
}

#[test]
fn truncated_file_names_the_element() {
    let mut file = explicit_little_endian_file();
    let name_at = find(&file, b"Doe^Jane") - 8;
    file.truncate(name_at + 11); // inside the value of (0010,0010)
    let error = read_header(&file).unwrap_err();
    assert_eq!(error, DicomError::Truncated { tag: Some(PATIENT_NAME), offset: name_at });
    assert_eq!(error.to_string(), format!("truncated in element (0010,0010) at byte {name_at}"));
}

#[test]
fn truncated_inside_sequence_names_the_open_item() {
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        uids_ex(),
        ex_undefined(0x0008, 0x1115, b"SQ"), // (0008,1115) SQ undefined, never closed
        item(u32::MAX),                      //   (FFFE,E000) undefined: item, never closed
    ]
    .concat();
    let message = read_header(&file).unwrap_err().to_string();
    assert!(message.starts_with("truncated in element (FFFE,E000)"), "{message}");
}

#[test]
fn rejects_non_dicom_bytes() {
    let error = read_header(b"%PDF-1.7 this is not an image").unwrap_err();
    assert_eq!(error, DicomError::NotDicom);
    assert!(error.to_string().contains("no DICM prefix at byte 128"));
    assert_eq!(read_header(&[]).unwrap_err(), DicomError::NotDicom);
    assert_eq!(read_header(&[0u8; 200]).unwrap_err(), DicomError::NotDicom);
}

#[test]
fn rejects_missing_sop_instance_uid() {
    let explicit_le = b"1.2.840.10008.1.2.1\0";
    let file = [
        vec![0; 128],
        b"DICM".to_vec(),
        ex(0x0002, 0x0010, b"UI", explicit_le),    // (0002,0010) UI len 20: syntax
        ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),   // (0020,000D) UI len 8: Study UID
        ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"), // (0020,000E) UI len 10: Series UID
    ]
    .concat();
    let error = read_header(&file).unwrap_err();
    assert_eq!(error.to_string(), "missing SOP Instance UID (0008,0018)");
}

#[test]
fn names_a_dicomdir_for_what_it_is() {
    let file = [
        vec![0; 128],
        b"DICM".to_vec(),
        ex(0x0002, 0x0002, b"UI", b"1.2.840.10008.1.3.10"), // (0002,0002) UI len 20: DICOMDIR
        ex(0x0002, 0x0003, b"UI", b"1.2.3\0"),              // (0002,0003) UI len 6
        ex(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0"), // (0002,0010) UI len 20: syntax
        ex(0x0004, 0x1130, b"CS", b"DISK"),                 // (0004,1130) CS len 4: File-set ID
    ]
    .concat();
    assert_eq!(read_header(&file).unwrap_err(), DicomError::Directory);
}

#[test]
fn falls_back_to_meta_information_uids() {
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"), // (0020,000D) UI len 8: Study UID
        ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"), // (0020,000E) UI len 10: Series UID
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
    assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");
}

/// The data set of a small deflated CT instance, before deflating.
fn deflatable_data_set() -> Vec<u8> {
    [
        ex(0x0008, 0x0005, b"CS", b"ISO_IR 192"),        // (0008,0005) CS len 10: UTF-8
        ex(0x0008, 0x0016, b"UI", CT_IMAGE_STORAGE),     // (0008,0016) UI len 26: SOP Class
        ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"),     // (0008,0018) UI len 12: SOP Instance
        ex(0x0008, 0x0060, b"CS", b"CT"),                // (0008,0060) CS len 2: Modality
        ex_undefined(0x0008, 0x1115, b"SQ"),             // (0008,1115) SQ undefined: Ref. Series
        item(u32::MAX),                                  //   (FFFE,E000) undefined: item
        ex(0x0020, 0x000E, b"UI", b"9.9\0"),             //     (0020,000E) UI len 4: not top level
        item_end(),                                      //   (FFFE,E00D): end of item
        seq_end(),                                       // (FFFE,E0DD): end of sequence
        ex(0x0010, 0x0010, b"PN", "Ærø^Åse".as_bytes()), // (0010,0010) PN len 10: UTF-8 name
        ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),         // (0020,000D) UI len 8: Study UID
        ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),       // (0020,000E) UI len 10: Series UID
        ex(0x0028, 0x0008, b"IS", b"3 "),                // (0028,0008) IS len 2: Number of Frames
        ex(0x0028, 0x0010, b"US", &[2, 0]),              // (0028,0010) US len 2: Rows = 2
        ex(0x7FE0, 0x0010, b"OW", &[0; 24]),             // (7FE0,0010) OW len 24: Pixel Data
    ]
    .concat()
}

/// A deflate stream of `prefix`, then `mib` MiB of zeros, only a few KiB long: one sync-flushed
/// block of 1 MiB of zeros, made once the window holds only zeros, is repeated (its matches
/// then only reach back over zeros), and an empty final stored block ends the stream.
fn deflate_then_zeros(prefix: &[u8], mib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut compress = Compress::new(Compression::best(), false);
    let mut sync = |input: &[u8]| {
        let mut out = Vec::with_capacity(input.len() + 1024);
        let before = compress.total_in();
        compress.compress_vec(input, &mut out, FlushCompress::Sync).unwrap();
        assert_eq!(compress.total_in() - before, input.len() as u64, "the whole input is compressed");
        out
    };
    let zeros = vec![0; 1 << 20];
    let mut stream = [sync(prefix), sync(&zeros)].concat();
    let block = sync(&zeros);
    for _ in 2..mib {
        stream.extend_from_slice(&block);
    }
    stream.extend_from_slice(&[0x01, 0x00, 0x00, 0xFF, 0xFF]); // final stored block, length 0
    stream
}

#[test]
fn reads_deflated_explicit_vr_little_endian_file() {
    let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&deflatable_data_set())].concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.transfer_syntax, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(header.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
    assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");
    assert_eq!(header.study_instance_uid, "1.2.3.4");
    assert_eq!(header.series_instance_uid, "1.2.3.4.5");
    assert_eq!(header.patient_name, "Ærø^Åse");
    assert_eq!(header.modality, "CT");
    assert_eq!(header.number_of_frames, Some(3));
    // An offset into the inflated bytes would mean nothing in the file.
    assert_eq!(header.pixel_data_offset, None);
}

#[test]
fn reads_deflated_data_set_without_pixel_data_to_the_end_of_the_stream() {
    let data_set = [
        ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
        ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
    ]
    .concat();
    let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&data_set)].concat();
    assert_eq!(read_header(&file).unwrap().series_instance_uid, "1.2.3.4.5");
}

#[test]
fn reads_deflated_data_set_in_a_zlib_wrapper() {
    use std::io::Write;
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(&deflatable_data_set()).unwrap();
    let stream = zlib.finish().unwrap();
    assert_eq!(stream[0], 0x78, "a zlib header starts the stream");
    let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), stream].concat();
    assert_eq!(read_header(&file).unwrap().sop_instance_uid, "1.2.3.4.5.6");
}

#[test]
fn reads_deflated_implicit_data_set_mislabelled_as_explicit() {
    let data_set = [
        im(0x0008, 0x0018, b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        im(0x0020, 0x000D, b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
        im(0x0020, 0x000E, b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
    ]
    .concat();
    let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&data_set)].concat();
    assert_eq!(read_header(&file).unwrap().study_instance_uid, "1.2.3.4");
}

#[test]
fn inflates_further_when_the_recorded_attributes_lie_deeper() {
    let data_set = [
        ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        ex(0x0009, 0x1010, b"OB", &vec![7; 300_000]), // (0009,1010) OB len 300000: private blob
        ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
        ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
    ]
    .concat();
    assert!(data_set.len() > 4 * FIRST_INFLATE, "the first tries must fall short");
    let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&data_set)].concat();
    assert_eq!(read_header(&file).unwrap().series_instance_uid, "1.2.3.4.5");
}

#[test]
fn stops_inflating_after_the_recorded_attributes() {
    let prefix = [
        ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
        ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
        // (0029,1010) OB len 0x7FFFFFFE: a private blob that the zeros below only begin.
        [&[0x29, 0x00, 0x10, 0x10][..], b"OB", &[0, 0], &0x7FFF_FFFEu32.to_le_bytes()].concat(),
    ]
    .concat();
    let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate_then_zeros(&prefix, 200)].concat();
    assert!(file.len() < 1 << 20, "the fixture is small: {} bytes", file.len());
    assert_eq!(read_header(&file).unwrap().series_instance_uid, "1.2.3.4.5");
}

#[test]
fn refuses_a_deflate_bomb_before_the_recorded_attributes() {
    let prefix = [
        ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        // (0009,1010) OB len 0x7FFFFFFE: a private blob of zeros before the Study UID.
        [&[0x09, 0x00, 0x10, 0x10][..], b"OB", &[0, 0], &0x7FFF_FFFEu32.to_le_bytes()].concat(),
    ]
    .concat();
    let mib = (MAX_INFLATED >> 20) + 8;
    let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate_then_zeros(&prefix, mib)].concat();
    let error = read_header(&file).unwrap_err();
    assert_eq!(
        error.to_string(),
        "deflated data set at byte 242: it inflates to more than 64 MiB before the attributes the index reads end"
    );
}

#[test]
fn reports_a_truncated_deflate_stream() {
    let mut file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&deflatable_data_set())].concat();
    file.truncate(file.len() - 40);
    let message = read_header(&file).unwrap_err().to_string();
    assert!(message.starts_with("deflated data set at byte 242: truncated: the compressed stream ends"), "{message}");
}

#[test]
fn reports_a_corrupt_deflate_stream() {
    // A block type of 3 is reserved (RFC 1951 §3.2.3): 0x07 is BFINAL = 1, BTYPE = 11.
    let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), vec![0x07, 0x00, 0x00, 0x00]].concat();
    let message = read_header(&file).unwrap_err().to_string();
    assert!(message.starts_with("deflated data set at byte 242: the compressed stream is corrupt"), "{message}");
}

#[test]
fn names_the_inflated_offset_of_a_malformed_element() {
    let data_set = [
        ex(0x0008, 0x0060, b"CS", b"CT"), // (0008,0060) CS len 2: Modality
        ex(0x0008, 0x0070, b"lo", b"X "), // (0008,0070) "lo" len 2: not a VR
    ]
    .concat();
    let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&data_set)].concat();
    let error = read_header(&file).unwrap_err();
    assert_eq!(
        error.to_string(),
        "in the inflated data set: malformed element (0008,0070) at byte 10: the VR is not two upper-case letters"
    );
}

#[test]
fn rejects_sequences_nested_too_deeply() {
    let mut file = [part10(EXPLICIT_VR_LITTLE_ENDIAN), uids_ex()].concat();
    for _ in 0..100 {
        file.extend(ex_undefined(0x0008, 0x1115, b"SQ")); // (0008,1115) SQ undefined
        file.extend(item(u32::MAX)); //   (FFFE,E000) undefined item
    }
    let message = read_header(&file).unwrap_err().to_string();
    assert!(message.contains("nested too deeply"), "{message}");
}

#[test]
fn rejects_invalid_explicit_vr() {
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        ex(0x0008, 0x0060, b"CS", b"CT"), // (0008,0060) CS len 2: Modality
        im(0x0008, 0x0018, b"1.2\0"),     // (0008,0018) implicit len 4: wrong encoding
    ]
    .concat();
    let message = read_header(&file).unwrap_err().to_string();
    assert!(message.starts_with("malformed element (0008,0018)"), "{message}");
}

#[test]
fn reads_implicit_data_set_mislabelled_as_explicit() {
    let file = [
        part10(JPEG_BASELINE),                // says explicit VR little endian
        im(0x0008, 0x0018, b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        im(0x0020, 0x000D, b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
        im(0x0020, 0x000E, b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.transfer_syntax, JPEG_BASELINE);
    assert_eq!(header.series_instance_uid, "1.2.3.4.5");
}

#[test]
fn reads_bare_explicit_data_set_without_preamble() {
    let file = [
        ex(0x0008, 0x0060, b"CS", b"OT"), // (0008,0060) CS len 2: Modality
        uids_ex(),
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(header.modality, "OT");
    assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");
}

#[test]
fn reads_every_encapsulated_transfer_syntax_as_explicit_little_endian() {
    for syntax in [
        "1.2.840.10008.1.2.4.50",  // JPEG Baseline
        "1.2.840.10008.1.2.4.51",  // JPEG Extended
        "1.2.840.10008.1.2.4.57",  // JPEG Lossless
        "1.2.840.10008.1.2.4.70",  // JPEG Lossless SV1
        "1.2.840.10008.1.2.4.80",  // JPEG-LS Lossless
        "1.2.840.10008.1.2.4.81",  // JPEG-LS Near-Lossless
        "1.2.840.10008.1.2.4.90",  // JPEG 2000 Lossless
        "1.2.840.10008.1.2.4.91",  // JPEG 2000
        "1.2.840.10008.1.2.4.201", // HTJ2K Lossless
        "1.2.840.10008.1.2.4.100", // MPEG2 Main Profile
        "1.2.840.10008.1.2.5",     // RLE Lossless
        "1.2.840.10008.1.2.1.98",  // Encapsulated Uncompressed Explicit VR Little Endian
    ] {
        let before_pixel_data = [part10(syntax), uids_ex()].concat();
        let file = [
            before_pixel_data.clone(),
            ex_undefined(0x7FE0, 0x0010, b"OB"), // (7FE0,0010) OB undefined: Pixel Data
            item(0),                             // (FFFE,E000) len 0: Basic Offset Table
            item(2),                             // (FFFE,E000) len 2: a fragment
            vec![0xAB, 0xCD],                    //   fragment bytes
            seq_end(),                           // (FFFE,E0DD): end of fragments
        ]
        .concat();
        let header = read_header(&file).unwrap_or_else(|e| panic!("{syntax}: {e}"));
        assert_eq!(header.transfer_syntax, syntax);
        assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6", "{syntax}");
        assert_eq!(header.pixel_data_offset, Some(before_pixel_data.len() as u64 + 12), "{syntax}");
    }
}

#[test]
fn reads_meta_group_without_preamble() {
    let with_preamble = [part10(EXPLICIT_VR_LITTLE_ENDIAN), uids_ex()].concat();
    let file = with_preamble[132..].to_vec(); // (0002,0000) first: no preamble, no "DICM"
    let header = read_header(&file).unwrap();
    assert_eq!(header.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(header.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2"); // from (0002,0002)
    assert_eq!(header.series_instance_uid, "1.2.3.4.5");
}

#[test]
fn reads_implicit_meta_group_and_meta_group_without_transfer_syntax() {
    let implicit_meta = [
        vec![0; 128],
        b"DICM".to_vec(),
        im(0x0002, 0x0003, b"1.2.3.4.5.6\0"), // (0002,0003) implicit len 12: SOP Inst.
        im(0x0002, 0x0010, b"1.2.840.10008.1.2\0"), // (0002,0010) implicit len 18: syntax
        im(0x0020, 0x000D, b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
        im(0x0020, 0x000E, b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
    ]
    .concat();
    let header = read_header(&implicit_meta).unwrap();
    assert_eq!(header.transfer_syntax, IMPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");

    let no_syntax = [
        vec![0; 128],
        b"DICM".to_vec(),
        ex(0x0002, 0x0003, b"UI", b"1.2.3.4.5.6\0"), // (0002,0003) UI len 12: SOP Instance
        im(0x0020, 0x000D, b"1.2.3.4\0"),            // (0020,000D) implicit len 8: Study UID
        im(0x0020, 0x000E, b"1.2.3.4.5\0"),          // (0020,000E) implicit len 10: Series
    ]
    .concat();
    let header = read_header(&no_syntax).unwrap();
    assert_eq!(header.transfer_syntax, IMPLICIT_VR_LITTLE_ENDIAN, "sniffed from the data set");
    assert_eq!(header.series_instance_uid, "1.2.3.4.5");
}

#[test]
fn bytes_starting_like_a_meta_group_but_not_explicit_are_not_dicom() {
    assert_eq!(read_header(&[0x02, 0x00, 0x10, 0x00, 0x01, 0x02, 0x03, 0x04]).unwrap_err(), DicomError::NotDicom);
}

#[test]
fn zero_padding_after_the_last_element_ends_the_data_set() {
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        uids_ex(),
        ex(0x0040, 0xA040, b"CS", b"TEXT"), // (0040,A040) CS len 4: Value Type, an SR
        vec![0; 37],                        // zeros to a block size, odd
    ]
    .concat();
    assert_eq!(read_header(&file).unwrap().sop_instance_uid, "1.2.3.4.5.6");
    let trailing_padding = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        uids_ex(),
        ex(0xFFFC, 0xFFFC, b"OB", &[0; 16]), // (FFFC,FFFC) OB len 16: Data Set Trailing Padding
    ]
    .concat();
    assert_eq!(read_header(&trailing_padding).unwrap().sop_instance_uid, "1.2.3.4.5.6");
}

/// Broke: a run of zeros followed by anything else was scanned to its end once per 8-byte element,
/// which made a few megabytes take hours.
#[test]
fn zeros_not_up_to_the_end_are_refused_at_once() {
    let mut file = [
        part10(IMPLICIT_VR_LITTLE_ENDIAN),
        im(0x0008, 0x0018, b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
    ]
    .concat();
    // In implicit VR, zeros read as (0000,0000) elements of length 0, 8 bytes each.
    let zeros_at = file.len();
    file.extend(vec![0; 8 << 20]);
    file.push(1);
    let started = std::time::Instant::now();
    let error = read_header(&file).unwrap_err();
    assert_eq!(
        error,
        DicomError::Malformed {
            tag: Tag::new(0, 0),
            offset: zeros_at,
            problem: "a zero tag where a data element belongs, not followed by zeros only"
        }
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn reads_undefined_length_sequences_in_big_endian() {
    let be_item = |length: u32| [&[0xFF, 0xFE, 0xE0, 0x00][..], &length.to_be_bytes()].concat();
    let file = [
        part10(EXPLICIT_VR_BIG_ENDIAN),
        ex_be(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        [&[0x00, 0x08, 0x11, 0x15][..], b"SQ", &[0, 0], &[0xFF; 4]].concat(), // (0008,1115) SQ undef.
        be_item(u32::MAX),                              //   (FFFE,E000) undefined: item
        ex_be(0x0020, 0x000E, b"UI", b"9.9\0"),         //     (0020,000E) UI len 4: nested
        vec![0xFF, 0xFE, 0xE0, 0x0D, 0, 0, 0, 0],       //   (FFFE,E00D): end of item
        be_item(10),                                    //   (FFFE,E000) len 10: defined item
        ex_be(0x0008, 0x0060, b"CS", b"MR"),            //     (0008,0060) CS len 2
        vec![0xFF, 0xFE, 0xE0, 0xDD, 0, 0, 0, 0],       // (FFFE,E0DD): end of sequence
        ex_be(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
        ex_be(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.series_instance_uid, "1.2.3.4.5");
    assert_eq!(header.modality, "", "a nested Modality is not the instance's");
}

#[test]
fn reads_explicit_private_sequences_nested_in_private_sequences() {
    let file = [
        part10(EXPLICIT_VR_LITTLE_ENDIAN),
        uids_ex(),
        ex(0x0029, 0x0010, b"LO", b"ACME 1.0"), // (0029,0010) LO len 8: Private Creator
        ex_undefined(0x0029, 0x1001, b"SQ"),    // (0029,1001) SQ undefined: private
        item(u32::MAX),                         //   (FFFE,E000) undefined: item
        ex_undefined(0x0029, 0x1002, b"SQ"),    //     (0029,1002) SQ undefined: private
        item(u32::MAX),                         //       (FFFE,E000) undefined: item
        ex(0x0029, 0x1003, b"OB", &[1, 2, 3]),  //         (0029,1003) OB len 3 (odd)
        ex(0x0029, 0x1004, b"SQ", &[]),         //         (0029,1004) SQ len 0: empty
        item_end(),                             //       (FFFE,E00D)
        seq_end(),                              //     (FFFE,E0DD)
        item_end(),                             //   (FFFE,E00D)
        seq_end(),                              // (FFFE,E0DD)
        ex(0x0040, 0x0254, b"LO", b"Chest "),   // (0040,0254) LO len 6: after the sequences
        ex(0x7FE0, 0x0010, b"OB", &[0; 2]),     // (7FE0,0010) OB len 2: Pixel Data
    ]
    .concat();
    let header = read_header(&file).unwrap();
    assert_eq!(header.pixel_data_offset, Some(file.len() as u64 - 2));
}

#[test]
fn decodes_multi_valued_strings_and_character_sets() {
    let file = |charset: &[u8], name: &[u8]| {
        [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0005, b"CS", charset), // (0008,0005) CS: Specific Character Set
            uids_ex(),
            ex(0x0008, 0x103E, b"LO", b"AX \\ T1 "), // (0008,103E) LO len 8: two values, padded
            ex(0x0010, 0x0010, b"PN", name),         // (0010,0010) PN: Patient Name
        ]
        .concat()
    };
    let header = read_header(&file(b"ISO_IR 100", b"Gr\xFCn^Eva")).unwrap();
    assert_eq!(header.series_description, "AX\\T1", "each value trimmed");
    assert_eq!(header.patient_name, "Grün^Eva");
    // Code extensions: the first value is empty (default repertoire), escapes are dropped.
    let name = b"\x1B-AGr\xFCn^Eva\x1B(B";
    assert_eq!(read_header(&file(b"\\ISO 2022 IR 100", name)).unwrap().patient_name, "Grün^Eva");
    assert_eq!(read_header(&file(b"ISO 2022 IR 6\\ISO 2022 IR 100", name)).unwrap().patient_name, "Grün^Eva");
    // UTF-8 named second still wins.
    let utf8 = "Grün^Eva".as_bytes();
    assert_eq!(read_header(&file(b"ISO_IR 100\\ISO_IR 192", utf8)).unwrap().patient_name, "Grün^Eva");
    // UTF-8 written under the default repertoire is read as UTF-8.
    assert_eq!(read_header(&file(b"ISO_IR 6", utf8)).unwrap().patient_name, "Grün^Eva");
    assert_eq!(read_header(&file(b"", utf8)).unwrap().patient_name, "Grün^Eva");
}

#[test]
fn survives_random_mutations() {
    let fixtures = [
        explicit_little_endian_file(),
        implicit_little_endian_file(),
        [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex_undefined(0x0009, 0x1010, b"UN"), // (0009,1010) UN undefined
            item(u32::MAX),                      //   (FFFE,E000) undefined item
            im_undefined(0x0009, 0x1030),        //     (0009,1030) implicit SQ undefined
            item(4),                             //       (FFFE,E000) len 4
            vec![1, 2, 3, 4],                    //       item contents
            seq_end(),                           //     (FFFE,E0DD)
            item_end(),                          //   (FFFE,E00D)
            seq_end(),                           // (FFFE,E0DD)
            uids_ex(),
            ex_undefined(0x7FE0, 0x0010, b"OB"), // (7FE0,0010) OB undefined: Pixel Data
        ]
        .concat(),
        [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&deflatable_data_set())].concat(),
    ];
    mutate_each(&fixtures, 8000, |file| {
        let _ = read_header(file);
    });
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).unwrap()
}

//! Rendered frames and thumbnails (docs/api.md, DICOMweb details: Rendered images; PS3.18 §8.3.5, §9.5) against the real binary:
//! PNG of every sample series, thumbnails scaled down, the window and viewport parameters, `Accept`, and a
//! compressed frame refused. The study token and the patient in front of them are tested with every other
//! resource (`Paths::all` in tests/it/sample.rs, tests/it/ehr.rs).

use std::ffi::OsString;

use crate::clients::{OPEN, write_config};
use crate::frames::{element, encapsulated_file};
use crate::harness::*;
use crate::sample::*;

/// A PNG decoded: width, height, color type, and its 8-bit samples.
fn decoded(reply: &Reply, what: &str) -> (u32, u32, png::ColorType, Vec<u8>) {
    assert_eq!(reply.status, 200, "{what}: {}", reply.text());
    assert_eq!(reply.header("content-type"), Some("image/png"), "{what}: Content-Type");
    assert_eq!(reply.header("cache-control"), Some("private"), "{what}: Cache-Control");
    assert!(reply.body.starts_with(b"\x89PNG\r\n\x1a\n"), "{what}: no PNG signature");
    let mut reader = png::Decoder::new(std::io::Cursor::new(reply.body.clone()))
        .read_info()
        .unwrap_or_else(|e| panic!("{what}: not a PNG: {e}"));
    let mut samples = vec![0; reader.output_buffer_size().unwrap_or_default()];
    let info = reader.next_frame(&mut samples).unwrap_or_else(|e| panic!("{what}: its image does not decode: {e}"));
    samples.truncate(info.buffer_size());
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{what}: bit depth");
    (info.width, info.height, info.color_type, samples)
}

fn number(object: &serde_json::Value, tag: &str) -> u32 {
    first(object, tag).as_u64().unwrap_or_else(|| panic!("no number {tag} in {object}")) as u32
}

/// The resources of the first instance of the `series`-th series of `study` (a constant of the sample data),
/// under its address among `open`.
fn first_instance<'a>(
    index: &'a IndexFile,
    open: &'a std::collections::BTreeMap<String, String>,
    study: &'a str,
    series: usize,
) -> Paths<'a> {
    let se = &index.study(study).series[series];
    Paths { address: address_of(open, study), study, series: &se.uid, instance: &se.instances[0].uid }
}

#[test]
fn the_first_instance_of_every_sample_series_renders_as_png_and_its_thumbnail_is_smaller() {
    let index = IndexFile::sample();
    let server = sample_server();
    for (study, address) in open_addresses(&server) {
        for se in &index.study(&study).series {
            let paths = Paths { address: &address, study: &study, series: &se.uid, instance: &se.instances[0].uid };
            let what = format!("series {} ({})", se.uid, se.instances[0].transfer_syntax);
            let meta = dicom_json(&get(&paths.instance("/metadata"), &[]), &what).remove(0);
            let (rows, columns) = (number(&meta, "00280010"), number(&meta, "00280011"));

            let (width, height, color, samples) = decoded(&get(&paths.instance("/rendered"), &[]), &what);
            assert_eq!((width, height), (columns, rows), "{what}: the PNG's size is the frame's");
            assert_eq!(color, png::ColorType::Grayscale, "{what}: the sample's images are grayscale");
            let (lo, hi) = samples.iter().fold((255, 0), |(lo, hi), &s| (s.min(lo), s.max(hi)));
            assert!(hi > lo, "{what}: the rendered image is uniform ({lo})");

            let frame_one = get(&paths.instance("/frames/1/rendered"), &[]);
            assert!(frame_one.body == get(&paths.instance("/rendered"), &[]).body, "{what}: frame 1 is the first");

            let (w, h, _, _) = decoded(&get(&paths.instance("/thumbnail?viewport=32,32"), &[]), &what);
            assert!(w <= 32 && h <= 32 && w.max(h) == 32, "{what}: a 32×32 thumbnail of {columns}×{rows} is {w}×{h}");
            let (w, h, _, _) = decoded(&get(&paths.instance("/thumbnail"), &[]), &what);
            assert!(w <= 128 && h <= 128, "{what}: the default thumbnail is {w}×{h}");
        }
    }
}

#[test]
fn frames_of_a_multi_frame_instance_render_apart() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let paths = first_instance(&index, &open, CT_ABDOMEN, 1);
    let one = decoded(&get(&paths.instance("/frames/1/rendered"), &[]), "frame 1");
    let two = decoded(&get(&paths.instance("/frames/2/rendered"), &[]), "frame 2");
    assert!(one.3 != two.3, "frames 1 and 2 rendered alike");
    assert_eq!(get(&paths.instance("/frames/99/rendered"), &[]).status, 404, "a frame out of range");
    for bad in ["0", "1,2", "x"] {
        assert_eq!(get(&paths.instance(&format!("/frames/{bad}/rendered")), &[]).status, 400, "frames/{bad}/rendered");
    }
}

#[test]
fn the_window_parameter_changes_the_image_and_bad_parameters_are_400() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let paths = first_instance(&index, &open, CT_CHEST, 0);
    let plain = get(&paths.instance("/rendered"), &[]);
    let (_, _, _, plain_samples) = decoded(&plain, "no window");
    for window in ["0,1", "100,50,linear-exact", "100,50,sigmoid"] {
        let windowed = get(&paths.instance(&format!("/rendered?window={window}")), &[]);
        let (_, _, _, samples) = decoded(&windowed, &format!("window={window}"));
        assert!(samples != plain_samples, "window={window} rendered as the stored window");
        assert!(windowed.header("etag") != plain.header("etag"), "window={window}: the same ETag as without");
    }
    // A threshold at 0.5: every modality value is black or white.
    let (_, _, _, threshold) = decoded(&get(&paths.instance("/rendered?window=0.5,1"), &[]), "threshold");
    assert!(threshold.iter().all(|&s| s == 0 || s == 255), "window=0.5,1 is not a threshold");
    for bad in [
        "window=40",
        "window=40,0",
        "window=a,b",
        "window=1,2,cubic",
        "viewport=0,0",
        "viewport=64",
        "viewport=1,2,3,4,5,6",
    ] {
        let reply = get(&paths.instance(&format!("/rendered?{bad}")), &[]);
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
    }
}

#[test]
fn only_png_is_made_and_the_accept_parameter_overrides_the_header() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let paths = first_instance(&index, &open, CT_CHEST, 0);
    for accept in ["image/png", "image/*", "*/*", "image/jpeg, image/png;q=0.1"] {
        let reply = get(&paths.instance("/thumbnail"), &[("Accept", accept)]);
        assert_eq!(reply.status, 200, "Accept: {accept}: {}", reply.text());
    }
    // OHIF asks its thumbnails as JPEG: PNG is the image it gets.
    for accept in ["image/jpeg", "image/gif"] {
        let reply = get(&paths.instance(&format!("/thumbnail?accept={accept}")), &[]);
        assert_eq!((reply.status, reply.media_type().as_str()), (200, "image/png"), "accept={accept}");
    }
    for accept in ["application/dicom", "image/png;q=0"] {
        let reply = get(&paths.instance("/thumbnail"), &[("Accept", accept)]);
        assert_eq!(reply.status, 406, "Accept: {accept}");
        let reply = get(&paths.instance(&format!("/rendered?accept={}", accept.replace(';', "%3B"))), &[]);
        assert_eq!(reply.status, 406, "accept={accept}");
    }
    let reply = get(&paths.instance("/rendered?accept=image/png"), &[("Accept", "image/jpeg")]);
    assert_eq!(reply.status, 200, "accept=image/png with Accept: image/jpeg: the parameter decides");
    assert_eq!(get(&paths.instance("/rendered"), &[("Accept", "image")]).status, 400, "a malformed Accept");
}

/// A native 8-bit RGB file of 200 columns × 100 rows, planar configuration 1: red rising along each row,
/// green along each column, blue 255 everywhere.
fn native_rgb_file(sop: &str, series: &str) -> Vec<u8> {
    const SC: &[u8] = b"1.2.840.10008.5.1.4.1.1.7"; // Secondary Capture Image Storage
    const EXPLICIT: &[u8] = b"1.2.840.10008.1.2.1";
    let (columns, rows) = (200u16, 100u16);
    let meta = [
        element(0x0002, 0x0001, b"OB", &[0, 1]), // (0002,0001) OB: File Meta Information Version
        element(0x0002, 0x0002, b"UI", SC),      // (0002,0002) UI: Media Storage SOP Class UID
        element(0x0002, 0x0003, b"UI", sop.as_bytes()), // (0002,0003) UI: Media Storage SOP Instance UID
        element(0x0002, 0x0010, b"UI", EXPLICIT), // (0002,0010) UI: Transfer Syntax UID
        element(0x0002, 0x0012, b"UI", b"2.25.1"), // (0002,0012) UI: Implementation Class UID
    ]
    .concat();
    let group_length = element(0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes());
    let count = usize::from(columns) * usize::from(rows);
    let red = (0..count).map(|i| (i % usize::from(columns)) as u8);
    let green = (0..count).map(|i| (i / usize::from(columns)) as u8 * 2);
    let pixels: Vec<u8> = red.chain(green).chain(std::iter::repeat_n(255, count)).collect();
    let data_set = [
        element(0x0008, 0x0016, b"UI", SC),                   // (0008,0016) UI: SOP Class UID
        element(0x0008, 0x0018, b"UI", sop.as_bytes()),       // (0008,0018) UI: SOP Instance UID
        element(0x0008, 0x0060, b"CS", b"OT"),                // (0008,0060) CS: Modality
        element(0x0010, 0x0010, b"PN", b"Encapsulated^Test"), // (0010,0010) PN: Patient's Name
        element(0x0010, 0x0020, b"LO", b"MRN-ENC"),           // (0010,0020) LO: Patient ID
        element(0x0020, 0x000D, b"UI", b"2.25.77.1"),         // (0020,000D) UI: Study Instance UID
        element(0x0020, 0x000E, b"UI", series.as_bytes()),    // (0020,000E) UI: Series Instance UID
        element(0x0020, 0x0013, b"IS", b"2"),                 // (0020,0013) IS: Instance Number
        element(0x0028, 0x0002, b"US", &3u16.to_le_bytes()),  // (0028,0002) US: Samples per Pixel = 3
        element(0x0028, 0x0004, b"CS", b"RGB"),               // (0028,0004) CS: Photometric Interpretation
        element(0x0028, 0x0006, b"US", &1u16.to_le_bytes()),  // (0028,0006) US: Planar Configuration = 1
        element(0x0028, 0x0010, b"US", &rows.to_le_bytes()),  // (0028,0010) US: Rows = 100
        element(0x0028, 0x0011, b"US", &columns.to_le_bytes()), // (0028,0011) US: Columns = 200
        element(0x0028, 0x0100, b"US", &8u16.to_le_bytes()),  // (0028,0100) US: Bits Allocated = 8
        element(0x0028, 0x0101, b"US", &8u16.to_le_bytes()),  // (0028,0101) US: Bits Stored = 8
        element(0x0028, 0x0102, b"US", &7u16.to_le_bytes()),  // (0028,0102) US: High Bit = 7
        element(0x0028, 0x0103, b"US", &0u16.to_le_bytes()),  // (0028,0103) US: Pixel Representation = 0
        element(0x7FE0, 0x0010, b"OB", &pixels),              // (7FE0,0010) OB: Pixel Data, R plane, G, B
    ]
    .concat();
    [vec![0; 128], b"DICM".to_vec(), group_length, meta, data_set].concat()
}

#[test]
fn planar_rgb_renders_in_colour_and_compressed_frames_are_406() {
    const SERIES: &str = "2.25.77.2";
    const JPEG: &str = "2.25.77.3.1";
    const RGB: &str = "2.25.77.3.2";
    let dir = TempDir::new("rendered");
    dir.write("dicom/jpeg.dcm", encapsulated_file(JPEG, SERIES, 1, &[], &[b"\xFF\xD8not-really-jpeg\xFF\xD9"]));
    dir.write("dicom/rgb.dcm", native_rgb_file(RGB, SERIES));
    let run = run_cli(&[OsString::from("index"), dir.path().join("dicom").into()], dir.path());
    assert_eq!(run.code(), Some(0), "indexing the files\n{run}");
    let config = write_config(&dir, &dir.path().join("index.toml"), OPEN);
    let server = Launch::new(&config).start();
    let found = addresses(&server, "/open/fhir/ImagingStudy");
    let [(study, address)] = &found[..] else { panic!("one study expected, found {found:?}") };
    let instance = |sop: &str, rest: &str| format!("{address}/studies/{study}/series/{SERIES}/instances/{sop}{rest}");

    let (width, height, color, samples) = decoded(&get(&instance(RGB, "/rendered"), &[]), "RGB");
    assert_eq!((width, height, color), (200, 100, png::ColorType::Rgb), "RGB: size and colour");
    // Row 10, column 30: red 30, green 20, blue 255, interleaved in the PNG.
    let at = (10 * 200 + 30) * 3;
    assert_eq!(&samples[at..at + 3], &[30, 20, 255], "RGB: the planes interleaved");
    let (width, height, _, _) = decoded(&get(&instance(RGB, "/thumbnail"), &[]), "RGB thumbnail");
    assert_eq!((width, height), (128, 64), "RGB: the thumbnail fits 128×128 with the frame's proportions");

    for rest in ["/rendered", "/frames/1/rendered", "/thumbnail"] {
        let reply = get(&instance(JPEG, rest), &[]);
        assert_eq!(reply.status, 406, "a JPEG frame{rest}: {}", reply.text());
        assert!(reply.text().contains("compressed"), "a JPEG frame{rest}: the reason: {}", reply.text());
    }
}

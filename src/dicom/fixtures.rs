//! Encoders for annotated byte fixtures, shared by the unit tests of this folder (compiled for tests
//! only). Each returns the encoded bytes of one element so that a fixture reads as a list of elements,
//! one per line. Invariants: lengths are computed from the value, and the comments on the fixture lines
//! state them so the layout can be checked by eye; nothing here reads a file, and nothing is taken from
//! the readers under test, so that a fixture cannot share a reader's mistake. It imports no sibling.

/// JPEG Baseline (Process 1), an encapsulated transfer syntax that no reader here treats specially.
pub(crate) const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";

/// The SOP Class UID of CT Image Storage, padded to an even length.
pub(crate) const CT_IMAGE_STORAGE: &[u8] = b"1.2.840.10008.5.1.4.1.1.2\0";

/// The explicit VRs with 2 reserved bytes and a 4-byte length (PS3.5 Table 7.1-1), written out here
/// rather than taken from `element`, which the fixtures test.
const LONG_LENGTH_VRS: [&[u8; 2]; 13] =
    [b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"];

/// An explicit VR element; the VR decides between the 2-byte and the 4-byte length form.
pub(crate) fn explicit(big_endian: bool, group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let u16_bytes = |v: u16| {
        if big_endian { v.to_be_bytes() } else { v.to_le_bytes() }
    };
    let length = u32::try_from(value.len()).unwrap();
    let mut out = [u16_bytes(group), u16_bytes(element)].concat();
    out.extend_from_slice(vr);
    if LONG_LENGTH_VRS.contains(&vr) {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&if big_endian { length.to_be_bytes() } else { length.to_le_bytes() });
    } else {
        out.extend_from_slice(&u16_bytes(u16::try_from(length).unwrap()));
    }
    out.extend_from_slice(value);
    out
}

/// An explicit VR little endian element.
pub(crate) fn ex(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    explicit(false, group, element, vr, value)
}

/// An explicit VR big endian element.
pub(crate) fn ex_be(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    explicit(true, group, element, vr, value)
}

/// An implicit VR little endian element.
pub(crate) fn im(group: u16, element: u16, value: &[u8]) -> Vec<u8> {
    let length = u32::try_from(value.len()).unwrap();
    [&group.to_le_bytes()[..], &element.to_le_bytes(), &length.to_le_bytes(), value].concat()
}

/// The header of an explicit VR little endian element of undefined length (no value follows).
pub(crate) fn ex_undefined(group: u16, element: u16, vr: &[u8; 2]) -> Vec<u8> {
    [&group.to_le_bytes()[..], &element.to_le_bytes(), vr, &[0, 0], &[0xFF; 4]].concat()
}

/// The header of an implicit VR little endian element of undefined length.
pub(crate) fn im_undefined(group: u16, element: u16) -> Vec<u8> {
    [&group.to_le_bytes()[..], &element.to_le_bytes(), &[0xFF; 4]].concat()
}

/// A little endian item header of the given length (`u32::MAX` for undefined).
pub(crate) fn item(length: u32) -> Vec<u8> {
    [&[0xFE, 0xFF, 0x00, 0xE0][..], &length.to_le_bytes()].concat()
}

/// The little endian Item Delimitation Item (FFFE,E00D).
pub(crate) fn item_end() -> Vec<u8> {
    vec![0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]
}

/// The little endian Sequence Delimitation Item (FFFE,E0DD).
pub(crate) fn seq_end() -> Vec<u8> {
    vec![0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]
}

/// The raw deflate stream (RFC 1951, no zlib header) of `data`, as PS3.5 §A.5 stores a deflated
/// data set after the meta group.
pub(crate) fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// The 128-byte preamble, "DICM" and a File Meta Information group for `transfer_syntax`.
pub(crate) fn part10(transfer_syntax: &str) -> Vec<u8> {
    let mut ts = transfer_syntax.as_bytes().to_vec();
    if ts.len() % 2 == 1 {
        ts.push(0);
    }
    let group = [
        ex(0x0002, 0x0001, b"OB", &[0x00, 0x01]), // (0002,0001) OB len 2: meta version 1
        ex(0x0002, 0x0002, b"UI", CT_IMAGE_STORAGE), // (0002,0002) UI len 26: SOP Class
        ex(0x0002, 0x0003, b"UI", b"1.2.3.4.5.6\0"), // (0002,0003) UI len 12: SOP Instance
        ex(0x0002, 0x0010, b"UI", &ts),           // (0002,0010) UI: transfer syntax
    ]
    .concat();
    let group_length = u32::try_from(group.len()).unwrap().to_le_bytes();
    [
        vec![0; 128],                             // preamble
        b"DICM".to_vec(),                         // prefix
        ex(0x0002, 0x0000, b"UL", &group_length), // (0002,0000) UL len 4: group length
        group,
    ]
    .concat()
}

/// Flips 1 to 4 bytes and sometimes truncates, `rounds` times over the fixtures, and hands each
/// mutant to `check`. xorshift64 keeps it deterministic without a dependency.
pub(crate) fn mutate_each(fixtures: &[Vec<u8>], rounds: usize, mut check: impl FnMut(&[u8])) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..rounds {
        let mut file = fixtures[round % fixtures.len()].clone();
        for _ in 0..1 + next() % 4 {
            let at = usize::try_from(next() % file.len() as u64).unwrap();
            // Mostly random bytes, sometimes 0xFF or 0x00 to make undefined or empty lengths.
            file[at] = match next() % 4 {
                0 => 0xFF,
                1 => 0x00,
                _ => next() as u8,
            };
        }
        if next() % 5 == 0 {
            let keep = usize::try_from(next() % file.len() as u64).unwrap();
            file.truncate(keep);
        }
        check(&file);
    }
}

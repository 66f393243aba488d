//! The index file's text, written by hand in the layout the indexer has always written and `fast` reads: the
//! toml crate's writer builds a whole document first, which for a million instances takes seconds and
//! gigabytes, while this writes the tables into blocks of about a megabyte, with no formatting machinery on
//! the way, made on two threads and written to the file in their order as they come (a million instances
//! make about 270 MB of text).
//!
//! Invariant: the toml crate reads back exactly the tables written (the tests check it against its own
//! writer's text, and with every kind of character a value may hold).

use std::io;
use std::sync::mpsc;

use super::file::{IndexFile, Instance, Series, Study};

/// The first line of every index file.
pub const HEADING: &str = "# Written by `smart-imaging index`; docs/index.md describes the layout.\n";

/// How much text is gathered before it is handed to the file.
const CHUNK: usize = 1 << 20;

/// Writes the text of `file`, the heading first, to `sink`: the studies are cut into blocks of about a
/// megabyte of text, which two threads make by turns (the first the first block, the third, ...; the second
/// the others) while this one writes each in turn, so that the kernel's copy of one block into the file goes
/// on while the next ones are made.
pub fn write(file: &IndexFile, sink: &mut impl io::Write) -> io::Result<()> {
    write_in_blocks(file, sink, CHUNK)
}

/// `write`, in blocks of about `chunk` bytes.
fn write_in_blocks(file: &IndexFile, sink: &mut impl io::Write, chunk: usize) -> io::Result<()> {
    const MAKERS: usize = 2;
    let mut head = Vec::new();
    head.extend_from_slice(HEADING.as_bytes());
    string(&mut head, "written", &file.written);
    sink.write_all(&head)?;
    let blocks = blocks(&file.studies, chunk);
    std::thread::scope(|scope| {
        let mut makers = Vec::new();
        for first in 0..MAKERS {
            let (full, made) = mpsc::sync_channel::<Vec<u8>>(2);
            let (back, empties) = mpsc::channel::<Vec<u8>>();
            let blocks = &blocks;
            scope.spawn(move || {
                for block in blocks.iter().skip(first).step_by(MAKERS) {
                    let mut out = empties.try_recv().unwrap_or_else(|_| Vec::with_capacity(chunk + chunk / 4));
                    out.clear();
                    for study in *block {
                        tables(&mut out, study);
                    }
                    if full.send(out).is_err() {
                        return;
                    }
                }
            });
            makers.push((made, back));
        }
        for at in 0..blocks.len() {
            let (made, back) = &makers[at % MAKERS];
            let block = made.recv().map_err(|_| io::Error::other("a thread making the index's text failed"))?;
            sink.write_all(&block)?;
            let _ = back.send(block);
        }
        Ok(())
    })
}

/// `studies` cut into runs of about `chunk` bytes of text (a study's instances never cut).
fn blocks(studies: &[Study], chunk: usize) -> Vec<&[Study]> {
    // About 270 bytes of text an instance, 250 a series, 500 a study.
    let weight = |s: &Study| 500 + s.series.iter().map(|e| 250 + 270 * e.instances.len()).sum::<usize>();
    let mut blocks = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (at, study) in studies.iter().enumerate() {
        size += weight(study);
        if size >= chunk {
            blocks.push(&studies[start..=at]);
            (start, size) = (at + 1, 0);
        }
    }
    if start < studies.len() {
        blocks.push(&studies[start..]);
    }
    blocks
}

/// The tables of one study, its series and their instances.
fn tables(out: &mut Vec<u8>, study: &Study) {
    study_table(out, study);
    for series in &study.series {
        series_table(out, series);
        for instance in &series.instances {
            instance_table(out, instance);
        }
    }
}

/// The text of `file`, the heading first.
#[cfg(test)]
pub fn text(file: &IndexFile) -> String {
    let mut out = Vec::new();
    write(file, &mut out).expect("a Vec takes any write");
    String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
}

fn study_table(out: &mut Vec<u8>, s: &Study) {
    out.extend_from_slice(b"\n[[study]]\n");
    string(out, "uid", &s.uid);
    string(out, "patient_id", &s.patient_id);
    if !s.issuer_of_patient_id.is_empty() {
        string(out, "issuer_of_patient_id", &s.issuer_of_patient_id);
    }
    string(out, "patient_name", &s.patient_name);
    string(out, "patient_birth_date", &s.patient_birth_date);
    string(out, "patient_sex", &s.patient_sex);
    string(out, "date", &s.date);
    string(out, "time", &s.time);
    if !s.timezone_offset.is_empty() {
        string(out, "timezone_offset", &s.timezone_offset);
    }
    string(out, "accession_number", &s.accession_number);
    string(out, "study_id", &s.study_id);
    string(out, "description", &s.description);
    string(out, "referring_physician_name", &s.referring_physician_name);
    out.extend_from_slice(b"modalities = [");
    for (i, modality) in s.modalities.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        quoted(out, modality);
    }
    out.extend_from_slice(b"]\n");
}

fn series_table(out: &mut Vec<u8>, s: &Series) {
    out.extend_from_slice(b"\n[[study.series]]\n");
    string(out, "uid", &s.uid);
    if let Some(n) = s.number {
        signed(out, "number", n);
    }
    string(out, "modality", &s.modality);
    string(out, "description", &s.description);
}

fn instance_table(out: &mut Vec<u8>, i: &Instance) {
    out.extend_from_slice(b"\n[[study.series.instance]]\n");
    string(out, "uid", &i.uid);
    string(out, "sop_class", &i.sop_class);
    if let Some(n) = i.number {
        signed(out, "number", n);
    }
    string(out, "transfer_syntax", &i.transfer_syntax);
    if let Some(n) = i.frames {
        unsigned(out, "frames", n.into());
    }
    string(out, "path", &i.path);
    unsigned(out, "size", i.size);
    unsigned(out, "mtime", i.mtime);
    if let Some(n) = i.pixel_data_offset {
        unsigned(out, "pixel_data_offset", n);
    }
}

fn string(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b" = ");
    quoted(out, value);
    out.push(b'\n');
}

fn signed(out: &mut Vec<u8>, key: &str, value: i64) {
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b" = ");
    if value < 0 {
        out.push(b'-');
    }
    digits(out, value.unsigned_abs());
    out.push(b'\n');
}

fn unsigned(out: &mut Vec<u8>, key: &str, value: u64) {
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b" = ");
    digits(out, value);
    out.push(b'\n');
}

/// `value` in decimal, as `Display` writes it.
fn digits(out: &mut Vec<u8>, mut value: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

/// Whether `bytes` hold a control character, `"` or `\\`: eight bytes at a time, as a million instances make
/// some five million values.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether a byte of `x` is below `n` (for `n` up to 128): exact as to whether any is.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH != 0;
    let zero = |x: u64| below(x, 1);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().unwrap_or_default());
        if below(x, 0x20) || zero(x ^ (ONES * 0x22)) || zero(x ^ (ONES * 0x5c)) || zero(x ^ (ONES * 0x7f)) {
            return true;
        }
    }
    words.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)
}

/// A TOML basic string: `"` and `\` escaped, and every control character (TOML 1.0, String).
fn quoted(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    // Most values need no escape: copied whole.
    if !needs_escape(value.as_bytes()) {
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
        return;
    }
    let mut utf8 = [0u8; 4];
    for c in value.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.extend_from_slice(format!("\\u{:04X}", c as u32).as_bytes());
            }
            c => out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IndexFile {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/index.toml")).unwrap();
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn writes_what_the_toml_crate_writes() {
        let file = sample();
        let theirs = format!("{HEADING}{}", toml::to_string(&file).unwrap());
        assert_eq!(text(&file), theirs);
    }

    #[test]
    fn blocks_made_on_two_threads_are_written_in_order() {
        let sample = sample();
        let mut file = IndexFile { written: "2025-01-01T00:00:00Z".into(), studies: Vec::new() };
        for n in 0..40 {
            let mut study = sample.studies[n % sample.studies.len()].clone();
            study.uid = format!("1.2.3.{n}");
            file.studies.push(study);
        }
        let chunk = 4096;
        assert!(blocks(&file.studies, chunk).len() >= 8, "{}", blocks(&file.studies, chunk).len());
        let mut one_by_one = Vec::new();
        one_by_one.extend_from_slice(HEADING.as_bytes());
        string(&mut one_by_one, "written", &file.written);
        for study in &file.studies {
            tables(&mut one_by_one, study);
        }
        let mut written = Vec::new();
        write_in_blocks(&file, &mut written, chunk).unwrap();
        assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(one_by_one).unwrap());
    }

    #[test]
    fn escapes_are_found_at_every_place_of_a_word() {
        for special in [0u8, 0x1f, b'"', b'\\', 0x7f, b'\n'] {
            for len in 1..20 {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert!(needs_escape(&bytes), "{special:#x} at {at} of {len}");
                }
            }
        }
        for plain in
            ["", "1.2.840.10008.1.2.1", "dir with spaces/it's.dcm", "ü 中 🙂 ~ !#$%&'()*+,-./ [] {} \u{80}\u{9f}"]
        {
            assert!(!needs_escape(plain.as_bytes()), "{plain}");
        }
    }

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        for n in [0, 7, -7, 10, 99, 100, -100, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            signed(&mut out, "n", n);
            assert_eq!(String::from_utf8(out).unwrap(), format!("n = {n}\n"));
        }
        for n in [0, 1, 9, 10, 1_764_288_000, u64::MAX] {
            let mut out = Vec::new();
            unsigned(&mut out, "n", n);
            assert_eq!(String::from_utf8(out).unwrap(), format!("n = {n}\n"));
        }
    }

    #[test]
    fn every_character_reads_back() {
        let mut file = sample();
        let awkward = "a\"b\\c\nd\te\rf\u{8}g\u{c}h\u{1}i\u{7f}j'k''l'''m\"\"\"n ü 中 🙂 #x [y] = z";
        file.studies[0].patient_name = awkward.to_string();
        file.studies[0].description = String::new();
        file.studies[0].series[0].description = "'".into();
        file.studies[0].series[0].instances[0].path = "dir with spaces/it's.dcm".into();
        file.studies[0].series[0].instances[0].number = Some(-7);
        file.studies[0].modalities = vec![awkward.into(), String::new()];
        let written = text(&file);
        let back: IndexFile = toml::from_str(&written).unwrap();
        assert_eq!(back, file);
        let mut fast = IndexFile::default();
        fast.written = super::super::fast::parse(&written, &mut fast).expect("the fast reader reads it");
        assert_eq!(fast, file);
    }
}

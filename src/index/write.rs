//! The index file's text, written by hand in the layout the indexer has always written and `fast` reads: the
//! toml crate's writer builds a whole document first, which for a million instances takes seconds and
//! gigabytes, while this writes each table as it goes into a buffer of a megabyte, with no formatting
//! machinery on the way, and hands each full buffer to a thread that writes it to the file (a million
//! instances make about 270 MB of text).
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

/// Writes the text of `file`, the heading first, to `sink` from a thread of its own: the kernel's copy of
/// one megabyte into the file goes on while the next is made.
pub fn write(file: &IndexFile, sink: &mut (impl io::Write + Send)) -> io::Result<()> {
    let (full, to_write) = mpsc::sync_channel::<Vec<u8>>(2);
    let (done, empties) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> io::Result<()> {
            for mut chunk in to_write {
                sink.write_all(&chunk)?;
                chunk.clear();
                let _ = done.send(chunk);
            }
            Ok(())
        });
        let made = chunks(file, |chunk| {
            full.send(chunk).map_err(|_| io::Error::other("the index's writer stopped"))?;
            Ok(empties.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK + CHUNK / 8)))
        });
        drop(full);
        let written = writer.join().unwrap_or_else(|_| Err(io::Error::other("the index's writer failed")));
        written.and(made)
    })
}

/// The text of `file`, a chunk of about `CHUNK` bytes at a time handed to `hand`, which gives back an empty
/// buffer for the next.
fn chunks(file: &IndexFile, mut hand: impl FnMut(Vec<u8>) -> io::Result<Vec<u8>>) -> io::Result<()> {
    let mut out = Vec::with_capacity(CHUNK + CHUNK / 8);
    out.extend_from_slice(HEADING.as_bytes());
    string(&mut out, "written", &file.written);
    for study in &file.studies {
        study_table(&mut out, study);
        for series in &study.series {
            series_table(&mut out, series);
            for instance in &series.instances {
                instance_table(&mut out, instance);
                if out.len() >= CHUNK {
                    out = hand(out)?;
                }
            }
        }
    }
    hand(out).map(drop)
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

/// A TOML basic string: `"` and `\` escaped, and every control character (TOML 1.0, String).
fn quoted(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    // Most values need no escape: copied whole.
    if !value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f) {
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

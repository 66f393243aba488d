//! A fast reader for the TOML that `smart-imaging index` writes: one `[[study]]`, `[[study.series]]` or
//! `[[study.series.instance]]` header or one `key = value` per line, values being basic or literal strings,
//! integers and arrays of strings. It reads the file a chunk at a time and hands each table to the index's
//! `Builder` (or to `update`, which keeps the tables) as soon as it is complete, so that neither the file's
//! text nor a document of it is ever held whole: a 1,000,000-instance index is read in well under a second,
//! in little more memory than the index itself takes, which start-up time and memory on small devices need.
//!
//! Invariant: it either hands over exactly the tables the `toml` crate would deserialize, in their order, or
//! returns `None`, and then the caller discards what was handed over and uses the `toml` crate, which reads
//! anything else (hand-edited layouts) and reports errors well.

use std::io::Read;

use super::file::{Instance, Series, Study, Tables};

/// How much of the file is read at a time; a longer line grows the buffer.
const CHUNK: usize = 1 << 20;

/// Reads the index from `source` a chunk at a time into `out`: `Ok(Some(written))` when the whole text
/// keeps to the layout above, `Ok(None)` as soon as anything is outside it (then `out` holds a part only).
pub fn read(source: &mut impl Read, out: &mut impl Tables) -> std::io::Result<Option<String>> {
    read_chunks(source, out, CHUNK)
}

fn read_chunks(source: &mut impl Read, out: &mut impl Tables, chunk: usize) -> std::io::Result<Option<String>> {
    let mut reader = Reader::default();
    let mut buf = vec![0u8; chunk];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        filled += n;
        // Whole lines only: a newline is never inside a UTF-8 sequence, so the cut is on a boundary.
        let Some(end) = buf[..filled].iter().rposition(|&b| b == b'\n') else { continue };
        let Ok(text) = std::str::from_utf8(&buf[..end]) else { return Ok(None) };
        if reader.lines(text, out).is_none() {
            return Ok(None);
        }
        buf.copy_within(end + 1..filled, 0);
        filled -= end + 1;
    }
    let Ok(text) = std::str::from_utf8(&buf[..filled]) else { return Ok(None) };
    Ok(reader.lines(text, out).and_then(|()| reader.finish(out)))
}

/// `read` over text already in memory.
#[cfg(test)]
pub fn parse(text: &str, out: &mut impl Tables) -> Option<String> {
    let mut reader = Reader::default();
    reader.lines(text, out)?;
    reader.finish(out)
}

/// The table being read: its level (0 top, 1 study, 2 series, 3 instance), the keys it was given (one
/// bit each), and its values. The instance's strings keep their capacity from one instance to the next.
#[derive(Default)]
struct Reader {
    level: u8,
    seen: u32,
    written: Option<String>,
    study: Study,
    series: Series,
    instance: Instance,
}

impl Reader {
    /// Every line of `text`, in one pass over its bytes: a key's value is read where it starts, and only
    /// what follows it is looked at for the line's end.
    fn lines(&mut self, text: &str, out: &mut impl Tables) -> Option<()> {
        let mut rest = text;
        loop {
            // Blank lines and indentation. (TOML's whitespace is spaces and tabs; anything else around a
            // key or value is left to the toml crate.)
            rest = rest.trim_ascii_start();
            rest = match rest.as_bytes().first() {
                None => return Some(()),
                Some(b'#') => split_line(rest).1,
                Some(b'[') => {
                    let (line, next) = split_line(rest);
                    self.header(line.trim_ascii(), out)?;
                    next
                }
                Some(_) => self.key_value(rest)?,
            };
        }
    }

    fn header(&mut self, line: &str, out: &mut impl Tables) -> Option<()> {
        let (next, ok) = match line {
            "[[study]]" => (1, true),
            "[[study.series]]" => (2, self.level >= 1),
            "[[study.series.instance]]" => (3, self.level >= 2),
            _ => (0, false),
        };
        if !ok {
            return None;
        }
        self.end_table(out)?;
        match next {
            1 => self.study = Study::default(),
            2 => self.series = Series::default(),
            _ => clear_instance(&mut self.instance),
        }
        self.level = next;
        self.seen = 0;
        Some(())
    }

    /// `key = value` at the start of `text`; the text after its line.
    fn key_value<'t>(&mut self, text: &'t str) -> Option<&'t str> {
        let end = text.bytes().position(|b| matches!(b, b'=' | b' ' | b'\t' | b'\n'))?;
        let key = &text[..end];
        let value = skip_blanks(skip_blanks(&text[end..]).strip_prefix('=')?);
        let (bit, rest) = match self.level {
            0 => match key {
                "written" => {
                    let mut written = String::new();
                    let rest = string_into(value, &mut written)?;
                    self.written = Some(written);
                    (1, rest)
                }
                _ => return None,
            },
            1 => set_study(&mut self.study, key, value)?,
            2 => set_series(&mut self.series, key, value)?,
            _ => set_instance(&mut self.instance, key, value)?,
        };
        if self.seen & bit != 0 {
            return None;
        }
        self.seen |= bit;
        end_of_line(rest)
    }

    /// The table just finished must have been given every key without a default (else the general reader
    /// must report the error); it is handed to `out`.
    fn end_table(&mut self, out: &mut impl Tables) -> Option<()> {
        let required = match self.level {
            1 => STUDY_UID | PATIENT_ID,
            2 => SERIES_UID,
            3 => INSTANCE_UID | SOP_CLASS | TRANSFER_SYNTAX | PATH | SIZE,
            _ => 0,
        };
        if self.seen & required != required {
            return None;
        }
        match self.level {
            1 => out.study(&self.study),
            2 => out.series(&self.series),
            3 => out.instance(&self.instance),
            _ => {}
        }
        Some(())
    }

    fn finish(&mut self, out: &mut impl Tables) -> Option<String> {
        self.end_table(out)?;
        self.written.take()
    }
}

// The keys without a default, as bits of `Reader::seen`.
const STUDY_UID: u32 = 1;
const PATIENT_ID: u32 = 2;
const SERIES_UID: u32 = 1;
const INSTANCE_UID: u32 = 1;
const SOP_CLASS: u32 = 2;
const TRANSFER_SYNTAX: u32 = 4;
const PATH: u32 = 8;
const SIZE: u32 = 16;

fn clear_instance(i: &mut Instance) {
    i.uid.clear();
    i.sop_class.clear();
    i.transfer_syntax.clear();
    i.path.clear();
    i.number = None;
    i.frames = None;
    i.size = 0;
    i.mtime = 0;
    i.pixel_data_offset = None;
}

/// Sets one key of a study from the value at the start of `v`: the key's bit and the text after the value,
/// or `None` for a key or value outside the layout.
fn set_study<'v>(s: &mut Study, key: &str, v: &'v str) -> Option<(u32, &'v str)> {
    let (field, bit) = match key {
        "uid" => (&mut s.uid, STUDY_UID),
        "patient_id" => (&mut s.patient_id, PATIENT_ID),
        "issuer_of_patient_id" => (&mut s.issuer_of_patient_id, 1 << 2),
        "patient_name" => (&mut s.patient_name, 1 << 3),
        "patient_birth_date" => (&mut s.patient_birth_date, 1 << 4),
        "patient_sex" => (&mut s.patient_sex, 1 << 5),
        "date" => (&mut s.date, 1 << 6),
        "time" => (&mut s.time, 1 << 7),
        "timezone_offset" => (&mut s.timezone_offset, 1 << 8),
        "accession_number" => (&mut s.accession_number, 1 << 9),
        "study_id" => (&mut s.study_id, 1 << 10),
        "description" => (&mut s.description, 1 << 11),
        "referring_physician_name" => (&mut s.referring_physician_name, 1 << 12),
        "modalities" => {
            let (list, rest) = strings(v)?;
            s.modalities = list;
            return Some((1 << 13, rest));
        }
        _ => return None,
    };
    Some((bit, string_into(v, field)?))
}

fn set_series<'v>(s: &mut Series, key: &str, v: &'v str) -> Option<(u32, &'v str)> {
    Some(match key {
        "uid" => (SERIES_UID, string_into(v, &mut s.uid)?),
        "modality" => (2, string_into(v, &mut s.modality)?),
        "description" => (4, string_into(v, &mut s.description)?),
        "number" => {
            let (n, rest) = integer(v)?;
            s.number = Some(n);
            (8, rest)
        }
        _ => return None,
    })
}

fn set_instance<'v>(i: &mut Instance, key: &str, v: &'v str) -> Option<(u32, &'v str)> {
    let unsigned = |v| integer(v).and_then(|(n, rest)| Some((u64::try_from(n).ok()?, rest)));
    Some(match key {
        "uid" => (INSTANCE_UID, string_into(v, &mut i.uid)?),
        "sop_class" => (SOP_CLASS, string_into(v, &mut i.sop_class)?),
        "transfer_syntax" => (TRANSFER_SYNTAX, string_into(v, &mut i.transfer_syntax)?),
        "path" => (PATH, string_into(v, &mut i.path)?),
        "size" => {
            let (n, rest) = unsigned(v)?;
            i.size = n;
            (SIZE, rest)
        }
        "number" => {
            let (n, rest) = integer(v)?;
            i.number = Some(n);
            (1 << 5, rest)
        }
        "frames" => {
            let (n, rest) = unsigned(v)?;
            i.frames = Some(u32::try_from(n).ok()?);
            (1 << 6, rest)
        }
        "mtime" => {
            let (n, rest) = unsigned(v)?;
            i.mtime = n;
            (1 << 7, rest)
        }
        "pixel_data_offset" => {
            let (n, rest) = unsigned(v)?;
            i.pixel_data_offset = Some(n);
            (1 << 8, rest)
        }
        _ => return None,
    })
}

/// The line at the start of `text` without its newline, and the text after it.
fn split_line(text: &str) -> (&str, &str) {
    match text.bytes().position(|b| b == b'\n') {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, ""),
    }
}

/// `text` after its leading spaces and tabs, TOML's whitespace.
fn skip_blanks(text: &str) -> &str {
    let at = text.bytes().position(|b| b != b' ' && b != b'\t').unwrap_or(text.len());
    &text[at..]
}

/// What may follow a value: spaces and tabs, then the end of the line (LF or CRLF) or of the text; the text
/// after the line.
fn end_of_line(rest: &str) -> Option<&str> {
    let rest = skip_blanks(rest);
    match rest.strip_prefix('\n').or_else(|| rest.strip_prefix("\r\n")) {
        Some(after) => Some(after),
        None => rest.is_empty().then_some(rest),
    }
}

/// A string at the start of `v`, read into `out` (cleared first); the text after it.
fn string_into<'v>(v: &'v str, out: &mut String) -> Option<&'v str> {
    out.clear();
    string_prefix(v, out)
}

/// An array of strings at the start of `v` (`["CT", "MR"]`, a trailing comma allowed, on one line); the
/// text after it.
fn strings(v: &str) -> Option<(Vec<String>, &str)> {
    let mut rest = skip_blanks(v.strip_prefix('[')?);
    let mut items = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix(']') {
            return Some((items, after));
        }
        let mut item = String::new();
        rest = skip_blanks(string_prefix(rest, &mut item)?);
        items.push(item);
        match rest.strip_prefix(',') {
            Some(after) => rest = skip_blanks(after),
            None if rest.starts_with(']') => {}
            None => return None,
        }
    }
}

/// A plain decimal integer at the start of `v` (no `+`, and no leading zeros, which TOML refuses; an
/// underscore, `x`, `.` or `e` after the digits is not the end of a line, so the line is declined); the
/// text after it.
fn integer(v: &str) -> Option<(i64, &str)> {
    let (negative, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, v),
    };
    let len = digits.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    let (number, rest) = digits.split_at(len);
    if number.is_empty() || number.len() > 1 && number.starts_with('0') {
        return None;
    }
    let magnitude = number.bytes().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
    let n = if negative { 0i64.checked_sub_unsigned(magnitude)? } else { i64::try_from(magnitude).ok()? };
    Some((n, rest))
}

/// The bytes that end the plain run of a basic string: its closing quote, an escape, the control characters
/// TOML refuses in it (all but tab, and DEL); a newline is one of them, so a string never leaves its line.
const STOPS: [bool; 256] = {
    let mut stops = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        stops[b] = b != b'\t' as usize;
        b += 1;
    }
    stops[b'"' as usize] = true;
    stops[b'\\' as usize] = true;
    stops[0x7f] = true;
    stops
};

/// A basic (`"…"`, with escapes) or literal (`'…'`) single-line string at the start of `v`, appended to
/// `out`, and the rest of `v`.
fn string_prefix<'v>(v: &'v str, out: &mut String) -> Option<&'v str> {
    if let Some(rest) = v.strip_prefix('\'') {
        if rest.starts_with("''") {
            return None; // a multi-line literal string
        }
        // Its end, on the same line: a literal string holds no control character but tab.
        let end = rest.bytes().position(|b| b == b'\'' || STOPS[b as usize] && b != b'"' && b != b'\\')?;
        if !rest[end..].starts_with('\'') {
            return None;
        }
        out.push_str(&rest[..end]);
        return Some(&rest[end + 1..]);
    }
    let rest = v.strip_prefix('"')?;
    if rest.starts_with("\"\"") {
        return None; // a multi-line basic string
    }
    // Up to the first byte that ends the string or needs a look (every other byte, UTF-8 ones included, is
    // copied as it is), which is usually its end.
    let plain = rest.bytes().position(|b| STOPS[b as usize])?;
    out.push_str(&rest[..plain]);
    let rest = &rest[plain..];
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some(&rest[i + 1..]),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'e' => out.push('\u{1b}'),
                    'u' | 'U' => {
                        let width = if e == 'u' { 4 } else { 8 };
                        let hex: String = (0..width).filter_map(|_| chars.next().map(|(_, h)| h)).collect();
                        if hex.len() != width {
                            return None;
                        }
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    _ => return None,
                }
            }
            c if (c as u32) < 0x20 && c != '\t' || c == '\u{7f}' => return None,
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;
    use crate::index::file::IndexFile;
    use crate::index::store::Builder;
    use std::path::Path;

    const PATH: &str = "/data/index.toml";

    /// What the fast reader builds, or `None` when it declines.
    fn fast(text: &str) -> Option<Result<Index, String>> {
        let mut builder = Builder::default();
        let written = parse(text, &mut builder)?;
        Some(Index::build(builder, &written, Path::new(PATH)).map_err(|e| e.to_string()))
    }

    /// What the toml crate's reading builds.
    fn general(text: &str) -> Result<Index, String> {
        Index::general(text, Path::new(PATH)).map_err(|e| e.to_string())
    }

    /// The fast reader agrees with the toml crate, or declines.
    fn check(text: &str) {
        if let Some(fast) = fast(text) {
            assert_eq!(fast, general(text), "the fast reader read {text:?} otherwise than the toml crate");
        }
    }

    #[test]
    fn the_sample_index_reads_the_same_both_ways() {
        let text = include_str!("../../data/index.toml");
        let fast = fast(text).expect("the fast reader reads what the indexer writes");
        assert_eq!(fast, general(text));
        assert_eq!(fast.unwrap().instance_count(), 38);
    }

    #[test]
    fn what_the_indexer_writes_reads_back_fast() {
        let mut file = IndexFile { written: "2026-01-01T00:00:00Z".into(), studies: Vec::new() };
        file.studies.push(Study {
            uid: "1.2".into(),
            patient_id: "P\\Q é\t".into(),
            issuer_of_patient_id: "say \"hi\"".into(),
            description: "it's".into(),
            patient_name: "Tanaka^Yuki=山田^太郎".into(),
            modalities: vec!["CT".into(), "MR".into()],
            series: vec![Series {
                uid: "1.2.1".into(),
                number: Some(-3),
                instances: vec![Instance {
                    uid: "1.2.1.1".into(),
                    sop_class: "1.2.840".into(),
                    transfer_syntax: "1.2.840.10008.1.2".into(),
                    path: "a b/c'd.dcm".into(),
                    size: u64::from(u32::MAX) * 4,
                    frames: Some(4),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        });
        let text = toml::to_string(&file).unwrap();
        assert_eq!(toml::from_str::<IndexFile>(&text).unwrap(), file);
        let read = fast(&text).expect("read fast");
        assert_eq!(read, general(&text), "{text}");
        let index = read.unwrap();
        let study = index.studies().next().unwrap();
        assert_eq!((study.patient_id(), study.issuer_of_patient_id()), ("P\\Q é\t", "say \"hi\""));
        assert_eq!(study.instances().next().unwrap().path(), "a b/c'd.dcm");
        // A value with both kinds of quote is written as a multi-line string, which the fast reader leaves to
        // the toml crate.
        for awkward in ["P\\Q \"x\" 'y'", "it's \"quoted\""] {
            file.studies[0].patient_id = awkward.into();
            let text = toml::to_string(&file).unwrap();
            assert!(fast(&text).is_none(), "{text}");
            assert_eq!(toml::from_str::<IndexFile>(&text).unwrap(), file);
            assert_eq!(general(&text).unwrap().studies().next().unwrap().patient_id(), awkward);
        }
    }

    #[test]
    fn declines_what_it_does_not_know() {
        let base = "written = \"x\"\n[[study]]\nuid = \"1\"\npatient_id = \"p\"\n";
        for extra in [
            "description = \"\"\"multi\"\"\"\n",
            "description = '''multi'''\n",
            "modalities = [\"CT\", 1]\n",
            "unknown = \"x\"\n",
            "uid = \"again\"\n",
            "description = 1\n",
            "[study.other]\n",
            "[[study.series]]\nnumber = 1\n",
            "[[study.series]]\nuid = \"s\"\n[[study.series.instance]]\nuid = \"i\"\nsop_class = \"c\"\ntransfer_syntax = \"t\"\npath = \"p\"\n",
            "[[study.series]]\nuid = \"s\"\nnumber = +1\n",
            "[[study.series]]\nuid = \"s\"\nnumber = 0x1\n",
            "[[study.series]]\nuid = \"s\"\nnumber = 1_000\n",
            "[[study.series]]\nuid = \"s\"\nnumber = 01\n",
            "[[study.series]]\nuid = \"s\"\ndescription = \"bad \\q escape\"\n",
            // Whitespace to Unicode but not to TOML, around a key and after a value.
            "\u{a0}description = \"x\"\n",
            "description = \"x\"\u{2003}\n",
        ] {
            let text = format!("{base}{extra}");
            assert!(fast(&text).is_none(), "{text}");
            check(&text);
        }
        assert!(fast("[[study]]\nuid = \"1\"\npatient_id = \"p\"\n").is_none(), "no written time");
    }

    #[test]
    fn agrees_or_declines_on_mutations() {
        let text = include_str!("../../data/index.toml");
        let bytes = text.as_bytes();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut copy = bytes[..4000.min(bytes.len())].to_vec();
            let at = (state as usize) % copy.len();
            let replacements = b"\"'[]=#\\\n 0x-";
            copy[at] = replacements[(state >> 32) as usize % replacements.len()];
            if let Ok(mutated) = String::from_utf8(copy) {
                check(&mutated);
            }
        }
    }

    /// CRLF line ends, indentation, blanks around `=` and after values, and comments read as the toml crate
    /// reads them; a carriage return that does not end a line is left to it.
    #[test]
    fn line_ends_and_blanks() {
        let text = include_str!("../../data/index.toml");
        assert_eq!(fast(&text.replace('\n', "\r\n")), fast(text));
        let spaced =
            text.replace("uid = ", "\t uid\t=  ").replace("\nsize = 9504\n", "\n  size = 9504 \t\n# a comment\n\n");
        assert_eq!(fast(&spaced), fast(text));
        check(&spaced);
        let base = "written = \"2026-01-01T00:00:00Z\"\n[[study]]\nuid = \"1\"\npatient_id = \"p\"";
        assert!(fast(&format!("{base}\r\n")).is_some_and(|r| r.is_ok()));
        for odd in ["\r", "\rdate = \"x\"\n", " \r \n", "\u{c}\n", " # a comment\n"] {
            let text = format!("{base}{odd}");
            assert!(fast(&text).is_none(), "{text:?}");
            check(&text);
        }
    }

    /// A source that hands over at most `step` bytes a read, so that lines and UTF-8 sequences are cut.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn streamed(bytes: &[u8], step: usize, chunk: usize) -> Option<Result<Index, String>> {
        let mut builder = Builder::default();
        let written = read_chunks(&mut Trickle { bytes, step }, &mut builder, chunk).unwrap()?;
        Some(Index::build(builder, &written, Path::new(PATH)).map_err(|e| e.to_string()))
    }

    /// Reading a chunk at a time builds what reading the whole text builds, wherever the chunks and reads
    /// cut it: inside a line, inside a UTF-8 sequence, with lines longer than a chunk, without a last newline.
    #[test]
    fn streaming_reads_what_the_whole_text_reads() {
        let text = include_str!("../../data/index.toml");
        for (step, chunk) in [(1, 16), (7, 16), (1000, 64), (usize::MAX, CHUNK)] {
            assert_eq!(streamed(text.as_bytes(), step, chunk), fast(text), "{step} bytes a read, chunks of {chunk}");
        }
        assert_eq!(streamed(text.trim_end().as_bytes(), 5, 32), fast(text), "no newline at the end");
        let mut invalid = text.as_bytes().to_vec();
        invalid[text.find("Müller").unwrap() + 1] = 0xff;
        assert!(streamed(&invalid, 100, 64).is_none(), "invalid UTF-8 is left to the general reader");
    }
}

//! The index file's text, written by hand in the layout the indexer has always written and `fast` reads: the
//! toml crate's writer builds a whole document first, which for a million instances takes seconds and
//! gigabytes, while this writes each table as it goes into one buffer.
//!
//! Invariant: the toml crate reads back exactly the tables written (the tests check it against its own
//! writer's text, and with every kind of character a value may hold).

use std::fmt::Write;

use super::file::{IndexFile, Instance, Series, Study};

/// The first line of every index file.
pub const HEADING: &str = "# Written by `smart-imaging index`; docs/index.md describes the layout.\n";

/// The text of `file`, the heading first.
pub fn text(file: &IndexFile) -> String {
    let instances: usize = file.studies.iter().flat_map(|s| &s.series).map(|s| s.instances.len()).sum();
    let mut out = String::with_capacity(HEADING.len() + 64 + file.studies.len() * 512 + instances * 320);
    out.push_str(HEADING);
    string(&mut out, "written", &file.written);
    for study in &file.studies {
        study_table(&mut out, study);
        for series in &study.series {
            series_table(&mut out, series);
            for instance in &series.instances {
                instance_table(&mut out, instance);
            }
        }
    }
    out
}

fn study_table(out: &mut String, s: &Study) {
    out.push_str("\n[[study]]\n");
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
    out.push_str("modalities = [");
    for (i, modality) in s.modalities.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        quoted(out, modality);
    }
    out.push_str("]\n");
}

fn series_table(out: &mut String, s: &Series) {
    out.push_str("\n[[study.series]]\n");
    string(out, "uid", &s.uid);
    integer(out, "number", s.number);
    string(out, "modality", &s.modality);
    string(out, "description", &s.description);
}

fn instance_table(out: &mut String, i: &Instance) {
    out.push_str("\n[[study.series.instance]]\n");
    string(out, "uid", &i.uid);
    string(out, "sop_class", &i.sop_class);
    integer(out, "number", i.number);
    string(out, "transfer_syntax", &i.transfer_syntax);
    integer(out, "frames", i.frames);
    string(out, "path", &i.path);
    integer(out, "size", Some(i.size));
    integer(out, "mtime", Some(i.mtime));
    integer(out, "pixel_data_offset", i.pixel_data_offset);
}

fn string(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str(" = ");
    quoted(out, value);
    out.push('\n');
}

/// An integer key, left out when there is no value.
fn integer(out: &mut String, key: &str, value: Option<impl std::fmt::Display>) {
    if let Some(value) = value {
        // Writing into a String cannot fail.
        let _ = writeln!(out, "{key} = {value}");
    }
}

/// A TOML basic string: `"` and `\` escaped, and every control character (TOML 1.0, String).
fn quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
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

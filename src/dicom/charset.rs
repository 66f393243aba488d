//! Character sets of text values (PS3.3 §C.12.1.1.2, PS3.5 §6.1): which repertoire (0008,0005) Specific
//! Character Set names ([`Charset`]), and decoding a value to UTF-8, with the ISO 2022 code extensions of
//! PS3.5 §6.1.2.5: escape sequences (ECMA-35) that designate another character set into G0 or G1, and the
//! return to the initial designations of value 1 at the end of a value, at every control character that
//! ends a line (CR, LF, TAB, FF), and for person names at every component delimiter `^` and group
//! delimiter `=` (PS3.5 §6.1.2.5.3).
//!
//! The tables of the ISO 8859 parts, JIS X 0201, JIS X 0208, JIS X 0212, KS X 1001, GB 2312, GBK and
//! GB18030 are `encoding_rs`'s; the switching between them is DICOM's and lives here. Invariants: decoding
//! never fails and never panics, whatever the bytes (a byte no table explains becomes U+FFFD or its Latin-1
//! character); every loop consumes at least one byte per turn. This module imports nothing from its
//! siblings.

use encoding_rs::{
    EUC_JP, EUC_KR, Encoding, GB18030, GBK, ISO_8859_2, ISO_8859_3, ISO_8859_4, ISO_8859_5, ISO_8859_6, ISO_8859_7,
    ISO_8859_8, SHIFT_JIS, WINDOWS_874, WINDOWS_1254,
};

const ESC: u8 = 0x1B;
/// The control characters after which value 1's designations are active again (PS3.5 §6.1.2.5.3).
const TEXT_DELIMITERS: &[u8] = b"\r\n\t\x0C";
/// In a person name, the component delimiter too; each component group is decoded on its own.
const NAME_DELIMITERS: &[u8] = b"\r\n\t\x0C^";

/// The character repertoire for text values, from (0008,0005) Specific Character Set, whose values may be
/// several, the first one empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// No Specific Character Set, or `ISO_IR 6`: ASCII. Writers often store other text all the same; high
    /// bytes are read as UTF-8 where they form valid UTF-8, else as Latin-1.
    Default,
    /// One single-byte character set without code extensions (`ISO_IR 100`, `ISO_IR 144`, `ISO_IR 13`, …):
    /// ASCII in G0 and this set in G1. Escape bytes are characters like any other.
    Single(G1),
    /// Code extensions (`ISO 2022 …`): value 1's designations at the start of every value, switched by the
    /// escape sequences in the value.
    Iso2022(Designations),
    /// `ISO_IR 192`.
    Utf8,
    /// `GB18030`.
    Gb18030,
    /// `GBK`.
    Gbk,
}

/// What G0 (bytes 0x21-0x7E) and G1 (bytes 0xA1-0xFE) hold at one point of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Designations {
    g0: G0,
    g1: G1,
}

/// A G0 set: ASCII (also for JIS X 0201 Romaji, ISO-IR 14, which differs from it only in two glyphs), or
/// a two-byte Japanese set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum G0 {
    Ascii,
    /// ISO-IR 87.
    JisX0208,
    /// ISO-IR 159.
    JisX0212,
}

/// A G1 set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum G1 {
    /// Nothing designated: high bytes are read as Latin-1, leniently.
    None,
    /// ISO-IR 100, ISO 8859-1.
    Latin1,
    /// ISO-IR 101, 109, 110, 144, 127, 126 and 138: ISO 8859-2, -3, -4, -5, -6, -7 and -8.
    Iso8859(&'static Encoding),
    /// ISO-IR 148, ISO 8859-9 (windows-1254 above 0x9F).
    Latin5,
    /// ISO-IR 166, TIS 620-2533 (windows-874 above 0x9F).
    Thai,
    /// ISO-IR 13, the katakana of JIS X 0201.
    Katakana,
    /// ISO-IR 149, KS X 1001, two bytes each.
    KsX1001,
    /// ISO-IR 58, GB 2312, two bytes each.
    Gb2312,
}

/// What one defined term of Specific Character Set (PS3.3 Tables C.12-2 to C.12-5) designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
    Ascii,
    G0(G0),
    G1(G1),
    /// The sets that allow no code extensions (PS3.3 Table C.12-5).
    Utf8,
    Gb18030,
    Gbk,
}

impl Charset {
    /// Latin-1, for values whose VR is limited to the default repertoire: ASCII there, and stray high bytes
    /// stay readable.
    pub(crate) const LATIN1: Charset = Charset::Single(G1::Latin1);

    pub(crate) fn from_value(value: Option<&[u8]>) -> Charset {
        let Some(value) = value else {
            return Charset::Default;
        };
        let terms: Vec<String> = value.split(|&b| b == b'\\').map(normalise).collect();
        // UTF-8 cannot be a code extension (PS3.3 Table C.12-5); a writer that names it anyway means it.
        if terms.iter().any(|t| t == "ISO_IR 192") {
            return Charset::Utf8;
        }
        let extended = terms.len() > 1 || terms.iter().any(|t| t.starts_with("ISO 2022"));
        let first = terms.first().map(String::as_str).unwrap_or_default();
        // An unknown term is read as Latin-1, so that stray high bytes still decode to something.
        let first = term(first).unwrap_or(Term::G1(G1::Latin1));
        // A set that allows no code extensions ignores the values after it (PS3.3 §C.12.1.1.2).
        match first {
            Term::Utf8 => return Charset::Utf8,
            Term::Gb18030 => return Charset::Gb18030,
            Term::Gbk => return Charset::Gbk,
            _ => {}
        }
        let g1 = match first {
            Term::G1(g1) => g1,
            _ => G1::None,
        };
        match (extended, first) {
            (false, Term::Ascii) => Charset::Default,
            (false, Term::G1(g1)) => Charset::Single(g1),
            // Two-byte G0 sets are never active at the start of a value: they are invoked by escapes.
            _ => Charset::Iso2022(Designations { g0: G0::Ascii, g1 }),
        }
    }

    /// Decodes one value of a text VR (already split at `\` where the VR is multi-valued).
    pub(crate) fn decode(self, bytes: &[u8]) -> String {
        self.decode_with(bytes, TEXT_DELIMITERS)
    }

    /// Decodes one Person Name value: each component group (split at `=`) on its own, and value 1's
    /// designations active again at each component delimiter (PS3.5 §6.1.2.5.3). The groups stay joined
    /// by `=`.
    pub(crate) fn decode_person_name(self, bytes: &[u8]) -> String {
        let groups: Vec<String> = bytes.split(|&b| b == b'=').map(|g| self.decode_with(g, NAME_DELIMITERS)).collect();
        groups.join("=")
    }

    fn decode_with(self, bytes: &[u8], delimiters: &[u8]) -> String {
        match self {
            Charset::Default => match std::str::from_utf8(bytes) {
                Ok(text) => text.to_owned(),
                Err(_) => latin1(bytes),
            },
            Charset::Single(g1) => decode_run(Designations { g0: G0::Ascii, g1 }, bytes),
            Charset::Iso2022(initial) => decode_extended(initial, bytes, delimiters),
            Charset::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Charset::Gb18030 => decode_table(GB18030, bytes),
            Charset::Gbk => decode_table(GBK, bytes),
        }
    }
}

/// A defined term as written, corrected for the misspellings writers commonly make (`ISO IR 100`,
/// `ISO-IR 100`, `ISO_2022_IR_87`) and trimmed of padding.
fn normalise(raw: &[u8]) -> String {
    let term = String::from_utf8_lossy(raw).trim_matches([' ', '\0']).to_string();
    let bytes = term.as_bytes();
    if bytes.len() > 6 && bytes.starts_with(b"ISO") && bytes[3] != b'_' && &bytes[4..6] == b"IR" {
        return format!("ISO_IR{}", &term[6..]);
    }
    let iso2022 = bytes.len() > 12 && bytes.starts_with(b"ISO") && &bytes[4..8] == b"2022" && &bytes[9..11] == b"IR";
    if iso2022 && !term.starts_with("ISO 2022 IR ") && term.is_char_boundary(12) {
        return format!("ISO 2022 IR {}", &term[12..]);
    }
    term
}

/// What a defined term designates; `None` for a term PS3.3 does not define.
fn term(term: &str) -> Option<Term> {
    let number = term.strip_prefix("ISO_IR ").or_else(|| term.strip_prefix("ISO 2022 IR "));
    Some(match (term, number) {
        ("", _) | (_, Some("6")) => Term::Ascii,
        ("ISO_IR 192", _) => Term::Utf8,
        ("GB18030", _) => Term::Gb18030,
        ("GBK" | "ISO 2022 GBK", _) => Term::Gbk,
        // CP 1234 spells GB 2312 both ways.
        ("ISO 2022 58", _) | (_, Some("58")) => Term::G1(G1::Gb2312),
        (_, Some("100")) => Term::G1(G1::Latin1),
        (_, Some("101")) => Term::G1(G1::Iso8859(ISO_8859_2)),
        (_, Some("109")) => Term::G1(G1::Iso8859(ISO_8859_3)),
        (_, Some("110")) => Term::G1(G1::Iso8859(ISO_8859_4)),
        (_, Some("144")) => Term::G1(G1::Iso8859(ISO_8859_5)),
        (_, Some("127")) => Term::G1(G1::Iso8859(ISO_8859_6)),
        (_, Some("126")) => Term::G1(G1::Iso8859(ISO_8859_7)),
        (_, Some("138")) => Term::G1(G1::Iso8859(ISO_8859_8)),
        (_, Some("148")) => Term::G1(G1::Latin5),
        (_, Some("166")) => Term::G1(G1::Thai),
        (_, Some("13")) => Term::G1(G1::Katakana),
        (_, Some("87")) => Term::G0(G0::JisX0208),
        (_, Some("159")) => Term::G0(G0::JisX0212),
        (_, Some("149")) => Term::G1(G1::KsX1001),
        _ => return None,
    })
}

/// The designations after an escape sequence with these intermediate bytes and final byte (PS3.3
/// Tables C.12-3 and C.12-4); `None` for a sequence DICOM does not define, which changes nothing.
fn designate(current: Designations, intermediates: &[u8], last: u8) -> Option<Designations> {
    let Designations { g0, g1 } = current;
    let (g0, g1) = match (intermediates, last) {
        (b"(", b'B' | b'J') => (G0::Ascii, g1),
        (b"$", b'B' | b'@') => (G0::JisX0208, g1),
        (b"$(", b'D') => (G0::JisX0212, g1),
        (b")", b'I') => (g0, G1::Katakana),
        (b"-", b'A') => (g0, G1::Latin1),
        (b"-", b'B') => (g0, G1::Iso8859(ISO_8859_2)),
        (b"-", b'C') => (g0, G1::Iso8859(ISO_8859_3)),
        (b"-", b'D') => (g0, G1::Iso8859(ISO_8859_4)),
        (b"-", b'L') => (g0, G1::Iso8859(ISO_8859_5)),
        (b"-", b'G') => (g0, G1::Iso8859(ISO_8859_6)),
        (b"-", b'F') => (g0, G1::Iso8859(ISO_8859_7)),
        (b"-", b'H') => (g0, G1::Iso8859(ISO_8859_8)),
        (b"-", b'M') => (g0, G1::Latin5),
        (b"-", b'T') => (g0, G1::Thai),
        (b"$)", b'C') => (g0, G1::KsX1001),
        (b"$)", b'A') => (g0, G1::Gb2312),
        _ => return None,
    };
    Some(Designations { g0, g1 })
}

/// Decodes a value with code extensions: splits it into runs of one designation each, at escape
/// sequences (which are removed) and at delimiters (after which `initial` holds again).
fn decode_extended(initial: Designations, bytes: &[u8], delimiters: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut state = initial;
    let mut run_start = 0;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == ESC {
            out.push_str(&decode_run(state, bytes.get(run_start..at).unwrap_or_default()));
            let rest = bytes.get(at + 1..).unwrap_or_default();
            let intermediates = rest.iter().take_while(|b| (0x20..=0x2F).contains(*b)).count();
            if let Some(&last) = rest.get(intermediates) {
                state = designate(state, &rest[..intermediates], last).unwrap_or(state);
            }
            at = (at + 2 + intermediates).min(bytes.len());
            run_start = at;
        } else if state.g0 != G0::Ascii && (0x21..=0x7E).contains(&byte) {
            // Two bytes of a two-byte G0 set: neither can be a delimiter.
            at += if bytes.get(at + 1).is_some_and(|b| (0x21..=0x7E).contains(b)) { 2 } else { 1 };
        } else if delimiters.contains(&byte) {
            out.push_str(&decode_run(state, bytes.get(run_start..at).unwrap_or_default()));
            state = initial;
            run_start = at;
            at += 1;
        } else {
            at += 1;
        }
    }
    out.push_str(&decode_run(state, bytes.get(run_start..).unwrap_or_default()));
    out
}

/// Decodes bytes that hold no escape sequence under one designation of G0 and G1.
fn decode_run(state: Designations, bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    if state.g0 != G0::Ascii {
        return decode_table(EUC_JP, &as_euc_jp(state, bytes));
    }
    match state.g1 {
        G1::None | G1::Latin1 => latin1(bytes),
        G1::Iso8859(encoding) => decode_table(encoding, bytes),
        // Above 0x9F these equal ISO 8859-9 and TIS 620; below, ISO 2022 has the C1 controls.
        G1::Latin5 => decode_with_c1(WINDOWS_1254, bytes),
        G1::Thai => decode_with_c1(WINDOWS_874, bytes),
        // Shift JIS holds JIS X 0201 as its single bytes: ASCII below 0x80, katakana at 0xA1-0xDF.
        G1::Katakana => decode_table(SHIFT_JIS, bytes),
        // EUC-KR and GBK are ASCII in G0 and these sets in G1, as DICOM designates them.
        G1::KsX1001 => decode_table(EUC_KR, bytes),
        G1::Gb2312 => decode_table(GBK, bytes),
    }
}

/// Bytes of a two-byte Japanese G0 set rewritten as EUC-JP, whose decoder holds JIS X 0208 (both bytes
/// with the high bit set) and JIS X 0212 (the same after 0x8F); katakana in G1 follow 0x8E there.
fn as_euc_jp(state: Designations, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 2);
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        let next = bytes.get(at + 1).copied();
        let pair = (0x21..=0x7E).contains(&byte) && next.is_some_and(|b| (0x21..=0x7E).contains(&b));
        match next {
            Some(second) if pair => {
                if state.g0 == G0::JisX0212 {
                    out.push(0x8F);
                }
                out.extend([byte | 0x80, second | 0x80]);
                at += 2;
                continue;
            }
            _ if state.g1 == G1::Katakana && (0xA1..=0xDF).contains(&byte) => out.extend([0x8E, byte]),
            _ => out.push(byte),
        }
        at += 1;
    }
    out
}

fn decode_table(encoding: &'static Encoding, bytes: &[u8]) -> String {
    encoding.decode_without_bom_handling(bytes).0.into_owned()
}

/// A single-byte table above 0x9F, and the C1 controls of ISO 2022 at 0x80-0x9F, where the windows tables
/// `encoding_rs` provides hold printable characters instead.
fn decode_with_c1(encoding: &'static Encoding, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for run in bytes.chunk_by(|a, b| (0x80..=0x9F).contains(a) == (0x80..=0x9F).contains(b)) {
        if run.first().is_some_and(|b| (0x80..=0x9F).contains(b)) {
            out.push_str(&latin1(run));
        } else {
            out.push_str(&decode_table(encoding, run));
        }
    }
    out
}

/// Latin-1 maps every byte to the character of the same number.
pub(crate) fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charset(value: &[u8]) -> Charset {
        Charset::from_value(Some(value))
    }

    #[test]
    fn reads_the_repertoire_from_every_value_of_specific_character_set() {
        let ascii = Designations { g0: G0::Ascii, g1: G1::None };
        assert_eq!(Charset::from_value(None), Charset::Default);
        assert_eq!(charset(b"ISO_IR 6"), Charset::Default);
        assert_eq!(charset(b"ISO_IR 100"), Charset::LATIN1);
        assert_eq!(charset(b"ISO IR 100"), Charset::LATIN1, "a common misspelling");
        assert_eq!(charset(b"ISO_IR 144"), Charset::Single(G1::Iso8859(ISO_8859_5)));
        assert_eq!(charset(b"ISO_IR 999"), Charset::LATIN1, "unknown sets read as Latin-1");
        assert_eq!(charset(b"\\ISO 2022 IR 87"), Charset::Iso2022(ascii));
        assert_eq!(
            charset(b"ISO 2022 IR 13\\ISO 2022 IR 87"),
            Charset::Iso2022(Designations { g1: G1::Katakana, ..ascii })
        );
        assert_eq!(charset(b"ISO_IR 192 "), Charset::Utf8);
        assert_eq!(charset(b"GB18030\\ISO 2022 IR 100"), Charset::Gb18030, "no code extensions after it");
        assert_eq!(charset(b"ISO_IR 100\\ISO_IR 192"), Charset::Utf8, "UTF-8 named second still wins");
        assert_eq!(charset(b"ISO_IR 100\\ISO 2022 IR 87"), Charset::Iso2022(Designations { g1: G1::Latin1, ..ascii }));
    }

    #[test]
    fn decodes_the_single_byte_sets() {
        // PatientName of pydicom's chrGreek.dcm, chrRuss.dcm, chrHbrw.dcm and chrArab.dcm.
        let cases: [(&[u8], &[u8], &str); 5] = [
            (b"ISO_IR 126", b"\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2", "Διονυσιος"),
            (b"ISO_IR 144", b"\xbb\xee\xdace\xdc\xd1yp\xd3", "Люкceмбypг"),
            (b"ISO_IR 138", b"\xf9\xf8\xe5\xef^\xe3\xe1\xe5\xf8\xe4", "שרון^דבורה"),
            (b"ISO_IR 127", b"\xe2\xc8\xc7\xe6\xea^\xe4\xe6\xd2\xc7\xd1", "قباني^لنزار"),
            (b"ISO_IR 148", b"\xc7\xfd\x85", "Çı\u{85}"),
        ];
        for (set, bytes, text) in cases {
            assert_eq!(charset(set).decode_person_name(bytes), text, "{}", String::from_utf8_lossy(set));
        }
        assert_eq!(charset(b"ISO_IR 100").decode(b"J\xe9r\xf4me"), "Jérôme");
        assert_eq!(charset(b"ISO_IR 13").decode(b"\xd4\xcf\xc0\xde"), "ﾔﾏﾀﾞ");
    }

    #[test]
    fn switches_to_japanese_sets_and_back_per_component_group() {
        // PS3.5 Annex H.3.1, as in pydicom's chrH31.dcm: ASCII, then JIS X 0208 kanji and hiragana.
        let name = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
        let set = charset(b"\\ISO 2022 IR 87");
        assert_eq!(set.decode_person_name(name), "Yamada^Tarou=山田^太郎=やまだ^たろう");
        // PS3.5 Annex H.3.2 (chrH32.dcm): JIS X 0201 katakana in G1 from value 1, and Romaji by ESC ( J.
        let name =
            b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J=\x1b$B$d$^$@\x1b(J^\x1b$B$?$m$&\x1b(J";
        let set = charset(b"ISO 2022 IR 13\\ISO 2022 IR 87");
        assert_eq!(set.decode_person_name(name), "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう");
        // JIS X 0212 (ISO-IR 159) by ESC $ ( D: 0x3021 is 丂.
        assert_eq!(charset(b"\\ISO 2022 IR 159").decode(b"a\x1b$(D0!\x1b(Bb"), "a丂b");
    }

    #[test]
    fn switches_to_korean_and_resets_at_delimiters() {
        // PS3.5 Annex I.2, as in pydicom's chrI2.dcm: KS X 1001 in G1, designated again after every `^`.
        let name = b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf";
        let set = charset(b"\\ISO 2022 IR 149");
        assert_eq!(set.decode_person_name(name), "Hong^Gildong=洪^吉洞=홍^길동");
        // Without the second escape, the component after `^` is back in value 1's set.
        assert_eq!(set.decode_person_name(b"\x1b$)C\xc8\xab^\xc8"), "홍^È");
        // A line end resets a text value too; an escape designating nothing known changes nothing.
        let greek = charset(b"\\ISO 2022 IR 126");
        assert_eq!(greek.decode(b"\x1b-F\xc4\r\n\xc4\x1b%Z\xc4"), "Δ\r\nÄÄ");
    }

    #[test]
    fn decodes_the_sets_without_code_extensions() {
        // pydicom's chrX1.dcm (UTF-8) and chrX2.dcm (GB18030).
        assert_eq!(
            charset(b"ISO_IR 192").decode_person_name("Wang^XiaoDong=王^小東".as_bytes()),
            "Wang^XiaoDong=王^小東"
        );
        let gb = b"Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab";
        assert_eq!(charset(b"GB18030").decode_person_name(gb), "Wang^XiaoDong=王^小东");
        assert_eq!(charset(b"GBK").decode(b"\xcd\xf5"), "王");
        assert_eq!(charset(b"\\ISO 2022 IR 58").decode(b"\x1b$)A\xcd\xf5"), "王");
        assert_eq!(Charset::Default.decode("Grüße".as_bytes()), "Grüße");
        assert_eq!(Charset::Default.decode(b"Gr\xfc\xdfe"), "Grüße");
    }

    #[test]
    fn survives_any_bytes() {
        let sets: [&[u8]; 6] = [
            b"\\ISO 2022 IR 87",
            b"ISO 2022 IR 13\\ISO 2022 IR 159",
            b"\\ISO 2022 IR 149",
            b"GB18030",
            b"ISO_IR 166",
            b"x",
        ];
        let samples: [&[u8]; 6] = [b"\x1b", b"\x1b$", b"\x1b$B!", b"\x1b$)C\xc8", b"\xff\xfe\x80\x1b(", b"=^\\"];
        for set in sets {
            for sample in samples {
                let _ = charset(set).decode(sample);
                let _ = charset(set).decode_person_name(sample);
            }
        }
    }
}

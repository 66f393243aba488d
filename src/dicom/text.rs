//! Text values (PS3.5 §6.1, §6.2): the character repertoire of a data set ([`Charset`]), removing the
//! padding of a value, and decoding UIDs and Integer Strings. Invariants: decoding never fails and never
//! panics, whatever the bytes (a byte that no repertoire explains still becomes a character), and every
//! loop consumes at least one byte per turn. This module imports nothing from its siblings.

/// The character repertoire for text values, from (0008,0005) Specific Character Set (PS3.3
/// §C.12.1.1.2), whose values may be several, the first one empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// No Specific Character Set, or `ISO_IR 6`: ASCII. Writers often store other text all the
    /// same; high bytes are read as UTF-8 where they form valid UTF-8, else as Latin-1.
    Default,
    /// `ISO_IR 100` (ISO 8859-1). Also used, leniently, for the sets this reader does not know, so
    /// that stray high bytes still decode to something.
    Latin1,
    /// Any `ISO 2022 …` set, with code extensions: its escape sequences (ECMA-35) are removed and the
    /// rest read as Latin-1, which is right for `ISO 2022 IR 6` and `ISO 2022 IR 100`.
    Iso2022,
    /// `ISO_IR 192`.
    Utf8,
}

impl Charset {
    pub(crate) fn from_value(value: Option<&[u8]>) -> Charset {
        let Some(value) = value else {
            return Charset::Default;
        };
        let terms = || value.split(|&b| b == b'\\').map(trim_text);
        if terms().any(|term| term == b"ISO_IR 192") {
            Charset::Utf8
        } else if terms().any(|term| term.starts_with(b"ISO 2022")) {
            Charset::Iso2022
        } else if terms().all(|term| term.is_empty() || term == b"ISO_IR 6") {
            Charset::Default
        } else {
            Charset::Latin1
        }
    }

    pub(crate) fn decode(self, bytes: &[u8]) -> String {
        let latin1 = |bytes: &[u8]| bytes.iter().map(|&b| char::from(b)).collect();
        match self {
            Charset::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Charset::Latin1 => latin1(bytes),
            Charset::Iso2022 => latin1(&without_escape_sequences(bytes)),
            Charset::Default => match std::str::from_utf8(bytes) {
                Ok(text) => text.to_owned(),
                Err(_) => latin1(bytes),
            },
        }
    }
}

/// Removes ISO 2022 escape sequences: ESC, any intermediate bytes 0x20-0x2F, and a final byte
/// (ECMA-35 §13.1). Each turn of the loop consumes at least one byte.
fn without_escape_sequences(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let [first, tail @ ..] = rest {
        if *first == 0x1B {
            let intermediates = tail.iter().take_while(|b| (0x20..=0x2F).contains(*b)).count();
            rest = tail.get(intermediates + 1..).unwrap_or_default();
        } else {
            out.push(*first);
            rest = tail;
        }
    }
    out
}

/// Removes the trailing space and NUL padding of an even-length value (PS3.5 §6.2).
pub(crate) fn trim_padding(mut value: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | 0] = value {
        value = rest;
    }
    value
}

/// Removes padding and leading spaces, which are insignificant in the string VRs read here.
pub(crate) fn trim_text(mut value: &[u8]) -> &[u8] {
    value = trim_padding(value);
    while let [b' ', rest @ ..] = value {
        value = rest;
    }
    value
}

/// A UID value without its padding (PS3.5 §9.1); UIDs are ASCII, so Latin-1 decodes them as written.
pub(crate) fn decode_uid(value: &[u8]) -> String {
    Charset::Latin1.decode(trim_padding(value))
}

/// Parses the first value of an Integer String (IS); a value that is not an integer gives `None`.
pub(crate) fn parse_integer_string(value: &[u8]) -> Option<i64> {
    let first = value.split(|&b| b == b'\\').next()?;
    std::str::from_utf8(trim_text(first)).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_escape_sequences_even_when_cut_short() {
        assert_eq!(without_escape_sequences(b"a\x1B$)Cb\x1B(Bc"), b"abc");
        assert_eq!(without_escape_sequences(b"a\x1B$"), b"a");
        assert_eq!(without_escape_sequences(b"\x1B"), b"");
    }

    #[test]
    fn reads_the_repertoire_from_every_value_of_specific_character_set() {
        assert_eq!(Charset::from_value(None), Charset::Default);
        assert_eq!(Charset::from_value(Some(b"ISO_IR 6")), Charset::Default);
        assert_eq!(Charset::from_value(Some(b"ISO_IR 100")), Charset::Latin1);
        assert_eq!(Charset::from_value(Some(b"ISO_IR 144")), Charset::Latin1, "unknown sets read as Latin-1");
        assert_eq!(Charset::from_value(Some(b"\\ISO 2022 IR 100")), Charset::Iso2022);
        assert_eq!(Charset::from_value(Some(b"ISO_IR 100\\ISO_IR 192 ")), Charset::Utf8);
    }

    #[test]
    fn trims_padding_and_decodes_uids() {
        assert_eq!(trim_padding(b" a b \0 "), b" a b");
        assert_eq!(trim_text(b"  a b \0"), b"a b");
        assert_eq!(decode_uid(b"1.2.840\0"), "1.2.840");
        assert_eq!(parse_integer_string(b" -12 \\3"), Some(-12));
        assert_eq!(parse_integer_string(b"1.5"), None);
    }
}

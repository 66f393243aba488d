//! Text values (PS3.5 §6.2): removing the padding of a value, and decoding UIDs, Integer Strings and Decimal Strings (the
//! character sets of other text are `charset`'s). Invariants: nothing here fails or panics, whatever the
//! bytes, and every loop consumes at least one byte per turn. This module imports nothing from its
//! siblings.

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
    trim_padding(value).iter().map(|&b| char::from(b)).collect()
}

/// Parses the first value of an Integer String (IS); a value that is not an integer gives `None`.
pub(crate) fn parse_integer_string(value: &[u8]) -> Option<i64> {
    let first = value.split(|&b| b == b'\\').next()?;
    std::str::from_utf8(trim_text(first)).ok()?.parse().ok()
}

/// Parses the fixed or floating point number of a DS (PS3.5 Table 6.2-1): digits, sign, '.', exponent.
/// Rust's float grammar accepts the same, plus "inf" and "NaN", which the character check keeps out.
pub(crate) fn parse_decimal(text: &str) -> Option<f64> {
    let plausible = text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    let value: f64 = text.parse().ok().filter(|_| plausible)?;
    value.is_finite().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_padding_and_decodes_uids() {
        assert_eq!(trim_padding(b" a b \0 "), b" a b");
        assert_eq!(trim_text(b"  a b \0"), b"a b");
        assert_eq!(decode_uid(b"1.2.840\0"), "1.2.840");
        assert_eq!(parse_integer_string(b" -12 \\3"), Some(-12));
        assert_eq!(parse_integer_string(b"1.5"), None);
        assert_eq!(parse_decimal("-1024.5e0"), Some(-1024.5));
        assert_eq!(parse_decimal("inf"), None);
    }
}

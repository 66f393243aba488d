//! Percent-encoding (RFC 3986 §2.1) of paths and queries: decoding what arrives, encoding what goes back in
//! links.
//!
//! Invariant: a bad escape, a result that is not UTF-8, or a NUL is refused (`None`), never guessed at.

use super::error::ApiError;

/// Decodes `%XX` escapes (and `+` as space in queries). `None` for a bad escape or a result that is not
/// UTF-8 or holds a NUL: such a request is a 400, never guessed at.
pub fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    let text = String::from_utf8(out).ok()?;
    (!text.contains('\0')).then_some(text)
}

/// Splits a raw query into decoded `(name, value)` pairs, keeping their order and repeats.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let bad = || ApiError::BadRequest("the query string has a malformed percent-escape".into());
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(n, true).ok_or_else(bad)?, percent_decode(v, true).ok_or_else(bad)?))
        })
        .collect()
}

/// Encodes a query component so it survives in a URL we hand back (the `self` and `next` links).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2Fb+c", true).as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
        assert_eq!(percent_decode("%00", false), None);
        assert_eq!(percent_decode("%ff", false), None);
        assert_eq!(percent_decode("%C3%BC", false).as_deref(), Some("ü"));
        let q = parse_query("patient=Patient%2F1&x&identifier=a%7Cb").unwrap();
        assert_eq!(
            q,
            vec![("patient".into(), "Patient/1".into()), ("x".into(), "".into()), ("identifier".into(), "a|b".into())]
        );
        assert!(parse_query("a=%G0").is_err());
        assert_eq!(percent_encode("urn:oid:1.2|x y"), "urn:oid:1.2%7Cx%20y");
    }
}

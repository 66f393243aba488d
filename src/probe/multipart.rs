//! Reading a `multipart/related` body (RFC 2387 on RFC 2046 §5.1.1) into its parts, and looking at a part
//! as a DICOM file: the 128-byte preamble and `DICM` (PS3.10 §7.1), then its header read by `dicom::header`
//! for the StudyInstanceUID and transfer syntax.
//!
//! Pure: bytes in, values out.

use super::client::{media_param, media_type};
use crate::dicom::{Header, read_header};

/// One part: its headers (names lower-cased) and its bytes.
#[derive(Debug)]
pub struct Part<'a> {
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl Part<'_> {
    pub fn content_type(&self) -> &str {
        self.headers.iter().find(|(n, _)| n == "content-type").map_or("", |(_, v)| v.as_str())
    }
}

/// The parts of `body` framed by the boundary of `content_type`; an error says what is wrong with the
/// framing.
pub fn parts<'a>(content_type: &str, body: &'a [u8]) -> Result<Vec<Part<'a>>, String> {
    if media_type(content_type) != "multipart/related" {
        return Err(format!("Content-Type {content_type:?} is not multipart/related"));
    }
    let boundary = media_param(content_type, "boundary").ok_or("Content-Type has no boundary")?;
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // The first delimiter may follow a preamble (RFC 2046 §5.1.1); later ones follow a CRLF.
    let mut at = if body.starts_with(delimiter) {
        delimiter.len()
    } else {
        find(body, &[b"\r\n", delimiter].concat(), 0).ok_or("the body has no boundary delimiter")? + 2 + delimiter.len()
    };
    let mut parts = Vec::new();
    let next_delimiter = [b"\r\n", delimiter].concat();
    loop {
        let rest = body.get(at..).unwrap_or_default();
        if rest.starts_with(b"--") {
            return if parts.is_empty() { Err("the body has no part".into()) } else { Ok(parts) };
        }
        let head_start = at + skip_line_end(rest).ok_or("a boundary delimiter is not followed by CRLF")?;
        let head_end = find(body, b"\r\n\r\n", head_start).ok_or("a part's headers do not end")?;
        let headers = std::str::from_utf8(&body[head_start..head_end])
            .map_err(|_| "a part's headers are not text".to_string())?
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let content_start = head_end + 4;
        let end = find(body, &next_delimiter, content_start).ok_or("the body has no closing delimiter")?;
        parts.push(Part { headers, body: &body[content_start..end] });
        at = end + next_delimiter.len();
    }
}

/// The length of the CRLF (after optional transport padding) at the start of `rest`.
fn skip_line_end(rest: &[u8]) -> Option<usize> {
    let spaces = rest.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
    rest.get(spaces..).filter(|r| r.starts_with(b"\r\n")).map(|_| spaces + 2)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// A part read as a DICOM Part 10 file, or what it is instead.
pub fn dicom_file(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(24)]).into_owned();
        return Err(format!("{} bytes without DICM after a 128-byte preamble (starts {shown:?})", bytes.len()));
    }
    read_header(bytes).map_err(|e| format!("DICM, but its header does not read: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_with_and_without_a_preamble() {
        let body =
            b"--b\r\nContent-Type: application/dicom\r\n\r\nONE\r\n--b\r\nContent-Type: x\r\n\r\nTWO\r\n--b--\r\n";
        let found = parts("multipart/related; type=\"application/dicom\"; boundary=b", body).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].content_type(), "application/dicom");
        assert_eq!(found[0].body, b"ONE");
        assert_eq!(found[1].body, b"TWO");
        let preamble = [b"ignored\r\n".as_slice(), body].concat();
        assert_eq!(parts("multipart/related; boundary=b", &preamble).unwrap().len(), 2);
    }

    #[test]
    fn broken_framing_is_named() {
        let no_end = b"--b\r\nContent-Type: x\r\n\r\nONE";
        assert!(parts("multipart/related; boundary=b", no_end).unwrap_err().contains("closing"));
        assert!(parts("multipart/related", b"").unwrap_err().contains("boundary"));
        assert!(parts("application/dicom", b"").unwrap_err().contains("not multipart"));
        assert!(parts("multipart/related; boundary=b", b"--b--\r\n").unwrap_err().contains("no part"));
    }

    #[test]
    fn a_part_that_is_not_dicom() {
        assert!(dicom_file(b"{\"not\": \"dicom\"}").unwrap_err().contains("without DICM"));
        let mut header_only = vec![0u8; 128];
        header_only.extend_from_slice(b"DICM");
        assert!(dicom_file(&header_only).unwrap_err().contains("does not read"));
    }
}

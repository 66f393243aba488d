//! `multipart/related` framing (RFC 2387, RFC 2046 §5.1.1): a boundary, and the order of part heads and
//! contents. What a content is and how it is sent is the caller's (`dicomweb::stream` sends files).
//!
//! Invariants: no preamble; each part opened by `--boundary CRLF`, its `Content-Type` and `Content-Length`,
//! a blank line and its content; parts separated by `CRLF--boundary`, the whole closed by
//! `CRLF--boundary--CRLF`; every part's length is known when its head is written.

use super::error::ApiError;

/// A piece of a part's content, of a length known before it is sent.
pub trait Content {
    fn len(&self) -> u64;
    /// Bytes in memory, as the framing's own pieces are.
    fn bytes(bytes: Vec<u8>) -> Self;
}

impl Content for Vec<u8> {
    fn len(&self) -> u64 {
        self.len() as u64
    }

    fn bytes(bytes: Vec<u8>) -> Self {
        bytes
    }
}

/// One part: its `Content-Type` and the pieces of its content.
pub struct Part<C> {
    pub content_type: String,
    pub content: Vec<C>,
}

/// A boundary that cannot occur by chance in the parts: 128 random bits (RFC 2046 §5.1.1 allows 70 chars).
pub fn new_boundary() -> Result<String, ApiError> {
    crate::random::hex_id(16).map_err(ApiError::Internal)
}

/// The pieces of a `multipart/related` body, in the order they are sent.
pub fn frame<C: Content>(boundary: &str, parts: Vec<Part<C>>) -> Vec<C> {
    let mut pieces = Vec::with_capacity(parts.len() * 2 + 1);
    for (n, part) in parts.into_iter().enumerate() {
        let lead = if n == 0 { "" } else { "\r\n" };
        let length: u64 = part.content.iter().map(C::len).sum();
        let head =
            format!("{lead}--{boundary}\r\nContent-Type: {}\r\nContent-Length: {length}\r\n\r\n", part.content_type);
        pieces.push(C::bytes(head.into_bytes()));
        pieces.extend(part.content);
    }
    pieces.push(C::bytes(format!("\r\n--{boundary}--\r\n").into_bytes()));
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_exact() {
        let parts = vec![
            Part { content_type: "application/dicom".into(), content: vec![b"AAAA".to_vec()] },
            Part { content_type: "application/octet-stream".into(), content: vec![b"BB".to_vec(), b"--".to_vec()] },
        ];
        let body = frame("XYZ", parts).concat();
        let expected = "--XYZ\r\nContent-Type: application/dicom\r\nContent-Length: 4\r\n\r\nAAAA\
                        \r\n--XYZ\r\nContent-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\nBB--\
                        \r\n--XYZ--\r\n";
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }

    #[test]
    fn boundaries_are_fresh() {
        let (a, b) = (new_boundary().unwrap(), new_boundary().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}

//! What of a request may be written to the log: the request target with every study token and credential
//! replaced.
//!
//! Invariant: no log line the server writes about a request holds a study token, a bearer token or a
//! credential-like query value.

/// The URL as it may be logged: any segment after one that decodes to `wado` (wherever it stands, however it
/// is encoded, since the router decodes before matching) and any credential-like query value replaced.
pub fn redact(url: &str) -> String {
    let (path, query) = url.split_once('?').map_or((url, None), |(p, q)| (p, Some(q)));
    let raw: Vec<&str> = path.split('/').collect();
    let mut segs: Vec<&str> = raw.clone();
    for (i, seg) in raw.iter().enumerate().skip(1) {
        let previous = crate::http::percent_decode(raw[i - 1], false);
        if previous.as_deref() == Some("wado") && !seg.is_empty() {
            segs[i] = "[study-token]";
        }
    }
    let mut out = segs.join("/");
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((n, _)) if n.to_ascii_lowercase().contains("token") || n.eq_ignore_ascii_case("code") => {
                    format!("{n}=[redacted]")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(redact("/demo/wado/SECRET/studies/1.2"), "/demo/wado/[study-token]/studies/1.2");
        assert_eq!(redact("/demo/wado/SECRET"), "/demo/wado/[study-token]");
        assert_eq!(redact("/demo/fhir/ImagingStudy?patient=p1"), "/demo/fhir/ImagingStudy?patient=p1");
        assert_eq!(redact("/x?access_token=abc&a=b"), "/x?access_token=[redacted]&a=b");
        assert_eq!(redact("/"), "/");
        // The router decodes segments before matching, so redaction must too.
        assert_eq!(redact("/demo/%77ado/SECRET/studies/1"), "/demo/%77ado/[study-token]/studies/1");
        assert_eq!(redact("//demo/wado/SECRET/x"), "//demo/wado/[study-token]/x");
    }
}

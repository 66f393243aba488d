//! What of a request may be written to the log: the request target with every study token and credential
//! replaced.
//!
//! Invariant: no log line the server writes about a request holds a study token, a bearer token or a
//! credential-like query value, whatever the path: a segment after `wado` (however spelled or encoded), and
//! anywhere a segment, query name or query value that could be a token (`looks_secret`), is replaced.

/// What a redacted path segment becomes.
const STUDY_TOKEN: &str = "[study-token]";
/// What a redacted query value becomes.
const REDACTED: &str = "[redacted]";

/// The shortest run of URL-safe base64 characters taken for a token. A study token is over 90 of them; a
/// UID is digits and dots, whose runs of digits never count (`looks_secret`).
const SECRET_RUN: usize = 32;

/// The URL as it may be logged: every segment after one that decodes to `wado` in any case (the router
/// decodes before matching, and a near miss such as `WADO` must not log the token either), every segment
/// and query part that could be a token wherever it stands, and the value of every credential-like query
/// parameter, replaced.
pub fn redact(url: &str) -> String {
    let (path, query) = url.split_once('?').map_or((url, None), |(p, q)| (p, Some(q)));
    let raw: Vec<&str> = path.split('/').collect();
    let plain: Vec<String> = raw.iter().map(|s| decoded(s, false)).collect();
    let mut segs: Vec<&str> = raw.clone();
    for (i, seg) in plain.iter().enumerate() {
        let after_wado = i > 0 && plain[i - 1].eq_ignore_ascii_case("wado") && !seg.is_empty();
        if after_wado || looks_secret(seg) {
            segs[i] = STUDY_TOKEN;
        }
    }
    let mut out = segs.join("/");
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| {
                let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
                let (name, value) = (decoded(n, true), decoded(v, true));
                let lower = name.to_ascii_lowercase();
                if looks_secret(&name) {
                    REDACTED.to_string()
                } else if lower.contains("token") || lower == "code" || looks_secret(&value) {
                    format!("{n}={REDACTED}")
                } else {
                    pair.to_string()
                }
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// A part of a URL percent-decoded, or as it is when it does not decode.
fn decoded(s: &str, plus_as_space: bool) -> String {
    crate::http::percent_decode(s, plus_as_space).unwrap_or_else(|| s.to_string())
}

/// Could this text hold a study token or another bearer credential? A run of at least `SECRET_RUN`
/// characters of `[A-Za-z0-9_-]` that is not only digits (base64url text, a JWT's parts, an opaque token).
fn looks_secret(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|run| run.len() >= SECRET_RUN && !run.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "wB7n7APJ2sHacSYAObBrZyUrQMnJrvp5A3Mg2I_4M7FI5G_otwJgvafTn-vlVfSSprSX";
    const UID: &str = "2.25.314159265358979323846264338327950288419.1.1.1";

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

    #[test]
    fn anything_that_could_be_a_token_is_redacted_on_every_path() {
        for (url, want) in [
            (format!("/t/WADO/{TOKEN}/studies/1"), "/t/WADO/[study-token]/studies/1".to_string()),
            (format!("/t/wado%2F{TOKEN}/studies/1"), "/t/[study-token]/studies/1".to_string()),
            (format!("/t/fhir/ImagingStudy/{TOKEN}"), "/t/fhir/ImagingStudy/[study-token]".to_string()),
            (format!("/{TOKEN}"), "/[study-token]".to_string()),
            (format!("/t/x.{TOKEN}.y"), "/t/[study-token]".to_string()),
            (format!("/t/%{}", &TOKEN[..40]), "/t/[study-token]".to_string()),
            (format!("/x?next={TOKEN}&a=b"), "/x?next=[redacted]&a=b".to_string()),
            (format!("/x?{TOKEN}"), "/x?[redacted]".to_string()),
            (format!("/x?{TOKEN}=1"), "/x?[redacted]".to_string()),
            (format!("/x?a=Bearer+{TOKEN}"), "/x?a=[redacted]".to_string()),
            ("/x?id_token=1&code=2&c=3".to_string(), "/x?id_token=[redacted]&code=[redacted]&c=3".to_string()),
        ] {
            let got = redact(&url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains(&TOKEN[10..26]), "{got}");
        }
    }

    #[test]
    fn uids_and_ordinary_segments_are_kept() {
        let url = format!("/demo/fhir/ImagingStudy/{UID}?identifier=urn:oid:{UID}&_count=10");
        assert_eq!(redact(&url), url);
        assert_eq!(redact("/open/fhir/.well-known/smart-configuration"), "/open/fhir/.well-known/smart-configuration");
    }
}

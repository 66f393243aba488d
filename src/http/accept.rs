//! Content negotiation for WADO-RS (docs/api.md, DICOMweb details; DICOM PS3.18 §8.7): parsing `Accept` and
//! choosing what to send. Pure functions only; the WADO module applies the choice.
//!
//! Invariants: a malformed header is a 400, an acceptable-but-unservable one a 406; the only transcoding
//! ever promised is of the native syntaxes to Explicit VR Little Endian, so a specific transfer syntax is
//! acceptable only when every file is stored in it or it is Explicit VR Little Endian and every file is of
//! a native syntax.

use crate::dicom::transfer_syntax::{EXPLICIT_VR_LITTLE_ENDIAN, is_native};

/// One media range of an `Accept` header, lower-cased where the grammar is case-insensitive.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRange {
    pub main: String,
    pub sub: String,
    /// Parameters other than `q`, names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
    pub q: f32,
}

impl MediaRange {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn is(&self, main: &str, sub: &str) -> bool {
        self.main == main && self.sub == sub
    }
}

/// Parses a whole `Accept` header (RFC 9110 §12.5.1). Any malformed range makes the header malformed.
pub fn parse_accept(header: &str) -> Result<Vec<MediaRange>, String> {
    let mut ranges = Vec::new();
    for item in split_unquoted(header, ',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        ranges.push(parse_range(item)?);
    }
    if ranges.is_empty() {
        return Err("empty Accept header".into());
    }
    Ok(ranges)
}

fn parse_range(item: &str) -> Result<MediaRange, String> {
    let mut pieces = split_unquoted(item, ';').into_iter();
    let media = pieces.next().unwrap_or_default().trim().to_ascii_lowercase();
    let (main, sub) = media.split_once('/').ok_or_else(|| format!("malformed media type {media:?}"))?;
    if !is_token(main) || !is_token(sub) || (main == "*" && sub != "*") {
        return Err(format!("malformed media type {media:?}"));
    }
    let mut range = MediaRange { main: main.into(), sub: sub.into(), params: Vec::new(), q: 1.0 };
    for piece in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let (name, value) = piece.split_once('=').ok_or_else(|| format!("malformed parameter {piece:?}"))?;
        let name = name.trim().to_ascii_lowercase();
        let value = unquote(value.trim()).ok_or_else(|| format!("malformed parameter {piece:?}"))?;
        if !is_token(&name) {
            return Err(format!("malformed parameter {piece:?}"));
        }
        if name == "q" {
            range.q = value
                .parse::<f32>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q))
                .ok_or_else(|| format!("malformed q-value {value:?}"))?;
        } else if name == "type" && value.contains(';') {
            // Some clients quote the transfer syntax into the type: `type="application/dicom;
            // transfer-syntax=X"`. Read it as the two parameters they meant.
            let mut inner = value.split(';');
            range.params.push((name, inner.next().unwrap_or_default().trim().to_ascii_lowercase()));
            for extra in inner {
                if let Some((n, v)) = extra.split_once('=') {
                    range.params.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
        } else {
            let value = if name == "type" { value.to_ascii_lowercase() } else { value };
            range.params.push((name, value));
        }
    }
    Ok(range)
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(v: &str) -> Option<String> {
    match v.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').map(|inner| inner.replace("\\\"", "\"")),
        None if v.contains('"') => None,
        None => Some(v.to_string()),
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The ranges of a header with their transfer syntaxes checked, by descending q-value (header order among
/// equals, since the sort is stable).
fn ranked(header: &str) -> Result<Vec<MediaRange>, Refused> {
    let mut ranges = parse_accept(header).map_err(Refused::Malformed)?;
    for r in &ranges {
        if let Some(ts) = r.param("transfer-syntax") {
            if ts != "*" && !crate::dicom::uid::is_valid(ts) {
                return Err(Refused::Malformed(format!("malformed transfer syntax {ts:?}")));
            }
        }
    }
    ranges.sort_by(|a, b| b.q.total_cmp(&a.q));
    Ok(ranges)
}

/// How to send DICOM instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceForm {
    /// `multipart/related; type="application/dicom"`, one part per instance.
    Multipart,
    /// A single `application/dicom` body: only when exactly one instance is asked for.
    Single,
}

/// In which transfer syntax instances are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// As stored: `transfer-syntax=*`, the stored syntax named, or no media type named (no `Accept`, `*/*`).
    AsStored,
    /// PS3.18's default for `application/dicom` named without a transfer syntax: instances of a native
    /// syntax as Explicit VR Little Endian, the others (compressed) as stored.
    Explicit,
    /// `transfer-syntax=1.2.840.10008.1.2.1` named: every instance as Explicit VR Little Endian, which only
    /// instances of a native syntax can be.
    ExplicitOnly,
}

/// Why no form could be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Malformed(String),
    NotAcceptable(String),
}

/// Chooses how to send instances stored in the `stored` transfer syntaxes, for an `Accept` header (absent
/// means anything). Ranges are tried by descending q-value, in header order among equals.
pub fn negotiate_instances(
    accept: Option<&str>,
    stored: &[&str],
    single_ok: bool,
) -> Result<(InstanceForm, Representation), Refused> {
    let Some(header) = accept.filter(|h| !h.trim().is_empty()) else {
        return Ok((InstanceForm::Multipart, Representation::AsStored));
    };
    let ranges = ranked(header)?;
    for r in ranges.iter().filter(|r| r.q > 0.0) {
        // Whether the range names application/dicom itself, rather than any type.
        let (form, named) = if r.is("*", "*") || r.is("multipart", "*") {
            (Some(InstanceForm::Multipart), false)
        } else if r.is("multipart", "related") {
            match r.param("type") {
                None | Some("application/dicom") => (Some(InstanceForm::Multipart), true),
                Some("application/*" | "*/*") => (Some(InstanceForm::Multipart), false),
                Some(_) => (None, false),
            }
        } else if r.is("application", "dicom") && single_ok {
            (Some(InstanceForm::Single), true)
        } else {
            (None, false)
        };
        let representation = match r.param("transfer-syntax") {
            None if named => Some(Representation::Explicit),
            None | Some("*") => Some(Representation::AsStored),
            Some(ts) if stored.iter().all(|s| *s == ts) => Some(Representation::AsStored),
            Some(EXPLICIT_VR_LITTLE_ENDIAN) if stored.iter().all(|s| is_native(s)) => {
                Some(Representation::ExplicitOnly)
            }
            Some(_) => None,
        };
        if let (Some(form), Some(representation)) = (form, representation) {
            return Ok((form, representation));
        }
    }
    Err(Refused::NotAcceptable(format!(
        "cannot serve {header:?}: instances are sent as stored ({}), and those of a native transfer syntax also \
         as Explicit VR Little Endian ({EXPLICIT_VR_LITTLE_ENDIAN}), as multipart/related; type=\"application/dicom\"",
        stored.join(", ")
    )))
}

/// Chooses whether DICOM JSON may be sent (metadata, QIDO-RS): `application/dicom+json`, `application/json`,
/// `application/*` or `*/*`; an absent header means anything.
pub fn negotiate_json(accept: Option<&str>) -> Result<(), Refused> {
    let Some(header) = accept.filter(|h| !h.trim().is_empty()) else {
        return Ok(());
    };
    let ranges = parse_accept(header).map_err(Refused::Malformed)?;
    let ok = ranges.iter().filter(|r| r.q > 0.0).any(|r| {
        r.is("*", "*") || r.is("application", "*") || r.is("application", "dicom+json") || r.is("application", "json")
    });
    if ok {
        Ok(())
    } else {
        Err(Refused::NotAcceptable(format!("cannot serve {header:?}: metadata is application/dicom+json")))
    }
}

/// The media type of one frame of pixel data stored in `syntax` when sent in its own format (PS3.18 table
/// 8.7.3-2), for encapsulated syntaxes that have one.
pub fn image_media_type(syntax: &str) -> Option<&'static str> {
    Some(match syntax {
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" | "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => {
            "image/jpeg"
        }
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.4.92" | "1.2.840.10008.1.2.4.93" => "image/jpx",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => "image/jphc",
        "1.2.840.10008.1.2.5" => "image/x-dicom-rle",
        _ => return None,
    })
}

/// Chooses the part media type for frames or bulk data that can be sent in the transfer syntaxes `syntaxes`
/// (the first is the one sent): `application/octet-stream` (the default, also for `*/*`), or the image type
/// of an encapsulated syntax when asked for by name. A specific transfer syntax must be one of them.
pub fn negotiate_frames(accept: Option<&str>, syntaxes: &[&str], encapsulated: bool) -> Result<&'static str, Refused> {
    let syntax = syntaxes.first().copied().unwrap_or_default();
    const OCTETS: &str = "application/octet-stream";
    let Some(header) = accept.filter(|h| !h.trim().is_empty()) else {
        return Ok(OCTETS);
    };
    let ranges = ranked(header)?;
    let image = if encapsulated { image_media_type(syntax) } else { None };
    for r in ranges.iter().filter(|r| r.q > 0.0) {
        if let Some(ts) = r.param("transfer-syntax").filter(|ts| *ts != "*")
            && !syntaxes.contains(&ts)
        {
            continue;
        }
        let wanted = if r.is("multipart", "related") { r.param("type").unwrap_or(OCTETS) } else { "" };
        if r.is("*", "*") || r.is("multipart", "*") || wanted == OCTETS || wanted == "*/*" {
            return Ok(OCTETS);
        }
        if let Some(image) = image.filter(|i| *i == wanted || (wanted == "image/*")) {
            return Ok(image);
        }
    }
    Err(Refused::NotAcceptable(format!(
        "cannot serve {header:?}: frames are sent in {}, as multipart/related; type=\"application/octet-stream\"{}",
        syntaxes.join(" or "),
        image.map(|i| format!(" or type=\"{i}\"")).unwrap_or_default()
    )))
}

/// Chooses whether a rendered image may be sent (PS3.18 §8.3.5.1.1): only PNG is made, so `image/png`,
/// `image/*` or `*/*`; an absent header means anything. A request for other image types only (OHIF asks its
/// thumbnails as `image/jpeg`) gets PNG too: RFC 9110 §12.5.1 lets a server disregard `Accept` rather than
/// answer 406, and an image is what was asked for. PNG refused outright (`q=0`), or no image type at all,
/// is 406.
pub fn negotiate_rendered(accept: Option<&str>) -> Result<&'static str, Refused> {
    const PNG: &str = "image/png";
    let Some(header) = accept.filter(|h| !h.trim().is_empty()) else {
        return Ok(PNG);
    };
    let ranges = ranked(header)?;
    let png_refused = ranges.iter().any(|r| r.q <= 0.0 && r.is("image", "png"));
    let an_image = |r: &MediaRange| r.q > 0.0 && (r.main == "image" || r.is("*", "*"));
    if !png_refused && ranges.iter().any(an_image) {
        return Ok(PNG);
    }
    Err(Refused::NotAcceptable(format!("cannot serve {header:?}: rendered images are made as {PNG} only")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPLICIT: &str = "1.2.840.10008.1.2.1";
    const IMPLICIT: &str = "1.2.840.10008.1.2";

    fn check(accept: Option<&str>, stored: &[&str], single: bool, expected: Result<InstanceForm, &str>) {
        let got = negotiate_instances(accept, stored, single);
        match (&got, expected.clone()) {
            (Ok((f, _)), Ok(e)) => assert_eq!(*f, e, "{accept:?}"),
            (Err(Refused::Malformed(_)), Err("400")) => {}
            (Err(Refused::NotAcceptable(_)), Err("406")) => {}
            _ => panic!("{accept:?} on {stored:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn accept_headers_real_clients_send() {
        use InstanceForm::*;
        let s = &[EXPLICIT][..];
        check(None, s, false, Ok(Multipart));
        check(Some(""), s, false, Ok(Multipart));
        check(Some("*/*"), s, false, Ok(Multipart));
        check(Some("multipart/related; type=\"application/dicom\""), s, false, Ok(Multipart));
        check(Some("multipart/related; type=application/dicom"), s, false, Ok(Multipart));
        check(Some("multipart/related; type=\"application/dicom\"; transfer-syntax=*"), s, false, Ok(Multipart));
        check(
            Some("multipart/related;type=application/dicom;transfer-syntax=1.2.840.10008.1.2.1"),
            s,
            false,
            Ok(Multipart),
        );
        check(
            Some("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.50"),
            s,
            false,
            Err("406"),
        );
        check(Some("multipart/related; type=\"application/dicom; transfer-syntax=*\""), s, false, Ok(Multipart));
        check(
            Some("multipart/related; type=\"application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50\""),
            s,
            false,
            Err("406"),
        );
        check(Some("MULTIPART/Related; Type=\"Application/DICOM\""), s, false, Ok(Multipart));
        check(Some("multipart/related"), s, false, Ok(Multipart));
        check(Some("application/dicom"), s, true, Ok(Single));
        check(Some("application/dicom"), s, false, Err("406"));
        check(Some("application/dicom+json"), s, false, Err("406"));
        check(Some("multipart/related; type=\"application/octet-stream\""), s, false, Err("406"));
        check(Some("image/jpeg, */*;q=0.1"), s, false, Ok(Multipart));
        check(Some("application/dicom;q=0.5, multipart/related; type=application/dicom"), s, true, Ok(Multipart));
        check(
            Some(
                "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90, multipart/related; type=application/dicom; transfer-syntax=*",
            ),
            s,
            false,
            Ok(Multipart),
        );
        check(Some("*/*;q=0"), s, false, Err("406"));
        check(
            Some("multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1"),
            &[EXPLICIT, IMPLICIT],
            false,
            Ok(Multipart),
        );
        check(
            Some("multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1"),
            &[EXPLICIT, "1.2.840.10008.1.2.4.50"],
            false,
            Err("406"),
        );
        check(
            Some("multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2"),
            &[IMPLICIT],
            false,
            Ok(Multipart),
        );
    }

    #[test]
    fn native_syntaxes_are_sent_as_explicit_vr_little_endian_when_application_dicom_is_named() {
        use Representation::*;
        const BIG: &str = "1.2.840.10008.1.2.2";
        const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
        const JPEG: &str = "1.2.840.10008.1.2.4.50";
        let representation =
            |accept: Option<&str>, stored: &[&str]| negotiate_instances(accept, stored, true).map(|r| r.1);
        let mixed = &[IMPLICIT, BIG, DEFLATED, EXPLICIT][..];
        for (accept, expected) in [
            (None, AsStored),
            (Some("*/*"), AsStored),
            (Some("multipart/*"), AsStored),
            (Some("multipart/related; type=\"application/*\""), AsStored),
            (Some("multipart/related; type=\"application/dicom\"; transfer-syntax=*"), AsStored),
            (Some("multipart/related; type=\"application/dicom\""), Explicit),
            (Some("multipart/related"), Explicit),
            (Some("application/dicom"), Explicit),
            (Some("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1"), ExplicitOnly),
            (Some("application/dicom; transfer-syntax=1.2.840.10008.1.2.1"), ExplicitOnly),
        ] {
            assert_eq!(representation(accept, mixed), Ok(expected), "{accept:?}");
        }
        // A compressed instance is sent as stored by default, and cannot be had in another syntax.
        let explicit = Some("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1");
        assert_eq!(representation(Some("application/dicom"), &[IMPLICIT, JPEG]), Ok(Explicit));
        assert!(matches!(representation(explicit, &[IMPLICIT, JPEG]), Err(Refused::NotAcceptable(_))));
        let implicit = Some("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2");
        assert_eq!(representation(implicit, &[IMPLICIT]), Ok(AsStored), "the stored syntax named");
        assert!(matches!(representation(implicit, &[IMPLICIT, EXPLICIT]), Err(Refused::NotAcceptable(_))));
        // The next alternative is tried when one cannot be served.
        let fallback =
            format!("{}, multipart/related; type=application/dicom; transfer-syntax=*;q=0.5", explicit.unwrap());
        assert_eq!(representation(Some(&fallback), &[JPEG]), Ok(AsStored));
    }

    #[test]
    fn json_negotiation() {
        for ok in [None, Some("application/dicom+json"), Some("application/json"), Some("*/*"), Some("application/*")] {
            assert_eq!(negotiate_json(ok), Ok(()), "{ok:?}");
        }
        assert!(matches!(negotiate_json(Some("application/dicom+xml")), Err(Refused::NotAcceptable(_))));
        assert!(matches!(negotiate_json(Some("application/dicom+json;q=0")), Err(Refused::NotAcceptable(_))));
        assert!(matches!(negotiate_json(Some("nonsense")), Err(Refused::Malformed(_))));
    }

    #[test]
    fn frame_negotiation() {
        const JPEG: &str = "1.2.840.10008.1.2.4.50";
        let check = |accept: Option<&str>, syntax: &str, encapsulated: bool, expected: Result<&str, &str>| {
            let got = negotiate_frames(accept, &[syntax], encapsulated);
            match (&got, expected) {
                (Ok(m), Ok(e)) => assert_eq!(*m, e, "{accept:?}"),
                (Err(Refused::Malformed(_)), Err("400")) | (Err(Refused::NotAcceptable(_)), Err("406")) => {}
                _ => panic!("{accept:?} on {syntax}: got {got:?}, expected {expected:?}"),
            }
        };
        let octets = Ok("application/octet-stream");
        check(None, EXPLICIT, false, octets);
        check(Some("multipart/related; type=\"application/octet-stream\"; transfer-syntax=*"), EXPLICIT, false, octets);
        check(Some("multipart/related; type=application/octet-stream"), EXPLICIT, false, octets);
        check(Some("multipart/related"), EXPLICIT, false, octets);
        check(Some("*/*"), EXPLICIT, false, octets);
        check(
            Some("multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"),
            EXPLICIT,
            false,
            octets,
        );
        check(
            Some("multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.50"),
            EXPLICIT,
            false,
            Err("406"),
        );
        check(Some("multipart/related; type=\"image/jpeg\""), JPEG, true, Ok("image/jpeg"));
        check(Some("multipart/related; type=\"image/jpeg\""), EXPLICIT, false, Err("406"));
        check(
            Some("multipart/related; type=\"image/jp2\", multipart/related; type=application/octet-stream"),
            JPEG,
            true,
            octets,
        );
        check(Some("image/jpeg"), JPEG, true, Err("406"));
        check(Some("multipart/related; type=application/octet-stream; transfer-syntax=x"), JPEG, true, Err("400"));
    }

    #[test]
    fn malformed_headers() {
        let s = &[EXPLICIT][..];
        for bad in [
            "application",
            "/dicom",
            "multipart/related; type",
            "multipart/related; type=\"application/dicom",
            "*/dicom",
            "multipart/related; q=2",
            "multipart/related; q=abc",
            "multipart/related; transfer-syntax=abc",
            "multipart/related; type=application/dicom; transfer-syntax=1.2.x",
            "text/html, bad media",
        ] {
            check(Some(bad), s, false, Err("400"));
        }
    }

    #[test]
    fn parses_parameters_and_quotes() {
        let r = parse_accept("multipart/related; type=\"application/dicom\"; boundary=\"a,b\", */*;q=0.2").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].param("type"), Some("application/dicom"));
        assert_eq!(r[0].param("boundary"), Some("a,b"));
        assert_eq!(r[1].q, 0.2);
    }

    #[test]
    fn rendered_images_are_png_only() {
        for ok in [None, Some(""), Some("image/png"), Some("image/*"), Some("*/*"), Some("image/jpeg, image/png;q=0.5")]
        {
            assert_eq!(negotiate_rendered(ok), Ok("image/png"), "{ok:?}");
        }
        for image in ["image/jpeg", "image/gif"] {
            assert_eq!(negotiate_rendered(Some(image)), Ok("image/png"), "{image}: an image is what was asked for");
        }
        for refused in ["application/dicom", "image/png;q=0", "image/jpeg, image/png;q=0", "text/html"] {
            assert!(matches!(negotiate_rendered(Some(refused)), Err(Refused::NotAcceptable(_))), "{refused}");
        }
        assert!(matches!(negotiate_rendered(Some("image")), Err(Refused::Malformed(_))));
    }
}

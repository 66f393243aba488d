//! WADO-RS retrieval under a study token (SPEC §5.2, §5.3): the capability checks, then the instances as
//! `multipart/related` read straight from their memory maps.
//!
//! Invariants: no byte of DICOM leaves before `check_capability` has passed; files are reached only through
//! the index; a response never holds a whole study in memory: each file is mapped when its part is reached
//! and dropped after it.

use memmap2::Mmap;
use ring::rand::{SecureRandom, SystemRandom};
use std::io::{self, Read};
use std::path::PathBuf;

use crate::accept::{InstanceForm, Refused, negotiate_instances};
use crate::auth::Grant;
use crate::config::Tenant;
use crate::http::{ApiError, Body, Request, Response};
use crate::index::{Instance, Study, Uid};
use crate::router::App;
use crate::time::now_secs;

/// Checks a study token against the request (SPEC §5.2) and returns the indexed study it opens.
/// Every failure is a 403 that says what failed but nothing of what the token holds.
pub fn check_capability<'a>(
    app: &'a App,
    tenant: &Tenant,
    grant: &Grant,
    study_token: &str,
    study_uid: Uid,
) -> Result<&'a Study, ApiError> {
    let forbid = |why: &str| ApiError::Forbidden(why.to_string());
    let claims = app.sealer.open(study_token, now_secs()).map_err(|r| forbid(&r.to_string()))?;
    if claims.tenant != tenant.name {
        return Err(forbid("study token was minted for another tenant"));
    }
    if claims.study != study_uid.as_str() {
        return Err(forbid("study token was minted for another study"));
    }
    if !tenant.ignore_patient {
        let current = grant.patient.as_ref().map(|p| p.id.as_str());
        if current.is_none() || current != claims.patient.as_deref() {
            return Err(forbid("study token is bound to another patient"));
        }
    }
    let study = app
        .index
        .study(study_uid)
        .ok_or_else(|| ApiError::NotFound(format!("study {} is not known", study_uid.as_str())))?;
    if !claims.patient_ids.iter().any(|id| *id == study.patient_id) {
        return Err(forbid("the study no longer belongs to the patient the token was minted for"));
    }
    Ok(study)
}

/// Which instances of a study a retrieve path names.
pub struct Selection<'a> {
    pub series: Option<Uid<'a>>,
    pub instance: Option<Uid<'a>>,
}

pub fn retrieve(app: &App, req: &Request, study: &Study, sel: Selection) -> Result<Response, ApiError> {
    let instances = select(study, &sel)?;
    let stored: Vec<&str> = dedup(instances.iter().map(|i| i.transfer_syntax.as_str()));
    let form = negotiate_instances(req.header("accept"), &stored, sel.instance.is_some()).map_err(|r| match r {
        Refused::Malformed(m) => ApiError::BadRequest(m),
        Refused::NotAcceptable(m) => ApiError::NotAcceptable(m),
    })?;
    let files: Vec<(PathBuf, &Instance)> = instances.iter().map(|i| (app.index.file_path(i), *i)).collect();
    match form {
        InstanceForm::Single => {
            let (path, inst) = files.into_iter().next().ok_or_else(|| ApiError::Internal("no instance".into()))?;
            let reader = Parts::new(vec![Segment::File(path, inst.size)]);
            Ok(Response::new(200)
                .with_header("Content-Type", format!("application/dicom; transfer-syntax={}", inst.transfer_syntax))
                .with_body(Body::Stream { len: inst.size, reader: Box::new(reader) }))
        }
        InstanceForm::Multipart => {
            let boundary = new_boundary()?;
            let (segments, len) = multipart_segments(&boundary, files);
            Ok(Response::new(200)
                .with_header(
                    "Content-Type",
                    format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
                )
                .with_body(Body::Stream { len, reader: Box::new(Parts::new(segments)) }))
        }
    }
}

fn select<'a>(study: &'a Study, sel: &Selection) -> Result<Vec<&'a Instance>, ApiError> {
    let Some(se_uid) = sel.series else {
        return Ok(study.series.iter().flat_map(|s| &s.instances).collect());
    };
    let series = study
        .series(se_uid)
        .ok_or_else(|| ApiError::NotFound(format!("series {} is not in this study", se_uid.as_str())))?;
    let Some(sop) = sel.instance else {
        return Ok(series.instances.iter().collect());
    };
    let inst = series
        .instance(sop)
        .ok_or_else(|| ApiError::NotFound(format!("instance {} is not in this series", sop.as_str())))?;
    Ok(vec![inst])
}

fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = items.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A boundary that cannot occur by chance in the parts: 128 random bits (RFC 2046 §5.1.1 allows 70 chars).
fn new_boundary() -> Result<String, ApiError> {
    let mut raw = [0u8; 16];
    SystemRandom::new().fill(&mut raw).map_err(|_| ApiError::Internal("no randomness for a boundary".into()))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// The body of a `multipart/related` response (RFC 2387, RFC 2046 §5.1.1): no preamble, each part opened by
/// `--boundary CRLF`, its headers, a blank line and the file's bytes; parts separated by `CRLF--boundary`
/// and the whole closed by `CRLF--boundary--CRLF`.
fn multipart_segments(boundary: &str, files: Vec<(PathBuf, &Instance)>) -> (Vec<Segment>, u64) {
    let mut segments = Vec::with_capacity(files.len() * 2 + 1);
    for (n, (path, inst)) in files.into_iter().enumerate() {
        let lead = if n == 0 { "" } else { "\r\n" };
        let head = format!(
            "{lead}--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={}\r\nContent-Length: {}\r\n\r\n",
            inst.transfer_syntax, inst.size
        );
        segments.push(Segment::Bytes(head.into_bytes()));
        segments.push(Segment::File(path, inst.size));
    }
    segments.push(Segment::Bytes(format!("\r\n--{boundary}--\r\n").into_bytes()));
    let len = segments.iter().map(Segment::len).sum();
    (segments, len)
}

/// A piece of a response body.
enum Segment {
    Bytes(Vec<u8>),
    /// An indexed file and the size the index promised.
    File(PathBuf, u64),
}

impl Segment {
    fn len(&self) -> u64 {
        match self {
            Segment::Bytes(b) => b.len() as u64,
            Segment::File(_, size) => *size,
        }
    }
}

/// Reads the segments in order, mapping each file only while its bytes are being sent.
struct Parts {
    segments: std::vec::IntoIter<Segment>,
    current: Option<Current>,
}

enum Current {
    Bytes(Vec<u8>, usize),
    Map(Mmap, usize),
}

impl Parts {
    fn new(segments: Vec<Segment>) -> Parts {
        Parts { segments: segments.into_iter(), current: None }
    }

    fn open(segment: Segment) -> io::Result<Current> {
        match segment {
            Segment::Bytes(b) => Ok(Current::Bytes(b, 0)),
            Segment::File(path, size) => {
                let map = crate::mmap::map_file(&path).map_err(|e| {
                    log::error!("cannot map indexed file {}: {e}", path.display());
                    e
                })?;
                if map.len() as u64 != size {
                    log::error!(
                        "indexed file {} changed size: {} bytes, index says {size}; run `smart-imaging check`",
                        path.display(),
                        map.len()
                    );
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "indexed file changed"));
                }
                Ok(Current::Map(map, 0))
            }
        }
    }
}

impl Read for Parts {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let current = match &mut self.current {
                Some(c) => c,
                None => match self.segments.next() {
                    Some(seg) => self.current.insert(Parts::open(seg)?),
                    None => return Ok(0),
                },
            };
            let (data, pos): (&[u8], &mut usize) = match current {
                Current::Bytes(b, pos) => (b, pos),
                Current::Map(m, pos) => (m, pos),
            };
            let rest = data.get(*pos..).unwrap_or_default();
            if rest.is_empty() {
                self.current = None;
                continue;
            }
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            *pos += n;
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_framing_is_exact() {
        let dir = std::env::temp_dir().join(format!("si-wado-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.dcm"), dir.join("b.dcm"));
        std::fs::write(&a, b"AAAA").unwrap();
        std::fs::write(&b, b"BB\r\n--").unwrap();
        let inst = |size| Instance { transfer_syntax: "1.2.840.10008.1.2.1".into(), size, ..Default::default() };
        let (ia, ib) = (inst(4), inst(6));
        let (segments, len) = multipart_segments("XYZ", vec![(a, &ia), (b, &ib)]);
        let mut body = Vec::new();
        Parts::new(segments).read_to_end(&mut body).unwrap();
        let expected = "--XYZ\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\nContent-Length: 4\r\n\r\nAAAA\
                        \r\n--XYZ\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\nContent-Length: 6\r\n\r\nBB\r\n--\
                        \r\n--XYZ--\r\n";
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        assert_eq!(len, expected.len() as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_changed_size_fails_the_read() {
        let dir = std::env::temp_dir().join(format!("si-wado-size-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.dcm");
        std::fs::write(&a, b"AAAA").unwrap();
        let mut parts = Parts::new(vec![Segment::Bytes(b"x".to_vec()), Segment::File(a, 5)]);
        let mut body = Vec::new();
        assert!(parts.read_to_end(&mut body).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn boundaries_are_fresh() {
        let (a, b) = (new_boundary().unwrap(), new_boundary().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}

//! WADO-RS retrieval of instances (PS3.18 §10.4): a study, a series or one instance, as stored.
//!
//! Invariant: the head promises only what every file can deliver (each size is checked first); instance
//! bodies are streamed from maps, never gathered in memory.

use super::etag::etag;
use super::scope::{Scope, refused};
use crate::http::accept::{InstanceForm, negotiate_instances};
use crate::http::multipart::{self, Part, Segment};
use crate::http::{ApiError, Response};
use crate::index::Instance;

/// Instances as stored: `multipart/related; type="application/dicom"`, or one bare `application/dicom`
/// body when one instance is asked for that way.
pub fn retrieve(scope: &Scope, instances: Vec<&Instance>, single_ok: bool) -> Result<Response, ApiError> {
    let mut stored: Vec<&str> = instances.iter().map(|i| i.transfer_syntax.as_str()).collect();
    stored.sort_unstable();
    stored.dedup();
    let form = negotiate_instances(scope.req.header("accept"), &stored, single_ok).map_err(refused)?;
    // The head promises every file's indexed length: check each file has it before promising, so a file
    // deleted or replaced since indexing answers an error instead of a 200 cut short. (One changed while it
    // is being sent still cuts the response short, and the connection is then closed.)
    for inst in &instances {
        crate::sys::map::check_size(&scope.index.file_path(inst), inst.size)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    let files = |i: &&Instance| Segment::File(scope.index.file_path(i), i.size);
    let (content_type, body) = match form {
        InstanceForm::Single => {
            let inst = instances.first().ok_or_else(|| ApiError::Internal("no instance to send".into()))?;
            (
                format!("application/dicom; transfer-syntax={}", inst.transfer_syntax),
                multipart::stream(vec![files(inst)]),
            )
        }
        InstanceForm::Multipart => {
            let boundary = multipart::new_boundary()?;
            let parts = instances
                .iter()
                .map(|i| Part {
                    content_type: format!("application/dicom; transfer-syntax={}", i.transfer_syntax),
                    content: vec![files(i)],
                })
                .collect();
            (
                format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
                multipart::body(&boundary, parts),
            )
        }
    };
    let tag = etag(scope, &format!("instances {form:?}"), &instances);
    Ok(Response::new(200).with_header("Content-Type", content_type).with_header("ETag", tag).with_body(body))
}

//! DICOMweb under a study token: the capability check (`capability`), then WADO-RS retrieval of instances
//! (`retrieve`), metadata and bulk data (`metadata`), frames (`frames`) and the study-scoped QIDO-RS searches
//! (`qido`), every one answered from the index and the memory-mapped files, with ETags (`etag`).
//!
//! Invariants: nothing is answered before `capability::check_capability` has passed, and every resource is
//! looked up inside the study it returned; files are reached only through the index; instance bodies are
//! streamed from maps, never gathered in memory; every successful answer carries an `ETag` derived from the
//! index.

pub mod capability;
pub mod etag;
pub mod frames;
pub mod metadata;
pub mod qido;
pub mod retrieve;
pub mod scope;
pub mod stream;

pub use capability::check_capability;
pub use scope::{Scope, Target};

use crate::http::{ApiError, Response};
use scope::{instance, series};

pub fn serve(scope: &Scope, target: Target) -> Result<Response, ApiError> {
    let study = &scope.study;
    let response = match target {
        Target::Study => retrieve::retrieve(scope, study.instances().collect(), false),
        Target::Series(se) => retrieve::retrieve(scope, series(study, se)?.instances().collect(), false),
        Target::Instance(se, sop) => retrieve::retrieve(scope, vec![instance(study, se, sop)?.1], true),
        Target::StudyMetadata => {
            metadata::metadata(scope, study.series().flat_map(|s| s.instances().map(move |i| (s, i))).collect())
        }
        Target::SeriesMetadata(se) => {
            let s = series(study, se)?;
            metadata::metadata(scope, s.instances().map(|i| (s, i)).collect())
        }
        Target::InstanceMetadata(se, sop) => metadata::metadata(scope, vec![instance(study, se, sop)?]),
        Target::SeriesSearch => qido::search_series(scope),
        Target::InstanceSearch(se) => qido::search_instances(scope, &series(study, se)?),
        Target::Frames(se, sop, list) => frames::frames(scope, instance(study, se, sop)?, list),
        Target::Bulk(se, sop, path) => metadata::bulk(scope, instance(study, se, sop)?, path),
    }?;
    Ok(etag::not_modified(scope.req, response))
}

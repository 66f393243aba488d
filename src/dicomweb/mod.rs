//! DICOMweb under a study token: the capability check (`capability`), then WADO-RS retrieval of instances
//! (`retrieve`), metadata and bulk data (`metadata`), frames (`frames`), rendered frames and thumbnails
//! (`rendered`, the images made by `pixels`) and the study-scoped QIDO-RS searches (`qido`), every one
//! answered from the index and the memory-mapped files, with ETags (`etag`).
//!
//! Invariants: nothing is answered before `capability::check_capability` has passed, and every resource is
//! looked up inside the study it returned; files are reached only through the index; instance bodies are
//! streamed from maps, never gathered in memory; every successful answer carries an `ETag` derived from the
//! index.

pub mod capability;
pub mod context;
pub mod etag;
pub mod frames;
pub mod metadata;
pub mod pixels;
pub mod qido;
pub mod rendered;
pub mod retrieve;
pub mod stream;

pub use capability::check_capability;
pub use context::{Context, Target};

use crate::http::{ApiError, Response};
use context::{instance, series};

pub fn serve(cx: &Context, target: Target) -> Result<Response, ApiError> {
    let study = &cx.study;
    match target {
        Target::Study => retrieve::retrieve(cx, study.instances().collect(), false),
        Target::Series(se) => retrieve::retrieve(cx, series(study, se)?.instances().collect(), false),
        Target::Instance(se, sop) => retrieve::retrieve(cx, vec![instance(study, se, sop)?.1], true),
        Target::StudyMetadata => {
            metadata::metadata(cx, study.series().flat_map(|s| s.instances().map(move |i| (s, i))).collect())
        }
        Target::SeriesMetadata(se) => {
            let s = series(study, se)?;
            metadata::metadata(cx, s.instances().map(|i| (s, i)).collect())
        }
        Target::InstanceMetadata(se, sop) => metadata::metadata(cx, vec![instance(study, se, sop)?]),
        Target::StudySearch => qido::search_studies(cx),
        Target::SeriesSearch => qido::search_series(cx),
        Target::StudyInstanceSearch => qido::search_instances(cx, None),
        Target::InstanceSearch(se) => qido::search_instances(cx, Some(&series(study, se)?)),
        Target::Frames(se, sop, list) => frames::frames(cx, instance(study, se, sop)?, list),
        Target::Bulk(se, sop, path) => metadata::bulk(cx, instance(study, se, sop)?, path),
        Target::Rendered(se, sop, frame, how) => rendered::rendered(cx, instance(study, se, sop)?, frame, how),
    }
}

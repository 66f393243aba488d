//! Fuzzes the DICOM header reader (`dicom::read_header`, what `smart-imaging index` runs on every file), the
//! whole-data-set reader that shares its framing (`dataset::read_data_set`) and the transcoder on top of it
//! (`transcode`), through the library's public `dicom` module.
//!
//! Besides panics, hangs (`-timeout`) and allocations past `-rss_limit_mb`, it checks what a caller relies
//! on: a Pixel Data offset inside the bytes, the three UIDs present, every value range of the data set
//! inside the bytes, and a transcoding exactly as long as its plan.

#![no_main]

use smart_imaging::dicom::{self, dataset, transcode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(header) = dicom::read_header(bytes) {
        assert!(header.pixel_data_offset.is_none_or(|offset| offset <= bytes.len() as u64));
        assert!(!header.sop_instance_uid.is_empty());
        assert!(!header.study_instance_uid.is_empty());
        assert!(!header.series_instance_uid.is_empty());
    }
    if let Ok(data_set) = dataset::read_data_set(bytes) {
        check_ranges(&data_set.meta, bytes.len());
        check_ranges(&data_set.elements, bytes.len());
        // The transcoder makes exactly as many bytes as its plan promised.
        let plan = transcode::plan(bytes, &data_set);
        assert_eq!(produce(&plan, bytes), Some(plan.len()));
    }
    if let Ok(plan) = transcode::plan_deflated(bytes, None) {
        assert_eq!(produce(&plan, bytes), Some(plan.len()));
    }
});

/// How many bytes a plan makes, 64 KiB at a time; `None` when a deflate stream fails on the way.
fn produce(plan: &transcode::Plan, bytes: &[u8]) -> Option<u64> {
    let mut progress = transcode::Progress::default();
    let (mut total, mut out) = (0u64, Vec::new());
    loop {
        out.clear();
        match plan.fill(bytes, &mut progress, &mut out, 64 << 10).ok()? {
            0 => return Some(total),
            n => total += n as u64,
        }
    }
}

fn check_ranges(elements: &[dataset::Element], len: usize) {
    for element in elements {
        match &element.value {
            dataset::Value::Bytes(range) => assert!(range.start <= range.end && range.end <= len),
            dataset::Value::Fragments(ranges) => ranges.iter().for_each(|r| assert!(r.start <= r.end && r.end <= len)),
            dataset::Value::Items(items) => items.iter().for_each(|item| check_ranges(item, len)),
        }
    }
}

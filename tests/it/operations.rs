//! Running it in production (README, Running it for real): the start-up line and `GET /metrics`.

use crate::harness::*;

#[test]
fn the_startup_line_names_version_index_tenants_and_listener() {
    let server = Launch::new(sample_config()).start();
    let index = IndexFile::sample();
    let log = server.wait_for_log("the start-up line", |l| l.contains(" serving "));
    let line = log.lines().find(|l| l.contains(" serving ")).unwrap();
    let expected = format!(
        "smart-imaging {} serving {} studies ({} instances) from ",
        env!("CARGO_PKG_VERSION"),
        index.studies.len(),
        index.instance_count()
    );
    assert!(line.contains(&expected), "{line}");
    assert!(line.contains("written 2025-11-28T00:00:00Z"), "{line}");
    assert!(line.contains("tenants demo (mock), open (mock)"), "{line}");
    assert!(line.contains(&format!("listener http://{}", server.addr())), "{line}");
}

/// The value of one sample line of an exposition, by its name and labels as written.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_requests_bytes_and_latency_and_can_be_turned_off() {
    let server = Launch::new(sample_config()).start();
    let (uid, address) = addresses(&server, "/open/fhir/ImagingStudy").remove(0);
    let download = get(&format!("{address}/studies/{uid}"), &[]);
    assert_eq!(download.status, 200);
    assert_eq!(server.get("/open/fhir/ImagingStudy/2.25.9").status, 404);
    // The counts are made once each response is done, after the client has it: wait for the log line.
    server.wait_for_log("the 404's log line", |l| l.contains("/open/fhir/ImagingStudy/2.25.9 404"));
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = reply.text();
    assert_eq!(
        sample(&text, "smart_imaging_requests_total{route=\"fhir-search\",status=\"200\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "smart_imaging_requests_total{route=\"fhir-read\",status=\"404\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "smart_imaging_requests_total{route=\"wado\",status=\"200\"}"), Some(1.0), "{text}");
    let bytes = sample(&text, "smart_imaging_response_bytes_total").unwrap();
    assert!(bytes >= download.body.len() as f64, "{bytes} bytes counted, {} downloaded", download.body.len());
    assert_eq!(sample(&text, "smart_imaging_request_duration_seconds_count"), Some(3.0), "{text}");
    assert_eq!(sample(&text, "smart_imaging_request_duration_seconds_bucket{le=\"+Inf\"}"), Some(3.0), "{text}");
    assert_eq!(sample(&text, "smart_imaging_busy_workers"), Some(1.0), "the scrape itself: {text}");
    // Counted by the connection watch's sweep, a quarter of a second behind at most: only present.
    assert!(sample(&text, "smart_imaging_open_connections").is_some(), "{text}");
    let index = IndexFile::sample();
    assert_eq!(sample(&text, "smart_imaging_index_instances"), Some(index.instance_count() as f64), "{text}");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample line: {line}");
    }

    let dir = TempDir::new("metrics-off");
    let off = Launch::new(dir.config(
        "[server]\nmetrics = false\n\n[tenants.open]\nauthorization.type = \"mock\"\n\
                 authorization.ignorePatient = true\nimages.lookup = \"all-studies\"\n",
    ))
    .start();
    assert_eq!(off.get("/metrics").status, 404, "server.metrics = false");
}

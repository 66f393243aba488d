//! Running it in production (README, Running it for real): the start-up line.

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

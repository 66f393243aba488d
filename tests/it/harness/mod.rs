//! The shared harness of the integration tests: it starts the real `smart-imaging` binary on port 0, talks
//! HTTP to it, parses what it answers, and makes a failing test show the server's command line and log.
//!
//! Invariants: every server is a child process started here and killed when its `Server` is dropped; no
//! test waits on a sleep for readiness (the `listening on` line and the log are awaited on a channel or a
//! condition variable, with a deadline); requests only ever go to 127.0.0.1; tests share nothing mutable
//! but the counter that makes temporary folder names unique, so they run in parallel.

mod fhir;
mod http;
mod repo;
mod server;
mod traffic;

pub use fhir::*;
pub use http::*;
pub use repo::*;
pub use server::*;
pub use traffic::*;

use std::time::Duration;

/// How long a server may take to print `listening on`, a request to answer, or a command to finish.
const DEADLINE: Duration = Duration::from_secs(20);

/// The name of the environment variable that holds the study-token key.
pub const KEY_VAR: &str = "SMART_IMAGING_KEY";
/// The variable naming the configuration when `--config` does not; never inherited by the binary under test.
pub const CONFIG_VAR: &str = "SMART_IMAGING_CONFIG";

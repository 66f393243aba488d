//! The integration tests of `smart-imaging`: one test crate that starts the real binary on port 0 and talks
//! real HTTP to it (docs/ARCHITECTURE.md, Tests). `harness` holds what every area shares; each other module is one area.

mod attack;
mod backend;
mod clients;
mod dicomweb;
mod ehr;
mod fake_ehr;
mod frames;
mod harness;
mod incremental;
mod indexer;
mod lab;
mod layout;
mod mock;
mod newcomer;
mod operations;
mod probe;
mod probe_target;
mod redteam;
mod reload;
mod rendered;
mod resilience;
mod sample;
mod sandbox;
mod sandbox_attack;
mod sandbox_chart;
mod sandbox_kit;
mod sandbox_launch;
mod sandbox_oauth;
mod tokens;
mod transcode;

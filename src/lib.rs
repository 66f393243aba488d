//! smart-imaging: SMART Imaging Access in one synchronous binary: FHIR ImagingStudy search and DICOMweb
//! WADO-RS retrieval of memory-mapped files off a static index. `src/main.rs` only calls `cli::main`;
//! docs/ARCHITECTURE.md is the map of these modules and the rules between them.
//!
//! The library's surface is small on purpose: the command line, for the binary, and the DICOM readers,
//! for the fuzz target. Everything else is private to the crate.

#![deny(unsafe_code)]

mod app;
mod audit;
mod auth;
mod budget;
mod cache;
pub mod cli;
mod config;
pub mod dicom;
mod dicomweb;
mod fhir;
mod help;
mod home;
mod http;
mod index;
mod init;
mod matching;
mod metrics;
mod pidfile;
mod probe;
mod random;
mod routes;
mod sandbox;
mod server;
mod sys;
mod time;
mod token;
mod viewer;

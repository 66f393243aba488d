//! HTTP as plain values: requests and responses here, the request error type with its status table in
//! `error`, URL decoding in `url`, `Accept` negotiation in `accept`, `multipart/related` framing in
//! `multipart`. Only `server` converts between these and tiny_http.

pub mod accept;
pub mod error;
pub mod message;
pub mod multipart;
pub mod url;

pub use error::ApiError;
pub use message::{Body, Method, Request, Response, Sink, Source};
pub use url::{parse_query, percent_decode, percent_encode};

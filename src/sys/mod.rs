//! The only folder allowed `unsafe`: memory maps and their fault guard (`map`), signals (`signals`),
//! sockets that tiny_http holds (`sockets`) and writing to them directly (`sendfile`), process limits (`limits`),
//! allocator tuning (`malloc`) and file locks (`lock`). Every `unsafe` block carries a
//! `// SAFETY:` comment; everything outside this folder is `#![deny(unsafe_code)]`.

pub mod dir;
pub mod limits;
pub mod lock;
pub mod malloc;
pub mod map;
pub mod sendfile;
pub mod signals;
pub mod sockets;

//! RippleKV wire types: what travels in WebSocket text frames and REST bodies.
//!
//! [`request`] turns one text frame into a typed [`Request`], with a precise message
//! for every way a frame can be malformed. [`reply`] writes the reply objects of
//! PROTOCOL.md A4 (plus the part B `revision` field). [`rest`] parses the JSON bodies
//! of the REST routes the same way; [`snapshot`] is the JSON-lines backup format;
//! [`client`] is the other side: requests written, server frames read. This
//! crate knows nothing about storage, limits or
//! sockets: it checks shapes and types, not sizes or permissions.

pub mod client;
mod fields;
pub mod reply;
pub mod request;
pub mod rest;
pub mod snapshot;

pub use request::{parse_request, Op, Request, RequestBody, RequestError, WriteOptions};

//! Integration tests: a real server on 127.0.0.1:0, real WebSocket and HTTP sockets.

// Test helpers panic on unexpected failures; that is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;
/// A database of its own per test, on the machine's PostgreSQL (shared with the storage
/// crate's tests).
#[path = "../../../storage/tests/support/mod.rs"]
mod support;

mod auth;
mod bad_input;
mod cluster;
mod conditional;
mod defences;
mod hooked;
mod hostile;
mod openapi;
mod operations;
mod ops;
mod ordering;
mod range;
mod realtime;
mod replay;
mod rest;
mod shutdown;
mod snapshot;

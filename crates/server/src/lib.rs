//! The RippleKV server: HTTP routing, WebSocket sessions and the REST API over a
//! [`ripplekv_core::Store`].
//!
//! Parts:
//! - [`config`]: the typed, validated settings the server runs with.
//! - [`server`]: [`run`] binds everything together and owns the shutdown sequence.
//! - `http`: the router, CORS, `/health`, `/openapi.json` and JSON error responses.
//! - `auth`: API keys and how a request presents them.
//! - `rate`: token-bucket rate limits per credential and per client IP.
//! - `listen`: the accept loop, with the handshake timeout and graceful shutdown;
//!   `linger`: sockets are drained briefly after closing, so refusals are not reset.
//! - `ops`: one file per operation (validate, then apply through the store).
//! - `sequencer`: orders committed changes into the hub and tracks how far delivery
//!   has come, which `since` replays are served against.
//! - [`hub`]: the fan-out index from keys to subscribed connections.
//! - `ws`: the `/ws` upgrade, the per-connection session loop and the dispatcher.
//! - `rest`: the REST routes; `admin`: `GET /admin/snapshot` for backups and exports.
//! - `metrics`: `GET /metrics` in the Prometheus text format.
//! - `wire`: the one place that turns domain results into wire replies.
//! - `web`: the live demo page at `/`, compiled into the binary.
//!
//! The binary (`crates/cli`) parses flags and opens storage; tests call [`run`] with
//! their own listener on port 0 and their own shutdown future.

mod admin;
mod auth;
pub mod config;
mod exec;
mod http;
pub mod hub;
mod linger;
mod listen;
mod metrics;
mod rate;
mod rest;
mod sequencer;
pub mod server;
mod socketio;
mod state;
mod token;
mod urlcode;
mod web;
mod wire;
mod ws;

pub use config::ServerConfig;
pub use rate::RateLimit;
pub use server::{run, Listeners};
pub use ws::outbox::Outbox;
pub use ws::session::run_session;

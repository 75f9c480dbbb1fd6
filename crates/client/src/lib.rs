//! An async Rust client for RippleKV.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ripplekv_client::Error> {
//! use futures_util::StreamExt;
//! use ripplekv_client::{Auth, Client, Event};
//!
//! let client = Client::connect("ws://127.0.0.1:3000", Auth::ApiKey("rk_…".into())).await?;
//! client.set("user:1", "Ada").await?;
//! assert_eq!(client.get("user:1").await?.value, "Ada");
//!
//! let mut changes = client.subscribe(["user:*"]).await?;
//! while let Some(Event::Change(change)) = changes.next().await {
//!     println!("{} is now {:?} (revision {})", change.key, change.value, change.revision);
//! }
//! # Ok(()) }
//! ```
//!
//! Parts:
//! - [`Client`]: a cheap `Clone` handle; every operation of the protocol as a typed
//!   async method ([`Client::get`], [`Client::set`], [`Client::range`], …), with request
//!   ids, per-request timeouts and an optional client-side rate limit.
//! - [`Subscription`]: a `Stream` of [`Event`]s for a set of patterns.
//! - The connection task (private): owns the socket, matches replies to requests by id,
//!   routes notifications to subscriptions, and after a drop reconnects with exponential
//!   backoff and jitter, then re-subscribes with `since` = the last revision it saw, so a
//!   subscriber misses nothing across a server restart.
//! - [`Error`]: what went wrong, carrying the server's code and message.

mod client;
mod config;
mod connection;
mod error;
mod pacing;
mod subscription;
mod types;

pub use client::{Client, RangePage};
pub use config::{Auth, ClientConfig, Reconnect};
pub use error::Error;
pub use subscription::{Event, Subscription};
pub use types::{Change, ConnectionEvent, Record, Stats, WriteOptions, Written};

//! One WebSocket connection as its requests see it: the store, the hub, what it may
//! touch, and its outbox. The dispatcher and `subscribe` both work on it.

use std::sync::Arc;

use axum::extract::ws::Message;

use super::outbox::{Closed, Outbox};
use crate::exec::Executor;
use crate::hub::{Access, Hub, Subscriber};
use crate::metrics::Metrics;
use crate::rate::{RateLimiter, Subject};
use crate::sequencer::Sequencer;

/// Everything a request on one connection may need.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) executor: Executor,
    pub(crate) hub: Arc<Hub>,
    pub(crate) sequencer: Arc<Sequencer>,
    /// What the connection may read and write.
    pub(crate) access: Access,
    /// True for token connections: in-band subscriptions only deliver allowed keys.
    pub(crate) filtered: bool,
    pub(crate) subscriber: Arc<Subscriber>,
    pub(crate) outbox: Outbox,
    /// Patterns the connection may hold at once.
    pub(crate) max_subscriptions: usize,
    /// The credential rate limit, and whom this connection's requests count against.
    pub(crate) rate_limits: Arc<RateLimiter>,
    pub(crate) subject: Subject,
}

impl Connection {
    pub(crate) async fn send(&self, frame: String) -> Result<(), Closed> {
        self.outbox.send(Message::Text(frame.into())).await
    }
}

//! Subscriptions as `Stream`s.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;

use crate::connection::Command;
use crate::Change;

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A change to a key matching the subscription's patterns.
    Change(Change),
    /// The server could not replay everything missed while disconnected (the change log
    /// no longer reaches back that far): re-read what you watch. Changes after
    /// `revision` follow as usual.
    Resync {
        /// The revision to carry on from after re-reading.
        revision: u64,
    },
}

/// A stream of changes for a set of patterns. It survives reconnects: after a drop the
/// client resubscribes with `since`, and changes it already yielded are not repeated.
/// The stream ends when the client is closed or gives up reconnecting. Dropping it
/// unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    pub(crate) id: u64,
    pub(crate) events: mpsc::UnboundedReceiver<Event>,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
}

impl Stream for Subscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Unsubscribe { id: self.id });
    }
}

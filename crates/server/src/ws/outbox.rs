//! A connection's bounded queue of outgoing frames.
//!
//! Replies wait for room ([`Outbox::send`]): a client that does not read its replies
//! simply stops being read. Notifications cannot wait (they are pushed from the
//! store's commit path), so [`Outbox::try_push`] refuses them when the queue is full by
//! count or by bytes; the hub then marks the connection a slow consumer, and the
//! session closes it with 1008. Either way a connection holds at most the configured
//! number of frames and bytes, however fast changes arrive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The sending side, shared by the session and the hub.
#[derive(Debug, Clone)]
pub struct Outbox {
    frames: mpsc::Sender<Message>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    slow: CancellationToken,
}

/// The receiving side, drained by the session's writer.
#[derive(Debug)]
pub struct OutboxReceiver {
    frames: mpsc::Receiver<Message>,
    queued_bytes: Arc<AtomicUsize>,
}

/// The session ended; nothing more can be sent.
#[derive(Debug)]
pub(crate) struct Closed;

fn size(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Close(_) => 0,
    }
}

impl Outbox {
    /// A queue of at most `max_messages` frames and about `max_bytes` bytes.
    pub fn new(max_messages: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
        let (frames, receiver) = mpsc::channel(max_messages.max(1));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        (
            Outbox {
                frames,
                queued_bytes: Arc::clone(&queued_bytes),
                max_bytes,
                slow: CancellationToken::new(),
            },
            OutboxReceiver {
                frames: receiver,
                queued_bytes,
            },
        )
    }

    /// Queues a frame, waiting for room.
    pub(crate) async fn send(&self, message: Message) -> Result<(), Closed> {
        let bytes = size(&message);
        let permit = self.frames.reserve().await.map_err(|_| Closed)?;
        self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        permit.send(message);
        Ok(())
    }

    /// Queues a frame if there is room by count and by bytes; never waits.
    pub(crate) fn try_push(&self, message: Message) -> bool {
        let bytes = size(&message);
        if self.queued_bytes.load(Ordering::Relaxed) + bytes > self.max_bytes {
            return false;
        }
        match self.frames.try_reserve() {
            Ok(permit) => {
                self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
                permit.send(message);
                true
            }
            Err(_) => false,
        }
    }

    /// Marks the connection as unable to keep up; the session will close it.
    pub(crate) fn mark_slow(&self) {
        self.slow.cancel();
    }

    /// Resolves once the connection was marked slow.
    pub(crate) fn slow(&self) -> &CancellationToken {
        &self.slow
    }
}

impl OutboxReceiver {
    pub(crate) async fn recv(&mut self) -> Option<Message> {
        let message = self.frames.recv().await?;
        self.queued_bytes
            .fetch_sub(size(&message), Ordering::Relaxed);
        Some(message)
    }

    pub(crate) fn try_recv(&mut self) -> Option<Message> {
        let message = self.frames.try_recv().ok()?;
        self.queued_bytes
            .fetch_sub(size(&message), Ordering::Relaxed);
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pushes_are_refused_past_the_count_or_the_bytes() {
        let (outbox, mut receiver) = Outbox::new(3, 10);
        assert!(outbox.try_push(Message::Text("12345".into())));
        assert!(outbox.try_push(Message::Text("12345".into())));
        assert!(!outbox.try_push(Message::Text("1".into())), "11 bytes > 10");
        receiver.recv().await.unwrap();
        assert!(outbox.try_push(Message::Text("1".into())));
        assert!(outbox.try_push(Message::Text("1".into())));
        assert!(!outbox.try_push(Message::Text("".into())), "4 frames > 3");
    }
}

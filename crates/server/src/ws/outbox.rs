//! A connection's bounded queue of outgoing frames.
//!
//! Replies wait for room by count and by bytes ([`Outbox::send`]): a client that does
//! not read its replies simply stops being read, and its unread replies, however large
//! (a RANGE page can hold 1000 values), stay within the same byte bound. One reply
//! larger than the whole bound still goes out once the queue is empty. Notifications cannot wait (they are pushed from the
//! store's commit path), so [`Outbox::try_push`] refuses them when the queue is full by
//! count or by bytes; the hub then marks the connection a slow consumer, and the
//! session closes it with 1008. Either way a connection holds at most the configured
//! number of frames and bytes, however fast changes arrive.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::ws::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Capacity kept by an emptied queue; a burst's larger buffer is given back.
const IDLE_CAPACITY: usize = 8;

/// The sending side, shared by the session and the hub.
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
    slow: CancellationToken,
}

/// The receiving side, drained by the session's writer.
#[derive(Debug)]
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

/// A queue under a mutex rather than a channel: an idle connection's queue allocates
/// nothing (a channel allocates its first block of slots up front, about 1.6 KiB per
/// connection), and the mutex is only ever contended by one writer and one reader.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    max_messages: usize,
    max_bytes: usize,
    /// Longest a reply waits for room before the connection counts as a slow consumer.
    stall: Duration,
    /// Wakes the receiver when a frame arrives or the last sender leaves.
    readable: Notify,
    /// Wakes a waiting sender when room frees up or the receiver leaves.
    writable: Notify,
}

#[derive(Debug)]
struct State {
    frames: VecDeque<Message>,
    bytes: usize,
    senders: usize,
    receiver_alive: bool,
    /// Marked a slow consumer: the writer closes the connection.
    slow: bool,
    /// The session stopped reading: the writer sends what is queued, then closes.
    finishing: bool,
}

/// What the session's writer is to do next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Send this frame.
    Frame(Message),
    /// The connection was marked a slow consumer: close it.
    Slow,
    /// Nothing is queued and nothing more will be: close the socket.
    Done,
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

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Outbox {
    /// A queue of at most `max_messages` frames and about `max_bytes` bytes. A reply
    /// that finds no room for `stall` marks the connection slow.
    pub fn new(max_messages: usize, max_bytes: usize, stall: Duration) -> (Outbox, OutboxReceiver) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                bytes: 0,
                senders: 1,
                receiver_alive: true,
                slow: false,
                finishing: false,
            }),
            max_messages: max_messages.max(1),
            max_bytes,
            stall,
            readable: Notify::new(),
            writable: Notify::new(),
        });
        (
            Outbox {
                shared: Arc::clone(&shared),
                slow: CancellationToken::new(),
            },
            OutboxReceiver { shared },
        )
    }

    /// Queues a frame, waiting for room by count and by bytes (a frame larger than the
    /// byte bound waits for an empty queue, and is never refused for its size). A
    /// client that sends requests but never reads their replies would otherwise hold
    /// the session forever: after waiting `stall`, the connection is marked slow.
    pub(crate) async fn send(&self, message: Message) -> Result<(), Closed> {
        let mut message = Some(message);
        let deadline = tokio::time::Instant::now() + self.shared.stall;
        loop {
            // Registered before the check, so a wake between the check and the wait
            // is not lost.
            let room = self.shared.writable.notified();
            {
                let mut state = self.shared.lock();
                if !state.receiver_alive {
                    return Err(Closed);
                }
                let bytes = message.as_ref().map_or(0, size);
                let fits_bytes =
                    state.frames.is_empty() || state.bytes + bytes <= self.shared.max_bytes;
                if state.frames.len() < self.shared.max_messages && fits_bytes {
                    let message = message.take().unwrap_or_else(|| unreachable!());
                    state.bytes += bytes;
                    state.frames.push_back(message);
                    drop(state);
                    self.shared.readable.notify_one();
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                self.mark_slow();
                return Err(Closed);
            }
        }
    }

    /// Queues a frame if there is room by count and by bytes; never waits.
    pub(crate) fn try_push(&self, message: Message) -> bool {
        let bytes = size(&message);
        let mut state = self.shared.lock();
        let fits = state.receiver_alive
            && state.frames.len() < self.shared.max_messages
            && state.bytes + bytes <= self.shared.max_bytes;
        if fits {
            state.bytes += bytes;
            state.frames.push_back(message);
            drop(state);
            self.shared.readable.notify_one();
        }
        fits
    }

    /// Marks the connection as unable to keep up; the session will close it.
    pub(crate) fn mark_slow(&self) {
        self.shared.lock().slow = true;
        self.shared.readable.notify_one();
        self.slow.cancel();
    }

    /// Says the session stopped reading: once what is queued is sent, the writer
    /// closes the socket (the outbox itself stays open while the hub holds it).
    pub(crate) fn finish(&self) {
        self.shared.lock().finishing = true;
        self.shared.readable.notify_one();
    }

    /// Resolves once the connection was marked slow.
    pub(crate) fn slow(&self) -> &CancellationToken {
        &self.slow
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Outbox {
            shared: Arc::clone(&self.shared),
            slow: self.slow.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.readable.notify_one();
        }
    }
}

impl OutboxReceiver {
    /// What the writer is to do next, waiting until there is something: a slow mark
    /// comes before any frame, and the end only once the queue is empty. Emptiness and
    /// the sender count are read under the same lock as the pop, so a frame pushed by
    /// the last sender just before it leaves is never mistaken for the end. One lock
    /// and one signal, so a woken writer pays for nothing else.
    pub(crate) async fn next(&mut self) -> Next {
        loop {
            let arrival = self.shared.readable.notified();
            let popped = {
                let mut state = self.shared.lock();
                if state.slow {
                    return Next::Slow;
                }
                let popped = self.shared.pop(&mut state);
                if popped.is_none() && (state.finishing || state.senders == 0) {
                    return Next::Done;
                }
                popped
            };
            match popped {
                Some(message) => {
                    self.shared.writable.notify_one();
                    return Next::Frame(message);
                }
                None => arrival.await,
            }
        }
    }

    /// The next frame if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Message> {
        let popped = self.shared.pop(&mut self.shared.lock());
        if popped.is_some() {
            self.shared.writable.notify_one();
        }
        popped
    }
}

impl Shared {
    /// Takes the oldest frame under the lock already held, keeping the byte count, and
    /// gives back a burst's larger buffer once the queue is empty. The caller wakes a
    /// waiting sender once the lock is released.
    fn pop(&self, state: &mut State) -> Option<Message> {
        let message = state.frames.pop_front()?;
        state.bytes -= size(&message);
        if state.frames.is_empty() && state.frames.capacity() > IDLE_CAPACITY {
            state.frames.shrink_to(IDLE_CAPACITY);
        }
        Some(message)
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        self.shared.lock().receiver_alive = false;
        self.shared.writable.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next frame as the writer gets it; `None` at the end.
    async fn recv(receiver: &mut OutboxReceiver) -> Option<Message> {
        match receiver.next().await {
            Next::Frame(message) => Some(message),
            Next::Done => None,
            Next::Slow => panic!("marked slow"),
        }
    }

    const STALL: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn pushes_are_refused_past_the_count_or_the_bytes() {
        let (outbox, mut receiver) = Outbox::new(3, 10, STALL);
        assert!(outbox.try_push(Message::Text("12345".into())));
        assert!(outbox.try_push(Message::Text("12345".into())));
        assert!(!outbox.try_push(Message::Text("1".into())), "11 bytes > 10");
        recv(&mut receiver).await.unwrap();
        assert!(outbox.try_push(Message::Text("1".into())));
        assert!(outbox.try_push(Message::Text("1".into())));
        assert!(!outbox.try_push(Message::Text("".into())), "4 frames > 3");
    }

    #[tokio::test]
    async fn a_sender_waits_for_room_and_frames_keep_their_order() {
        let (outbox, mut receiver) = Outbox::new(2, 1 << 20, STALL);
        outbox.send(Message::Text("a".into())).await.unwrap();
        outbox.send(Message::Text("b".into())).await.unwrap();
        let sender = outbox.clone();
        let third = tokio::spawn(async move { sender.send(Message::Text("c".into())).await });
        tokio::task::yield_now().await;
        assert!(
            !third.is_finished(),
            "the queue is full: the sender must wait"
        );
        for expected in ["a", "b", "c"] {
            match recv(&mut receiver).await {
                Some(Message::Text(text)) => assert_eq!(text.as_str(), expected),
                other => panic!("expected {expected}, got {other:?}"),
            }
        }
        third.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn replies_wait_for_room_by_bytes_too_but_one_larger_than_the_bound_goes_alone() {
        let (outbox, mut receiver) = Outbox::new(100, 10, STALL);
        outbox.send(Message::Text("123456".into())).await.unwrap();
        let sender = outbox.clone();
        let second = tokio::spawn(async move { sender.send(Message::Text("12345".into())).await });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "11 bytes > 10: the reply must wait");
        recv(&mut receiver).await.unwrap();
        second.await.unwrap().unwrap();
        recv(&mut receiver).await.unwrap();
        // Larger than the bound on its own: it is sent once nothing else is queued.
        outbox
            .send(Message::Text("a reply of 24 bytes > 10".into()))
            .await
            .unwrap();
        assert_eq!(receiver.shared.lock().bytes, 24);
    }

    #[tokio::test]
    async fn either_side_leaving_ends_the_other() {
        let (outbox, mut receiver) = Outbox::new(2, 1 << 20, STALL);
        let copy = outbox.clone();
        assert!(outbox.try_push(Message::Text("last".into())));
        drop(outbox);
        drop(copy);
        assert!(
            matches!(recv(&mut receiver).await, Some(Message::Text(_))),
            "queued frames are still delivered"
        );
        assert!(
            recv(&mut receiver).await.is_none(),
            "no senders left: the queue is finished"
        );

        let (outbox, receiver) = Outbox::new(1, 1 << 20, STALL);
        outbox.send(Message::Text("fills it".into())).await.unwrap();
        let sender = outbox.clone();
        let blocked = tokio::spawn(async move { sender.send(Message::Text("waits".into())).await });
        tokio::task::yield_now().await;
        drop(receiver);
        assert!(
            blocked.await.unwrap().is_err(),
            "a waiting sender learns the receiver is gone"
        );
        assert!(!outbox.try_push(Message::Text("x".into())));
    }

    // Paused clock: the timeout elapses as soon as nothing else can run.
    #[tokio::test(start_paused = true)]
    async fn a_reply_that_finds_no_room_for_the_stall_time_marks_the_connection_slow() {
        let (outbox, _never_read) = Outbox::new(1, 1 << 20, STALL);
        outbox.send(Message::Text("fills it".into())).await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(outbox.send(Message::Text("waits".into())).await.is_err());
        assert!(started.elapsed() >= STALL);
        assert!(outbox.slow().is_cancelled());
    }

    #[tokio::test]
    async fn an_emptied_queue_gives_back_a_burst_buffer() {
        let (outbox, mut receiver) = Outbox::new(1000, 1 << 20, STALL);
        for _ in 0..500 {
            assert!(outbox.try_push(Message::Text("burst".into())));
        }
        while receiver.try_recv().is_some() {}
        assert!(receiver.shared.lock().frames.capacity() <= IDLE_CAPACITY);
    }
}

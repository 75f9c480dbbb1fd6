//! One WebSocket connection, from upgrade to close.
//!
//! The session runs two halves in one task: a reader that takes every request frame
//! already readable (up to [`MAX_PIPELINED`]), runs them as one pipeline and queues
//! their replies, and a writer that drains the bounded [`Outbox`] into the socket,
//! batching frames that are ready into one flush. The pipeline applies a connection's
//! requests in the order they arrive, each seeing the effects of those before it.
//! Replies and notifications share the outbox, so a notification queued by the
//! store's commit path always leaves before the writer's own reply.
//!
//! A client that stops reading fills its outbox. Replies then wait, which stops the
//! reader; a notification that finds no room marks the connection a slow consumer, and
//! the session closes it with 1008 "slow consumer". Either way a connection's memory is
//! bounded by the outbox, whatever the write rate.
//!
//! The loop is generic over `Sink`/`Stream`, so tests can drive it with channels.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite;
use tokio_util::sync::CancellationToken;

use super::connection::Connection;
use super::dispatch;
use super::outbox::{Next, Outbox, OutboxReceiver};
use crate::auth::Principal;
use crate::exec::Executor;
use crate::hub::{Hub, Subscriber};
use crate::metrics::Metrics;
use crate::rate::RateLimiter;
use crate::sequencer::Sequencer;

/// Close code sent when the server shuts down (RFC 6455 "going away").
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a message over the size limit (RFC 6455 "message too big").
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a broken frame (RFC 6455 "protocol error").
pub(crate) const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a text frame that is not UTF-8 (RFC 6455 "invalid frame payload data").
pub(crate) const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code for a subscriber that cannot keep up (RFC 6455 "policy violation").
pub(crate) const CLOSE_SLOW_CONSUMER: u16 = 1008;
/// Close code for a connection whose credentials stopped being accepted.
const CLOSE_POLICY: u16 = 1008;

/// Most request frames served as one pipeline: bounds what one connection has in
/// flight (its replies then wait in the bounded outbox).
const MAX_PIPELINED: usize = 64;

/// Close code for a peer that stopped answering pings (RFC 6455 "going away").
const CLOSE_PING_TIMEOUT: u16 = 1001;

/// What a session needs from the server.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub(crate) executor: Executor,
    pub(crate) hub: Arc<Hub>,
    pub(crate) sequencer: Arc<Sequencer>,
    pub(crate) principal: Principal,
    pub(crate) shutdown: CancellationToken,
    pub(crate) outbox_messages: usize,
    pub(crate) outbox_bytes: usize,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) ping_interval: Duration,
    pub(crate) pong_timeout: Duration,
    pub(crate) max_subscriptions: usize,
    pub(crate) rate_limits: Arc<RateLimiter>,
}

/// Runs one connection until the client closes it, the socket fails, the client
/// falls behind, or the server shuts down.
pub async fn run_session<Out, In>(sink: Out, stream: In, context: SessionContext)
where
    Out: Sink<Message> + Unpin + Send,
    Out::Error: Display,
    In: Stream<Item = Result<Message, axum::Error>> + Unpin + Send,
{
    let (outbox, queued) = Outbox::new(
        context.outbox_messages,
        context.outbox_bytes,
        context.pong_timeout,
    );
    let access = context.principal.access();
    // During a replay, at most one outbox worth of live notifications is held back.
    let subscriber = Arc::new(Subscriber::new(
        outbox.clone(),
        access.clone(),
        context.outbox_messages,
    ));
    if let Principal::Token(token) = &context.principal {
        for pattern in &token.subscribe {
            context.hub.subscribe(&subscriber, pattern.clone(), false);
        }
    }
    let connection = Connection {
        metrics: Arc::clone(&context.metrics),
        executor: context.executor.clone(),
        hub: Arc::clone(&context.hub),
        sequencer: Arc::clone(&context.sequencer),
        filtered: matches!(context.principal, Principal::Token(_)),
        access,
        subscriber: Arc::clone(&subscriber),
        outbox: outbox.clone(),
        max_subscriptions: context.max_subscriptions,
        rate_limits: Arc::clone(&context.rate_limits),
        subject: context.principal.subject(),
    };
    context.metrics.connection_opened();
    // The outbox stays open while the hub may push into it, so the writer cannot wait
    // for it to close: the reader says when it is done, and the writer then sends
    // what is queued (a close frame, say) and closes the socket.
    let reading_done = CancellationToken::new();
    tokio::join!(
        async {
            read_requests(stream, &connection, &context).await;
            reading_done.cancel();
            outbox.finish();
        },
        write_frames(
            sink,
            &context.metrics,
            queued,
            outbox.slow().clone(),
            reading_done.clone(),
            context.pong_timeout,
        ),
    );
    context.hub.remove_subscriber(subscriber.id());
    context.metrics.connection_closed();
}

async fn read_requests<In>(mut stream: In, connection: &Connection, context: &SessionContext)
where
    In: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let outbox = &connection.outbox;
    // Any frame from the peer shows it is alive; after `ping_interval` of silence it is
    // pinged, and after `pong_timeout` more it is closed. Idle-but-alive peers answer
    // pings (browsers and HPKV clients do so automatically) and stay connected.
    let mut last_heard = tokio::time::Instant::now();
    let mut pinged = false;
    let mut ticks = tokio::time::interval(
        context
            .ping_interval
            .min(context.pong_timeout)
            .max(Duration::from_millis(10)),
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let retired = retirement(&context.principal);
    tokio::pin!(retired);
    // A frame read while gathering a batch that cannot join it: handled next.
    let mut carried = None;
    // A batch's replies fit in the outbox, so a client that does not read has at most
    // one outbox of requests applied ahead of its replies.
    let batch_limit = MAX_PIPELINED.min(context.outbox_messages).max(1);
    loop {
        let frame = if let Some(frame) = carried.take() {
            frame
        } else {
            tokio::select! {
                biased;
                () = context.shutdown.cancelled() => {
                    let _ = outbox.send(close(CLOSE_GOING_AWAY, "server shutting down")).await;
                    return;
                }
                () = &mut retired => {
                    let reason = "token no longer accepted: the secret that signed it was rotated out";
                    let _ = outbox.send(close(CLOSE_POLICY, reason)).await;
                    return;
                }
                () = outbox.slow().cancelled() => return,
                _ = ticks.tick() => {
                    let silent = last_heard.elapsed();
                    if pinged && silent >= context.ping_interval + context.pong_timeout {
                        let _ = outbox.send(close(CLOSE_PING_TIMEOUT, "ping timeout")).await;
                        return;
                    }
                    if !pinged && silent >= context.ping_interval {
                        pinged = true;
                        if outbox.send(Message::Ping(Default::default())).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                frame = stream.next() => frame,
            }
        };
        last_heard = tokio::time::Instant::now();
        pinged = false;
        let handled = match frame {
            None | Some(Ok(Message::Close(_))) => return,
            // Boxed: the request's future is large and only lives while it runs, so an
            // idle connection does not carry its space (about 1.2 KiB) around.
            Some(Ok(Message::Text(text))) => {
                // Every request frame already readable joins this one: they are served
                // as one pipeline and their replies leave in one write.
                let mut texts = vec![text];
                while texts.len() < batch_limit {
                    match stream.next().now_or_never() {
                        Some(Some(Ok(Message::Text(text)))) => texts.push(text),
                        Some(frame) => {
                            carried = Some(frame);
                            break;
                        }
                        None => break,
                    }
                }
                Box::pin(dispatch::handle_texts(connection, &texts)).await
            }
            Some(Ok(Message::Binary(_))) => dispatch::handle_binary(connection).await,
            // tungstenite answers pings itself; pongs need nothing.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
            Some(Err(err)) => {
                let _ = outbox.send(close_for(err)).await;
                return;
            }
        };
        if handled.is_err() {
            return; // the writer is gone: the socket failed
        }
    }
}

async fn write_frames<Out>(
    mut sink: Out,
    metrics: &Metrics,
    mut queued: OutboxReceiver,
    slow: CancellationToken,
    reading_done: CancellationToken,
    // How long a peer that stopped reading is given to take what is left (a slow
    // consumer's close frame, say) before the socket is dropped.
    last_words_timeout: Duration,
) where
    Out: Sink<Message> + Unpin,
    Out::Error: Display,
{
    // Once the reader is done nothing else will mark a stuck peer slow, so a write
    // blocked by a peer that stopped reading gets the same last-words time, no more.
    let give_up = async {
        reading_done.cancelled().await;
        tokio::time::sleep(last_words_timeout).await;
    };
    tokio::pin!(give_up);
    loop {
        // When the session is ending, what is queued still goes out, then the socket
        // closes.
        let first = match queued.next().await {
            Next::Frame(first) => first,
            Next::Slow => return close_slow_consumer(&mut sink, metrics, last_words_timeout).await,
            Next::Done => break,
        };
        // A peer that stops reading blocks these writes; the outbox then fills and the
        // connection is marked slow, or the reader is done and `give_up` runs out. The
        // write comes first: a socket that takes it at once costs no other poll.
        let written = tokio::select! {
            biased;
            written = write_batch(&mut sink, &mut queued, first) => written,
            () = slow.cancelled() => return close_slow_consumer(&mut sink, metrics, last_words_timeout).await,
            () = &mut give_up => return,
        };
        match written {
            Ok(false) => {}
            Ok(true) => break, // a close frame went out
            Err(err) => {
                tracing::debug!(error = %err, "socket write failed");
                return;
            }
        }
    }
    let _ = tokio::time::timeout(last_words_timeout, sink.close()).await;
}

/// Writes `first` and every frame already queued, then flushes once. True if a close
/// frame was among them (nothing may follow it).
async fn write_batch<Out>(
    sink: &mut Out,
    queued: &mut OutboxReceiver,
    first: Message,
) -> Result<bool, Out::Error>
where
    Out: Sink<Message> + Unpin,
{
    let mut closing = matches!(first, Message::Close(_));
    sink.feed(first).await?;
    while !closing {
        let Some(next) = queued.try_recv() else { break };
        closing = matches!(next, Message::Close(_));
        sink.feed(next).await?;
    }
    sink.flush().await?;
    Ok(closing)
}

/// Sends 1008 "slow consumer" after whatever the socket still holds; gives up after
/// `timeout` if the peer does not read.
async fn close_slow_consumer<Out>(sink: &mut Out, metrics: &Metrics, timeout: Duration)
where
    Out: Sink<Message> + Unpin,
{
    let total = metrics.slow_consumer_closed();
    tracing::warn!(slow_consumer_closes = total, "closing a slow consumer");
    let goodbye = sink.send(close(CLOSE_SLOW_CONSUMER, "slow consumer"));
    let _ = tokio::time::timeout(timeout, goodbye).await;
}

/// Resolves when the connection's token stops being accepted: the end of the grace
/// period of a rotated-out secret. Never, for API keys and current tokens (a token's
/// own expiry applies when connecting, as with HPKV).
async fn retirement(principal: &Principal) {
    let Principal::Token(token) = principal else {
        return std::future::pending().await;
    };
    let Some(at_ms) = token.retires_at_ms else {
        return std::future::pending().await;
    };
    let wait = at_ms.saturating_sub(ripplekv_core::now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// The close frame for a failed read: oversize messages get 1009, text frames that are
/// not UTF-8 get 1007, the rest 1002.
fn close_for(err: axum::Error) -> Message {
    let err = err.into_inner();
    match err.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(capacity)) => {
            tracing::debug!(error = %capacity, "oversize message refused");
            close(CLOSE_TOO_BIG, "message too big")
        }
        Some(tungstenite::Error::Utf8(_)) => {
            close(CLOSE_INVALID_PAYLOAD, "text frame is not UTF-8")
        }
        _ => {
            tracing::debug!(error = %err, "websocket read failed");
            close(CLOSE_PROTOCOL_ERROR, "protocol error")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::stream;
    use ripplekv_core::Limits;
    use ripplekv_storage::MemoryStore;
    use tokio::sync::mpsc;
    use tokio_util::sync::PollSender;

    use super::*;

    fn context() -> SessionContext {
        let hub = Arc::new(Hub::default());
        let sequencer = Arc::new(Sequencer::new(Arc::clone(&hub), 0));
        let store = Arc::new(MemoryStore::new(Limits::default()));
        ripplekv_core::Store::set_change_sink(store.as_ref(), Arc::clone(&sequencer) as _);
        SessionContext {
            executor: Executor::new(store, Limits::default(), Arc::clone(&sequencer)),
            sequencer,
            hub,
            principal: Principal::ApiKey(0),
            shutdown: CancellationToken::new(),
            outbox_messages: 4,
            outbox_bytes: 1 << 20,
            metrics: Arc::default(),
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(30),
            max_subscriptions: 1000,
            rate_limits: Arc::new(RateLimiter::new(None)),
        }
    }

    fn text(message: Option<Message>) -> String {
        match message {
            Some(Message::Text(text)) => text.as_str().to_owned(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    // A client that sends requests but never reads: its replies fill the outbox, and
    // after the stall time the session gives up on it instead of waiting forever.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_reads_is_dropped_after_the_stall_time() {
        let context = context();
        let hub = Arc::clone(&context.hub);
        let frames: Vec<_> = (0..100)
            .map(|i| {
                Ok(Message::Text(
                    format!(r#"{{"op":"subscribe","patterns":["p{i}"],"messageId":{i}}}"#).into(),
                ))
            })
            .collect();
        let incoming = stream::iter(frames).chain(stream::pending());
        let (sink, _never_read) = mpsc::channel(1);
        let session = tokio::spawn(run_session(PollSender::new(sink), incoming, context));
        tokio::time::timeout(Duration::from_secs(600), session)
            .await
            .expect("the session waited forever on a client that does not read")
            .unwrap();
        assert!(hub.is_empty(), "the subscriber was not removed");
    }

    // A peer that stops reading after a few replies, without ever filling the outbox:
    // its pings and the ping-timeout close queue up behind a blocked write, and the
    // session must still end.
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_without_filling_the_outbox_is_dropped() {
        let context = context();
        let frames = [
            r#"{"op":"get","key":"a","messageId":1}"#,
            r#"{"op":"get","key":"b","messageId":2}"#,
        ];
        let incoming = stream::iter(frames.map(|frame| Ok(Message::Text(frame.into()))))
            .chain(stream::pending());
        let (sink, _never_read) = mpsc::channel(1);
        let session = tokio::spawn(run_session(PollSender::new(sink), incoming, context));
        tokio::time::timeout(Duration::from_secs(600), session)
            .await
            .expect("the session waited forever on a blocked write")
            .unwrap();
    }

    // A client that goes away (its stream ends) must end the session even when nothing
    // is ever pushed to it again, subscribed or not: otherwise its socket leaks.
    #[tokio::test]
    async fn the_session_ends_when_the_client_goes_away() {
        for frames in [
            vec![r#"{"op":"get","key":"k","messageId":1}"#],
            vec![
                r#"{"op":"subscribe","patterns":["quiet"],"messageId":1}"#,
                r#"{"op":"unsubscribe","patterns":["quiet"],"messageId":2}"#,
            ],
            vec![r#"{"op":"subscribe","patterns":["never-written"],"messageId":1}"#],
        ] {
            let context = context();
            let hub = Arc::clone(&context.hub);
            let incoming = stream::iter(
                frames
                    .into_iter()
                    .map(|frame| Ok(Message::Text(frame.into()))),
            );
            let (sink, mut sent) = mpsc::channel(16);
            let session = tokio::spawn(run_session(PollSender::new(sink), incoming, context));
            tokio::time::timeout(Duration::from_secs(10), session)
                .await
                .expect("the session did not end after its client went away")
                .unwrap();
            assert!(text(sent.recv().await).contains(r#""messageId":1"#));
            assert!(hub.is_empty(), "the subscriber was not removed");
        }
    }

    #[tokio::test]
    async fn answers_in_order_then_closes_with_1001_on_shutdown() {
        let context = context();
        let shutdown = context.shutdown.clone();
        let frames = [
            r#"{"op":"set","key":"k","value":"v","messageId":1}"#,
            r#"{"op":"get","key":"k","messageId":2}"#,
        ];
        let incoming = stream::iter(frames.map(|frame| Ok(Message::Text(frame.into()))))
            .chain(stream::pending());
        let (sink, mut sent) = mpsc::channel(16);
        let session = tokio::spawn(run_session(PollSender::new(sink), incoming, context));
        assert!(text(sent.recv().await).contains(r#""messageId":1"#));
        let reply = text(sent.recv().await);
        assert!(reply.contains(r#""value":"v""#) && reply.contains(r#""messageId":2"#));
        shutdown.cancel();
        match sent.recv().await {
            Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CLOSE_GOING_AWAY),
            other => panic!("expected a close frame, got {other:?}"),
        }
        session.await.unwrap();
    }

    // Frames that arrive together are served as one pipeline: the consecutive writes
    // share one commit, each request sees those before it, replies keep their order.
    #[tokio::test]
    async fn frames_read_together_share_a_commit_and_keep_their_order() {
        let mut context = context();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            ripplekv_storage::RedbStore::open(
                dir.path(),
                ripplekv_storage::Durability::Sync,
                Limits::default(),
            )
            .unwrap(),
        );
        ripplekv_core::Store::set_change_sink(store.as_ref(), Arc::clone(&context.sequencer) as _);
        context.executor = Executor::new(
            Arc::clone(&store) as _,
            Limits::default(),
            Arc::clone(&context.sequencer),
        );
        context.outbox_messages = 64;
        let mut frames: Vec<String> = (1..=5)
            .map(|i| format!(r#"{{"op":"set","key":"a","value":"{i}","messageId":{i}}}"#))
            .collect();
        frames.push(r#"{"op":"get","key":"a","messageId":6}"#.into());
        frames.push(r#"{"op":"get","key":"","messageId":7}"#.into());
        frames.push(r#"{"op":"set","key":"a","value":"after","messageId":8}"#.into());
        frames.push(r#"{"op":"get","key":"a","messageId":9}"#.into());
        let incoming = stream::iter(
            frames
                .into_iter()
                .map(|frame| Ok(Message::Text(frame.into()))),
        )
        .chain(stream::pending());
        let (sink, mut sent) = mpsc::channel(64);
        let session = tokio::spawn(run_session(PollSender::new(sink), incoming, context));
        let mut replies = Vec::new();
        for _ in 0..9 {
            replies.push(text(sent.recv().await));
        }
        for (i, reply) in replies.iter().enumerate() {
            assert!(
                reply.contains(&format!(r#""messageId":{}"#, i + 1)),
                "reply {i} out of order: {reply}"
            );
        }
        assert!(replies[5].contains(r#""value":"5""#), "{}", replies[5]);
        assert!(replies[6].contains(r#""code":400"#), "{}", replies[6]);
        assert!(replies[8].contains(r#""value":"after""#), "{}", replies[8]);
        // Served one at a time, each SET would commit alone (the next is read only once
        // the one before is answered). Pipelined, all five are queued within
        // microseconds while a commit takes a fsync, so they share commits; the writer
        // may still have taken the first on its own before the rest arrived.
        let stats = store.stats();
        let max_batch = stats.max_batch.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            max_batch >= 2,
            "the SETs read together never shared a commit (largest batch {max_batch})"
        );
        session.abort();
    }

    // The clock is paused: the sleep below ends only once every other task is idle,
    // which is exactly "the session has stalled", without guessing a duration.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_does_not_read_stops_the_session_reading() {
        let context = context();
        let shutdown = context.shutdown.clone();
        // 100 requests, but the socket accepts only one frame and is never drained.
        let frames: Vec<_> = (0..100)
            .map(|i| {
                Ok(Message::Text(
                    format!(r#"{{"op":"atomic","key":"n","value":1,"messageId":{i}}}"#).into(),
                ))
            })
            .collect();
        let store = Arc::clone(context.executor.store());
        let (sink, _unread) = mpsc::channel(1);
        let session = tokio::spawn(run_session(
            PollSender::new(sink),
            stream::iter(frames),
            context,
        ));
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        // One frame in the socket, one being written, four queued, one being handled.
        let applied = store.revision();
        assert!((1..10).contains(&applied), "{applied} requests applied");
        shutdown.cancel();
        session.abort();
    }
}

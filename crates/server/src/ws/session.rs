//! One WebSocket connection, from upgrade to close.
//!
//! The session runs two halves in one task: a reader that takes frames one at a time,
//! runs each request to completion and queues its reply, and a writer that drains the
//! bounded outbox into the socket, batching frames that are ready into one flush.
//! Handling one request at a time is what applies a connection's requests in the
//! order they arrive. Everything the server sends goes through the outbox, so replies
//! and (later) notifications leave in the order they were queued.
//!
//! A client that stops reading fills its outbox; the reader then waits instead of
//! reading more requests, so a connection's memory stays bounded by the outbox.
//!
//! The loop is generic over `Sink`/`Stream`, so tests can drive it with channels.

use std::fmt::Display;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use tokio_util::sync::CancellationToken;

use super::dispatch;
use crate::ops::Ops;

/// Close code sent when the server shuts down (RFC 6455 "going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a message over the size limit (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a broken frame (RFC 6455 "protocol error").
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;

/// What a session needs from the server.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub(crate) ops: Ops,
    pub(crate) shutdown: CancellationToken,
    pub(crate) outbox_messages: usize,
}

/// Runs one connection until the client closes it, the socket fails, or shutdown.
pub async fn run_session<Out, In>(sink: Out, stream: In, context: SessionContext)
where
    Out: Sink<Message> + Unpin + Send,
    Out::Error: Display,
    In: Stream<Item = Result<Message, axum::Error>> + Unpin + Send,
{
    let (outbox, queued) = mpsc::channel(context.outbox_messages.max(1));
    tokio::join!(
        read_requests(stream, outbox, &context),
        write_frames(sink, queued)
    );
}

async fn read_requests<In>(mut stream: In, outbox: mpsc::Sender<Message>, context: &SessionContext)
where
    In: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    loop {
        let frame = tokio::select! {
            biased;
            () = context.shutdown.cancelled() => {
                let _ = outbox.send(close(CLOSE_GOING_AWAY, "server shutting down")).await;
                return;
            }
            frame = stream.next() => frame,
        };
        let reply = match frame {
            None | Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Text(text))) => {
                dispatch::handle_text(&context.ops, text.as_str()).await
            }
            Some(Ok(Message::Binary(_))) => dispatch::binary_refused(),
            // tungstenite answers pings itself; pongs need nothing.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(err)) => {
                let _ = outbox.send(close_for(err)).await;
                return;
            }
        };
        if outbox.send(Message::Text(reply.into())).await.is_err() {
            return; // the writer is gone: the socket failed
        }
    }
}

async fn write_frames<Out>(mut sink: Out, mut queued: mpsc::Receiver<Message>)
where
    Out: Sink<Message> + Unpin,
    Out::Error: Display,
{
    while let Some(first) = queued.recv().await {
        let mut closing = matches!(first, Message::Close(_));
        if let Err(err) = sink.feed(first).await {
            tracing::debug!(error = %err, "socket write failed");
            return;
        }
        while !closing {
            let Ok(next) = queued.try_recv() else { break };
            closing = matches!(next, Message::Close(_));
            if sink.feed(next).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// The close frame for a failed read: oversize messages get 1009, the rest 1002.
fn close_for(err: axum::Error) -> Message {
    let err = err.into_inner();
    match err.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(capacity)) => {
            tracing::debug!(error = %capacity, "oversize message refused");
            close(CLOSE_TOO_BIG, "message too big")
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
    use tokio_util::sync::PollSender;

    use super::*;

    fn context() -> SessionContext {
        SessionContext {
            ops: Ops::new(
                Arc::new(MemoryStore::new(Limits::default())),
                Limits::default(),
            ),
            shutdown: CancellationToken::new(),
            outbox_messages: 4,
        }
    }

    fn text(message: Option<Message>) -> String {
        match message {
            Some(Message::Text(text)) => text.as_str().to_owned(),
            other => panic!("expected a text frame, got {other:?}"),
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
        let store = Arc::clone(context.ops.store());
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

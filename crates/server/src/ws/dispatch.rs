//! One text frame in, its reply frames out: the socket face of the executor.
//!
//! The dispatcher decodes the frames that arrived together (the proto crate types
//! their fields) into executor [`Command`]s, runs them as one pipeline, and renders
//! each result as the HPKV reply; `subscribe` and
//! `unsubscribe`, which belong to the connection rather than the store, it answers
//! itself (with `since`, a subscribe also replays history: see [`super::subscribe`]).
//! A frame that does not parse gets a 400 reply naming the problem; the session
//! carries on either way.

use std::time::Instant;

use axum::extract::ws::Utf8Bytes;

use ripplekv_proto::reply;
use ripplekv_proto::{parse_request, RequestBody};
use serde_json::value::RawValue;

use super::connection::Connection;
use super::outbox::Closed;
use super::subscribe;
use crate::exec::{Atomic, Command, Edit, Get, Range, Write};
use crate::wire;

/// The metrics label of a request.
fn label(body: &RequestBody) -> &'static str {
    match body {
        RequestBody::Get { .. } => "get",
        RequestBody::Set { .. } => "set",
        RequestBody::Patch { .. } => "patch",
        RequestBody::Delete { .. } => "delete",
        RequestBody::Range { .. } => "range",
        RequestBody::Atomic { .. } => "atomic",
        RequestBody::JsonPatch { .. } => "jsonpatch",
        RequestBody::Subscribe { .. } => "subscribe",
        RequestBody::Unsubscribe { .. } => "unsubscribe",
    }
}

/// What one frame of a batch asks for, once decoded.
enum Decoded {
    /// A request for the store, run in the batch's pipeline.
    Command(Command),
    /// Subscriptions, which the connection answers itself once everything before them
    /// is done.
    Subscribe(Vec<String>, Option<u64>),
    Unsubscribe(Vec<String>),
    /// An answer already known (a refusal): sent in its turn.
    Answered(u16, String),
}

/// Who a reply goes to and how it is counted: carried through the pipeline.
struct Pending {
    op: &'static str,
    started: Instant,
    message_id: Option<Box<RawValue>>,
    key: Option<String>,
}

impl Pending {
    /// Counts the request in the metrics, answered with `code`.
    fn count(&self, conn: &Connection, code: u16) {
        conn.metrics
            .request(self.op, code, self.started.elapsed().as_secs_f64());
    }
}

/// Handles the request frames that were readable together, queueing their replies in
/// order, and counts each.
///
/// Store requests go through one [`crate::exec::Pipeline`]: consecutive writes are
/// queued together (one group commit), and each request still sees exactly the
/// effects of those before it. A request the connection answers itself (subscribe,
/// unsubscribe) or a refusal first lets everything before it finish, so replies
/// leave in request order. The replies of a batch reach the outbox one after the
/// other without a pause, and the session's writer sends them with one flush.
pub(crate) async fn handle_texts(conn: &Connection, frames: &[Utf8Bytes]) -> Result<(), Closed> {
    let mut pipeline = conn.executor.pipeline(&conn.access);
    // The frames were read together: one arrival time serves them all.
    let started = Instant::now();
    for frame in frames {
        let (pending, decoded) = decode(conn, frame.as_str(), started);
        match decoded {
            Decoded::Command(command) => pipeline.push(pending, command).await,
            Decoded::Subscribe(patterns, since) => {
                finish(conn, &mut pipeline).await?;
                let id = pending.message_id.as_deref();
                let (code, sent) = subscribe::subscribe(conn, patterns, since, id).await;
                pending.count(conn, code);
                sent?;
            }
            Decoded::Unsubscribe(patterns) => {
                finish(conn, &mut pipeline).await?;
                let id = pending.message_id.as_deref();
                let frame = subscribe::unsubscribe(conn, &patterns, id);
                pending.count(conn, 200);
                conn.send(frame).await?;
            }
            Decoded::Answered(code, reply) => {
                finish(conn, &mut pipeline).await?;
                pending.count(conn, code);
                conn.send(reply).await?;
            }
        }
    }
    finish(conn, &mut pipeline).await
}

/// Runs every command in the pipeline to its end, queueing the replies in order.
async fn finish(
    conn: &Connection,
    pipeline: &mut crate::exec::Pipeline<'_, Pending>,
) -> Result<(), Closed> {
    while let Some((pending, outcome)) = pipeline.next().await {
        let id = pending.message_id.as_deref();
        let (code, frame) = match outcome {
            Ok(done) => (200, done.socket_reply(id)),
            Err(err) => (
                err.status(),
                wire::socket_error(&err, id, pending.key.as_deref()),
            ),
        };
        pending.count(conn, code);
        conn.send(frame).await?;
    }
    Ok(())
}

/// Decodes one frame: checks the rate limit, parses, and turns a store request into
/// its command.
fn decode(conn: &Connection, text: &str, started: Instant) -> (Pending, Decoded) {
    // Counted before parsing, so a flood of garbage is limited like any other.
    let admitted = conn.rate_limits.check(&conn.subject);
    let parsed = parse_request(text);
    let op = parsed
        .as_ref()
        .map_or("invalid", |request| label(&request.body));
    let mut pending = Pending {
        op,
        started,
        message_id: None,
        key: None,
    };
    if let Err(refused) = admitted {
        let (id, key) = match &parsed {
            Ok(request) => (request.message_id.as_deref(), request.body.key()),
            Err(err) => (err.message_id.as_deref(), err.key.as_deref()),
        };
        let reply = wire::socket_error(&refused, id, key);
        return (pending, Decoded::Answered(429, reply));
    }
    let request = match parsed {
        Ok(request) => request,
        Err(err) => {
            let reply = reply::error(
                400,
                &err.message,
                err.message_id.as_deref(),
                err.key.as_deref(),
            );
            return (pending, Decoded::Answered(400, reply));
        }
    };
    pending.message_id = request.message_id;
    pending.key = request.body.key().map(str::to_owned);
    let command: Command = match request.body {
        RequestBody::Subscribe { patterns, since } => {
            return (pending, Decoded::Subscribe(patterns, since));
        }
        RequestBody::Unsubscribe { patterns } => {
            return (pending, Decoded::Unsubscribe(patterns));
        }
        RequestBody::Get { key } => Get { key }.into(),
        RequestBody::Set {
            key,
            value,
            options,
        } => Write::new(key, Edit::Set(value), options).into(),
        RequestBody::Patch {
            key,
            value,
            options,
        } => Write::new(key, Edit::Patch(value), options).into(),
        RequestBody::Delete { key, options } => Write::new(key, Edit::Delete, options).into(),
        RequestBody::JsonPatch {
            key,
            value,
            options,
        } => Write::new(key, Edit::JsonPatch(value), options).into(),
        RequestBody::Range {
            key,
            end_key,
            limit,
        } => Range::socket(key, end_key, limit).into(),
        RequestBody::Atomic { key, delta } => Atomic { key, delta }.into(),
    };
    (pending, Decoded::Command(command))
}

/// Answers a binary frame: HPKV speaks JSON text frames only. It counts against the
/// rate limit like any other frame.
pub(crate) async fn handle_binary(conn: &Connection) -> Result<(), Closed> {
    let frame = match conn.rate_limits.check(&conn.subject) {
        Err(refused) => wire::socket_error(&refused, None, None),
        Ok(()) => reply::error(
            400,
            "Binary frames are not supported; send each request as a JSON text frame",
            None,
            None,
        ),
    };
    conn.send(frame).await
}

//! One text frame in, its reply frames out: the socket face of the executor.
//!
//! The dispatcher decodes a frame (the proto crate types its fields) into an executor
//! [`Command`], runs it, and renders the result as the HPKV reply; `subscribe` and
//! `unsubscribe`, which belong to the connection rather than the store, it answers
//! itself (with `since`, a subscribe also replays history: see [`super::subscribe`]).
//! A frame that does not parse gets a 400 reply naming the problem; the session
//! carries on either way.

use std::time::Instant;

use ripplekv_proto::reply;
use ripplekv_proto::{parse_request, RequestBody};

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

/// Handles one request frame, queueing its replies, and counts it.
pub(crate) async fn handle_text(conn: &Connection, text: &str) -> Result<(), Closed> {
    let started = Instant::now();
    // Counted before parsing, so a flood of garbage is limited like any other.
    let admitted = conn.rate_limits.check(&conn.subject);
    let parsed = parse_request(text);
    let op = parsed
        .as_ref()
        .map_or("invalid", |request| label(&request.body));
    if let Err(refused) = admitted {
        conn.metrics
            .request(op, 429, started.elapsed().as_secs_f64());
        let (id, key) = match &parsed {
            Ok(request) => (request.message_id.as_deref(), request.body.key()),
            Err(err) => (err.message_id.as_deref(), err.key.as_deref()),
        };
        return conn.send(wire::socket_error(&refused, id, key)).await;
    }
    let request = match parsed {
        Ok(request) => request,
        Err(err) => {
            conn.metrics
                .request(op, 400, started.elapsed().as_secs_f64());
            let reply = reply::error(
                400,
                &err.message,
                err.message_id.as_deref(),
                err.key.as_deref(),
            );
            return conn.send(reply).await;
        }
    };
    let (code, sent) = run(conn, request).await;
    conn.metrics
        .request(op, code, started.elapsed().as_secs_f64());
    sent
}

async fn run(conn: &Connection, request: ripplekv_proto::Request) -> (u16, Result<(), Closed>) {
    let id = request.message_id.as_deref();
    let key = request.body.key().map(str::to_owned);
    let command: Command = match request.body {
        RequestBody::Subscribe { patterns, since } => {
            return subscribe::subscribe(conn, patterns, since, id).await;
        }
        RequestBody::Unsubscribe { patterns } => {
            let frame = subscribe::unsubscribe(conn, &patterns, id);
            return (200, conn.send(frame).await);
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
    let (code, frame) = match conn.executor.run(&conn.access, command).await {
        Ok(done) => (200, done.socket_reply(id)),
        Err(err) => (err.status(), wire::socket_error(&err, id, key.as_deref())),
    };
    (code, conn.send(frame).await)
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

//! One text frame in, its reply frames out: parse, run the op, shape the reply.
//!
//! The dispatcher is the single `match` over operations. A frame that does not parse
//! gets a 400 reply naming the problem; the session carries on either way. Most ops
//! answer with one frame; `subscribe` with `since` also replays history (see
//! [`super::subscribe`]).

use std::time::Instant;

use ripplekv_core::WriteOp;
use ripplekv_proto::reply::{self, RangeRecord};
use ripplekv_proto::{parse_request, RequestBody};

use super::connection::Connection;
use super::outbox::Closed;
use super::subscribe;
use crate::wire::{self, DELETED, JSON_PATCHED, PATCHED, SAVED};

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
    let (ops, access) = (&conn.ops, &conn.access);
    let result = match request.body {
        RequestBody::Get { key } => ops
            .get(access, &key)
            .await
            .map(|record| reply::get(&key, &record.value, record.revision, id)),
        RequestBody::Set {
            key,
            value,
            options,
        } => ops
            .write(access, key, WriteOp::Set(value), options)
            .await
            .map(|change| reply::written(SAVED, change.revision, id)),
        RequestBody::Patch {
            key,
            value,
            options,
        } => ops
            .write(access, key, WriteOp::Patch(value), options)
            .await
            .map(|change| reply::written(PATCHED, change.revision, id)),
        RequestBody::Delete { key, options } => ops
            .write(access, key, WriteOp::Delete, options)
            .await
            .map(|change| reply::written(DELETED, change.revision, id)),
        RequestBody::JsonPatch {
            key,
            value,
            options,
        } => ops
            .write(access, key, WriteOp::JsonPatch(value), options)
            .await
            .map(|change| reply::written(JSON_PATCHED, change.revision, id)),
        RequestBody::Range {
            key,
            end_key,
            limit,
        } => ops
            .range(access, (&key, &end_key), ["key", "endKey"], limit)
            .await
            .map(|page| {
                let records: Vec<RangeRecord> = page
                    .records
                    .iter()
                    .map(|(key, record)| RangeRecord {
                        key,
                        value: &record.value,
                        revision: record.revision,
                    })
                    .collect();
                reply::range(&records, page.truncated, id)
            }),
        RequestBody::Atomic { key, delta } => ops
            .write(access, key, WriteOp::Atomic(delta), Default::default())
            .await
            .map(|change| {
                let new_value = change.atomic_result().unwrap_or_default();
                reply::atomic(&change.key, new_value, change.revision, id)
            }),
        RequestBody::Subscribe { patterns, since } => {
            return subscribe::subscribe(conn, patterns, since, id).await;
        }
        RequestBody::Unsubscribe { patterns } => Ok(subscribe::unsubscribe(conn, &patterns, id)),
    };
    let (code, frame) = match result {
        Ok(frame) => (200, frame),
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

//! One text frame in, one reply frame out: parse, run the op, shape the reply.
//!
//! The dispatcher is the single `match` over operations. A frame that does not parse
//! gets a 400 reply naming the problem; the session carries on either way.

use ripplekv_proto::reply::{self, RangeRecord};
use ripplekv_proto::{parse_request, RequestBody};

use crate::ops::Ops;
use crate::wire::{self, DELETED, PATCHED, SAVED};

/// Handles one request frame and returns the reply frame.
pub(crate) async fn handle_text(ops: &Ops, text: &str) -> String {
    let request = match parse_request(text) {
        Ok(request) => request,
        Err(err) => {
            return reply::error(
                400,
                &err.message,
                err.message_id.as_deref(),
                err.key.as_deref(),
            )
        }
    };
    let id = request.message_id.as_deref();
    let key = request.body.key().to_owned();
    let result = match request.body {
        RequestBody::Get { key } => ops
            .get(&key)
            .await
            .map(|record| reply::get(&key, &record.value, record.revision, id)),
        RequestBody::Set { key, value } => ops
            .set(key, value)
            .await
            .map(|change| reply::written(SAVED, change.revision, id)),
        RequestBody::Patch { key, value } => ops
            .patch(key, value)
            .await
            .map(|change| reply::written(PATCHED, change.revision, id)),
        RequestBody::Delete { key } => ops
            .delete(key)
            .await
            .map(|change| reply::written(DELETED, change.revision, id)),
        RequestBody::Range {
            key,
            end_key,
            limit,
        } => ops.range(&key, &end_key, limit).await.map(|page| {
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
        RequestBody::Atomic { key, delta } => ops.atomic(key, delta).await.map(|change| {
            let new_value = change.atomic_result().unwrap_or_default();
            reply::atomic(&change.key, new_value, change.revision, id)
        }),
    };
    result.unwrap_or_else(|err| wire::socket_error(&err, id, Some(&key)))
}

/// The reply to a binary frame: HPKV speaks JSON text frames only.
pub(crate) fn binary_refused() -> String {
    reply::error(
        400,
        "Binary frames are not supported; send each request as a JSON text frame",
        None,
        None,
    )
}

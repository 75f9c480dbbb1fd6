//! `GET /admin/snapshot`: every live record, consistent at one revision, as JSON lines.
//!
//! The format is [`ripplekv_proto::snapshot`]'s: a header, one line per record in key
//! order, and a trailer with the count. The store's snapshot is one MVCC read, so the
//! stream is consistent however long it takes and writes go on meanwhile. Records are
//! read on a blocking thread and sent in chunks through a small channel, so a slow
//! reader holds at most a few chunks in memory. If reading fails midway, the response
//! is cut off before the trailer, which tells the client the snapshot is incomplete.
//!
//! A snapshot holds a read transaction, which keeps the pages it sees from being
//! reused, and a blocking thread. So at most [`MAX_SNAPSHOTS`] run at once (more get
//! 503), and a client that stops reading for [`STALL_TIMEOUT`] is abandoned.

use axum::body::{Body, Bytes};
use axum::extract::State;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use ripplekv_core::now_ms;
use ripplekv_proto::snapshot::{Entry, Header, Line, Trailer};
use tokio::sync::mpsc;

use crate::rest::authorize;
use crate::state::{AppState, MAX_SNAPSHOTS};
use crate::wire::HttpError;

/// Bytes gathered before a chunk is handed to the socket.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks that may wait for a slow reader.
const CHUNKS_QUEUED: usize = 4;
/// How long a chunk may wait for the client to read before the snapshot is abandoned.
const STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

type Chunk = Result<Bytes, std::io::Error>;

pub(crate) async fn get_snapshot(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    authorize(&state, &headers)?;
    let Ok(permit) = Arc::clone(state.snapshots()).try_acquire_owned() else {
        return Err(ripplekv_core::Error::TooManySnapshots {
            limit: MAX_SNAPSHOTS,
        }
        .into());
    };
    let snapshot = state.executor().store().snapshot().await?;
    let (chunks, queued) = mpsc::channel::<Chunk>(CHUNKS_QUEUED);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // Hands a chunk to the response; false if the client is gone or stalled.
        let send = |chunk: Chunk| {
            runtime
                .block_on(tokio::time::timeout(STALL_TIMEOUT, chunks.send(chunk)))
                .is_ok_and(|sent| sent.is_ok())
        };
        let header = Line::Header(Header::new(snapshot.revision, now_ms(), snapshot.keys));
        let mut buffer = format!("{}\n", header.to_json());
        let mut records = 0u64;
        for record in snapshot.records {
            let (key, record) = match record {
                Ok(record) => record,
                Err(err) => {
                    tracing::error!(error = %err, "snapshot read failed; response cut short");
                    send(Err(std::io::Error::other("snapshot failed")));
                    return;
                }
            };
            let line = Line::Entry(Entry {
                key,
                value: record.value,
                revision: Some(record.revision),
                expires_at_ms: record.expires_at_ms,
            });
            buffer.push_str(&line.to_json());
            buffer.push('\n');
            records += 1;
            if buffer.len() >= CHUNK_BYTES {
                let chunk = Bytes::from(std::mem::take(&mut buffer));
                if !send(Ok(chunk)) {
                    return; // the client went away or stopped reading
                }
            }
        }
        let trailer = Line::Trailer(Trailer { end: true, records });
        buffer.push_str(&trailer.to_json());
        buffer.push('\n');
        send(Ok(Bytes::from(buffer)));
    });
    let stream = futures_util::stream::unfold(queued, |mut queued| async move {
        queued.recv().await.map(|chunk| (chunk, queued))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

//! `GET /admin/snapshot`: every live record, consistent at one revision, as JSON lines.
//!
//! The format is [`ripplekv_proto::snapshot`]'s: a header, one line per record in key
//! order, and a trailer with the count. The store's snapshot is one MVCC read, so the
//! stream is consistent however long it takes and writes go on meanwhile. Records are
//! read on a blocking thread and sent in chunks through a small channel, so a slow
//! reader holds at most a few chunks in memory. If reading fails midway, the response
//! is cut off before the trailer, which tells the client the snapshot is incomplete.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use ripplekv_core::now_ms;
use ripplekv_proto::snapshot::{Entry, Header, Line, Trailer};
use tokio::sync::mpsc;

use crate::rest::authorize;
use crate::state::AppState;
use crate::wire::HttpError;

/// Bytes gathered before a chunk is handed to the socket.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks that may wait for a slow reader.
const CHUNKS_QUEUED: usize = 4;

type Chunk = Result<Bytes, std::io::Error>;

pub(crate) async fn get_snapshot(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    authorize(&state, &headers)?;
    let snapshot = state.ops().store().snapshot().await?;
    let (chunks, queued) = mpsc::channel::<Chunk>(CHUNKS_QUEUED);
    tokio::task::spawn_blocking(move || {
        let header = Line::Header(Header::new(snapshot.revision, now_ms(), snapshot.keys));
        let mut buffer = format!("{}\n", header.to_json());
        let mut records = 0u64;
        for record in snapshot.records {
            let (key, record) = match record {
                Ok(record) => record,
                Err(err) => {
                    tracing::error!(error = %err, "snapshot read failed; response cut short");
                    let _ = chunks.blocking_send(Err(std::io::Error::other("snapshot failed")));
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
                if chunks.blocking_send(Ok(chunk)).is_err() {
                    return; // the client went away
                }
            }
        }
        let trailer = Line::Trailer(Trailer { end: true, records });
        buffer.push_str(&trailer.to_json());
        buffer.push('\n');
        let _ = chunks.blocking_send(Ok(Bytes::from(buffer)));
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

//! The REST routes of PROTOCOL.md A6: the REST face of the executor. Each record
//! route decodes its request into an executor command and answers with the command's
//! REST body; `POST /token/websocket` mints a token.
//!
//! Every route takes `x-api-key`. Bodies are JSON whatever the Content-Type. A record
//! key is the rest of the path after `/record/`, percent-decoded once, so it may hold
//! `/` (as `%2F`) or anything else; `POST /record/atomic` is routed by method, so
//! `GET /record/atomic` still reads the key "atomic".

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ripplekv_core::{now_ms, Error};
use ripplekv_proto::rest::{parse_atomic_body, parse_record_body, parse_token_body};
use ripplekv_proto::WriteOptions;
use serde_json::json;

use crate::auth;
use crate::exec::{Atomic, Command, Edit, Get, Range, Write};
use crate::hub::Access;
use crate::rate::Subject;
use crate::state::AppState;
use crate::urlcode;
use crate::wire::HttpError;

type HttpResult = Result<Response, HttpError>;

/// REST callers present an API key, which grants everything; each call counts
/// against that key's rate limit.
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Access, HttpError> {
    let index = auth::check_header(state.keys(), headers)?;
    state.admit(&Subject::ApiKey(index))?;
    Ok(Access::All)
}

fn body_text(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<String, HttpError> {
    let bytes = body.map_err(|rejection| match rejection.status().as_u16() {
        413 => Error::BodyTooLarge {
            limit: state.config().max_message_bytes(),
        },
        _ => Error::Invalid(rejection.body_text()),
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| HttpError::bad_request("Body is not valid UTF-8"))
}

/// The record key of a `/record/{key}` path, decoded once.
fn record_key(uri: &OriginalUri) -> Result<String, HttpError> {
    let raw = uri.path().strip_prefix("/record/").unwrap_or_default();
    urlcode::decode_path(raw)
        .ok_or_else(|| HttpError::bad_request("Key is not valid UTF-8 after percent-decoding"))
}

/// Runs one command and answers with its REST body.
async fn run(state: &AppState, access: &Access, command: impl Into<Command>) -> HttpResult {
    let done = state.executor().run(access, command.into()).await?;
    Ok(Json(done.rest_body()).into_response())
}

/// `POST /record`: SET, or PATCH when `partialUpdate` is true.
pub(crate) async fn post_record(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> HttpResult {
    let access = authorize(&state, &headers)?;
    let body = parse_record_body(&body_text(&state, body)?).map_err(HttpError::bad_request)?;
    let edit = if body.partial_update {
        Edit::Patch(body.value)
    } else {
        Edit::Set(body.value)
    };
    let write = Write::new(body.key, edit, WriteOptions::default());
    run(&state, &access, write).await
}

/// `POST /record/atomic`
pub(crate) async fn post_atomic(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> HttpResult {
    let access = authorize(&state, &headers)?;
    let body = parse_atomic_body(&body_text(&state, body)?).map_err(HttpError::bad_request)?;
    let atomic = Atomic {
        key: body.key,
        delta: body.increment,
    };
    run(&state, &access, atomic).await
}

/// `GET /record/{key}`
pub(crate) async fn get_record(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> HttpResult {
    let access = authorize(&state, &headers)?;
    let key = record_key(&uri)?;
    run(&state, &access, Get { key }).await
}

/// `DELETE /record/{key}`
pub(crate) async fn delete_record(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> HttpResult {
    let access = authorize(&state, &headers)?;
    let write = Write::new(record_key(&uri)?, Edit::Delete, WriteOptions::default());
    run(&state, &access, write).await
}

/// `GET /records?startKey&endKey&limit`
pub(crate) async fn get_records(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> HttpResult {
    let access = authorize(&state, &headers)?;
    let params = urlcode::query_pairs(query.as_deref().unwrap_or(""));
    let param = |name: &str| {
        params
            .iter()
            .find(|(param, _)| param == name)
            .map(|(_, value)| value.as_str())
    };
    let bound = |name: &str| {
        param(name)
            .map(urlcode::decode_lenient)
            .ok_or_else(|| HttpError::bad_request(format!("Missing query parameter '{name}'")))
    };
    let (start, end) = (bound("startKey")?, bound("endKey")?);
    let limit = param("limit")
        .map(|text| match text.parse::<i64>() {
            Ok(limit) => Ok(limit),
            // Larger than any page: clamped like every large limit.
            Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Ok(i64::MAX),
            Err(_) => Err(HttpError::bad_request(format!(
                "Query parameter 'limit' must be an integer, got {text:?}"
            ))),
        })
        .transpose()?;
    run(&state, &access, Range::rest(start, end, limit)).await
}

/// `POST /token/websocket`: a signed token for `/ws?token=`, granting the union of
/// `subscribeKeys` and `subscribePatterns` as subscriptions and `accessPattern` as the
/// keys it may read and write.
pub(crate) async fn post_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> HttpResult {
    authorize(&state, &headers)?;
    let body = parse_token_body(&body_text(&state, body)?).map_err(HttpError::bad_request)?;
    let token = state
        .tokens()
        .issue(body.subscribe, body.access_pattern, now_ms())?;
    Ok(Json(json!({ "token": token })).into_response())
}

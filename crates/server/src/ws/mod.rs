//! The `/ws` endpoint: authentication at the upgrade, then one session per socket.
//!
//! Credentials are checked before upgrading, so a bad API key is an HTTP 401 and a
//! bad token an HTTP 403, which is what HPKV clients look for. The upgrade sets small
//! read/write buffers and a message size limit derived from the value limit.

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::auth;
use crate::config::{WS_READ_BUFFER_BYTES, WS_WRITE_BUFFER_BYTES};
use crate::state::AppState;
use crate::wire::HttpError;
use ripplekv_core::Error;

mod connection;
mod dispatch;
pub(crate) mod outbox;
pub(crate) mod session;
mod subscribe;

/// `GET /ws`: checks credentials, then upgrades.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if state.metrics().open_connections() >= state.config().max_connections as i64 {
        state.metrics().connection_refused();
        return HttpError::from(Error::TooManyConnections).into_response();
    }
    let principal =
        match auth::check_upgrade(state.keys(), state.tokens(), query.as_deref(), &headers) {
            Ok(principal) => principal,
            Err(refused) => return HttpError::from(refused).into_response(),
        };
    // After the credential check, so a client learns about a bad key first; a plain
    // HTTP request here gets a JSON error like every other route.
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let refused = Error::NotWebSocket {
                detail: rejection.body_text(),
                upgrade_required: rejection.status().as_u16() == 426,
            };
            return HttpError::from(refused).into_response();
        }
    };
    let max_message = state.config().max_message_bytes();
    upgrade
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .write_buffer_size(WS_WRITE_BUFFER_BYTES)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| {
            let tracker = state.sessions().clone();
            tracker.track_future(async move {
                let (sink, stream) = socket.split();
                let context = session::SessionContext {
                    executor: state.executor().clone(),
                    hub: Arc::clone(state.hub()),
                    sequencer: Arc::clone(state.sequencer()),
                    principal,
                    shutdown: state.shutdown().clone(),
                    outbox_messages: state.config().outbox_messages,
                    outbox_bytes: state.config().outbox_bytes,
                    metrics: Arc::clone(state.metrics()),
                    ping_interval: state.config().ping_interval,
                    pong_timeout: state.config().pong_timeout,
                    max_subscriptions: state.config().max_subscriptions,
                    rate_limits: Arc::clone(state.credential_limits()),
                };
                session::run_session(sink, stream, context).await;
            })
        })
}

//! The HTTP surface: routes, CORS, `/health`, and JSON answers for unknown routes.
//!
//! CORS is permissive by design (PROTOCOL.md A6): browser apps call the API from
//! other origins. Every response gets `Access-Control-Allow-Origin: *`, and every
//! preflight `OPTIONS` is answered 204 before routing, so it works on any path.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ripplekv_core::Error;
use serde_json::json;

use crate::rate::Subject;
use crate::state::AppState;
use crate::wire::HttpError;
use crate::{admin, rest, socketio, web, ws};

/// The OpenAPI 3.1 document of every route, served at `/openapi.json`. The
/// `openapi` integration tests keep it and the router in agreement.
const OPENAPI: &str = include_str!("openapi.json");

/// The whole router; `/metrics` is left out when `with_metrics` is false (it is then
/// served by [`metrics_router`] on its own listener).
pub(crate) fn router(state: AppState, with_metrics: bool) -> Router {
    let body_limit = state.config().max_message_bytes();
    let router = Router::new()
        .merge(web::routes())
        .route("/health", get(health))
        .route("/openapi.json", get(openapi));
    let router = if with_metrics {
        router.route("/metrics", get(metrics))
    } else {
        router
    };
    router
        .route("/ws", get(ws::upgrade))
        .route("/record", post(rest::post_record))
        // The empty key: answered by the record handlers, which refuse it precisely.
        .route(
            "/record/",
            get(rest::get_record).delete(rest::delete_record),
        )
        // POST only here; GET and DELETE read and delete the key "atomic".
        .route(
            "/record/atomic",
            post(rest::post_atomic)
                .get(rest::get_record)
                .delete(rest::delete_record),
        )
        .route(
            "/record/{*key}",
            get(rest::get_record).delete(rest::delete_record),
        )
        .route("/records", get(rest::get_records))
        .route("/token/websocket", post(rest::post_token))
        .route("/admin/snapshot", get(admin::get_snapshot))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        // Inside `count_rest`, so requests refused by the per-IP limit are counted (429).
        .layer(middleware::from_fn_with_state(state.clone(), limit_ip))
        .layer(middleware::from_fn_with_state(state.clone(), count_rest))
        // socket.io takes `/socket.io/` before the REST middleware sees it; CORS stays
        // outside, for browsers on long-polling.
        .layer(socketio::layer(&state))
        .layer(middleware::from_fn(cors))
        .with_state(state)
}

/// `/metrics` alone, for `--metrics-listen`.
pub(crate) fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// `GET /openapi.json`
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Longest `/health` waits for the store to answer before calling it unavailable.
const STORE_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /health`: 200 once the server accepts requests and its store can serve (a
/// PostgreSQL store's database answers), 503 otherwise; either way it says which store.
async fn health(State(state): State<AppState>) -> Response {
    let store = state.executor().store();
    let serving = matches!(
        tokio::time::timeout(STORE_PING_TIMEOUT, store.ping()).await,
        Ok(Ok(()))
    );
    let (status, text) = if serving {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let body = json!({
        "status": text,
        "store": store.kind(),
        "bus": store.bus(),
        "version": env!("CARGO_PKG_VERSION"),
        "revision": store.revision(),
        "subscriptions": state.hub().len(),
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(state): State<AppState>) -> Response {
    let body = state
        .metrics()
        .render(state.executor().store().as_ref(), state.hub());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Counts REST requests by operation and status, like WebSocket requests.
async fn count_rest(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let op = match (request.method().as_str(), path) {
        ("POST", "/record") => Some("set"),
        ("POST", "/record/atomic") => Some("atomic"),
        ("POST", "/token/websocket") => Some("token"),
        ("GET", "/records") => Some("range"),
        ("GET", p) if p.starts_with("/record/") => Some("get"),
        ("DELETE", p) if p.starts_with("/record/") => Some("delete"),
        _ => None,
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    if let Some(op) = op {
        let seconds = started.elapsed().as_secs_f64();
        state
            .metrics()
            .request(op, response.status().as_u16(), seconds);
    }
    response
}

/// Applies the per-IP rate limit to every HTTP request, WebSocket upgrades included.
/// Preflights are answered before this (by `cors`), so browsers are not refused twice.
async fn limit_ip(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if let Some(ip) = client {
        if let Err(refused) = state.ip_limits().check(&Subject::client(ip)) {
            return HttpError::from(refused).into_response();
        }
    }
    next.run(request).await
}

async fn not_found() -> HttpError {
    Error::NoSuchRoute.into()
}

async fn method_not_allowed() -> HttpError {
    Error::MethodNotAllowed.into()
}

async fn cors(request: Request, next: Next) -> Response {
    let mut response = if request.method() == Method::OPTIONS {
        let mut preflight = StatusCode::NO_CONTENT.into_response();
        let headers = preflight.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type, x-api-key"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        preflight
    } else {
        next.run(request).await
    };
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

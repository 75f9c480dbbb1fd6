//! The live demo: a real-time todo board served at `/`.
//!
//! The page's static files (`web/` in the repository) are compiled into the binary, so
//! `ripplekv serve` needs no build step and no files next to it. The page talks to the
//! same API as any client: it mints a token at `/token/websocket` and uses `/ws`.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const INDEX_HTML: &str = include_str!("../../../web/index.html");
const APP_JS: &str = include_str!("../../../web/app.js");
const STYLE_CSS: &str = include_str!("../../../web/style.css");
const FAVICON_SVG: &str = include_str!("../../../web/favicon.svg");

/// Routes of the demo page.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| file("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/app.js",
            get(|| file("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/style.css",
            get(|| file("text/css; charset=utf-8", STYLE_CSS)),
        )
        .route("/favicon.svg", get(|| file("image/svg+xml", FAVICON_SVG)))
}

async fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Small files, and a new binary may ship new ones: always revalidate.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

//! The one stylesheet, compiled into the binary.

use crate::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

pub const CSS: &str = include_str!("../../static/portal.css");

pub fn routes() -> Router<AppState> {
    Router::new().route("/static/portal.css", get(css))
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
}

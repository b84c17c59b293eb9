//! `GET /metrics`: the server's metrics (`letterbox_proto::metrics`) in the Prometheus
//! text exposition format 0.0.4, with the store's sizes and the outbound queue's length
//! read at each scrape. Only
//! clients in `[web] metrics_allow` (default: loopback) may read it; others get 403.

use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use letterbox_proto::Peer;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>, Extension(peer): Extension<Peer>) -> Response {
    let ip = peer.addr.ip();
    if !state
        .config()
        .web
        .metrics_allow
        .iter()
        .any(|n| n.contains(ip))
    {
        tracing::info!(ip = %ip, "web: /metrics refused (not in web.metrics_allow)");
        return (
            StatusCode::FORBIDDEN,
            "metrics are not available from this address (see [web] metrics_allow)\n",
        )
            .into_response();
    }
    let stats = match state.store().run(|s| s.stats()).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!("metrics: store statistics unavailable: {e}");
            None
        }
    };
    // The outbound queue's size (every entry, held ones included), counted in pages so
    // that memory stays flat whatever its length.
    let queued = state
        .store()
        .run(|s| {
            let (mut n, mut after) = (0i64, 0);
            loop {
                let page = s.queue_list(after, 1000)?;
                let Some(last) = page.last() else { break };
                after = last.id;
                n += page.len() as i64;
            }
            Ok(n)
        })
        .await;
    match queued {
        Ok(n) => letterbox_proto::metrics::metrics().set_queue_size(n),
        Err(e) => tracing::error!("metrics: queue size unavailable: {e}"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        letterbox_proto::metrics::render(stats.as_ref()),
    )
        .into_response()
}

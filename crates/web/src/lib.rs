//! The Letterbox web portal, served on `[listen] http` and `https` by the same binary.
//!
//! Mailbox users log in with their address and password and see what fills their
//! mailbox, ask for more room, learn how to read their mail and change their password.
//! Operators (`letterbox admin add`) manage accounts, decide quota requests and watch
//! domains; a domain admin sees only their domains.
//!
//! Shape: [`router`] joins one module per page (`pages/`) and per JSON API group
//! (`api/`). Every action is an API handler with serde request/response types; the HTML
//! pages call the same functions (forms post to the page, which calls the API function
//! and redirects), so nothing is only in HTML. Pages are rendered on the server with
//! `maud` (escaping by default) and work without JavaScript.
//!
//! HTTP itself is hyper's (HTTP/1.1, RFC 9112, and HTTP/2, RFC 9113) under axum; the
//! connection comes from `serve`'s accept loop like every other protocol's, so the
//! connection limits and implicit TLS (`https`, RFC 2818) apply unchanged.
//!
//! Adding a page or an API group: a new file under `pages/` or `api/` with a
//! `routes() -> Router<AppState>`, and one `.merge(...)` line in [`router`]. An API
//! handler takes [`session::Session`] (reads) or [`session::ApiWrite`] (writes, CSRF
//! checked); another way to authenticate (API tokens) extends `Session::from_parts`.
//!
//! Security (see `session`): the session cookie is `HttpOnly; SameSite=Strict` and
//! `Secure` over TLS (RFC 6265bis); sessions live in the store so that every process
//! agrees; every form and every API write carries a CSRF token; every response carries a
//! strict Content-Security-Policy (no script at all, styles only from our one CSS file);
//! logins go through the same throttle (failure counts, delays, blocks) as IMAP and POP3.

pub mod api;
pub mod layout;
pub mod mailconfig;
pub mod pages;
pub mod session;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request};
use axum::response::Response;
use axum::Router;
use letterbox_proto::{BoxStream, Context, Peer, Service};
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub ctx: Context,
}

impl AppState {
    pub fn store(&self) -> &letterbox_store::Store {
        &self.ctx.store
    }
    pub fn config(&self) -> &letterbox_config::Config {
        &self.ctx.config
    }
}

/// The strict policy every response carries: nothing but our own stylesheet, images from
/// ourselves (inline SVG needs nothing), forms to ourselves, no framing, no scripts.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The whole application: every page and API group, one line each.
pub fn router(state: AppState) -> Router {
    let max_body = state.config().web.max_request_body.0 as usize;
    Router::new()
        .merge(pages::assets::routes())
        .merge(pages::login::routes())
        .merge(pages::usage::routes())
        .merge(pages::request::routes())
        .merge(pages::reading::routes())
        .merge(pages::account::routes())
        .merge(pages::admin_accounts::routes())
        .merge(pages::admin_requests::routes())
        .merge(pages::admin_domains::routes())
        .merge(api::session::routes())
        .merge(api::usage::routes())
        .merge(api::space::routes())
        .merge(api::requests::routes())
        .merge(api::reading::routes())
        .merge(api::account::routes())
        .merge(api::admin::routes())
        .merge(pages::metrics::routes())
        .merge(pages::autoconfig::routes())
        .merge(pages::app_passwords::routes())
        .merge(pages::logins::routes())
        .merge(api::app_passwords::routes())
        .merge(api::logins::routes())
        .merge(api::openapi::routes())
        .merge(api::attachments::routes())
        .merge(pages::attachments::routes())
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn(pages::clear_flash))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The portal as a [`Service`] for `serve`'s accept loop (listener name `http`; `https`
/// is the same service behind implicit TLS).
pub struct WebService {
    router: Router,
    /// How long a client may take to send a request's head (the pre-login time-out).
    header_timeout: std::time::Duration,
}

impl WebService {
    pub fn new(ctx: Context) -> Arc<WebService> {
        Arc::new(WebService {
            header_timeout: std::time::Duration::from_secs(
                ctx.config.limits.timeout_unauthenticated.max(1),
            ),
            router: router(AppState { ctx }),
        })
    }
}

impl Service for WebService {
    fn name(&self) -> &'static str {
        "http"
    }

    fn busy(&self) -> &'static [u8] {
        b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    }

    fn serve(
        self: Arc<Self>,
        stream: BoxStream,
        peer: Peer,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
            let router = self.router.clone();
            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(peer);
                let router = router.clone();
                async move {
                    use tower::ServiceExt;
                    router.oneshot(req.map(Body::new)).await
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Some(self.header_timeout));
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!("http: connection from {} ended: {e}", peer.addr);
            }
        })
    }
}

/// How often `serve` refreshes today's usage samples and forgets expired sessions.
pub const MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The portal's share of `serve`'s maintenance: at start and then every
/// [`MAINTENANCE_INTERVAL`], record (or refresh) today's usage sample of every account,
/// so the usage chart has a point from the first day, and purge expired sessions.
pub async fn maintenance(store: letterbox_store::Store) {
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    loop {
        tick.tick().await;
        let now = letterbox_store::now();
        let day = letterbox_store::web::day_of(now);
        match store.run(move |s| s.web().usage_sample_all(day)).await {
            Ok(n) => tracing::debug!("web: usage sampled for {n} account(s)"),
            Err(e) => tracing::error!("web: usage sampling failed: {e}"),
        }
        if let Err(e) = store.run(move |s| s.web().sessions_purge(now)).await {
            tracing::error!("web: session purge failed: {e}");
        }
    }
}

//! The HTML pages, one module each. A page reads through the same API functions as the
//! JSON API (`crate::api`), and a form posts to its page, which calls the API function
//! and redirects (POST/redirect/GET), so every page works without JavaScript.

pub mod account;
pub mod admin_accounts;
pub mod admin_domains;
pub mod admin_requests;
pub mod app_passwords;
pub mod attachments;
pub mod assets;
pub mod autoconfig;
pub mod login;
pub mod logins;
pub mod metrics;
pub mod reading;
pub mod request;
pub mod usage;

use crate::api::ApiError;
use crate::layout;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

/// An error as a page: the status and one escaped line, with a way back.
pub fn error_page(e: ApiError) -> Response {
    let title = match e.status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::UNAUTHORIZED => "Please log in",
        s if s.is_server_error() => "Temporarily unavailable",
        _ => "That did not work",
    };
    let body = html! {
        p class="error" role="alert" { (e.message) }
        p { a href="/" { "Back to the portal" } }
    };
    (e.status, layout::page(title, None, body)).into_response()
}

/// A page handler's failure, shown as a page.
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        PageError(e)
    }
}

impl From<letterbox_store::Error> for PageError {
    fn from(e: letterbox_store::Error) -> PageError {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.0)
    }
}

pub type PageResult = Result<Response, PageError>;

pub async fn not_found() -> Response {
    error_page(ApiError::new(
        StatusCode::NOT_FOUND,
        "There is no such page.",
    ))
}

/// The cookie that carries a one-line notice to the page a form redirects to. A cookie
/// rather than a query parameter, so that nobody can craft a link that shows our page
/// with their text in it.
pub const FLASH_COOKIE: &str = "lb_flash";

/// Redirects after a successful form (303, POST/redirect/GET) with a notice for the next
/// page.
pub fn done(path: &str, notice: &str) -> Response {
    let cookie = format!(
        "{FLASH_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=60",
        urlencode(notice)
    );
    (
        StatusCode::SEE_OTHER,
        [
            (axum::http::header::SET_COOKIE, cookie),
            (axum::http::header::LOCATION, path.to_string()),
        ],
    )
        .into_response()
}

/// Percent-encodes a value (query parameters, the notice cookie).
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn urldecode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The notice a form left for this page (see [`done`]).
#[derive(Default)]
pub struct Notice {
    pub done: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Notice {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Notice {
            done: crate::session::cookie(parts, FLASH_COOKIE)
                .map(|v| urldecode(&v))
                .filter(|v| !v.is_empty())
                .map(|v| v.chars().take(300).collect()),
        })
    }
}

/// Clears the notice cookie once a page has been shown with it.
pub async fn clear_flash(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let had = req
        .headers()
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(FLASH_COOKIE));
    let mut res = next.run(req).await;
    if had && res.status() == StatusCode::OK {
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
            "{FLASH_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        )) {
            res.headers_mut().append(axum::http::header::SET_COOKIE, v);
        }
    }
    res
}

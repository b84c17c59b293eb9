//! The HTML pages, one module each. A page reads through the same API functions as the
//! JSON API (`crate::api`), and a form posts to its page, which calls the API function
//! and redirects (POST/redirect/GET), so every page works without JavaScript.

pub mod account;
pub mod admin_accounts;
pub mod admin_domains;
pub mod admin_requests;
pub mod app_passwords;
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

/// Redirects after a successful form with a notice for the next page.
pub fn done(path: &str, notice: &str) -> Response {
    let mut url = String::from(path);
    url.push(if path.contains('?') { '&' } else { '?' });
    url.push_str("done=");
    url.push_str(&urlencode(notice));
    axum::response::Redirect::to(&url).into_response()
}

/// Percent-encodes a query value.
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

/// The `?done=` notice of a page.
#[derive(serde::Deserialize, Default)]
pub struct Notice {
    #[serde(default)]
    pub done: Option<String>,
}

//! `GET /api/openapi.json`: the OpenAPI 3.0 document describing every `/api/` route
//! (`openapi.json` beside this file, served as written).
//!
//! Hand-written rather than generated with `utoipa`: the handlers are spread over many
//! files by two authors, and deriving the document would mean proc-macro annotations on
//! every handler and type (and `utoipa`'s dependency tree) for a document of this size.
//! Drift is caught by tests instead: `tests/web/test_api_tokens.py` validates the document
//! with `openapi-spec-validator` and compares its paths and methods with the `.route(...)`
//! calls under `crates/web/src/api/`, and calls the documented routes on a live server.

use crate::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// The document, as served.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json_with_paths() {
        let v: serde_json::Value = serde_json::from_str(super::OPENAPI_JSON).unwrap();
        assert_eq!(v["openapi"], "3.0.3");
        assert!(v["paths"]["/api/app-passwords"]["post"].is_object());
    }
}

//! `GET /api/app-passwords`, `POST /api/app-passwords` (`{"name": "Phone", "protocols":
//! ["imap", "smtp"]}`, answered with the generated password, the only time it is shown),
//! `DELETE /api/app-passwords/{name}` (revoked at once). The logged-in user's own
//! application passwords (`letterbox_store::apppass`); the same as `letterbox user
//! app-password`.

use super::{ApiError, ApiResult};
use crate::session::{ApiWrite, Session, CSRF_HEADER};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use letterbox_store::Protocols;
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/app-passwords", get(api_list).post(api_create))
        .route("/api/app-passwords/{name}", delete(api_revoke))
}

#[derive(Serialize)]
pub struct AppPasswordInfo {
    pub name: String,
    /// `imap`, `pop3`, `smtp`.
    pub protocols: Vec<&'static str>,
    /// Seconds since the epoch.
    pub created: i64,
    pub last_used: Option<i64>,
}

#[derive(Serialize)]
pub struct AppPasswordList {
    pub app_passwords: Vec<AppPasswordInfo>,
}

#[derive(Deserialize)]
pub struct CreateAppPassword {
    pub name: String,
    pub protocols: Vec<String>,
}

#[derive(Serialize)]
pub struct CreatedAppPassword {
    pub name: String,
    pub protocols: Vec<&'static str>,
    /// The password, shown this once (dashes optional when typed).
    pub password: String,
}

pub async fn list(state: &AppState, s: &Session) -> Result<Vec<AppPasswordInfo>, ApiError> {
    let a = s.account.address.clone();
    let v = state
        .store()
        .run(move |st| st.list_app_passwords(&a))
        .await?;
    Ok(v.into_iter()
        .map(|p| AppPasswordInfo {
            protocols: p.protocols.names(),
            name: p.name,
            created: p.created,
            last_used: p.last_used,
        })
        .collect())
}

pub async fn create(
    state: &AppState,
    s: &Session,
    name: &str,
    protocols: &[String],
) -> Result<CreatedAppPassword, ApiError> {
    let protocols = Protocols::from_names(protocols)?;
    let (a, n) = (s.account.address.clone(), name.to_string());
    let password = state
        .store()
        .run(move |st| st.add_app_password(&a, &n, protocols))
        .await?;
    tracing::info!(user = %s.account.address, "web: application password created");
    Ok(CreatedAppPassword {
        name: name.trim().to_string(),
        protocols: protocols.names(),
        password,
    })
}

pub async fn revoke(state: &AppState, s: &Session, name: &str) -> Result<(), ApiError> {
    let (a, n) = (s.account.address.clone(), name.to_string());
    state
        .store()
        .run(move |st| st.remove_app_password(&a, &n))
        .await?;
    tracing::info!(user = %s.account.address, "web: application password revoked");
    Ok(())
}

async fn api_list(State(state): State<AppState>, s: Session) -> ApiResult<AppPasswordList> {
    Ok(Json(AppPasswordList {
        app_passwords: list(&state, &s).await?,
    }))
}

async fn api_create(
    State(state): State<AppState>,
    w: ApiWrite<CreateAppPassword>,
) -> Result<Response, ApiError> {
    let created = create(&state, &w.session, &w.body.name, &w.body.protocols).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[derive(Serialize)]
pub struct Revoked {
    pub revoked: bool,
}

/// A write without a body: the CSRF header is checked here (not for bearer tokens).
async fn api_revoke(
    State(state): State<AppState>,
    s: Session,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Revoked> {
    if super::tokens::bearer_header(&headers).is_none() {
        let token = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        s.check_csrf(token)?;
    }
    revoke(&state, &s, &name).await?;
    Ok(Json(Revoked { revoked: true }))
}

//! `GET /api/logins`: the logged-in user's recent successful logins, newest first (time,
//! client address, protocol, application password used), the last `[auth]
//! login_history` (`letterbox_store::logins`); the same as `letterbox user logins`.

use super::ApiResult;
use crate::session::Session;
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/logins", get(api_logins))
}

#[derive(Serialize)]
pub struct LoginInfo {
    /// Seconds since the epoch.
    pub at: i64,
    pub remote: String,
    /// `imap`, `pop3`, `smtp` or `web`.
    pub protocol: String,
    /// The application password's name; null for the account password.
    pub app_password: Option<String>,
}

#[derive(Serialize)]
pub struct LoginList {
    pub logins: Vec<LoginInfo>,
}

pub async fn list(state: &AppState, s: &Session) -> Result<Vec<LoginInfo>, crate::api::ApiError> {
    let a = s.account.address.clone();
    let v = state.store().run(move |st| st.recent_logins(&a)).await?;
    Ok(v.into_iter()
        .map(|l| LoginInfo {
            at: l.at,
            remote: l.remote,
            protocol: l.protocol,
            app_password: l.app_password,
        })
        .collect())
}

async fn api_logins(State(state): State<AppState>, s: Session) -> ApiResult<LoginList> {
    Ok(Json(LoginList {
        logins: list(&state, &s).await?,
    }))
}

//! `POST /api/account/password` (`{"current": "...", "new": "..."}`): the current password
//! is checked through the shared login throttle (a wrong one counts as a failed login),
//! the new one is hashed as `letterbox user passwd` hashes it (Argon2id,
//! `letterbox_store::password::hash`). The user's other portal sessions end.

use super::{ApiError, ApiResult};
use crate::session::{ApiWrite, Session};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use letterbox_proto::auth::Login;
use serde::{Deserialize, Serialize};

/// Longest password accepted (octets), as a bound on hashing work.
pub const MAX_PASSWORD_LEN: usize = 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/account/password", post(api_password))
}

#[derive(Deserialize)]
pub struct ChangePassword {
    pub current: String,
    pub new: String,
}

#[derive(Serialize)]
pub struct Changed {
    pub changed: bool,
}

pub async fn change_password(
    state: &AppState,
    s: &Session,
    current: &str,
    new: &str,
) -> Result<(), ApiError> {
    if new.is_empty() {
        return Err(ApiError::bad("the new password is empty"));
    }
    if new.len() > MAX_PASSWORD_LEN || new.contains(['\r', '\n']) {
        return Err(ApiError::bad(
            "the new password is too long or has a line break",
        ));
    }
    match state.ctx.login(&s.peer, &s.account.address, current).await {
        Login::Ok(_) => {}
        Login::Failed | Login::Blocked => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the current password is wrong",
            ))
        }
        Login::Unavailable(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the mail store is unavailable; try again later",
            ))
        }
    }
    let (a, n, id, keep) = (
        s.account.address.clone(),
        new.to_string(),
        s.account.id,
        s.token_hash,
    );
    state
        .store()
        .run(move |st| {
            let hash = letterbox_store::password::hash(&n);
            st.set_password_hash(&a, &hash)?;
            // Other sessions end; this one stays.
            let mine = st.web().session_get(keep, letterbox_store::now())?;
            st.web().sessions_end_account(id)?;
            if let Some(m) = mine {
                st.web().session_create(keep, id, &m.csrf, m.expires)?;
            }
            Ok(())
        })
        .await?;
    tracing::info!(user = %s.account.address, "web: password changed");
    Ok(())
}

async fn api_password(
    State(state): State<AppState>,
    w: ApiWrite<ChangePassword>,
) -> ApiResult<Changed> {
    change_password(&state, &w.session, &w.body.current, &w.body.new).await?;
    Ok(Json(Changed { changed: true }))
}

//! `GET /api/space`: what attachment removal and Trash/Junk expiry took from the
//! logged-in user's account and when (issue 15), newest first, with the octets freed
//! per day; the account's space log (`letterbox_store` `space.rs`), written in the
//! transaction that freed the space; the same as `letterbox space log`. `?days=N`
//! (default 30, at most a year: the log is kept as long as the usage history).

use super::{ApiError, ApiResult};
use crate::session::Session;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use letterbox_store::web::USAGE_HISTORY_DAYS;
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/space", get(api_space))
}

#[derive(Serialize)]
pub struct SpaceEntry {
    /// Seconds since the epoch.
    pub at: i64,
    /// `strip` (attachments removed) or `expire` (Trash/Junk expiry).
    pub kind: String,
    pub folder: String,
    /// Strip: the message's old UID and the UID of its stripped copy.
    pub uid: Option<u32>,
    pub new_uid: Option<u32>,
    pub messages: u64,
    /// Octets freed.
    pub freed: u64,
    /// Strip: each part removed and the rule; expiry: the age.
    pub detail: String,
}

#[derive(Serialize)]
pub struct FreedDay {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub attachments: u64,
    pub expiry: u64,
}

#[derive(Serialize)]
pub struct SpaceLog {
    pub entries: Vec<SpaceEntry>,
    pub days: Vec<FreedDay>,
}

#[derive(Deserialize)]
pub struct SpaceQuery {
    pub days: Option<i64>,
}

pub async fn log(state: &AppState, s: &Session, days: i64) -> Result<SpaceLog, ApiError> {
    let id = s.account.id;
    let since = letterbox_store::now() - days * 86_400;
    let (entries, freed) = state
        .store()
        .run(move |st| Ok((st.space_log(id, since)?, st.space_freed_by_day(id, since.div_euclid(86_400))?)))
        .await?;
    Ok(SpaceLog {
        entries: entries
            .into_iter()
            .map(|e| SpaceEntry {
                at: e.at,
                kind: e.kind,
                folder: e.mailbox,
                uid: e.uid,
                new_uid: e.new_uid,
                messages: e.messages,
                freed: e.bytes,
                detail: e.detail,
            })
            .collect(),
        days: freed
            .into_iter()
            .map(|d| FreedDay { day: d.day, attachments: d.stripped, expiry: d.expired })
            .collect(),
    })
}

async fn api_space(State(state): State<AppState>, s: Session, Query(q): Query<SpaceQuery>) -> ApiResult<SpaceLog> {
    let days = q.days.unwrap_or(30);
    if !(1..=USAGE_HISTORY_DAYS).contains(&days) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("days must be 1 to {USAGE_HISTORY_DAYS}")));
    }
    Ok(Json(log(&state, &s, days).await?))
}

//! How to read your mail: `GET /api/reading` (the settings for IMAP, POP3 and sending,
//! taken from the live `[listen]` configuration, so no port that is not open is shown)
//! and `POST /api/reading/retention` (`{"retention": "keep"|"delete"|"30d"|"default"}`,
//! the per-account POP3 retention of `letterbox user set ADDRESS pop3-retention`).

use super::{ApiError, ApiResult};
use crate::session::{ApiWrite, Session};
use crate::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use letterbox_config::{Config, Retention};
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/reading", get(api_reading))
        .route("/api/reading/retention", post(api_retention))
}

/// One way to connect.
#[derive(Serialize, Clone)]
pub struct Endpoint {
    pub port: u16,
    /// `SSL/TLS` (implicit) or `STARTTLS`.
    pub security: &'static str,
}

#[derive(Serialize, Clone)]
pub struct Reading {
    pub host: String,
    pub username: String,
    pub imap: Vec<Endpoint>,
    pub pop3: Vec<Endpoint>,
    /// Sending (submission, RFC 6409 / RFC 8314).
    pub smtp: Vec<Endpoint>,
    /// The account's own retention (`keep`, `delete`, `30d`), `None`: the server default.
    pub retention: Option<String>,
    /// The retention in force.
    pub effective_retention: String,
    /// The server default (`[pop3] retention`).
    pub default_retention: String,
}

fn endpoints(
    config: &Config,
    implicit: &[std::net::SocketAddr],
    starttls: &[std::net::SocketAddr],
) -> Vec<Endpoint> {
    let _ = config;
    let mut v: Vec<Endpoint> = Vec::new();
    for a in implicit {
        if !v.iter().any(|e| e.port == a.port()) {
            v.push(Endpoint {
                port: a.port(),
                security: "SSL/TLS",
            });
        }
    }
    for a in starttls {
        if !v.iter().any(|e| e.port == a.port()) {
            v.push(Endpoint {
                port: a.port(),
                security: "STARTTLS",
            });
        }
    }
    v
}

pub async fn reading(state: &AppState, s: &Session) -> Result<Reading, ApiError> {
    let id = s.account.id;
    let account = state.store().run(move |st| st.account_by_id(id)).await?;
    let c = state.config();
    let l = &c.listen;
    Ok(Reading {
        host: c.hostname.clone(),
        username: account.address.clone(),
        imap: endpoints(c, &l.imaps, &l.imap),
        pop3: endpoints(c, &l.pop3s, &l.pop3),
        smtp: endpoints(c, &l.submissions, &l.submission),
        retention: account.pop3_retention.map(|r| r.to_string()),
        effective_retention: account.effective_retention.to_string(),
        default_retention: c.pop3.retention.to_string(),
    })
}

#[derive(Deserialize)]
pub struct SetRetention {
    /// `keep`, `delete`, `<N>d`, or `default` (follow the server's setting).
    pub retention: String,
}

/// Parses a retention as `letterbox user set ... pop3-retention` does; `default`: None.
pub fn parse_retention(s: &str) -> Result<Option<Retention>, ApiError> {
    match s.trim() {
        "default" | "" => Ok(None),
        other => other
            .parse::<Retention>()
            .map(Some)
            .map_err(|e| ApiError::bad(format!("retention: {e}"))),
    }
}

pub async fn set_retention(
    state: &AppState,
    address: &str,
    retention: &str,
) -> Result<(), ApiError> {
    let r = parse_retention(retention)?;
    let a = address.to_string();
    state.store().run(move |st| st.set_retention(&a, r)).await?;
    tracing::info!(user = %address, "web: POP3 retention set to {}", r.map_or("default".to_string(), |r| r.to_string()));
    Ok(())
}

async fn api_reading(State(state): State<AppState>, s: Session) -> ApiResult<Reading> {
    Ok(Json(reading(&state, &s).await?))
}

async fn api_retention(
    State(state): State<AppState>,
    w: ApiWrite<SetRetention>,
) -> ApiResult<Reading> {
    set_retention(&state, &w.session.account.address, &w.body.retention).await?;
    Ok(Json(reading(&state, &w.session).await?))
}

//! `POST /api/login`, `POST /api/logout`, `GET /api/me`.
//!
//! A login goes through `Context::login` (`letterbox_proto::auth`): the same per-IP and
//! per-account failure counts, delays and stored blocks as IMAP, POP3 and SMTP AUTH. A
//! blocked login fails like a wrong password. Over plain HTTP from another host the
//! password is refused unless `[auth] allow_plaintext` (as for the other protocols).

use super::{ApiError, ApiResult};
use crate::session::{
    new_token, role_of, set_cookie, token_hash, ApiWrite, Role, Session, SESSION_COOKIE,
};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use letterbox_proto::auth::Login;
use letterbox_proto::Peer;
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(api_login))
        .route("/api/logout", post(api_logout))
        .route("/api/me", get(api_me))
}

#[derive(Deserialize)]
pub struct LoginRequest {
    pub address: String,
    pub password: String,
}

/// Who is logged in.
#[derive(Serialize)]
pub struct Me {
    pub address: String,
    /// `user`, `operator` or `domain-admin`.
    pub role: &'static str,
    /// The domains a domain admin manages (empty otherwise).
    pub domains: Vec<String>,
    /// The token API writes carry in `X-CSRF-Token`.
    pub csrf: String,
}

pub fn me(s: &Session) -> Me {
    let (role, domains) = match &s.role {
        Role::User => ("user", vec![]),
        Role::Operator => ("operator", vec![]),
        Role::DomainAdmin(d) => ("domain-admin", d.clone()),
    };
    Me {
        address: s.account.address.clone(),
        role,
        domains,
        csrf: s.csrf.clone(),
    }
}

/// A successful login: the cookie token and the session.
pub struct LoggedIn {
    pub token: String,
    pub session: Session,
}

impl LoggedIn {
    /// The `Set-Cookie` header value for this login.
    pub fn cookie(&self, state: &AppState) -> String {
        set_cookie(
            SESSION_COOKIE,
            &self.token,
            state.config().web.session_lifetime,
            self.session.peer.tls,
        )
    }
}

/// Checks the password through the shared throttle and opens a session.
pub async fn login(
    state: &AppState,
    peer: Peer,
    address: &str,
    password: &str,
) -> Result<LoggedIn, ApiError> {
    if !peer.plaintext_auth_allowed(state.config()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "log in over https: passwords are not accepted without TLS",
        ));
    }
    if address.is_empty() || password.is_empty() || address.len() > 320 || password.len() > 1024 {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong address or password",
        ));
    }
    let account = match state.ctx.login(&peer, address, password).await {
        Login::Ok(a) => a,
        Login::Failed | Login::Blocked => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong address or password",
            ))
        }
        Login::Unavailable(e) => {
            tracing::error!("web login: store unavailable: {e}");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the mail store is unavailable; try again later",
            ));
        }
    };
    let token = new_token();
    let csrf = new_token();
    let hash = token_hash(&token);
    let expires = letterbox_store::now() + state.config().web.session_lifetime as i64;
    let (id, c) = (account.id, csrf.clone());
    state
        .store()
        .run(move |s| s.web().session_create(hash, id, &c, expires))
        .await?;
    let role = role_of(state, &account.address).await?;
    tracing::info!(user = %account.address, ip = %peer.addr.ip(), "web: logged in");
    Ok(LoggedIn {
        token,
        session: Session {
            account,
            csrf,
            token_hash: hash,
            role,
            peer,
        },
    })
}

/// Ends a session.
pub async fn logout(state: &AppState, s: &Session) -> Result<(), ApiError> {
    let hash = s.token_hash;
    state
        .store()
        .run(move |st| st.web().session_delete(hash))
        .await?;
    Ok(())
}

/// The cookie that removes the session cookie.
pub fn clear_cookie(tls: bool) -> String {
    set_cookie(SESSION_COOKIE, "", 0, tls)
}

async fn api_login(
    State(state): State<AppState>,
    Extension(peer): Extension<Peer>,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let li = login(&state, peer, &req.address, &req.password).await?;
    Ok((
        [(header::SET_COOKIE, li.cookie(&state))],
        Json(me(&li.session)),
    )
        .into_response())
}

#[derive(Deserialize, Serialize, Default)]
pub struct Empty {}

async fn api_logout(
    State(state): State<AppState>,
    w: ApiWrite<Empty>,
) -> Result<Response, ApiError> {
    logout(&state, &w.session).await?;
    Ok((
        [(header::SET_COOKIE, clear_cookie(w.session.peer.tls))],
        Json(Empty {}),
    )
        .into_response())
}

async fn api_me(s: Session) -> ApiResult<Me> {
    Ok(Json(me(&s)))
}

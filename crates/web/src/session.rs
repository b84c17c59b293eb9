//! Portal sessions, roles and CSRF protection.
//!
//! A login creates a random 256-bit token, sent as the cookie `lb_session`
//! (`HttpOnly; SameSite=Strict; Path=/`, plus `Secure` on a TLS connection: RFC 6265bis
//! sections 4.1.2.5-4.1.2.7). The store keeps only the token's BLAKE3 hash with the
//! account, the session's CSRF token and its expiry (`[web] session_lifetime`), so every
//! process and node reading the store agrees on the session, and a copy of the database
//! holds no usable cookie.
//!
//! CSRF: every form carries a hidden `csrf` field and every JSON API write the header
//! `X-CSRF-Token`, both equal to the session's token (compared in constant time); a
//! mismatch or absence is 403 before anything happens. The login form (no session yet)
//! uses a double-submit token: a `lb_login` cookie equal to the form's field.

use crate::api::ApiError;
use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use letterbox_proto::Peer;
use letterbox_store::Account;
use serde::de::DeserializeOwned;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "lb_session";
/// The login form's double-submit CSRF cookie.
pub const LOGIN_COOKIE: &str = "lb_login";
/// The header a JSON API write carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A fresh random token (256 bits, hex).
pub fn new_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// What the store keeps of a session token.
pub fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Constant-time comparison of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value with the portal's attributes.
pub fn set_cookie(name: &str, value: &str, max_age: u64, tls: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if tls { "; Secure" } else { "" }
    )
}

/// What an operator may manage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A mailbox user only.
    User,
    /// Every domain.
    Operator,
    /// These domains only.
    DomainAdmin(Vec<String>),
}

impl Role {
    pub fn is_admin(&self) -> bool {
        !matches!(self, Role::User)
    }
    /// Whether this role may manage an address (or a domain given as `@domain` or bare).
    pub fn may_manage(&self, address_or_domain: &str) -> bool {
        let domain = address_or_domain
            .rsplit_once('@')
            .map_or(address_or_domain, |(_, d)| d)
            .to_ascii_lowercase();
        match self {
            Role::User => false,
            Role::Operator => true,
            Role::DomainAdmin(ds) => ds.contains(&domain),
        }
    }
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub account: Account,
    pub csrf: String,
    pub token_hash: [u8; 32],
    pub role: Role,
    pub peer: Peer,
}

/// The client's connection (inserted by [`crate::WebService`]).
pub fn peer(parts: &Parts) -> Result<Peer, ApiError> {
    parts
        .extensions
        .get::<Peer>()
        .copied()
        .ok_or_else(|| ApiError::internal("no connection information"))
}

/// The role of an address, from the store's operator grants.
pub async fn role_of(state: &AppState, address: &str) -> Result<Role, ApiError> {
    let grants = state.store().run(|s| s.web().admin_list()).await?;
    let mine: Vec<_> = grants
        .into_iter()
        .filter(|g| g.address == address)
        .collect();
    if mine.is_empty() {
        Ok(Role::User)
    } else if mine.iter().any(|g| g.domain.is_none()) {
        Ok(Role::Operator)
    } else {
        Ok(Role::DomainAdmin(
            mine.into_iter().filter_map(|g| g.domain).collect(),
        ))
    }
}

impl Session {
    /// The session of a request, if its cookie names a live one.
    pub async fn from_parts(parts: &Parts, state: &AppState) -> Result<Option<Session>, ApiError> {
        let peer = peer(parts)?;
        // A script's API token (`Authorization: Bearer`) stands instead of a cookie.
        if let Some(token) = crate::api::tokens::bearer(parts) {
            return crate::api::tokens::session(state, peer, token).await;
        }
        let Some(token) = cookie(parts, SESSION_COOKIE) else {
            return Ok(None);
        };
        let hash = token_hash(&token);
        let now = letterbox_store::now();
        let Some(s) = state
            .store()
            .run(move |st| st.web().session_get(hash, now))
            .await?
        else {
            return Ok(None);
        };
        let id = s.account_id;
        let found = state
            .store()
            .run(move |st| {
                let a = st.account_by_id(id)?;
                let disabled = st.web().is_disabled(id)?;
                Ok((a, disabled))
            })
            .await;
        let account = match found {
            Ok((a, false)) => a,
            Ok((_, true)) | Err(letterbox_store::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let role = role_of(state, &account.address).await?;
        Ok(Some(Session {
            account,
            csrf: s.csrf,
            token_hash: hash,
            role,
            peer,
        }))
    }

    /// Refuses (403) unless `token` is this session's CSRF token.
    pub fn check_csrf(&self, token: &str) -> Result<(), ApiError> {
        if same_token(token, &self.csrf) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token",
            ))
        }
    }

    /// Refuses (403) unless the user is an operator or domain admin.
    pub fn require_admin(&self) -> Result<&Role, ApiError> {
        if self.role.is_admin() {
            Ok(&self.role)
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this page is for operators",
            ))
        }
    }

    /// Refuses (403) unless this operator may manage the address or domain.
    pub fn require_manage(&self, address_or_domain: &str) -> Result<(), ApiError> {
        self.require_admin()?;
        if self.role.may_manage(address_or_domain) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not one of your domains",
            ))
        }
    }
}

/// The session for an API call: 401 without one.
impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Session::from_parts(parts, state)
            .await?
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "log in first"))
    }
}

/// The session for a page: without one, the browser goes to the login page.
pub struct PageSession(pub Session);

pub struct ToLogin;

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<AppState> for PageSession {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Session::from_parts(parts, state).await {
            Ok(Some(s)) => Ok(PageSession(s)),
            Ok(None) => Err(ToLogin.into_response()),
            Err(e) => Err(crate::pages::error_page(e)),
        }
    }
}

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A form posted by a logged-in user, its CSRF token checked: 403 when the session is
/// missing or the token absent or wrong, before the handler runs.
pub struct CsrfForm<T> {
    pub session: Session,
    pub form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let session = match Session::from_parts(&parts, state).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(crate::pages::error_page(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "your session has ended: log in again",
                )))
            }
            Err(e) => return Err(crate::pages::error_page(e)),
        };
        let limit = state.config().web.max_request_body.0 as usize;
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            crate::pages::error_page(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the form is too large",
            ))
        })?;
        let token: CsrfField = serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField {
            csrf: String::new(),
        });
        if let Err(e) = session.check_csrf(&token.csrf) {
            return Err(crate::pages::error_page(e));
        }
        let form: T = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            crate::pages::error_page(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("malformed form: {e}"),
            ))
        })?;
        Ok(CsrfForm { session, form })
    }
}

/// A JSON API write: the session, its CSRF token in `X-CSRF-Token` (403 otherwise), and
/// the JSON body.
pub struct ApiWrite<T> {
    pub session: Session,
    pub body: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiWrite<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let token = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // A bearer token is no ambient credential: nothing to forge, no CSRF token.
        if crate::api::tokens::bearer(&parts).is_none() {
            session.check_csrf(token)?;
        }
        let req = Request::from_parts(parts, body);
        let axum::Json(body) = axum::Json::<T>::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
        Ok(ApiWrite { session, body })
    }
}

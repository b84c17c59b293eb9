//! API tokens (`Authorization: Bearer TOKEN`, RFC 6750 section 2.1) for scripts: a token
//! made by `letterbox admin token add NAME` gives operator rights on every `/api/` route,
//! without a session cookie and without the CSRF header (a browser never sends this
//! header on its own, so there is no cross-site request to forge).
//!
//! A token request acts as the pseudo-account `token:NAME` (account id 0, which no
//! account has): operator decisions record it in the audit trail under that name, and
//! a user's own pages (usage, app passwords...) answer 404 for it. A wrong, revoked or
//! malformed token is 401, like a missing session; the failure is logged with the
//! client's address, never with the token.

use crate::session::{new_token, Role, Session};
use crate::AppState;
use axum::http::header;
use axum::http::request::Parts;
use letterbox_proto::Peer;
use letterbox_store::{Account, QuotaLimit, Retention};

/// The bearer token of a request, if it sends one.
pub fn bearer(parts: &Parts) -> Option<String> {
    bearer_header(&parts.headers)
}

/// The bearer token in these headers, if any (another scheme, `Basic`, is none).
pub fn bearer_header(headers: &axum::http::HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The session of a request authenticated by a token, `None` when the token is not live.
pub async fn session(
    state: &AppState,
    peer: Peer,
    token: String,
) -> Result<Option<Session>, crate::api::ApiError> {
    let name = state
        .store()
        .run(move |s| s.check_api_token(&token))
        .await?;
    let Some(name) = name else {
        tracing::warn!(ip = %peer.addr.ip(), "web: API request with an unknown or revoked token");
        return Ok(None);
    };
    Ok(Some(Session {
        account: Account {
            id: 0,
            address: format!("token:{name}"),
            quota_limit: QuotaLimit::Unlimited,
            effective_limit: None,
            quota_used: 0,
            pop3_retention: None,
            effective_retention: Retention::Keep,
        },
        // Never used: token requests skip the CSRF check.
        csrf: new_token(),
        token_hash: [0; 32],
        role: Role::Operator,
        peer,
    }))
}

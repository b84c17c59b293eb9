//! Requests for more room.
//!
//! User side: `GET /api/quota-request` (the open request and past ones),
//! `POST /api/quota-request` (`{"size": "1G", "reason": "..."}`; one open request per
//! account, 409 while one is pending).
//!
//! Operator side: `GET /api/admin/quota-requests[?all=true]`,
//! `POST /api/admin/quota-requests/{id}/approve` (`{"size": "2G"}`, default the size
//! asked), `POST /api/admin/quota-requests/{id}/deny` (`{"reason": "..."}`). A domain
//! admin sees and decides only their domains' requests. The decision is recorded with
//! who and when (the audit trail), an approval sets the limit in the same transaction
//! (so SMTP and IMAP see it at once), and the user gets a mail with the decision.
//! `letterbox quota requests|approve|deny` call [`decide`] and [`list`] too.

use super::{ApiError, ApiResult};
use crate::session::{ApiWrite, Role, Session};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use letterbox_config::{ByteSize, Config};
use letterbox_store::web::{Decision, QuotaRequest, RequestStatus};
use letterbox_store::{NewMessage, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/quota-request", get(api_mine).post(api_open))
        .route("/api/admin/quota-requests", get(api_list))
        .route("/api/admin/quota-requests/{id}/approve", post(api_approve))
        .route("/api/admin/quota-requests/{id}/deny", post(api_deny))
}

/// A request as the API shows it.
#[derive(Serialize, Clone)]
pub struct Request {
    pub id: i64,
    pub address: String,
    pub size: u64,
    pub reason: String,
    pub created: i64,
    /// `pending`, `approved` or `denied`.
    pub status: &'static str,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub granted_size: Option<u64>,
    /// The reason given with a denial.
    pub note: Option<String>,
}

impl From<QuotaRequest> for Request {
    fn from(r: QuotaRequest) -> Request {
        Request {
            id: r.id,
            address: r.address,
            size: r.size,
            reason: r.reason,
            created: r.created,
            status: r.status.as_str(),
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            granted_size: r.granted_size,
            note: r.note,
        }
    }
}

#[derive(Serialize)]
pub struct Mine {
    pub pending: Option<Request>,
    pub history: Vec<Request>,
}

#[derive(Deserialize)]
pub struct OpenRequest {
    /// `1G`, `500M`, or a byte count (the contract's SIZE syntax).
    pub size: String,
    pub reason: String,
}

/// Parses a size as the CLI does.
pub fn parse_size(s: &str) -> Result<u64, ApiError> {
    s.trim()
        .parse::<ByteSize>()
        .map(|b| b.0)
        .map_err(|e| ApiError::bad(format!("size: {e}")))
}

pub async fn mine(state: &AppState, s: &Session) -> Result<Mine, ApiError> {
    let id = s.account.id;
    let all = state
        .store()
        .run(move |st| st.web().quota_requests_of(id))
        .await?;
    let pending = all
        .iter()
        .find(|r| r.status == RequestStatus::Pending)
        .cloned()
        .map(Request::from);
    Ok(Mine {
        pending,
        history: all.into_iter().map(Request::from).collect(),
    })
}

/// Opens a request for the logged-in user.
pub async fn open(
    state: &AppState,
    s: &Session,
    size: &str,
    reason: &str,
) -> Result<Request, ApiError> {
    let size = parse_size(size)?;
    let reason = reason.trim();
    let max = state.config().web.max_quota_request.0;
    if size == 0 || size > max {
        return Err(ApiError::bad(format!(
            "ask for a size between 1 byte and {}",
            letterbox_proto::human_size(max)
        )));
    }
    if let Some(limit) = s.account.effective_limit {
        if size <= limit {
            return Err(ApiError::bad(format!(
                "your mailbox already has {}: ask for more than that",
                letterbox_proto::human_size(limit)
            )));
        }
    } else {
        return Err(ApiError::bad("your mailbox has no limit"));
    }
    if reason.is_empty() {
        return Err(ApiError::bad("say why you need the room"));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::bad(format!(
            "the reason is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    let (id, r) = (s.account.id, reason.to_string());
    let req = state
        .store()
        .run(move |st| st.web().quota_request_open(id, size, &r))
        .await
        .map_err(|e| match e {
            letterbox_store::Error::Exists(_) => ApiError::new(
                StatusCode::CONFLICT,
                "you already have a request waiting for a decision",
            ),
            e => e.into(),
        })?;
    tracing::info!(user = %s.account.address, id = req.id, "web: quota request opened for {size} octets");
    Ok(req.into())
}

/// Requests an operator may see: pending only unless `all`; a domain admin's limited to
/// their domains.
pub async fn list(store: &Store, role: &Role, all: bool) -> Result<Vec<Request>, ApiError> {
    let v = store.run(move |st| st.web().quota_requests(all)).await?;
    Ok(v.into_iter()
        .filter(|r| role.may_manage(&r.address))
        .map(Request::from)
        .collect())
}

/// Records a decision, applies it, and mails the user. `by` is who decided (an operator's
/// address, or `cli:USER` from the command line).
pub async fn decide(
    store: &Store,
    config: &Config,
    id: i64,
    by: &str,
    decision: Decision,
) -> Result<Request, ApiError> {
    if let Decision::Deny(reason) = &decision {
        if reason.trim().is_empty() {
            return Err(ApiError::bad("give the user a reason for the denial"));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(ApiError::bad(format!(
                "the reason is longer than {MAX_REASON_CHARS} characters"
            )));
        }
    }
    if let Decision::Approve(0) = decision {
        return Err(ApiError::bad("a quota of 0 bytes is no room at all"));
    }
    let b = by.to_string();
    let req = store
        .run(move |st| st.web().quota_request_decide(id, &b, decision))
        .await?;
    tracing::info!(
        id = req.id,
        user = %req.address,
        by,
        "quota request {}{}",
        req.status.as_str(),
        req.granted_size.map(|g| format!(" ({g} octets)")).unwrap_or_default()
    );
    if let Err(e) = notify(store, config, &req).await {
        tracing::error!(
            id = req.id,
            "the decision on quota request #{} was not mailed to {}: {e}",
            req.id,
            req.address
        );
    }
    Ok(req.into())
}

/// The decision mail's text.
pub fn decision_text(req: &QuotaRequest, usage_url: Option<&str>) -> (String, String) {
    let asked = letterbox_proto::human_size(req.size);
    let (subject, mut body) = match req.status {
        RequestStatus::Approved => {
            let granted = letterbox_proto::human_size(req.granted_size.unwrap_or(req.size));
            (
                format!("Your mailbox now has {granted}"),
                format!(
                    "Hello,\n\nyour request for more room ({asked}) was approved: your mailbox \
                     {} can now hold {granted}. This holds from now on.\n",
                    req.address
                ),
            )
        }
        _ => (
            "Your request for more room was declined".to_string(),
            format!(
                "Hello,\n\nyour request for more room ({asked}) for {} was declined.\n\nThe reason given: {}\n",
                req.address,
                req.note.as_deref().unwrap_or("")
            ),
        ),
    };
    if let Some(url) = usage_url {
        body.push_str(&format!(
            "\nWhat fills your mailbox, and how to free space: {url}\n"
        ));
    }
    body.push_str("\nThis message was sent automatically by your mail server.\n");
    (subject, body)
}

async fn notify(
    store: &Store,
    config: &Config,
    req: &QuotaRequest,
) -> Result<(), letterbox_store::Error> {
    let (subject, body) = decision_text(req, config.web_usage_url().as_deref());
    let domain = req
        .address
        .rsplit_once('@')
        .map_or(config.hostname.as_str(), |(_, d)| d);
    let postmaster = format!("postmaster@{domain}");
    let now = letterbox_store::now();
    let msg = mail_builder::MessageBuilder::new()
        .from(("Mail System", postmaster.as_str()))
        .to(req.address.as_str())
        .subject(subject)
        .date(now)
        .message_id(format!(
            "quota-request.{}.{}@{}",
            req.id, now, config.hostname
        ))
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-generated"),
        )
        .text_body(body)
        .write_to_vec()
        .map_err(letterbox_store::Error::Io)?;
    let account = req.account_id;
    store
        .run(move |st| {
            let inbox = st.mailbox(account, "INBOX")?;
            st.append(
                inbox.id,
                NewMessage {
                    prefix: Vec::new(),
                    body: Arc::new(msg),
                    flags: Default::default(),
                    keywords: Vec::new(),
                    internal_date: now,
                },
                false,
            )
        })
        .await?;
    Ok(())
}

/// Decides as the logged-in operator, checking their domains first.
pub async fn decide_as(
    state: &AppState,
    s: &Session,
    id: i64,
    decision: Decision,
) -> Result<Request, ApiError> {
    s.require_admin()?;
    let req = state
        .store()
        .run(move |st| st.web().quota_request(id))
        .await?;
    s.require_manage(&req.address)?;
    decide(
        state.store(),
        state.config(),
        id,
        &s.account.address,
        decision,
    )
    .await
}

async fn api_mine(State(state): State<AppState>, s: Session) -> ApiResult<Mine> {
    Ok(Json(mine(&state, &s).await?))
}

async fn api_open(State(state): State<AppState>, w: ApiWrite<OpenRequest>) -> ApiResult<Request> {
    Ok(Json(
        open(&state, &w.session, &w.body.size, &w.body.reason).await?,
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub all: bool,
}

async fn api_list(
    State(state): State<AppState>,
    s: Session,
    Query(q): Query<ListQuery>,
) -> ApiResult<Vec<Request>> {
    let role = s.require_admin()?;
    Ok(Json(list(state.store(), role, q.all).await?))
}

#[derive(Deserialize, Default)]
pub struct Approve {
    /// The new limit; absent or empty: the size asked.
    #[serde(default)]
    pub size: Option<String>,
}

/// The approval's size: the one given, else the one asked.
pub async fn approval(state: &AppState, id: i64, size: Option<&str>) -> Result<Decision, ApiError> {
    match size.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Ok(Decision::Approve(parse_size(s)?)),
        None => {
            let r = state
                .store()
                .run(move |st| st.web().quota_request(id))
                .await?;
            Ok(Decision::Approve(r.size))
        }
    }
}

async fn api_approve(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    w: ApiWrite<Approve>,
) -> ApiResult<Request> {
    w.session.require_admin()?;
    let d = approval(&state, id, w.body.size.as_deref()).await?;
    Ok(Json(decide_as(&state, &w.session, id, d).await?))
}

#[derive(Deserialize)]
pub struct Deny {
    pub reason: String,
}

async fn api_deny(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    w: ApiWrite<Deny>,
) -> ApiResult<Request> {
    Ok(Json(
        decide_as(
            &state,
            &w.session,
            id,
            Decision::Deny(w.body.reason.trim().to_string()),
        )
        .await?,
    ))
}

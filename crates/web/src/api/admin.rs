//! Operators' accounts and domains. Every call refuses a mailbox user (403) and limits a
//! domain admin to their domains (403 for another domain's account).
//!
//! - `GET /api/admin/accounts[?sort=percent|used|address]` (percent: fullest first)
//! - `POST /api/admin/accounts` `{"address", "password", "quota"?}`: create
//! - `POST /api/admin/accounts/disable|enable|delete` `{"address"}`
//! - `POST /api/admin/accounts/quota` `{"address", "quota": "2G"|"default"|"unlimited"}`
//! - `POST /api/admin/accounts/retention` `{"address", "retention": "keep"|"delete"|"30d"|"default"}`
//! - `GET /api/admin/domains`: usage per domain over time, accounts near full, delivery,
//!   refusal and bounce counts per day.
//!
//! A disabled account cannot log in anywhere (IMAP, POP3, SMTP AUTH, the portal) and mail
//! to it is refused temporarily (`450 4.2.1`), so senders retry while an operator looks
//! into it; deleting the account makes later mail permanently refused (unknown user).

use super::{ApiError, ApiResult};
use crate::session::{ApiWrite, Role, Session};
use crate::AppState;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use letterbox_store::web::{day_of, USAGE_HISTORY_DAYS};
use letterbox_store::QuotaLimit;
use serde::{Deserialize, Serialize};

/// Usage from which an account counts as near full on the domains page (percent).
pub const NEAR_FULL_PERCENT: u64 = 80;
/// Days of delivery counts the domains page shows.
pub const COUNT_DAYS: i64 = 30;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/accounts", get(api_accounts).post(api_create))
        .route("/api/admin/accounts/disable", post(api_disable))
        .route("/api/admin/accounts/enable", post(api_enable))
        .route("/api/admin/accounts/delete", post(api_delete))
        .route("/api/admin/accounts/quota", post(api_quota))
        .route("/api/admin/accounts/retention", post(api_retention))
        .route("/api/admin/domains", get(api_domains))
}

#[derive(Serialize, Clone)]
pub struct AccountRow {
    pub address: String,
    pub used: u64,
    pub limit: Option<u64>,
    pub percent: u64,
    /// `default`, `unlimited` or a byte count.
    pub quota: String,
    pub disabled: bool,
    pub retention: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct AccountsQuery {
    #[serde(default)]
    pub sort: Option<String>,
}

pub async fn accounts(
    state: &AppState,
    s: &Session,
    sort: Option<&str>,
) -> Result<Vec<AccountRow>, ApiError> {
    let role = s.require_admin()?.clone();
    let (list, disabled) = state
        .store()
        .run(|st| Ok((st.list_accounts()?, st.web().disabled_accounts()?)))
        .await?;
    let mut rows: Vec<AccountRow> = list
        .into_iter()
        .filter(|a| role.may_manage(&a.address))
        .map(|a| AccountRow {
            percent: a.percent_used(),
            quota: match a.quota_limit {
                QuotaLimit::Default => "default".into(),
                QuotaLimit::Unlimited => "unlimited".into(),
                QuotaLimit::Bytes(n) => n.to_string(),
            },
            disabled: disabled.contains(&a.id),
            retention: a.pop3_retention.map(|r| r.to_string()),
            address: a.address,
            used: a.quota_used,
            limit: a.effective_limit,
        })
        .collect();
    match sort.unwrap_or("percent") {
        "address" => rows.sort_by(|a, b| a.address.cmp(&b.address)),
        "used" => rows.sort_by(|a, b| b.used.cmp(&a.used).then(a.address.cmp(&b.address))),
        _ => rows.sort_by(|a, b| {
            b.percent
                .cmp(&a.percent)
                .then(b.used.cmp(&a.used))
                .then(a.address.cmp(&b.address))
        }),
    }
    Ok(rows)
}

#[derive(Deserialize)]
pub struct CreateAccount {
    pub address: String,
    pub password: String,
    /// `2G`, `default`, `unlimited`; absent: default.
    #[serde(default)]
    pub quota: Option<String>,
}

/// Parses a quota as `letterbox quota set` does.
pub fn parse_quota(s: &str) -> Result<QuotaLimit, ApiError> {
    match s.trim() {
        "" | "default" => Ok(QuotaLimit::Default),
        "unlimited" => Ok(QuotaLimit::Unlimited),
        other => Ok(QuotaLimit::Bytes(super::requests::parse_size(other)?)),
    }
}

pub async fn create(
    state: &AppState,
    s: &Session,
    req: &CreateAccount,
) -> Result<AccountRow, ApiError> {
    let address = req.address.trim().to_ascii_lowercase();
    s.require_manage(&address)?;
    if req.password.is_empty() || req.password.len() > super::account::MAX_PASSWORD_LEN {
        return Err(ApiError::bad("give a password (up to 1024 octets)"));
    }
    let quota = parse_quota(req.quota.as_deref().unwrap_or(""))?;
    let (a, p) = (address.clone(), req.password.clone());
    state
        .store()
        .run(move |st| st.add_account(&a, &letterbox_store::password::hash(&p), quota))
        .await?;
    tracing::info!(user = %address, by = %s.account.address, "web: account created");
    one(state, s, &address).await
}

async fn one(state: &AppState, s: &Session, address: &str) -> Result<AccountRow, ApiError> {
    accounts(state, s, None)
        .await?
        .into_iter()
        .find(|r| r.address == address)
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                format!("user {address} does not exist"),
            )
        })
}

#[derive(Deserialize)]
pub struct AccountRef {
    pub address: String,
}

pub async fn set_disabled(
    state: &AppState,
    s: &Session,
    address: &str,
    disabled: bool,
) -> Result<AccountRow, ApiError> {
    let address = address.trim().to_ascii_lowercase();
    s.require_manage(&address)?;
    let (a, by) = (address.clone(), s.account.address.clone());
    state
        .store()
        .run(move |st| st.web().set_disabled(&a, disabled, &by))
        .await?;
    tracing::info!(user = %address, by = %s.account.address, "web: account {}", if disabled { "disabled" } else { "enabled" });
    one(state, s, &address).await
}

#[derive(Serialize)]
pub struct Deleted {
    pub address: String,
    pub deleted: bool,
}

pub async fn delete(state: &AppState, s: &Session, address: &str) -> Result<Deleted, ApiError> {
    let address = address.trim().to_ascii_lowercase();
    s.require_manage(&address)?;
    if address == s.account.address {
        return Err(ApiError::bad(
            "you cannot delete the account you are logged in with",
        ));
    }
    let a = address.clone();
    state
        .store()
        .run(move |st| {
            let acct = st.account(&a)?;
            st.web().sessions_end_account(acct.id)?;
            st.web().set_disabled(&a, false, "")?;
            let _ = st.web().admin_remove(&a, None);
            st.remove_account(&a, true)
        })
        .await?;
    tracing::info!(user = %address, by = %s.account.address, "web: account deleted");
    Ok(Deleted {
        address,
        deleted: true,
    })
}

#[derive(Deserialize)]
pub struct SetQuota {
    pub address: String,
    pub quota: String,
}

pub async fn set_quota(
    state: &AppState,
    s: &Session,
    address: &str,
    quota: &str,
) -> Result<AccountRow, ApiError> {
    let address = address.trim().to_ascii_lowercase();
    s.require_manage(&address)?;
    let q = parse_quota(quota)?;
    let a = address.clone();
    state.store().run(move |st| st.set_quota(&a, q)).await?;
    tracing::info!(user = %address, by = %s.account.address, "web: quota set to {quota}");
    one(state, s, &address).await
}

#[derive(Deserialize)]
pub struct SetRetention {
    pub address: String,
    pub retention: String,
}

pub async fn set_retention(
    state: &AppState,
    s: &Session,
    address: &str,
    retention: &str,
) -> Result<AccountRow, ApiError> {
    let address = address.trim().to_ascii_lowercase();
    s.require_manage(&address)?;
    super::reading::set_retention(state, &address, retention).await?;
    one(state, s, &address).await
}

#[derive(Serialize, Clone)]
pub struct NearFull {
    pub address: String,
    pub percent: u64,
    pub used: u64,
    pub limit: Option<u64>,
}

#[derive(Serialize, Clone)]
pub struct DayCount {
    pub day: i64,
    pub delivered: u64,
    pub refused: u64,
    pub bounced: u64,
}

#[derive(Serialize, Clone)]
pub struct DomainReport {
    pub name: String,
    pub accounts: u64,
    pub used: u64,
    pub near_full: Vec<NearFull>,
    /// Summed daily samples of the domain's accounts (`limit`: the sum of the limits).
    pub history: Vec<super::usage::Sample>,
    /// The last [`COUNT_DAYS`] days with any delivery, refusal or bounce.
    pub counts: Vec<DayCount>,
}

pub async fn domains(state: &AppState, s: &Session) -> Result<Vec<DomainReport>, ApiError> {
    let role: Role = s.require_admin()?.clone();
    let today = day_of(letterbox_store::now());
    let reports = state
        .store()
        .run(move |st| {
            let accounts = st.list_accounts()?;
            let mut out = Vec::new();
            for d in st.list_domains()? {
                if !role.may_manage(&d) {
                    continue;
                }
                let mine: Vec<_> = accounts
                    .iter()
                    .filter(|a| a.address.rsplit_once('@').is_some_and(|(_, ad)| ad == d))
                    .collect();
                let mut near_full: Vec<NearFull> = mine
                    .iter()
                    .filter(|a| {
                        a.effective_limit.is_some() && a.percent_used() >= NEAR_FULL_PERCENT
                    })
                    .map(|a| NearFull {
                        address: a.address.clone(),
                        percent: a.percent_used(),
                        used: a.quota_used,
                        limit: a.effective_limit,
                    })
                    .collect();
                near_full.sort_by_key(|a| std::cmp::Reverse(a.percent));
                let history = st
                    .web()
                    .domain_usage_samples(&d, today - USAGE_HISTORY_DAYS)?
                    .into_iter()
                    .map(|h| super::usage::Sample {
                        day: h.day,
                        used: h.used,
                        limit: h.limit,
                    })
                    .collect();
                let counts = st
                    .web()
                    .domain_counts(&d, today - COUNT_DAYS)?
                    .into_iter()
                    .map(|c| DayCount {
                        day: c.day,
                        delivered: c.delivered,
                        refused: c.refused,
                        bounced: c.bounced,
                    })
                    .collect();
                out.push(DomainReport {
                    accounts: mine.len() as u64,
                    used: mine.iter().map(|a| a.quota_used).sum(),
                    name: d,
                    near_full,
                    history,
                    counts,
                });
            }
            Ok(out)
        })
        .await?;
    Ok(reports)
}

async fn api_accounts(
    State(state): State<AppState>,
    s: Session,
    Query(q): Query<AccountsQuery>,
) -> ApiResult<Vec<AccountRow>> {
    Ok(Json(accounts(&state, &s, q.sort.as_deref()).await?))
}

async fn api_create(
    State(state): State<AppState>,
    w: ApiWrite<CreateAccount>,
) -> ApiResult<AccountRow> {
    Ok(Json(create(&state, &w.session, &w.body).await?))
}

async fn api_disable(
    State(state): State<AppState>,
    w: ApiWrite<AccountRef>,
) -> ApiResult<AccountRow> {
    Ok(Json(
        set_disabled(&state, &w.session, &w.body.address, true).await?,
    ))
}

async fn api_enable(
    State(state): State<AppState>,
    w: ApiWrite<AccountRef>,
) -> ApiResult<AccountRow> {
    Ok(Json(
        set_disabled(&state, &w.session, &w.body.address, false).await?,
    ))
}

async fn api_delete(State(state): State<AppState>, w: ApiWrite<AccountRef>) -> ApiResult<Deleted> {
    Ok(Json(delete(&state, &w.session, &w.body.address).await?))
}

async fn api_quota(State(state): State<AppState>, w: ApiWrite<SetQuota>) -> ApiResult<AccountRow> {
    Ok(Json(
        set_quota(&state, &w.session, &w.body.address, &w.body.quota).await?,
    ))
}

async fn api_retention(
    State(state): State<AppState>,
    w: ApiWrite<SetRetention>,
) -> ApiResult<AccountRow> {
    Ok(Json(
        set_retention(&state, &w.session, &w.body.address, &w.body.retention).await?,
    ))
}

async fn api_domains(State(state): State<AppState>, s: Session) -> ApiResult<Vec<DomainReport>> {
    Ok(Json(domains(&state, &s).await?))
}

//! What fills a mailbox, and what frees it: `GET /api/usage`, `POST /api/folders/empty`,
//! `POST /api/folders/delete`.
//!
//! Usage is the account's quota usage (the sum of RFC822.SIZE over its folders, as IMAP
//! QUOTA reports it, RFC 9208); the history is `serve`'s daily sample (one a day, a year).
//! Emptying is allowed for the Trash and Junk folders (by special use, RFC 6154);
//! deleting for any folder but INBOX. Both always work, whatever the quota, so a user
//! can always free space.

use super::{ApiError, ApiResult};
use crate::session::{ApiWrite, Session};
use crate::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use letterbox_message::{Part, PartKind};
use letterbox_store::{web::day_of, web::USAGE_HISTORY_DAYS, SpecialUse};
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/usage", get(api_usage))
        .route("/api/folders/empty", post(api_empty))
        .route("/api/folders/delete", post(api_delete))
}

#[derive(Serialize, Clone)]
pub struct Folder {
    pub name: String,
    pub messages: u32,
    pub size: u64,
    /// `\Trash`, `\Junk`... when the folder has a special use.
    pub special_use: Option<String>,
    /// Emptying it is offered (Trash, Junk).
    pub can_empty: bool,
    /// Deleting it is offered (every folder but INBOX).
    pub can_delete: bool,
}

#[derive(Serialize, Clone)]
pub struct Attachment {
    pub name: String,
    pub mime_type: String,
    /// Octets as stored (encoded).
    pub size: u64,
    /// IMAP section number (`2`, `1.3`), for `POST /api/attachments/remove`.
    pub section: String,
    /// The server can remove it (not the message's body, not inside a signed or
    /// encrypted message, not a placeholder already).
    pub removable: bool,
}

#[derive(Serialize, Clone)]
pub struct LargeMessage {
    pub folder: String,
    pub uid: u32,
    pub size: u64,
    pub date: i64,
    pub subject: String,
    pub from: String,
    pub attachments: Vec<Attachment>,
}

#[derive(Serialize, Clone)]
pub struct Sample {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub used: u64,
    pub limit: Option<u64>,
}

#[derive(Serialize, Clone)]
pub struct Usage {
    pub address: String,
    pub used: u64,
    /// `None`: unlimited.
    pub limit: Option<u64>,
    pub percent: u64,
    pub folders: Vec<Folder>,
    pub largest: Vec<LargeMessage>,
    pub history: Vec<Sample>,
    /// Trash/Junk autoexpunge in force for this account (`[expire]`, `letterbox expire`).
    pub expire: Expiry,
}

/// Days after which messages saved into the `\Trash` / `\Junk` folder are removed by
/// the server (0: never): the account's own setting, else its domain's, else `[expire]`.
#[derive(Serialize, Clone)]
pub struct Expiry {
    pub trash_days: u32,
    pub junk_days: u32,
}

fn attachments(part: &Part, section: &str, out: &mut Vec<Attachment>) {
    match &part.kind {
        PartKind::Multipart(parts) => {
            for (i, p) in parts.iter().enumerate() {
                let s = if section.is_empty() {
                    format!("{}", i + 1)
                } else {
                    format!("{section}.{}", i + 1)
                };
                attachments(p, &s, out);
            }
        }
        PartKind::Leaf | PartKind::Message(..) => {
            let filename = part
                .disposition
                .as_ref()
                .and_then(|(_, ps)| ps.iter().find(|(k, _)| k.eq_ignore_ascii_case("filename")))
                .or_else(|| {
                    part.params
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("name"))
                })
                .map(|(_, v)| v.clone());
            let is_attachment = part
                .disposition
                .as_ref()
                .is_some_and(|(d, _)| d.eq_ignore_ascii_case("attachment"));
            if filename.is_some() || is_attachment {
                out.push(Attachment {
                    name: filename.unwrap_or_else(|| "(unnamed)".into()),
                    mime_type: format!("{}/{}", part.mime_type, part.mime_subtype),
                    size: u64::from(part.body_len()),
                    section: if section.is_empty() { "1".into() } else { section.to_string() },
                    removable: false,
                });
            }
        }
    }
}

/// Everything the usage page shows.
pub async fn usage(state: &AppState, s: &Session) -> Result<Usage, ApiError> {
    let id = s.account.id;
    let n = state.config().web.largest_messages;
    let since = day_of(letterbox_store::now()) - USAGE_HISTORY_DAYS;
    let (trash_default, junk_default) = (state.config().expire.trash.0, state.config().expire.junk.0);
    let (account, folders, largest, history, expire) = state
        .store()
        .run(move |st| {
            let account = st.account_by_id(id)?;
            let mut folders = Vec::new();
            for mb in st.list_mailboxes(id)? {
                let c = st.mailbox_counts(mb.id)?;
                let special = mb.special_use;
                folders.push(Folder {
                    can_empty: matches!(special, Some(SpecialUse::Trash | SpecialUse::Junk)),
                    can_delete: mb.name != "INBOX",
                    special_use: special.map(|u| u.as_str().to_string()),
                    name: mb.name,
                    messages: c.messages,
                    size: c.size,
                });
            }
            let mut largest = Vec::new();
            for m in st.web().largest_messages(id, n)? {
                let parsed = st.parsed_many(m.mailbox, &[m.uid], false)?;
                let mut att = Vec::new();
                let (mut subject, mut from) = (String::new(), String::new());
                if let Some((_, p)) = parsed.first() {
                    attachments(&p.root, "", &mut att);
                    if !letterbox_message::strip::is_signed(p) {
                        let ok: Vec<String> = letterbox_message::strip::removable_parts(p)
                            .into_iter()
                            .map(|(s, _)| s)
                            .collect();
                        for a in att.iter_mut() {
                            a.removable = ok.contains(&a.section);
                        }
                    }
                    subject = p.sort.subject.clone().unwrap_or_default();
                    from = match (&p.sort.from_display, p.envelope.from.first()) {
                        (Some(d), _) => d.clone(),
                        (None, Some(a)) => format!(
                            "{}@{}",
                            a.mailbox.as_deref().unwrap_or(""),
                            a.host.as_deref().unwrap_or("")
                        ),
                        (None, None) => String::new(),
                    };
                }
                largest.push(LargeMessage {
                    folder: m.mailbox_name,
                    uid: m.uid,
                    size: m.size,
                    date: m.internal_date,
                    subject,
                    from,
                    attachments: att,
                });
            }
            let history = st.web().usage_samples(id, since)?;
            let policies = st.expire_policies()?;
            let domain = account.address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            let pick = |trash: bool| {
                [account.address.as_str(), domain]
                    .iter()
                    .find_map(|scope| {
                        policies
                            .iter()
                            .find(|p| p.scope == *scope)
                            .and_then(|p| if trash { p.trash } else { p.junk })
                    })
            };
            let expire = (pick(true), pick(false));
            Ok((account, folders, largest, history, expire))
        })
        .await?;
    Ok(Usage {
        percent: account.percent_used(),
        address: account.address,
        used: account.quota_used,
        limit: account.effective_limit,
        folders,
        largest,
        history: history
            .into_iter()
            .map(|h| Sample {
                day: h.day,
                used: h.used,
                limit: h.limit,
            })
            .collect(),
        expire: Expiry {
            trash_days: expire.0.unwrap_or(trash_default),
            junk_days: expire.1.unwrap_or(junk_default),
        },
    })
}

#[derive(Deserialize)]
pub struct FolderRequest {
    pub folder: String,
}

#[derive(Serialize)]
pub struct Freed {
    pub folder: String,
    /// Messages removed.
    pub messages: u64,
    /// Octets freed.
    pub freed: u64,
}

/// Removes every message of a Trash or Junk folder.
pub async fn empty_folder(state: &AppState, s: &Session, folder: &str) -> Result<Freed, ApiError> {
    let (id, name) = (s.account.id, folder.to_string());
    let r = state
        .store()
        .run(move |st| {
            let mb = st.mailbox(id, &name)?;
            if !matches!(mb.special_use, Some(SpecialUse::Trash | SpecialUse::Junk)) {
                return Err(letterbox_store::Error::Refused(format!(
                    "only the Trash and Junk folders can be emptied here, not {name}"
                )));
            }
            let msgs = st.list_messages(mb.id, false)?;
            let freed: u64 = msgs.iter().map(|m| m.size).sum();
            let uids: Vec<u32> = msgs.iter().map(|m| m.uid).collect();
            let removed = st.expunge(mb.id, &uids)?;
            Ok(Freed {
                folder: mb.name,
                messages: removed.len() as u64,
                freed,
            })
        })
        .await?;
    tracing::info!(user = %s.account.address, "web: emptied {} ({} messages)", r.folder, r.messages);
    Ok(r)
}

/// Deletes a folder and its messages (never INBOX).
pub async fn delete_folder(state: &AppState, s: &Session, folder: &str) -> Result<Freed, ApiError> {
    let (id, name) = (s.account.id, folder.to_string());
    let r = state
        .store()
        .run(move |st| {
            let mb = st.mailbox(id, &name)?;
            if mb.name == "INBOX" {
                return Err(letterbox_store::Error::Refused(
                    "INBOX cannot be deleted".into(),
                ));
            }
            let c = st.mailbox_counts(mb.id)?;
            st.delete_mailbox(id, &mb.name)?;
            Ok(Freed {
                folder: mb.name,
                messages: u64::from(c.messages),
                freed: c.size,
            })
        })
        .await?;
    tracing::info!(user = %s.account.address, "web: deleted folder {}", r.folder);
    Ok(r)
}

async fn api_usage(State(state): State<AppState>, s: Session) -> ApiResult<Usage> {
    Ok(Json(usage(&state, &s).await?))
}

async fn api_empty(State(state): State<AppState>, w: ApiWrite<FolderRequest>) -> ApiResult<Freed> {
    Ok(Json(
        empty_folder(&state, &w.session, &w.body.folder).await?,
    ))
}

async fn api_delete(State(state): State<AppState>, w: ApiWrite<FolderRequest>) -> ApiResult<Freed> {
    Ok(Json(
        delete_folder(&state, &w.session, &w.body.folder).await?,
    ))
}

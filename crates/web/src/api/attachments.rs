//! Removing attachments to free space: `POST /api/attachments/remove`.
//!
//! The same server-side strip as `letterbox attachments strip` (issue 15): the message
//! is rewritten by `letterbox_message::strip`, which puts Thunderbird's
//! deleted-attachment placeholder (`text/x-moz-deleted`) where each removed part was, and
//! `Backend::replace_message_logged` (crates/store/src/replace.rs) swaps it in ONE transaction:
//! IMAP messages are immutable (RFC 9051 2.3.1.1), so the stripped copy gets a new UID
//! with the old flags and internal date, the old UID is expunged (QRESYNC sees it
//! VANISHED, RFC 7162) and the quota drops by the difference at once.
//!
//! One request removes either chosen parts of one message (`folder`, `uid`, `sections`:
//! the per-attachment buttons of the usage page) or every attachment matching an age and
//! a size, in one folder or all ("remove old attachments"). `dry_run` says what would be
//! removed and freed, exactly (the rewrite is computed, not stored): the pages show it as
//! the preview before the user confirms.
//!
//! The loop is the store's, written once for the CLI, `serve`'s automatic policies and
//! this page (`letterbox_store::strip::run`). As everywhere: signed or encrypted
//! messages are refused (a change breaks the signature, RFC 1847/8551); the message body (text/plain, text/html not marked as
//! attachments), message/* parts and placeholders are never removed; and the INBOX of an
//! account whose POP3 retention deletes mail is skipped, since a rewritten message has a
//! new UIDL (RFC 1939 7) that such a client would download again as new mail.

use super::{ApiError, ApiResult};
use crate::session::ApiWrite;
use crate::session::Session;
use crate::AppState;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use letterbox_store::strip::{self, Selection, Step};
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/attachments/remove", post(api_remove))
}

/// What to remove.
#[derive(Deserialize, Default, Clone)]
pub struct RemoveAttachments {
    /// Only this folder (default: every folder).
    #[serde(default)]
    pub folder: Option<String>,
    /// Only this message of `folder`.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Only these parts of that message (IMAP section numbers, `2`, `1.3`); empty: every
    /// removable part.
    #[serde(default)]
    pub sections: Vec<String>,
    /// Only messages whose internal date is at least this many days old.
    #[serde(default)]
    pub older_than_days: Option<u32>,
    /// Only attachments whose (encoded) body is at least this many octets.
    #[serde(default)]
    pub larger_than: Option<u64>,
    /// Only say what would be removed and freed.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Serialize, Clone)]
pub struct RemovedAttachment {
    pub folder: String,
    pub uid: u32,
    /// The stripped copy's UID (absent in a dry run).
    pub new_uid: Option<u32>,
    pub section: String,
    pub filename: String,
    pub mime_type: String,
    /// Octets of the original part (header and body).
    pub size: u64,
}

#[derive(Serialize, Clone)]
pub struct AttachmentsRemoved {
    pub dry_run: bool,
    /// Messages rewritten (or that would be).
    pub messages: u64,
    pub attachments: u64,
    /// Octets freed (or that would be): old size minus new size, placeholders counted.
    pub freed: u64,
    /// Quota usage before, and after (what it would be after, in a dry run).
    pub used_before: u64,
    pub used_after: u64,
    pub removed: Vec<RemovedAttachment>,
    /// Messages or folders left alone, with why.
    pub skipped: Vec<String>,
}

/// Removes (or, `dry_run`, previews removing) attachments of the session's account,
/// through the store's one strip loop (`letterbox_store::strip::run`).
pub async fn remove_attachments(
    state: &AppState,
    s: &Session,
    req: RemoveAttachments,
) -> Result<AttachmentsRemoved, ApiError> {
    if req.uid.is_some() && req.folder.is_none() {
        return Err(ApiError::bad("a message (uid) needs its folder"));
    }
    if !req.sections.is_empty() && req.uid.is_none() {
        return Err(ApiError::bad("parts (sections) need a message (folder and uid)"));
    }
    let id = s.account.id;
    let r = state
        .store()
        .run(move |st| {
            let acct = st.account_by_id(id)?;
            let now = letterbox_store::now();
            let mut rule = String::from("portal");
            if let (Some(f), Some(u)) = (&req.folder, req.uid) {
                // A message that does not exist is 404, not "nothing to remove".
                let mb = st.mailbox(id, f)?;
                st.message(mb.id, u)?;
                rule.push_str(&format!(" message {u}"));
            }
            if let Some(d) = req.older_than_days {
                rule.push_str(&format!(" older than {d} days"));
            }
            if let Some(l) = req.larger_than {
                rule.push_str(&format!(" larger than {l} octets"));
            }
            let sel = Selection {
                folders: req.folder.iter().cloned().collect(),
                before: req.older_than_days.map(|d| now - i64::from(d) * 86_400),
                larger_than: req.larger_than.unwrap_or(0),
                only: match (&req.folder, req.uid) {
                    (Some(f), Some(u)) => Some(vec![(st.mailbox(id, f)?.name, u)]),
                    _ => None,
                },
                sections: (!req.sections.is_empty()).then(|| req.sections.clone()),
                dry_run: req.dry_run,
                rule,
                ..Selection::default()
            };
            let steps = strip::run(st, &acct, &sel, true, now, &mut |_| {})?;
            let mut out = AttachmentsRemoved {
                dry_run: req.dry_run,
                messages: 0,
                attachments: 0,
                freed: 0,
                used_before: acct.quota_used,
                used_after: acct.quota_used,
                removed: Vec::new(),
                skipped: Vec::new(),
            };
            for step in steps {
                match step {
                    Step::Stripped { mailbox, uid, new_uid, removed, freed } => {
                        if let Some(n) = new_uid {
                            tracing::info!(
                                "web: {} {} uid {} -> {}: removed {} attachment(s), freed {freed} octets",
                                acct.address,
                                mailbox,
                                uid,
                                n,
                                removed.len()
                            );
                        }
                        out.messages += 1;
                        out.attachments += removed.len() as u64;
                        out.freed += freed;
                        out.removed.extend(removed.into_iter().map(|r| RemovedAttachment {
                            folder: mailbox.clone(),
                            uid,
                            new_uid,
                            section: r.section,
                            filename: r.filename,
                            mime_type: r.mime_type,
                            size: r.size,
                        }));
                    }
                    Step::Refused { mailbox, uid } => out.skipped.push(format!(
                        "{mailbox} {uid}: signed or encrypted, removing a part would break it"
                    )),
                    Step::Changed { mailbox, uid } => out.skipped.push(format!(
                        "{mailbox} {uid}: changed meanwhile, left as it is"
                    )),
                    Step::SkippedFolder { mailbox, .. } => out.skipped.push(format!(
                        "{mailbox}: your POP3 setting ({}) would download the changed messages again",
                        acct.effective_retention
                    )),
                }
            }
            if req.uid.is_some() && out.attachments == 0 && out.skipped.is_empty() {
                out.skipped.push("no attachment in this message can be removed".into());
            }
            out.used_after = if req.dry_run {
                acct.quota_used.saturating_sub(out.freed)
            } else {
                st.account_by_id(id)?.quota_used
            };
            Ok(out)
        })
        .await?;
    Ok(r)
}

async fn api_remove(
    State(state): State<AppState>,
    w: ApiWrite<RemoveAttachments>,
) -> ApiResult<AttachmentsRemoved> {
    Ok(Json(remove_attachments(&state, &w.session, w.body).await?))
}

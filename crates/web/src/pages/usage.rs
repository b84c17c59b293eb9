//! `/usage`: the quota bar, size and messages per folder, the largest messages with their
//! attachments, usage over the last year (SVG), and what frees space: empty Trash/Junk,
//! remove attachments (`/usage/attachments`, with a preview) and delete a folder, each
//! behind a confirmation form; and the Trash/Junk autoexpunge in force (`[expire]`).

use super::{done, Notice, PageResult};
use crate::api::usage::{delete_folder, empty_folder, usage};
use crate::layout::{self, chart, csrf, date, datetime, human, notice, page, quota_bar, Point};
use crate::session::{CsrfForm, PageSession};
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use maud::html;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/usage", get(usage_page))
        .route("/usage/empty", get(confirm_empty).post(post_empty))
        .route("/usage/delete", get(confirm_delete).post(post_delete))
}

async fn usage_page(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    n: Notice,
) -> PageResult {
    let u = usage(&state, &s).await?;
    let points: Vec<Point> = u
        .history
        .iter()
        .map(|h| Point {
            day: h.day,
            value: h.used,
            limit: h.limit,
        })
        .collect();
    let body = html! {
        (notice(n.done.as_deref()))
        section class="big" {
            p {
                strong { (human(u.used)) }
                @match u.limit {
                    Some(l) => { " of " (human(l)) " used (" (u.percent) "%)" }
                    None => { " used (no limit)" }
                }
            }
            (quota_bar(u.used, u.limit))
            @if u.percent >= 80 {
                p { "Your mailbox is nearly full. Free space below, or " a href="/request" { "ask for more room" } "." }
            } @else {
                p class="muted" { "Need more? " a href="/request" { "Ask for more room" } "." }
            }
        }
        h2 { "Folders" }
        section class="scroll" {
            table {
                thead { tr { th { "Folder" } th class="num" { "Messages" } th class="num" { "Size" } th { "Free space" } } }
                tbody {
                    @for f in &u.folders {
                        tr {
                            td { (f.name) }
                            td class="num" { (f.messages) }
                            td class="num" { (human(f.size)) }
                            td {
                                @if f.can_empty && f.messages > 0 {
                                    a href=(format!("/usage/empty?folder={}", super::urlencode(&f.name))) { "Empty" }
                                    " "
                                }
                                @if f.messages > 0 {
                                    a href=(format!("/usage/attachments?folder={}&older_than_days=180&larger_than=1048576", super::urlencode(&f.name))) { "Remove old attachments" }
                                    " "
                                }
                                @if f.can_delete {
                                    a href=(format!("/usage/delete?folder={}", super::urlencode(&f.name))) { "Delete folder" }
                                }
                                @if let Some(days) = expiry(&u, f) {
                                    br;
                                    span class="muted" { (days) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section {
            p { "Free space: "
                a href="/usage/attachments" { "remove old attachments" } " (the messages stay), empty Trash or Junk, or delete a folder you no longer need."
            }
            p class="muted" {
                "The server empties Trash and Junk by itself. "
                (expire_text("Trash", u.expire.trash_days)) " "
                (expire_text("Junk", u.expire.junk_days))
            }
        }
        h2 { "Largest messages" }
        section class="scroll" {
            @if u.largest.is_empty() {
                p class="muted" { "Your mailbox is empty." }
            } @else {
                table {
                    thead { tr { th { "Message" } th class="hide-narrow" { "Folder" } th class="num" { "Size" } } }
                    tbody {
                        @for m in &u.largest {
                            tr {
                                td {
                                    strong { @if m.subject.is_empty() { "(no subject)" } @else { (m.subject) } }
                                    br;
                                    span class="muted" { (m.from) " · " (datetime(m.date)) }
                                    @if !m.attachments.is_empty() {
                                        ul {
                                            @for a in &m.attachments {
                                                li {
                                                    (a.name) " " span class="muted" { "(" (a.mime_type) ", " (human(a.size)) ")" }
                                                    @if a.removable {
                                                        " "
                                                        a class="button small" href=(format!("/usage/attachments?folder={}&uid={}&section={}", super::urlencode(&m.folder), m.uid, super::urlencode(&a.section)))
                                                            title=(format!("Remove {} from this message", a.name)) { "Remove" }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                    @if m.attachments.iter().filter(|a| a.removable).count() > 1 {
                                        a class="button small" href=(format!("/usage/attachments?folder={}&uid={}", super::urlencode(&m.folder), m.uid)) { "Remove all its attachments" }
                                    }
                                    br;
                                    span class="muted" {
                                        "In " (m.folder) ". Delete it in your mail program"
                                        @if let Some(t) = u.folders.iter().find(|f| f.special_use.as_deref() == Some("\\Trash")) { ", then empty " (t.name) }
                                        "."
                                    }
                                }
                                td class="hide-narrow" { (m.folder) }
                                td class="num" { (human(m.size)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Usage over time" }
        section {
            (chart("Mailbox usage per day", &points))
            @if let (Some(f), Some(l)) = (u.history.first(), u.history.last()) {
                p class="muted" { (u.history.len()) " daily samples, " (date(f.day)) " to " (date(l.day)) ". The dashed line is your limit." }
            }
        }
    };
    Ok(page("Usage", Some(&s), body).into_response())
}

/// "Messages in Trash are deleted 30 days after they were put there."
fn expire_text(folder: &str, days: u32) -> String {
    match days {
        0 => format!("Messages in {folder} are kept until you delete them."),
        1 => format!("Messages in {folder} are deleted 1 day after they were put there."),
        n => format!("Messages in {folder} are deleted {n} days after they were put there."),
    }
}

/// The autoexpunge note of a Trash or Junk folder's row.
fn expiry(u: &crate::api::usage::Usage, f: &crate::api::usage::Folder) -> Option<String> {
    let days = match f.special_use.as_deref() {
        Some("\\Trash") => u.expire.trash_days,
        Some("\\Junk") => u.expire.junk_days,
        _ => return None,
    };
    Some(match days {
        0 => "Never emptied automatically.".to_string(),
        n => format!("Auto-emptied after {n} day(s)."),
    })
}

#[derive(Deserialize)]
struct FolderQuery {
    #[serde(default)]
    folder: String,
}

fn confirm(
    s: &crate::session::Session,
    title: &str,
    action: &str,
    folder: &str,
    text: &str,
    button: &str,
) -> axum::response::Response {
    let body = html! {
        section {
            p { (text) }
            form method="post" action=(action) {
                (csrf(s))
                input type="hidden" name="folder" value=(folder);
                button class="danger" type="submit" { (button) }
                a class="button" href="/usage" { "Cancel" }
            }
        }
    };
    page(title, Some(s), body).into_response()
}

async fn confirm_empty(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<FolderQuery>,
) -> PageResult {
    let u = usage(&state, &s).await?;
    let Some(f) = u.folders.iter().find(|f| f.name == q.folder && f.can_empty) else {
        return Err(crate::api::ApiError::bad(
            "only the Trash and Junk folders can be emptied here",
        )
        .into());
    };
    let text = format!(
        "Remove all {} messages ({}) from {} for good?",
        f.messages,
        human(f.size),
        f.name
    );
    Ok(confirm(
        &s,
        &format!("Empty {}", f.name),
        "/usage/empty",
        &f.name,
        &text,
        "Empty it",
    ))
}

async fn confirm_delete(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<FolderQuery>,
) -> PageResult {
    let u = usage(&state, &s).await?;
    let Some(f) = u
        .folders
        .iter()
        .find(|f| f.name == q.folder && f.can_delete)
    else {
        return Err(crate::api::ApiError::bad("that folder cannot be deleted").into());
    };
    let text = format!(
        "Delete the folder {} and its {} messages ({}) for good?",
        f.name,
        f.messages,
        human(f.size)
    );
    Ok(confirm(
        &s,
        &format!("Delete {}", f.name),
        "/usage/delete",
        &f.name,
        &text,
        "Delete it",
    ))
}

#[derive(Deserialize)]
struct FolderForm {
    folder: String,
}

async fn post_empty(State(state): State<AppState>, f: CsrfForm<FolderForm>) -> PageResult {
    let r = empty_folder(&state, &f.session, &f.form.folder).await?;
    Ok(done(
        "/usage",
        &format!("Emptied {}: {} freed.", r.folder, layout::human(r.freed)),
    ))
}

async fn post_delete(State(state): State<AppState>, f: CsrfForm<FolderForm>) -> PageResult {
    let r = delete_folder(&state, &f.session, &f.form.folder).await?;
    Ok(done(
        "/usage",
        &format!("Deleted {}: {} freed.", r.folder, layout::human(r.freed)),
    ))
}

//! `/usage/attachments`: removing attachments to free space, with a preview first.
//!
//! `GET` with a message (`folder`, `uid`, optionally `section`: the "Remove" buttons of
//! the usage page's largest messages) or with an age and a size ("remove old
//! attachments") computes the removal without storing it (`dry_run`) and shows exactly
//! what goes and what it frees; the confirmation form posts the same fields with the
//! CSRF token, and `POST` calls the same API function (`crate::api::attachments`)
//! for real. No JavaScript anywhere.

use super::{done, PageResult};
use crate::api::attachments::{remove_attachments, AttachmentsRemoved, RemoveAttachments};
use crate::api::usage::usage;
use crate::layout::{csrf, human, page};
use crate::session::{CsrfForm, PageSession, Session};
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/usage/attachments", get(preview).post(post_remove))
}

/// The form's fields, all text (an empty field is "not given").
#[derive(Deserialize, Default)]
struct Fields {
    #[serde(default)]
    folder: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    section: String,
    #[serde(default)]
    older_than_days: String,
    #[serde(default)]
    larger_than: String,
}

impl Fields {
    fn request(&self, dry_run: bool) -> Result<RemoveAttachments, crate::api::ApiError> {
        let num = |v: &str, what: &str| -> Result<Option<u64>, crate::api::ApiError> {
            match v.trim() {
                "" => Ok(None),
                t => t
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| crate::api::ApiError::bad(format!("{what} must be a number"))),
            }
        };
        let uid = num(&self.uid, "the message")?
            .map(|u| u32::try_from(u).map_err(|_| crate::api::ApiError::bad("no such message")))
            .transpose()?;
        let days = num(&self.older_than_days, "the age in days")?
            .map(|d| u32::try_from(d).unwrap_or(u32::MAX));
        Ok(RemoveAttachments {
            folder: (!self.folder.is_empty()).then(|| self.folder.clone()),
            uid,
            sections: if self.section.is_empty() {
                Vec::new()
            } else {
                vec![self.section.clone()]
            },
            older_than_days: days,
            larger_than: num(&self.larger_than, "the size")?,
            dry_run,
        })
    }

    fn hidden(&self) -> Markup {
        html! {
            @for (k, v) in [("folder", &self.folder), ("uid", &self.uid), ("section", &self.section),
                            ("older_than_days", &self.older_than_days), ("larger_than", &self.larger_than)] {
                @if !v.is_empty() { input type="hidden" name=(k) value=(v); }
            }
        }
    }
}

const SIZES: [(u64, &str); 4] = [
    (100 << 10, "100 KB"),
    (1 << 20, "1 MB"),
    (5 << 20, "5 MB"),
    (20 << 20, "20 MB"),
];

/// The "remove old attachments" form (GET: it only previews).
fn criteria_form(f: &Fields, folders: &[String]) -> Markup {
    let days = if f.older_than_days.is_empty() { "180" } else { &f.older_than_days };
    let size: u64 = f.larger_than.parse().unwrap_or(1 << 20);
    html! {
        form method="get" action="/usage/attachments" class="stack" {
            label { "Attachments of messages older than (days) "
                input type="number" name="older_than_days" min="0" max="36500" value=(days); }
            label { "and at least "
                select name="larger_than" {
                    @for (v, t) in SIZES {
                        @if v == size { option value=(v) selected { (t) } } @else { option value=(v) { (t) } }
                    }
                }
            }
            label { "in "
                select name="folder" {
                    option value="" { "every folder" }
                    @for name in folders {
                        @if *name == f.folder { option value=(name) selected { (name) } } @else { option value=(name) { (name) } }
                    }
                }
            }
            button type="submit" { "Show what this frees" }
        }
    }
}

fn outcome(r: &AttachmentsRemoved) -> Markup {
    html! {
        @if !r.removed.is_empty() {
            section class="scroll" {
                table {
                    thead { tr { th { "Attachment" } th class="hide-narrow" { "Folder" } th class="num" { "Size" } } }
                    tbody {
                        @for a in &r.removed {
                            tr {
                                td { (a.filename) " " span class="muted" { "(" (a.mime_type) ")" } }
                                td class="hide-narrow" { (a.folder) }
                                td class="num" { (human(a.size)) }
                            }
                        }
                    }
                }
            }
        }
        @if !r.skipped.is_empty() {
            ul class="muted" { @for s in &r.skipped { li { (s) } } }
        }
    }
}

async fn preview(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Query(f): Query<Fields>,
) -> PageResult {
    let single = !f.uid.is_empty();
    let criteria = !f.older_than_days.is_empty() || !f.larger_than.is_empty();
    let folders: Vec<String> = usage(&state, &s)
        .await?
        .folders
        .into_iter()
        .map(|f| f.name)
        .collect();
    let body = if !single && !criteria {
        html! {
            p { "Attachments often take most of a mailbox. The server can remove them from "
                "your messages and keep everything else: each removed attachment leaves a note "
                "with its name in the message, as Thunderbird does when you delete an attachment. "
                "The attachments are gone for good, so save the ones you need first." }
            (criteria_form(&f, &folders))
            p { a href="/usage" { "Back to usage" } }
        }
    } else {
        let r = remove_attachments(&state, &s, f.request(true)?).await?;
        confirm_body(&s, &f, &r, single, &folders)
    };
    Ok(page("Remove attachments", Some(&s), body).into_response())
}

fn confirm_body(
    s: &Session,
    f: &Fields,
    r: &AttachmentsRemoved,
    single: bool,
    folders: &[String],
) -> Markup {
    html! {
        @if r.attachments == 0 {
            p { "Nothing to remove." }
        } @else {
            p class="big" {
                "Removing " (r.attachments) " attachment(s) from " (r.messages) " message(s) frees "
                strong { (human(r.freed)) } ": your mailbox goes from "
                (human(r.used_before)) " to " (human(r.used_after)) "."
            }
        }
        (outcome(r))
        @if r.attachments > 0 {
            form method="post" action="/usage/attachments" {
                (csrf(s))
                (f.hidden())
                p { "The attachments are removed for good; your mail programs show the changed "
                    "messages again with a note in their place." }
                button class="danger" type="submit" { "Remove " (r.attachments) " attachment(s)" }
                " "
                a class="button" href="/usage" { "Cancel" }
            }
        } @else {
            p { a href="/usage" { "Back to usage" } }
        }
        @if !single {
            h2 { "Other attachments" }
            (criteria_form(f, folders))
        }
    }
}

async fn post_remove(State(state): State<AppState>, f: CsrfForm<Fields>) -> PageResult {
    let r = remove_attachments(&state, &f.session, f.form.request(false)?).await?;
    let mut text = format!(
        "Removed {} attachment(s) from {} message(s): {} freed.",
        r.attachments,
        r.messages,
        human(r.freed)
    );
    if r.attachments == 0 {
        if let Some(why) = r.skipped.first() {
            text = format!("Nothing removed: {why}");
        }
    }
    Ok(done("/usage", &text))
}

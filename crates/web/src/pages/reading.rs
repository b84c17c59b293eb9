//! `/reading`: POP3 and IMAP explained, the settings to type into a mail program (from
//! the live listener configuration), and the POP3 retention setting.

use super::{done, Notice, PageResult};
use crate::api::reading::{reading, set_retention, Endpoint};
use crate::layout::{csrf, notice, page};
use crate::session::{CsrfForm, PageSession};
use crate::AppState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/reading", get(reading_page).post(post_retention))
}

fn settings(title: &str, host: &str, user: &str, eps: &[Endpoint]) -> Markup {
    html! {
        h3 { (title) }
        @if eps.is_empty() {
            p class="muted" { "Not offered by this server." }
        } @else {
            dl class="settings" {
                dt { "Server" } dd { (host) }
                dt { "Port" } dd {
                    @for (i, e) in eps.iter().enumerate() {
                        @if i > 0 { ", or " }
                        (e.port) " (" (e.security) ")"
                    }
                }
                dt { "User name" } dd { (user) }
                dt { "Password" } dd { "your mailbox password" }
            }
        }
    }
}

async fn reading_page(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    n: Notice,
) -> PageResult {
    let r = reading(&state, &s).await?;
    let current = r.retention.clone().unwrap_or_else(|| "default".into());
    let days = current
        .strip_suffix('d')
        .and_then(|d| d.parse::<u32>().ok());
    let body = html! {
        (notice(n.done.as_deref()))
        section {
            h2 { "IMAP: your mail stays on the server" }
            p { "With IMAP your mail program shows the folders kept here. Every computer and phone sees the same mail, read marks and folders, and nothing is lost when a device is. Everything you keep counts towards your mailbox size, so delete what you no longer need and empty the Trash now and then." }
            (settings("IMAP settings", &r.host, &r.username, &r.imap))
        }
        section {
            h2 { "POP3: your mail is downloaded to one device" }
            p { "With POP3 your mail program downloads the new mail of your inbox to that one computer. Many programs leave a copy here, and then your mailbox fills up although the mail is already on your computer. Below you can let the server remove mail a POP3 program has downloaded." }
            (settings("POP3 settings", &r.host, &r.username, &r.pop3))
            form method="post" action="/reading" {
                (csrf(&s))
                label for="retention" { "Mail downloaded with POP3" }
                select id="retention" name="retention" {
                    option value="default" selected[current == "default"] { "Server default (" (r.default_retention) ")" }
                    option value="keep" selected[current == "keep"] { "Keep it on the server" }
                    option value="delete" selected[current == "delete"] { "Delete it from the server once downloaded" }
                    option value="days" selected[days.is_some()] { "Delete it after the number of days below" }
                }
                label for="days" { "Days" }
                input type="number" id="days" name="days" min="1" max="3650" value=(days.unwrap_or(30));
                button type="submit" { "Save" }
            }
            p class="muted" { "In force now: " (r.effective_retention) "." }
        }
        section {
            h2 { "Sending mail" }
            (settings("Outgoing (SMTP) settings", &r.host, &r.username, &r.smtp))
        }
    };
    Ok(page("Reading your mail", Some(&s), body).into_response())
}

#[derive(Deserialize)]
struct RetentionForm {
    #[serde(default)]
    retention: String,
    #[serde(default)]
    days: String,
}

async fn post_retention(State(state): State<AppState>, f: CsrfForm<RetentionForm>) -> PageResult {
    let value = if f.form.retention == "days" {
        format!("{}d", f.form.days.trim())
    } else {
        f.form.retention.clone()
    };
    set_retention(&state, &f.session.account.address, &value).await?;
    Ok(done("/reading", "POP3 retention saved."))
}

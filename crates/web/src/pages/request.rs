//! `/request`: ask for more room (size and reason), shown as pending until decided; past
//! requests with their decisions.

use super::{done, Notice, PageResult};
use crate::api::requests::{mine, open};
use crate::layout::{csrf, datetime, human, notice, page};
use crate::session::{CsrfForm, PageSession};
use crate::AppState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use maud::html;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/request", get(request_page).post(post_request))
}

async fn request_page(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    n: Notice,
) -> PageResult {
    let m = mine(&state, &s).await?;
    let body = html! {
        (notice(n.done.as_deref()))
        section {
            p {
                "Your mailbox holds " (human(s.account.quota_used))
                @if let Some(l) = s.account.effective_limit { " of " (human(l)) }
                "."
            }
            @if let Some(p) = &m.pending {
                p class="notice" { "Pending: you asked for " strong { (human(p.size)) } " on " (datetime(p.created)) ". An operator will decide; you will get a mail with the decision." }
                p { "Your reason: " (p.reason) }
            } @else {
                form method="post" action="/request" {
                    (csrf(&s))
                    label for="size" { "Size you need" }
                    select id="size" name="size" {
                        @for (v, l) in [("500M", "500 MiB"), ("1G", "1 GiB"), ("2G", "2 GiB"), ("5G", "5 GiB"), ("10G", "10 GiB")] {
                            option value=(v) { (l) }
                        }
                    }
                    label for="reason" { "Why" }
                    textarea id="reason" name="reason" required maxlength="1000" placeholder="I use IMAP on three computers" {}
                    button type="submit" { "Ask for more room" }
                }
            }
        }
        @if m.history.iter().any(|r| r.status != "pending") {
            h2 { "Earlier requests" }
            section class="scroll" {
                table {
                    thead { tr { th { "Asked" } th class="num" { "Size" } th { "Decision" } } }
                    tbody {
                        @for r in m.history.iter().filter(|r| r.status != "pending") {
                            tr {
                                td { (datetime(r.created)) }
                                td class="num" { (human(r.size)) }
                                td {
                                    (r.status)
                                    @if let Some(g) = r.granted_size { ": " (human(g)) }
                                    @if let Some(note) = &r.note { ": " (note) }
                                    @if let Some(at) = r.decided_at { br; span class="muted" { (datetime(at)) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("More room", Some(&s), body).into_response())
}

#[derive(Deserialize)]
struct RequestForm {
    #[serde(default)]
    size: String,
    #[serde(default)]
    reason: String,
}

async fn post_request(State(state): State<AppState>, f: CsrfForm<RequestForm>) -> PageResult {
    let r = open(&state, &f.session, &f.form.size, &f.form.reason).await?;
    Ok(done(
        "/request",
        &format!("Request for {} sent.", human(r.size)),
    ))
}

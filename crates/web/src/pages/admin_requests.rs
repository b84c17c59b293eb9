//! `/admin/requests`: the pending quota requests, each with approve (size, default the
//! one asked) and deny (reason), and the audit trail of decisions (`?all=true`).

use super::{done, Notice, PageResult};
use crate::api::requests::{approval, decide_as, list, ListQuery};
use crate::layout::{csrf, datetime, human, notice, page};
use crate::session::{CsrfForm, PageSession};
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use letterbox_store::web::Decision;
use maud::html;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/requests", get(requests_page))
        .route("/admin/requests/decide", post(post_decide))
}

async fn requests_page(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<ListQuery>,
    n: Notice,
) -> PageResult {
    let role = s.require_admin()?.clone();
    let all = list(state.store(), &role, true).await?;
    let pending: Vec<_> = all.iter().filter(|r| r.status == "pending").collect();
    let decided: Vec<_> = all.iter().filter(|r| r.status != "pending").collect();
    let body = html! {
        (notice(n.done.as_deref()))
        @if pending.is_empty() {
            section { p { "No request is waiting." } }
        }
        @for r in &pending {
            section {
                p { strong { (r.address) } " asks for " strong { (human(r.size)) } span class="muted" { " · #" (r.id) " · " (datetime(r.created)) } }
                p { "Reason: " (r.reason) }
                form method="post" action="/admin/requests/decide" {
                    (csrf(&s))
                    input type="hidden" name="id" value=(r.id);
                    label for=(format!("size-{}", r.id)) { "Size to grant" }
                    input type="text" id=(format!("size-{}", r.id)) name="size" value=(letterbox_config::ByteSize(r.size).to_string());
                    button type="submit" name="action" value="approve" { "Approve" }
                    label for=(format!("reason-{}", r.id)) { "Reason for a denial" }
                    input type="text" id=(format!("reason-{}", r.id)) name="reason";
                    button class="danger" type="submit" name="action" value="deny" { "Deny" }
                }
            }
        }
        h2 { "Decisions" }
        section class="scroll" {
            @if decided.is_empty() {
                p class="muted" { "None yet." }
            } @else {
                table {
                    thead { tr { th { "#" } th { "Account" } th class="num" { "Asked" } th { "Decision" } th { "By, when" } } }
                    tbody {
                        @for r in decided.iter().take(if q.all { usize::MAX } else { 50 }) {
                            tr {
                                td { (r.id) }
                                td { (r.address) }
                                td class="num" { (human(r.size)) }
                                td { (r.status) @if let Some(g) = r.granted_size { ": " (human(g)) } @if let Some(nt) = &r.note { ": " (nt) } }
                                td { (r.decided_by.as_deref().unwrap_or("")) br; span class="muted" { (r.decided_at.map(datetime).unwrap_or_default()) } }
                            }
                        }
                    }
                }
                @if !q.all && decided.len() > 50 { p { a href="/admin/requests?all=true" { "All decisions" } } }
            }
        }
    };
    Ok(page("Quota requests", Some(&s), body).into_response())
}

#[derive(Deserialize)]
struct DecideForm {
    id: i64,
    action: String,
    #[serde(default)]
    size: String,
    #[serde(default)]
    reason: String,
}

async fn post_decide(State(state): State<AppState>, f: CsrfForm<DecideForm>) -> PageResult {
    let d = match f.form.action.as_str() {
        "approve" => approval(&state, f.form.id, Some(&f.form.size)).await?,
        _ => Decision::Deny(f.form.reason.trim().to_string()),
    };
    let r = decide_as(&state, &f.session, f.form.id, d).await?;
    Ok(done(
        "/admin/requests",
        &format!("Request #{} of {} {}.", r.id, r.address, r.status),
    ))
}

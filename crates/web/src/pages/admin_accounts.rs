//! `/admin/accounts`: every account the operator manages, sortable (fullest first by
//! default), each with its quota bar; create, disable/enable, delete, set quota and
//! retention. Mailbox users get 403; a domain admin sees only their domains.

use super::{done, Notice, PageResult};
use crate::api::admin::{
    accounts, create, delete, set_disabled, set_quota, set_retention, AccountsQuery, CreateAccount,
};
use crate::layout::{csrf, human, notice, page, quota_bar};
use crate::session::{CsrfForm, PageSession};
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/accounts", get(accounts_page).post(post_create))
        .route("/admin/accounts/action", post(post_action))
}

async fn accounts_page(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<AccountsQuery>,
    n: Notice,
) -> PageResult {
    let rows = accounts(&state, &s, q.sort.as_deref()).await?;
    let body = html! {
        (notice(n.done.as_deref()))
        p class="muted" { "Sort by: " a href="/admin/accounts?sort=percent" { "usage %" } " · " a href="/admin/accounts?sort=used" { "size" } " · " a href="/admin/accounts?sort=address" { "address" } }
        section class="scroll" {
            table {
                thead { tr { th { "Account" } th { "Usage" } th class="num hide-narrow" { "%" } th { "Manage" } } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { (r.address) @if r.disabled { " " strong { "(disabled)" } } br; span class="muted" { "quota " (r.quota.parse::<u64>().map(human).unwrap_or_else(|_| r.quota.clone())) @if let Some(ret) = &r.retention { ", POP3 " (ret) } } }
                            td { (quota_bar(r.used, r.limit)) span class="muted" { (human(r.used)) @if let Some(l) = r.limit { " / " (human(l)) } } }
                            td class="num hide-narrow" { (r.percent) "%" }
                            td {
                                form method="post" action="/admin/accounts/action" {
                                    (csrf(&s))
                                    input type="hidden" name="address" value=(r.address);
                                    label class="muted" for=(format!("q-{}", r.address)) { "Quota (2G, default, unlimited) or POP3 retention (keep, delete, 30d, default)" }
                                    input type="text" id=(format!("q-{}", r.address)) name="value" placeholder="2G";
                                    button type="submit" name="action" value="quota" { "Set quota" }
                                    button type="submit" name="action" value="retention" { "Set POP3 retention" }
                                    @if r.disabled {
                                        button type="submit" name="action" value="enable" { "Enable" }
                                    } @else {
                                        button type="submit" name="action" value="disable" { "Disable" }
                                    }
                                    button class="danger" type="submit" name="action" value="delete" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New account" }
        section {
            form method="post" action="/admin/accounts" {
                (csrf(&s))
                label for="address" { "Address" }
                input type="email" id="address" name="address" required;
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="new-password" required;
                label for="quota" { "Quota" }
                input type="text" id="quota" name="quota" placeholder="default";
                button type="submit" { "Create account" }
            }
        }
    };
    Ok(page("Accounts", Some(&s), body).into_response())
}

async fn post_create(State(state): State<AppState>, f: CsrfForm<CreateAccount>) -> PageResult {
    let r = create(&state, &f.session, &f.form).await?;
    Ok(done(
        "/admin/accounts",
        &format!("Account {} created.", r.address),
    ))
}

#[derive(Deserialize)]
struct ActionForm {
    address: String,
    action: String,
    #[serde(default)]
    value: String,
    /// The delete confirmation.
    #[serde(default)]
    confirm: String,
}

async fn post_action(State(state): State<AppState>, f: CsrfForm<ActionForm>) -> PageResult {
    let (s, a) = (&f.session, &f.form);
    let msg = match a.action.as_str() {
        "quota" => {
            let r = set_quota(&state, s, &a.address, &a.value).await?;
            format!(
                "Quota of {} set to {}.",
                r.address,
                r.limit.map_or("unlimited".into(), human)
            )
        }
        "retention" => {
            let r = set_retention(&state, s, &a.address, &a.value).await?;
            format!(
                "POP3 retention of {} set to {}.",
                r.address,
                r.retention.unwrap_or_else(|| "default".into())
            )
        }
        "disable" => format!(
            "{} disabled.",
            set_disabled(&state, s, &a.address, true).await?.address
        ),
        "enable" => format!(
            "{} enabled.",
            set_disabled(&state, s, &a.address, false).await?.address
        ),
        "delete" if a.confirm == "yes" => {
            format!("{} deleted.", delete(&state, s, &a.address).await?.address)
        }
        "delete" => {
            s.require_manage(&a.address)?;
            let body = html! {
                section {
                    p { "Delete " strong { (a.address) } " and all its mail for good?" }
                    form method="post" action="/admin/accounts/action" {
                        (csrf(s))
                        input type="hidden" name="address" value=(a.address);
                        input type="hidden" name="confirm" value="yes";
                        button class="danger" type="submit" name="action" value="delete" { "Delete it" }
                        a class="button" href="/admin/accounts" { "Cancel" }
                    }
                }
            };
            return Ok(page("Delete account", Some(s), body).into_response());
        }
        _ => return Err(crate::api::ApiError::bad("unknown action").into()),
    };
    Ok(done("/admin/accounts", &msg))
}

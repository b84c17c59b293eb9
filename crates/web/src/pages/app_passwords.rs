//! `/account/app-passwords`: the user's application passwords: create one (name and
//! protocols; the password is shown on the answer page, once), list them, revoke one.
//! Through the same functions as `/api/app-passwords`.

use super::{done, Notice, PageResult};
use crate::api::app_passwords::{create, list, revoke};
use crate::layout::{csrf, datetime, notice, page};
use crate::session::{CsrfForm, PageSession, Session};
use crate::AppState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/account/app-passwords",
            get(app_passwords_page).post(post_create),
        )
        .route("/account/app-passwords/revoke", post(post_revoke))
}

async fn body(state: &AppState, s: &Session, created: Option<Markup>) -> PageResult {
    let items = list(state, s).await?;
    let body = html! {
        @if let Some(c) = created { (c) }
        section {
            p { "An application password lets one mail program (a phone, an old laptop) log in without your own password, for the protocols you choose only. Revoke it when the device is gone: the rest keep working." }
            @if items.is_empty() {
                p class="muted" { "You have no application passwords." }
            } @else {
                div class="scroll" {
                    table {
                        thead { tr { th { "Name" } th { "For" } th class="hide-narrow" { "Created" } th { "Last used" } th {} } }
                        tbody {
                            @for p in &items {
                                tr {
                                    td { (p.name) }
                                    td { (p.protocols.join(", ").to_uppercase()) }
                                    td class="hide-narrow" { (datetime(p.created)) }
                                    td { @match p.last_used { Some(t) => (datetime(t)), None => "never" } }
                                    td {
                                        form class="inline" method="post" action="/account/app-passwords/revoke" {
                                            (csrf(s))
                                            input type="hidden" name="name" value=(p.name);
                                            button class="danger" type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "New application password" }
            form method="post" action="/account/app-passwords" {
                (csrf(s))
                label for="name" { "Name (the device or program)" }
                input type="text" id="name" name="name" maxlength="64" required;
                fieldset {
                    legend { "Usable for" }
                    label { input type="checkbox" name="imap" value="on" checked; " IMAP (reading, folders)" }
                    label { input type="checkbox" name="pop3" value="on"; " POP3 (downloading)" }
                    label { input type="checkbox" name="smtp" value="on" checked; " SMTP (sending)" }
                }
                button type="submit" { "Create" }
            }
        }
    };
    Ok(page("Application passwords", Some(s), body).into_response())
}

async fn app_passwords_page(
    State(state): State<AppState>,
    PageSession(s): PageSession,
    n: Notice,
) -> PageResult {
    let note = html! { (notice(n.done.as_deref())) };
    body(&state, &s, Some(note)).await
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    imap: Option<String>,
    #[serde(default)]
    pop3: Option<String>,
    #[serde(default)]
    smtp: Option<String>,
}

async fn post_create(State(state): State<AppState>, f: CsrfForm<CreateForm>) -> PageResult {
    let mut protocols = Vec::new();
    for (on, name) in [
        (&f.form.imap, "imap"),
        (&f.form.pop3, "pop3"),
        (&f.form.smtp, "smtp"),
    ] {
        if on.is_some() {
            protocols.push(name.to_string());
        }
    }
    let c = create(&state, &f.session, &f.form.name, &protocols).await?;
    // Shown on this answer only (no redirect: the password is never stored in clear).
    let shown = html! {
        section class="notice" role="status" {
            p { "Application password " strong { (c.name) } " for " (c.protocols.join(", ").to_uppercase()) ":" }
            p { code class="secret" id="new-app-password" { (c.password) } }
            p class="muted" { "Type it into the program instead of your password. It is shown only now." }
        }
    };
    body(&state, &f.session, Some(shown)).await
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    name: String,
}

async fn post_revoke(State(state): State<AppState>, f: CsrfForm<RevokeForm>) -> PageResult {
    revoke(&state, &f.session, &f.form.name).await?;
    Ok(done(
        "/account/app-passwords",
        "Application password revoked.",
    ))
}

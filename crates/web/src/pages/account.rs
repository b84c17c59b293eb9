//! `/account`: change the password.

use super::{done, Notice, PageResult};
use crate::api::account::change_password;
use crate::layout::{csrf, notice, page};
use crate::session::{CsrfForm, PageSession};
use crate::AppState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use maud::html;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/account", get(account_page).post(post_password))
}

async fn account_page(PageSession(s): PageSession, n: Notice) -> PageResult {
    let body = html! {
        (notice(n.done.as_deref()))
        section {
            h2 { "Devices and security" }
            ul {
                li { a href="/account/app-passwords" { "Application passwords" } " for phones and mail programs, one per device, for IMAP, POP3 or sending only" }
                li { a href="/account/logins" { "Recent logins" } " to your mailbox" }
                li { a href="/settings/mail.mobileconfig" { "Set up an iPhone, iPad or Mac" } " (a configuration profile for Apple Mail)" }
            }
        }
        section {
            h2 { "Change password" }
            p class="muted" { "The new password works at once for IMAP, POP3, sending mail and this portal; your other portal logins end." }
            form method="post" action="/account" {
                (csrf(&s))
                label for="current" { "Current password" }
                input type="password" id="current" name="current" autocomplete="current-password" required;
                label for="new" { "New password" }
                input type="password" id="new" name="new" autocomplete="new-password" required;
                label for="again" { "New password again" }
                input type="password" id="again" name="again" autocomplete="new-password" required;
                button type="submit" { "Change password" }
            }
        }
    };
    Ok(page("Account", Some(&s), body).into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    again: String,
}

async fn post_password(State(state): State<AppState>, f: CsrfForm<PasswordForm>) -> PageResult {
    if f.form.new != f.form.again {
        return Err(crate::api::ApiError::bad("the two new passwords differ").into());
    }
    change_password(&state, &f.session, &f.form.current, &f.form.new).await?;
    Ok(done("/account", "Password changed."))
}

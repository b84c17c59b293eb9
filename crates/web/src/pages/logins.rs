//! `/account/logins`: the user's recent successful logins (time, address, protocol,
//! application password), from `/api/logins`'s function.

use super::PageResult;
use crate::api::logins::list;
use crate::layout::{datetime, page};
use crate::session::PageSession;
use crate::AppState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use maud::html;

pub fn routes() -> Router<AppState> {
    Router::new().route("/account/logins", get(logins_page))
}

async fn logins_page(State(state): State<AppState>, PageSession(s): PageSession) -> PageResult {
    let items = list(&state, &s).await?;
    let body = html! {
        section {
            p { "The last successful logins to your mailbox. One you do not recognise? Change your password and revoke your application passwords." }
            @if items.is_empty() {
                p class="muted" { "No logins recorded yet." }
            } @else {
                div class="scroll" {
                    table {
                        thead { tr { th { "When" } th { "From" } th { "How" } th { "With" } } }
                        tbody {
                            @for l in &items {
                                tr {
                                    td { (datetime(l.at)) }
                                    td { (l.remote) }
                                    td { (l.protocol.to_uppercase()) }
                                    td { @match &l.app_password { Some(n) => { "app password " (n) }, None => "your password" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Recent logins", Some(&s), body).into_response())
}

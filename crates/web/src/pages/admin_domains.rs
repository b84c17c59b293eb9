//! `/admin/domains`: per domain, usage over time, accounts near full, and deliveries,
//! refusals and bounces per day (inbound ones counted by the SMTP/LMTP session, the
//! domain's outgoing mail that failed for good by the outbound queue).

use super::PageResult;
use crate::api::admin::domains;
use crate::layout::{chart, date, human, page, quota_bar, Point};
use crate::session::PageSession;
use crate::AppState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use maud::html;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/domains", get(domains_page))
}

async fn domains_page(State(state): State<AppState>, PageSession(s): PageSession) -> PageResult {
    let ds = domains(&state, &s).await?;
    let body = html! {
        @for d in &ds {
            section {
                h2 { (d.name) }
                p { (d.accounts) " accounts, " (human(d.used)) " stored." }
                // The summed limits would flatten the usage line: usage alone, limits in words.
                (chart(&format!("Usage of {} per day", d.name), &d.history.iter().map(|h| Point { day: h.day, value: h.used, limit: None }).collect::<Vec<_>>()))
                @if let Some(l) = d.history.last().and_then(|h| h.limit) {
                    p class="muted" { "The accounts' limits add up to " (human(l)) "." }
                }
                h3 { "Accounts near full" }
                @if d.near_full.is_empty() {
                    p class="muted" { "None." }
                } @else {
                    table {
                        tbody {
                            @for a in &d.near_full {
                                tr { td { (a.address) } td { (quota_bar(a.used, a.limit)) } td class="num" { (a.percent) "%" } }
                            }
                        }
                    }
                }
                h3 { "Mail per day" }
                @if d.counts.is_empty() {
                    p class="muted" { "No mail in the last 30 days." }
                } @else {
                    p class="muted" { "Delivered: accepted into a mailbox here. Refused: turned away before the message was sent (unknown, full or disabled mailbox). Bounced: refused after it was sent (mailbox full), and this domain's outgoing mail that a remote server refused for good." }
                    div class="scroll" {
                        table {
                            thead { tr { th { "Day" } th class="num" { "Delivered" } th class="num" { "Refused" } th class="num" { "Bounced" } } }
                            tbody {
                                @for c in d.counts.iter().rev() {
                                    tr { td { (date(c.day)) } td class="num" { (c.delivered) } td class="num" { (c.refused) } td class="num" { (c.bounced) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if ds.is_empty() { section { p { "No domain." } } }
    };
    Ok(page("Domains", Some(&s), body).into_response())
}

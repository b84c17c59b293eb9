//! Client autoconfiguration, generated from the live listener configuration
//! ([`crate::mailconfig`]) so that no document names a port that is not configured:
//!
//! - Thunderbird: `GET /mail/config-v1.1.xml?emailaddress=ADDRESS` (asked of
//!   `autoconfig.DOMAIN`) and `GET /.well-known/autoconfig/mail/config-v1.1.xml` (asked of
//!   the domain itself), the format of
//!   wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat. The domain is the
//!   address's, else the `Host` header's (`autoconfig.` removed); a domain that is not
//!   ours is 404, so the server does not describe itself for others' domains.
//! - Microsoft Autodiscover: `POST /autodiscover/autodiscover.xml` (and the capitalised
//!   path Outlook also uses), the plain-old-XML protocol of [MS-OXDSCLI]: request schema
//!   `.../outlook/requestschema/2006`, answered in `.../outlook/responseschema/2006a`
//!   with one `Protocol` per IMAP, POP3 and SMTP endpoint. A malformed request or
//!   unknown address gets error 600, another response schema (ActiveSync's) 601, both
//!   inside a 200 response as Exchange does.
//! - Apple: `GET /settings/mail.mobileconfig`, a configuration profile for the logged-in
//!   user (no password inside; the device asks for it).
//!
//! These answer anyone (a mail program asks before it has credentials), except the
//! profile; they reveal only the server's ports and whether a domain is ours.

use crate::mailconfig;
use crate::session::PageSession;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mail/config-v1.1.xml", get(thunderbird))
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(thunderbird),
        )
        .route("/autodiscover/autodiscover.xml", post(autodiscover))
        .route("/Autodiscover/Autodiscover.xml", post(autodiscover))
        .route("/settings/mail.mobileconfig", get(mobileconfig))
}

#[derive(Deserialize)]
struct AutoconfigQuery {
    #[serde(default)]
    emailaddress: Option<String>,
}

const XML: &str = "text/xml; charset=utf-8";

/// `domain` when it is one of ours (lower-cased).
async fn ours(state: &AppState, domain: &str) -> Option<String> {
    let domain = letterbox_store::validate_domain(domain).ok()?;
    let domains = state.store().run(|s| s.list_domains()).await.ok()?;
    domains.contains(&domain).then_some(domain)
}

fn host_domain(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    // Without a port; an IPv6 literal is no domain anyway.
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let host = host.to_ascii_lowercase();
    Some(
        host.strip_prefix("autoconfig.")
            .unwrap_or(&host)
            .to_string(),
    )
}

async fn thunderbird(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AutoconfigQuery>,
) -> Response {
    let from_address = q
        .emailaddress
        .as_deref()
        .and_then(|a| letterbox_store::validate_address(a).ok())
        .map(|(_, d)| d);
    let mut domain = None;
    for candidate in [from_address, host_domain(&headers)].into_iter().flatten() {
        if let Some(d) = ours(&state, &candidate).await {
            domain = Some(d);
            break;
        }
    }
    let Some(domain) = domain else {
        return (StatusCode::NOT_FOUND, "no mail domain of this server\n").into_response();
    };
    (
        [(header::CONTENT_TYPE, XML)],
        mailconfig::thunderbird(state.config(), &domain),
    )
        .into_response()
}

async fn autodiscover(State(state): State<AppState>, body: Bytes) -> Response {
    let reply = |xml: String| ([(header::CONTENT_TYPE, XML)], xml).into_response();
    let Some(req) = mailconfig::parse_autodiscover(&body) else {
        return reply(mailconfig::autodiscover_error(600, "Invalid Request"));
    };
    if let Some(schema) = &req.schema {
        if schema != mailconfig::AUTODISCOVER_RESPONSE_SCHEMA {
            return reply(mailconfig::autodiscover_error(
                601,
                "Requested schema version not supported",
            ));
        }
    }
    let local = match letterbox_store::validate_address(&req.email) {
        Ok((_, domain)) => ours(&state, &domain).await.is_some(),
        Err(_) => false,
    };
    if !local {
        return reply(mailconfig::autodiscover_error(600, "Invalid Request"));
    }
    let email = letterbox_store::normalize_address(&req.email);
    reply(mailconfig::autodiscover(state.config(), &email))
}

async fn mobileconfig(State(state): State<AppState>, PageSession(s): PageSession) -> Response {
    let address = s.account.address.clone();
    let Some(profile) = mailconfig::mobileconfig(state.config(), &address) else {
        return crate::pages::error_page(crate::api::ApiError::new(
            StatusCode::NOT_FOUND,
            "This server has no IMAP or POP3 listener to set up.",
        ));
    };
    let domain = address
        .rsplit_once('@')
        .map_or("mail", |(_, d)| d)
        .to_string();
    (
        [
            (
                header::CONTENT_TYPE,
                "application/x-apple-aspen-config".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{domain}.mobileconfig\""),
            ),
        ],
        profile,
    )
        .into_response()
}

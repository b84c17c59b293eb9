//! `/login` (form), `POST /login`, `POST /logout`, and `/` (to the usage page).

use crate::api::session::{clear_cookie, login, logout};
use crate::layout::page;
use crate::session::{cookie, new_token, same_token, set_cookie, CsrfForm, Session, LOGIN_COOKIE};
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use letterbox_proto::Peer;
use maud::html;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login_post))
        .route("/logout", post(logout_post))
}

async fn home(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match Session::from_parts(&parts, &state).await {
        Ok(Some(_)) => Redirect::to("/usage").into_response(),
        _ => Redirect::to("/login").into_response(),
    }
}

fn form(
    token: &str,
    address: &str,
    error: Option<&str>,
    tls: bool,
    status: StatusCode,
) -> Response {
    let body = html! {
        @if let Some(e) = error { p class="error" role="alert" { (e) } }
        section {
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                label for="address" { "Mail address" }
                input type="email" id="address" name="address" autocomplete="username" required value=(address);
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
        }
        p class="muted" { "Use the address and password of your mailbox." }
    };
    (
        status,
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, token, 3600, tls),
        )],
        page("Log in", None, body),
    )
        .into_response()
}

async fn login_page(Extension(peer): Extension<Peer>) -> Response {
    form(&new_token(), "", None, peer.tls, StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    address: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login_post(
    State(state): State<AppState>,
    Extension(peer): Extension<Peer>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let pre = cookie(&parts, LOGIN_COOKIE).unwrap_or_default();
    let req = Request::from_parts(parts, body);
    let Ok(Form(f)) =
        <Form<LoginForm> as axum::extract::FromRequest<AppState>>::from_request(req, &state).await
    else {
        return crate::pages::error_page(crate::api::ApiError::bad("malformed form"));
    };
    // Double-submit: the form's token must be the one this browser was given.
    if !same_token(&f.csrf, &pre) {
        return crate::pages::error_page(crate::api::ApiError::new(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the login page",
        ));
    }
    match login(&state, peer, f.address.trim(), &f.password).await {
        Ok(li) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, li.cookie(&state)),
                (header::LOCATION, "/usage".to_string()),
            ],
        )
            .into_response(),
        Err(e) => form(
            &new_token(),
            f.address.trim(),
            Some(&e.message),
            peer.tls,
            e.status,
        ),
    }
}

#[derive(Deserialize)]
struct Nothing {}

async fn logout_post(State(state): State<AppState>, f: CsrfForm<Nothing>) -> Response {
    let _ = logout(&state, &f.session).await;
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, clear_cookie(f.session.peer.tls)),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

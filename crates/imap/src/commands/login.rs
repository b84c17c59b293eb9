//! LOGIN (RFC 9051 6.2.3). Refused with `[PRIVACYREQUIRED]` where plaintext passwords
//! are not allowed on this connection (LOGINDISABLED is advertised there). A login past
//! `[limits] max_userip_connections` gets `NO [LIMIT]` (RFC 5530) and the session stays
//! unauthenticated.

use crate::session::{Authed, Fatal, Reply, Session, State};
use letterbox_proto::auth::Login;
use letterbox_store::Account;

pub async fn run(s: &mut Session, user: Vec<u8>, password: Vec<u8>) -> Result<Reply, Fatal> {
    if !s.peer.plaintext_auth_allowed(&s.ctx.config) {
        return Ok(Reply::no("Plaintext authentication requires TLS").code("PRIVACYREQUIRED"));
    }
    let (Ok(user), Ok(password)) = (String::from_utf8(user), String::from_utf8(password)) else {
        return failed(s);
    };
    check_password(s, user, password).await
}

/// Checks credentials through the shared login gate (`letterbox_proto::auth`: growing
/// delays, per-IP and per-account blocks) and logs in, or counts a failure.
pub async fn check_password(
    s: &mut Session,
    user: String,
    password: String,
) -> Result<Reply, Fatal> {
    match s
        .ctx
        .login_for(&s.peer, letterbox_store::Protocol::Imap, &user, &password)
        .await
    {
        Login::Ok(account) => {
            let Some(slot) = s.ctx.userip_slot(&s.peer, account.id) else {
                tracing::warn!(user = %account.address, peer = %s.peer.addr,
                    "imap login refused: limits.max_userip_connections reached");
                // RFC 5530 LIMIT; Dovecot words it the same way.
                return Ok(Reply::no(format!(
                    "Maximum number of connections from user+IP exceeded (limits.max_userip_connections={})",
                    s.ctx.config.limits.max_userip_connections
                ))
                .code("LIMIT"));
            };
            Ok(logged_in(s, account, Some(slot)))
        }
        Login::Failed | Login::Blocked => failed(s),
        Login::Unavailable(e) => {
            tracing::error!("imap: authentication lookup failed: {e}");
            Ok(Reply::no("Authentication is unavailable, try again later").code("UNAVAILABLE"))
        }
    }
}

pub fn failed(s: &mut Session) -> Result<Reply, Fatal> {
    s.auth_failures += 1;
    if s.auth_failures >= s.ctx.config.limits.max_auth_failures {
        return Err(Fatal::Bye("Too many authentication failures".into()));
    }
    Ok(Reply::no("Authentication failed").code("AUTHENTICATIONFAILED"))
}

pub fn logged_in(
    s: &mut Session,
    account: Account,
    userip: Option<letterbox_proto::userip::UserIpSlot>,
) -> Reply {
    // A nearly full account hears of it first thing (RFC 9051 7.1: ALERT text is shown
    // to the user).
    if let Some(alert) = super::quota::alert(s, &account, super::quota::AlertAt::Login) {
        s.conn.push(alert.as_bytes());
    }
    let changes = s.ctx.store.watch(account.id);
    s.state = State::Authenticated(Authed {
        account,
        changes,
        userip,
    });
    let caps = s.capabilities();
    Reply::ok("Logged in").code(format!("CAPABILITY {caps}"))
}

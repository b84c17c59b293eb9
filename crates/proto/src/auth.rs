//! The login gate every protocol goes through: password check plus abuse resistance.
//!
//! Failed logins are counted per client IP (an IPv6 client by its /64) and per account
//! over `[auth] failure_window`: in memory on the embedded store, in the database on
//! PostgreSQL, so that N nodes count together (`Backend::count_login_failure`).
//! Each failure is answered after a growing delay (`failure_delay_ms`, doubling, capped
//! at 16x), so guessing is slow even before a block. At `max_failures` the IP or the
//! account is blocked for `block_duration`: the block is written to the store (so
//! `letterbox block list` shows it from another process and `letterbox block lift`
//! lifts it at once) and named in the log. A blocked login fails like a wrong password
//! (the client learns nothing more); the log says why. A success clears the account's
//! and the IP's counts. A password verified successfully within `[auth] cache_ttl` is
//! accepted without hashing it again (the store's verified-credentials cache, see
//! `letterbox_store::password::VerifiedCache`); blocks and failures are handled as above
//! either way, and a failure is never cached. Passwords never reach the log, and the
//! user names clients send reach it through [`loggable`] (no forged log lines, no
//! terminal escapes).
//!
//! Application passwords (`letterbox_store::apppass`, issue 14): a protocol session
//! logs in with [`login_for`] and its [`Protocol`]; a password shaped like a generated
//! app password is first checked against the account's app passwords for that protocol
//! (only those sharing its selector, so at most one Argon2id check), then as the account
//! password. The web portal's login ([`crate::Context::login`], protocol `web`) takes
//! the account password only. Throttling, blocks and the cache treat both alike; a
//! revoked app password fails at once, cached or not. Each success is recorded in the
//! account's login history (`[auth] login_history`) and every outcome is counted in
//! [`crate::metrics`].

use crate::{Context, Peer};
use letterbox_store::{Account, LoginRecord, Protocol};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a login attempt came to.
#[derive(Debug)]
pub enum Login {
    Ok(Account),
    /// Wrong user or password (already delayed).
    Failed,
    /// The IP or account is blocked (already delayed).
    Blocked,
    /// The store could not answer; the client should retry later.
    Unavailable(String),
}

/// In-memory failure counts, shared by every session, and the bound on password checks
/// running at once: an Argon2id check takes 19 MiB and a core for tens of milliseconds,
/// so a crowd of clients logging in together (a restart, a brute force) is queued
/// instead of taking gigabytes.
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    hashing: tokio::sync::Semaphore,
}

impl Default for Throttle {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Throttle {
            failures: Mutex::default(),
            hashing: tokio::sync::Semaphore::new(cores),
        }
    }
}

impl Throttle {
    fn record_failure(&self, key: &str, window: Duration) -> u32 {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Forget stale entries now and then, so the map cannot grow without bound.
        if m.len() > 100_000 {
            m.retain(|_, (_, t)| now.duration_since(*t) < window);
        }
        let e = m.entry(key.to_string()).or_insert((0, now));
        if now.duration_since(e.1) >= window {
            *e = (0, now);
        }
        e.0 += 1;
        e.1 = now;
        e.0
    }

    fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Client-supplied text as the log shows it: control characters escaped (`\n`, `\u{1b}`),
/// so that a user name cannot forge log lines or send terminal escapes, and at most 256
/// characters.
pub fn loggable(s: &str) -> String {
    const MAX: usize = 256;
    let mut out = String::with_capacity(s.len().min(MAX));
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The block key of a client address: `ip:192.0.2.7`, or `ip:2001:db8:1:2::/64` for
/// IPv6 (see [`crate::client_net`]); `letterbox block lift ADDRESS` uses it too.
pub fn ip_block_key(ip: std::net::IpAddr) -> String {
    match crate::client_net(ip) {
        std::net::IpAddr::V6(v6) if !v6.is_loopback() => format!("ip:{v6}/64"),
        other => format!("ip:{other}"),
    }
}

fn ip_key(peer: &Peer) -> String {
    ip_block_key(peer.addr.ip())
}

fn user_key(user: &str) -> String {
    format!("user:{}", letterbox_store::normalize_address(user))
}

/// Checks a password for a login from `peer`, with throttling and blocks.
pub async fn login(
    ctx: &Context,
    throttle: &Throttle,
    peer: &Peer,
    user: &str,
    password: &str,
) -> Login {
    login_for(ctx, throttle, peer, Protocol::Web, user, password).await
}

/// Checks a password for a login over `protocol` from `peer`, with throttling and
/// blocks: the account password, or an application password for this protocol.
pub async fn login_for(
    ctx: &Context,
    throttle: &Throttle,
    peer: &Peer,
    protocol: Protocol,
    user: &str,
    password: &str,
) -> Login {
    let login = check(ctx, throttle, peer, protocol, user, password).await;
    let result = match &login {
        Login::Ok(_) => "ok",
        Login::Failed => "failed",
        Login::Blocked => "blocked",
        Login::Unavailable(_) => "unavailable",
    };
    crate::metrics::metrics().login(protocol.as_str(), result);
    login
}

async fn check(
    ctx: &Context,
    throttle: &Throttle,
    peer: &Peer,
    protocol: Protocol,
    user: &str,
    password: &str,
) -> Login {
    let cfg = &ctx.config.auth;
    let (ipk, userk) = (ip_key(peer), user_key(user));
    let now = letterbox_store::now();
    let keys = [ipk.clone(), userk.clone()];
    let blocked = ctx
        .store
        .run(move |s| {
            Ok(s.blocks(now)?
                .into_iter()
                .any(|(k, _, _)| keys.contains(&k)))
        })
        .await;
    match blocked {
        Ok(true) => {
            tracing::warn!(ip = %peer.addr.ip(), user = %loggable(user), "login refused: blocked (see `letterbox block list`)");
            tokio::time::sleep(Duration::from_millis(cfg.failure_delay_ms)).await;
            return Login::Blocked;
        }
        Ok(false) => {}
        Err(e) => return Login::Unavailable(e.to_string()),
    }
    // A password verified moments ago (`[auth] cache_ttl`) needs no hashing, so it does
    // not queue behind the checks that do.
    // An app password is tried first when the password has its shape (cheap to tell),
    // so that its login costs one check, not the account password's too.
    let app = protocol != Protocol::Web && letterbox_store::apppass::canonical(password).is_some();
    let (u, p) = (user.to_string(), password.to_string());
    let cached = ctx
        .store
        .run(move |s| {
            if app {
                if let Some((a, name)) = s.authenticate_app_password(&u, &p, protocol, true)? {
                    return Ok(Some((a, Some(name))));
                }
            }
            Ok(s.authenticate_cached(&u, &p)?.map(|a| (a, None)))
        })
        .await;
    let checked = match cached {
        Ok(Some(found)) => Ok(Some(found)),
        _ => {
            let (u, p) = (user.to_string(), password.to_string());
            let Ok(permit) = throttle.hashing.acquire().await else {
                return Login::Unavailable("shutting down".into());
            };
            let checked = ctx
                .store
                .run(move |s| {
                    if app {
                        if let Some((a, name)) =
                            s.authenticate_app_password(&u, &p, protocol, false)?
                        {
                            return Ok(Some((a, Some(name))));
                        }
                    }
                    Ok(s.authenticate(&u, &p)?.map(|a| (a, None)))
                })
                .await;
            drop(permit);
            checked
        }
    };
    match checked {
        Ok(Some((account, app_password))) => {
            // An account an operator disabled (the portal) logs in nowhere; the client
            // is told no more than for a wrong password.
            let id = account.id;
            match ctx.store.run(move |s| s.web().is_disabled(id)).await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::warn!(ip = %peer.addr.ip(), user = %account.address, "login refused: account disabled");
                    tokio::time::sleep(Duration::from_millis(cfg.failure_delay_ms)).await;
                    return Login::Failed;
                }
                Err(e) => return Login::Unavailable(e.to_string()),
            }
            throttle.clear(&ipk);
            throttle.clear(&userk);
            let keys = vec![ipk.clone(), userk.clone()];
            if let Err(e) = ctx.store.run(move |s| s.clear_login_failures(&keys)).await {
                tracing::warn!("could not clear failed-login counts: {e}");
            }
            match &app_password {
                // The name is the user's own text: through `loggable`.
                Some(name) => {
                    tracing::info!(ip = %peer.addr.ip(), user = %account.address, protocol = protocol.as_str(), app_password = %loggable(name), "login")
                }
                None => {
                    tracing::info!(ip = %peer.addr.ip(), user = %account.address, protocol = protocol.as_str(), "login")
                }
            }
            let keep = cfg.login_history;
            if keep > 0 {
                let record = LoginRecord {
                    at: letterbox_store::now(),
                    remote: crate::canonical_ip(peer.addr.ip()).to_string(),
                    protocol: protocol.as_str().to_string(),
                    app_password,
                };
                let id = account.id;
                if let Err(e) = ctx
                    .store
                    .run(move |s| s.record_login(id, record, keep))
                    .await
                {
                    tracing::warn!("could not record a login in the history: {e}");
                }
            }
            Login::Ok(account)
        }
        Ok(None) => {
            let window = Duration::from_secs(cfg.failure_window.max(1));
            // Counted in the store where nodes share it (PostgreSQL), else here.
            let (keys, secs) = (vec![ipk.clone(), userk.clone()], window.as_secs());
            let shared = ctx
                .store
                .run(move |s| s.count_login_failure(&keys, secs, letterbox_store::now()))
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!("could not count a failed login in the store (counted here): {e}");
                    None
                });
            let (n_ip, n_user) = match shared.as_deref() {
                Some(&[i, u]) => (i, u),
                _ => (throttle.record_failure(&ipk, window), throttle.record_failure(&userk, window)),
            };
            tracing::warn!(ip = %peer.addr.ip(), user = %loggable(user), "login failed");
            for (key, n) in [(&ipk, n_ip), (&userk, n_user)] {
                if cfg.max_failures > 0 && n >= cfg.max_failures {
                    let until = letterbox_store::now() + cfg.block_duration as i64;
                    let reason = format!("{n} failed logins within {}s", cfg.failure_window);
                    let (k, r) = (key.clone(), reason.clone());
                    if let Err(e) = ctx.store.run(move |s| s.block(&k, until, &r)).await {
                        tracing::error!("could not record a login block: {e}");
                    }
                    tracing::warn!(block = %loggable(key), "blocking logins for {}s: {reason}", cfg.block_duration);
                    throttle.clear(key);
                    let keys = vec![key.clone()];
                    if let Err(e) = ctx.store.run(move |s| s.clear_login_failures(&keys)).await {
                        tracing::warn!("could not clear failed-login counts: {e}");
                    }
                }
            }
            let exp = n_ip.max(n_user).saturating_sub(1).min(4);
            tokio::time::sleep(Duration::from_millis(cfg.failure_delay_ms << exp)).await;
            Login::Failed
        }
        Err(e) => Login::Unavailable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loggable_escapes_controls_and_bounds_length() {
        assert_eq!(super::loggable("alice@example.com"), "alice@example.com");
        assert_eq!(
            super::loggable("x\r\nFORGED\u{1b}[31m"),
            "x\\r\\nFORGED\\u{1b}[31m"
        );
        let long = "é".repeat(300);
        let shown = super::loggable(&long);
        assert_eq!(shown.chars().count(), 259);
        assert!(shown.ends_with("..."));
    }
}

//! The authentication service for other MTAs: a server of Dovecot's authentication
//! protocol (the client side, v1.x, as `doc/auth-protocol` in Dovecot and
//! <https://doc.dovecot.org/developer_manual/design/auth_protocol/> describe it), so that
//! Postfix (`smtpd_sasl_type = dovecot`, `smtpd_sasl_path = /path/to/socket`, or
//! `inet:host:port`) and other programs that speak it check their users' passwords
//! against Letterbox. Listeners: `[listen] auth` (UNIX sockets or `ip:port`).
//!
//! The exchange, one command a line (LF), fields separated by TAB, values tab-escaped
//! with `\001` (`\0011` = `\001`, `\001t` = TAB, `\001n` = LF, `\001r` = CR, `\0010` =
//! NUL):
//!
//! ```text
//! S: VERSION 1 2 / MECH PLAIN plaintext / MECH LOGIN plaintext / SPID pid / CUID n /
//!    COOKIE hex / DONE                                  (sent at once on connect)
//! C: VERSION 1 x / CPID pid
//! C: AUTH id mech service=smtp [nologin] lip=.. rip=.. [secured] [resp=base64]
//! S: OK id user=name | FAIL id [user=name] [reason=..] [temp] | CONT id base64
//! C: CONT id base64 | CANCEL id
//! ```
//!
//! Mechanisms: PLAIN (RFC 4616) and LOGIN, both with or without an initial response
//! (`resp=`), decoded by `letterbox_proto::sasl`. Every password check goes through
//! `letterbox_proto::Context::login`, the gate IMAP, POP3 and submission use: the same
//! per-IP and per-account failure counts, delays and blocks (`letterbox block list`), the
//! same cache of recently verified passwords. The IP counted is the MTA's client
//! (`rip=`), not the MTA. A plaintext mechanism on a connection the MTA says is neither
//! TLS-protected (`secured`) nor from loopback is refused, as Dovecot's
//! `disable_plaintext_auth` does, unless `[auth] allow_plaintext = true`.
//!
//! What Postfix relies on (its `xsasl_dovecot_server.c`): it reads the handshake up to
//! `DONE`, keeps the mechanisms without the `private` flag, sends one request at a time
//! with ids counting up, takes `user=` of `OK` as the SASL user name, and shows `reason=`
//! of `FAIL` in its `535 5.7.8` reply. Where Dovecot disconnects a client that names an
//! unknown mechanism (a client bug), we answer `FAIL` with a reason and go on; a
//! malformed line, an unknown command, a duplicate id or a line over
//! `[authd] max_line_length` end the connection, as in Dovecot.

use letterbox_proto::auth::{loggable, Login};
use letterbox_proto::sasl::{self, SaslError};
use letterbox_proto::{read_line, BoxStream, Context, Line, Peer, Service};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufReader};

/// The protocol version we speak (Dovecot 2.3 announces 1.2; Postfix checks the major).
const VERSION: (u32, u32) = (1, 2);

/// Dovecot's reply to a plaintext mechanism without TLS (`disable_plaintext_auth`).
const PLAINTEXT_REFUSED: &str =
    "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";

/// The auth service (listener name `auth`).
pub struct AuthService {
    ctx: Context,
    connections: AtomicU32,
}

impl AuthService {
    pub fn new(ctx: Context) -> Arc<AuthService> {
        Arc::new(AuthService {
            ctx,
            connections: AtomicU32::new(0),
        })
    }
}

impl Service for AuthService {
    fn name(&self) -> &'static str {
        "auth"
    }
    fn serve(
        self: Arc<Self>,
        stream: BoxStream,
        peer: Peer,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let cuid = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
            if let Err(e) = session(&self.ctx, stream, peer, cuid).await {
                tracing::debug!("auth: connection {cuid} ended: {e}");
            }
        })
    }
}

/// Serves a UNIX-socket listener until the runtime stops: each connection gets its own
/// task. The MTA on the other end is trusted with the socket's permissions; the
/// addresses that matter are those of its clients (`rip=`).
pub async fn serve_unix(listener: tokio::net::UnixListener, service: Arc<AuthService>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let peer = Peer {
                    addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                    local: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                    tls: false,
                };
                tokio::spawn(service.clone().serve(Box::new(stream), peer));
            }
            Err(e) => {
                tracing::warn!("auth: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Undoes Dovecot's tab-escaping (`\001` followed by a code letter).
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some('1') => out.push('\u{1}'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') | Some('l') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Dovecot's tab-escaping of a value we send.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\u{1}0"),
            '\u{1}' => out.push_str("\u{1}1"),
            '\t' => out.push_str("\u{1}t"),
            '\r' => out.push_str("\u{1}r"),
            '\n' => out.push_str("\u{1}n"),
            c => out.push(c),
        }
    }
    out
}

/// A request waiting for the client's next `CONT`.
enum Pending {
    /// PLAIN without an initial response: the credentials come next.
    Plain(Request),
    /// LOGIN: the user name comes next.
    LoginUser(Request),
    /// LOGIN: the password comes next.
    LoginPassword(Request, String),
}

/// What an `AUTH` line said about the client.
#[derive(Clone)]
struct Request {
    /// The MTA's client, as the login gate counts it.
    peer: Peer,
    /// The MTA says the client's connection is TLS-protected (`secured`).
    secured: bool,
}

/// Why a connection ends.
#[derive(Debug)]
enum End {
    Io(std::io::Error),
    Protocol(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Io(e) => write!(f, "{e}"),
            End::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl From<std::io::Error> for End {
    fn from(e: std::io::Error) -> End {
        End::Io(e)
    }
}

fn handshake(cuid: u32) -> String {
    use rand::RngCore;
    let mut cookie = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut cookie);
    let cookie: String = cookie.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "VERSION\t{}\t{}\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t{}\nCUID\t{cuid}\nCOOKIE\t{cookie}\nDONE\n",
        VERSION.0,
        VERSION.1,
        std::process::id()
    )
}

async fn session(ctx: &Context, stream: BoxStream, conn_peer: Peer, cuid: u32) -> Result<(), End> {
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    w.write_all(handshake(cuid).as_bytes()).await?;
    w.flush().await?;
    let cfg = &ctx.config.authd;
    let mut line = Vec::new();
    let mut versioned = false;
    let mut pending: HashMap<u32, Pending> = HashMap::new();
    loop {
        match read_line(&mut r, &mut line, cfg.max_line_length).await? {
            Line::Ok => {}
            Line::Eof => return Ok(()),
            Line::TooLong => {
                return Err(End::Protocol(format!(
                    "line over authd.max_line_length ({})",
                    cfg.max_line_length
                )))
            }
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            return Err(End::Protocol("line is not UTF-8".into()));
        };
        let fields: Vec<&str> = text.split('\t').collect();
        let cmd = fields[0];
        if !versioned {
            // The client's VERSION comes first; a different major version cannot talk to us.
            if cmd != "VERSION" {
                return Err(End::Protocol(format!(
                    "expected VERSION, got {}",
                    loggable(cmd)
                )));
            }
            match fields.get(1).and_then(|v| v.parse::<u32>().ok()) {
                Some(major) if major == VERSION.0 => versioned = true,
                _ => return Err(End::Protocol("unsupported protocol version".into())),
            }
            continue;
        }
        let reply = match cmd {
            "CPID" => continue,
            "AUTH" => {
                let id = parse_id(fields.get(1))?;
                if pending.contains_key(&id) {
                    return Err(End::Protocol(format!("duplicate request id {id}")));
                }
                let Some(mech) = fields.get(2) else {
                    return Err(End::Protocol("AUTH without a mechanism".into()));
                };
                let req = request(&fields[3..], conn_peer);
                let resp = fields[3..]
                    .iter()
                    .find_map(|f| f.strip_prefix("resp="))
                    .map(unescape);
                begin(ctx, &mut pending, id, mech, req, resp).await
            }
            "CONT" => {
                let id = parse_id(fields.get(1))?;
                let data = unescape(fields.get(2).copied().unwrap_or(""));
                match pending.remove(&id) {
                    Some(p) => cont(ctx, &mut pending, id, p, &data).await,
                    // Dovecot treats a CONT for a request it forgot (timed out, failed)
                    // as a failure of that request.
                    None => format!(
                        "FAIL\t{id}\treason=Authentication request timed out or was cancelled\n"
                    ),
                }
            }
            "CANCEL" => {
                let id = parse_id(fields.get(1))?;
                pending.remove(&id);
                continue;
            }
            other => {
                return Err(End::Protocol(format!(
                    "unknown command {}",
                    loggable(other)
                )));
            }
        };
        if pending.len() > cfg.max_pending {
            return Err(End::Protocol(format!(
                "more than authd.max_pending ({}) requests in progress",
                cfg.max_pending
            )));
        }
        w.write_all(reply.as_bytes()).await?;
        w.flush().await?;
    }
}

fn parse_id(field: Option<&&str>) -> Result<u32, End> {
    field
        .and_then(|f| f.parse::<u32>().ok())
        .ok_or_else(|| End::Protocol("missing or malformed request id".into()))
}

/// The client's address and TLS state from the AUTH parameters (`rip`, `rport`, `lip`,
/// `lport`, `secured`); the connection's own address when the MTA gives none.
fn request(params: &[&str], conn_peer: Peer) -> Request {
    let mut peer = conn_peer;
    let mut secured = false;
    let (mut rport, mut lport) = (None, None);
    for p in params {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let v = unescape(v);
        match k {
            "rip" => {
                if let Ok(ip) = v.parse::<IpAddr>() {
                    peer.addr.set_ip(ip);
                }
            }
            "lip" => {
                if let Ok(ip) = v.parse::<IpAddr>() {
                    peer.local.set_ip(ip);
                }
            }
            "rport" => rport = v.parse::<u16>().ok(),
            "lport" => lport = v.parse::<u16>().ok(),
            "secured" => secured = true,
            _ => {}
        }
    }
    if let Some(p) = rport {
        peer.addr.set_port(p);
    }
    if let Some(p) = lport {
        peer.local.set_port(p);
    }
    peer.tls = secured;
    Request { peer, secured }
}

fn fail(id: u32, user: Option<&str>, reason: Option<&str>) -> String {
    let mut s = format!("FAIL\t{id}");
    if let Some(u) = user {
        s.push_str(&format!("\tuser={}", escape(u)));
    }
    if let Some(r) = reason {
        s.push_str(&format!("\treason={}", escape(r)));
    }
    s.push('\n');
    s
}

fn sasl_reason(e: SaslError) -> &'static str {
    match e {
        SaslError::Malformed => "Invalid base64 data or malformed response",
        SaslError::AuthzidMismatch => "Authorization identity differs from the user name",
        SaslError::Cancelled => "Authentication cancelled",
    }
}

async fn begin(
    ctx: &Context,
    pending: &mut HashMap<u32, Pending>,
    id: u32,
    mech: &str,
    req: Request,
    resp: Option<String>,
) -> String {
    let mech = mech.to_ascii_uppercase();
    if mech != "PLAIN" && mech != "LOGIN" {
        return fail(id, None, Some("Unsupported authentication mechanism"));
    }
    if !req.secured && !req.peer.plaintext_auth_allowed(&ctx.config) {
        tracing::info!(ip = %req.peer.addr.ip(), "auth: plaintext mechanism refused without TLS");
        return fail(id, None, Some(PLAINTEXT_REFUSED));
    }
    match (mech.as_str(), resp) {
        ("PLAIN", Some(r)) => plain(ctx, id, &req, &r).await,
        ("PLAIN", None) => {
            pending.insert(id, Pending::Plain(req));
            format!("CONT\t{id}\t\n")
        }
        (_, Some(r)) if !r.is_empty() => match sasl::login_step(&r) {
            Ok(user) => {
                pending.insert(id, Pending::LoginPassword(req, user));
                format!("CONT\t{id}\t{}\n", sasl::LOGIN_PASS_CHALLENGE)
            }
            Err(e) => fail(id, None, Some(sasl_reason(e))),
        },
        _ => {
            pending.insert(id, Pending::LoginUser(req));
            format!("CONT\t{id}\t{}\n", sasl::LOGIN_USER_CHALLENGE)
        }
    }
}

async fn cont(
    ctx: &Context,
    pending: &mut HashMap<u32, Pending>,
    id: u32,
    state: Pending,
    data: &str,
) -> String {
    match state {
        Pending::Plain(req) => plain(ctx, id, &req, data).await,
        Pending::LoginUser(req) => match sasl::login_step(data) {
            Ok(user) => {
                pending.insert(id, Pending::LoginPassword(req, user));
                format!("CONT\t{id}\t{}\n", sasl::LOGIN_PASS_CHALLENGE)
            }
            Err(e) => fail(id, None, Some(sasl_reason(e))),
        },
        Pending::LoginPassword(req, user) => match sasl::login_step(data) {
            Ok(password) => check(ctx, id, &req, &user, &password).await,
            Err(e) => fail(id, Some(&user), Some(sasl_reason(e))),
        },
    }
}

async fn plain(ctx: &Context, id: u32, req: &Request, response: &str) -> String {
    match sasl::plain(response) {
        Ok(c) => check(ctx, id, req, &c.user, &c.password).await,
        Err(e) => fail(id, None, Some(sasl_reason(e))),
    }
}

/// The password check, through the login gate every protocol shares.
async fn check(ctx: &Context, id: u32, req: &Request, user: &str, password: &str) -> String {
    match ctx.login(&req.peer, user, password).await {
        Login::Ok(account) => format!("OK\t{id}\tuser={}\n", escape(&account.address)),
        // Like Dovecot: no reason for a wrong password (Postfix then says only that
        // authentication failed), the user name the client gave.
        Login::Failed | Login::Blocked => fail(id, Some(user), None),
        Login::Unavailable(e) => {
            tracing::error!("auth: password check unavailable: {e}");
            let mut s = fail(id, Some(user), Some("Temporary authentication failure"));
            s.insert_str(s.len() - 1, "\ttemp");
            s
        }
    }
}

#[cfg(test)]
mod tests;

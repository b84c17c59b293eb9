//! One POP3 session: the RFC 1939 state machine.
//!
//! AUTHORIZATION (USER/PASS, AUTH, CAPA, UTF8, QUIT) → TRANSACTION once the maildrop is
//! locked and its snapshot taken → UPDATE on QUIT, where the deletions are done. Every
//! other way out (EOF, I/O error, time-out, too many bad commands) leaves the mailbox as
//! it was and releases the lock.
//!
//! Replies are flushed only when no further command is already buffered, so pipelined
//! commands (RFC 2449 PIPELINING) are answered in one write.

use crate::dot::{DotStuffer, TopLimit};
use crate::{MaildropGuard, Pop3Service};
use letterbox_proto::auth::Login;
use letterbox_proto::{metrics, read_line, sasl, BoxStream, Line, Peer};
use letterbox_store::{
    Account, Error as StoreError, FlagOp, Flags, MailboxId, MessageReader, Retention,
};
use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

/// The commands `letterbox_command_duration_seconds` names (others count as `OTHER`).
const POP3_VERBS: &[&str] = &[
    "CAPA", "QUIT", "USER", "PASS", "AUTH", "UTF8", "APOP", "STLS", "STAT", "LIST", "UIDL",
    "DELE", "RSET", "NOOP", "RETR", "TOP",
];
use tokio::io::{AsyncWriteExt, BufReader, BufWriter, ReadHalf, WriteHalf};

/// The unit in which messages are read from the store and written to the client.
const CHUNK: usize = 64 * 1024;
/// RFC 1939 section 3: the autologout timer after login is at least 10 minutes.
const MIN_AUTOLOGOUT: Duration = Duration::from_secs(600);

pub(crate) async fn run(svc: Arc<Pop3Service>, stream: BoxStream, mut peer: Peer) {
    let mut stream = stream;
    let mut greet = true;
    let mut auth_failures = 0;
    loop {
        let (r, w) = tokio::io::split(stream);
        let mut s = Session {
            svc: svc.clone(),
            peer,
            reader: BufReader::new(r),
            writer: BufWriter::with_capacity(CHUNK, w),
            line: Vec::new(),
            state: State::Authorization { user: None },
            bad_commands: 0,
            auth_failures,
            out: Vec::new(),
        };
        let ended = s.run(greet).await;
        // Whatever the way out, the maildrop lock goes with the state.
        if let State::Transaction(md) = &s.state {
            tracing::info!(user = %md.account.address, peer = %s.peer.addr,
                "pop3 session ended without QUIT: nothing deleted");
        }
        match ended {
            Ok(Flow::StartTls) => {}
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(peer = %s.peer.addr, "pop3 session ended: {e}");
                return;
            }
        }
        // RFC 2595 4: STLS. The "+OK" is flushed; what the client sent after STLS is
        // dropped with the reader's buffer (no plaintext injection); the session goes on
        // in AUTHORIZATION over TLS, without a new greeting.
        let Some(tls) = svc.ctx.tls.clone() else {
            return;
        };
        let plain = s.reader.into_inner().unsplit(s.writer.into_inner());
        match tls.accept(plain).await {
            Ok(secure) => {
                stream = secure;
                peer.tls = true;
                greet = false;
                auth_failures = s.auth_failures;
            }
            Err(e) => {
                tracing::debug!(peer = %peer.addr, "pop3 STLS handshake failed: {e}");
                return;
            }
        }
    }
}

enum Flow {
    Continue,
    Close,
    /// STLS was accepted: the caller upgrades the stream.
    StartTls,
}

/// A reply of a command that needs no streaming.
enum Reply {
    Ok(String),
    /// `+OK text`, then the lines, then `.`.
    Multi(String, Vec<String>),
    /// A refusal of a well-formed command (no such message...).
    Err(String),
    /// A protocol error: counts towards `limits.max_bad_commands`.
    Bad(String),
}

enum State {
    Authorization { user: Option<String> },
    Transaction(Maildrop),
}

/// The locked maildrop of a session in the TRANSACTION state: the snapshot taken at login.
struct Maildrop {
    account: Account,
    mailbox: MailboxId,
    uidvalidity: u32,
    msgs: Vec<Msg>,
    _lock: MaildropGuard,
    /// The session's place in `[limits] max_userip_connections`.
    _userip: letterbox_proto::userip::UserIpSlot,
}

struct Msg {
    uid: u32,
    /// The octets RETR sends (CRLF lines, before dot-stuffing): what LIST and STAT say.
    size: u64,
    /// The stored octets have LF-only line ends, which RETR and TOP send as CRLF.
    bare_lf: bool,
    deleted: bool,
    /// Sent whole by RETR in this session.
    retrieved: bool,
}

impl Maildrop {
    fn live(&self) -> impl Iterator<Item = (usize, &Msg)> {
        self.msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.deleted)
            .map(|(i, m)| (i + 1, m))
    }

    fn stat(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, o), (_, m)| (n + 1, o + m.size))
    }

    fn uidl(&self, m: &Msg) -> String {
        format!("{:08x}{:08x}", self.uidvalidity, m.uid)
    }

    /// The index of a message-number argument that names a message not deleted.
    fn index(&self, arg: &str) -> Result<usize, Reply> {
        if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Reply::Bad(format!("Invalid message number '{arg}'")));
        }
        let n: usize = arg.parse().unwrap_or(usize::MAX);
        match n.checked_sub(1).and_then(|i| self.msgs.get(i)) {
            None => Err(Reply::Err(format!("No such message {arg}"))),
            Some(m) if m.deleted => Err(Reply::Err(format!("Message {n} already deleted"))),
            Some(_) => Ok(n - 1),
        }
    }
}

/// Splits a command's arguments at spaces; arguments are printable ASCII (RFC 1939 3).
fn split_args(rest: &[u8]) -> Result<Vec<&str>, Reply> {
    let s = std::str::from_utf8(rest)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| Reply::Bad("Arguments must be ASCII".into()))?;
    Ok(s.split_ascii_whitespace().collect())
}

fn expire_value(r: Retention) -> String {
    match r {
        Retention::Keep => "NEVER".into(),
        Retention::Delete => "0".into(),
        Retention::Days(n) => n.to_string(),
    }
}

/// Reads one 64 KiB chunk (fewer octets only at the end of the message). Blocks.
fn read_chunk(r: &mut MessageReader, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
    buf.resize(CHUNK, 0);
    let mut n = 0;
    while n < CHUNK {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// What a client line read brought.
enum Input {
    Line,
    TooLong,
    Closed,
    TimedOut,
}

struct Session {
    svc: Arc<Pop3Service>,
    peer: Peer,
    reader: BufReader<ReadHalf<BoxStream>>,
    writer: BufWriter<WriteHalf<BoxStream>>,
    line: Vec<u8>,
    state: State,
    bad_commands: u32,
    auth_failures: u32,
    /// Reused output buffer (multi-line replies, dot-stuffed chunks).
    out: Vec<u8>,
}

impl Session {
    fn config(&self) -> &letterbox_proto::Config {
        &self.svc.ctx.config
    }

    fn plaintext_allowed(&self) -> bool {
        self.peer.plaintext_auth_allowed(self.config())
    }

    /// The autologout timer of the current state; also bounds each write.
    fn timeout(&self) -> Duration {
        let l = &self.config().limits;
        match self.state {
            State::Authorization { .. } => Duration::from_secs(l.timeout_unauthenticated.max(1)),
            State::Transaction(_) => {
                Duration::from_secs(l.timeout_authenticated).max(MIN_AUTOLOGOUT)
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match tokio::time::timeout(self.timeout(), self.writer.write_all(bytes)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match tokio::time::timeout(self.timeout(), self.writer.flush()).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
    }

    async fn ok(&mut self, text: &str) -> io::Result<Flow> {
        let line = if text.is_empty() {
            "+OK\r\n".to_string()
        } else {
            format!("+OK {text}\r\n")
        };
        self.send(line.as_bytes()).await?;
        Ok(Flow::Continue)
    }

    async fn err(&mut self, text: &str) -> io::Result<Flow> {
        self.send(format!("-ERR {text}\r\n").as_bytes()).await?;
        Ok(Flow::Continue)
    }

    /// Answers a protocol error; closes the session at `limits.max_bad_commands`.
    async fn bad(&mut self, text: &str) -> io::Result<Flow> {
        self.bad_commands += 1;
        if self.bad_commands >= self.config().limits.max_bad_commands.max(1) {
            self.err(&format!(
                "{text} (too many bad commands, closing connection)"
            ))
            .await?;
            return Ok(Flow::Close);
        }
        self.err(text).await
    }

    async fn reply(&mut self, reply: Reply) -> io::Result<Flow> {
        match reply {
            Reply::Ok(t) => self.ok(&t).await,
            Reply::Err(t) => self.err(&t).await,
            Reply::Bad(t) => self.bad(&t).await,
            Reply::Multi(t, lines) => {
                let mut out = std::mem::take(&mut self.out);
                out.clear();
                out.extend_from_slice(format!("+OK {t}\r\n").as_bytes());
                for l in lines {
                    out.extend_from_slice(l.as_bytes());
                    out.extend_from_slice(b"\r\n");
                    if out.len() >= CHUNK {
                        self.send(&out).await?;
                        out.clear();
                    }
                }
                out.extend_from_slice(b".\r\n");
                let r = self.send(&out).await;
                self.out = out;
                r.map(|_| Flow::Continue)
            }
        }
    }

    /// Reads a line into `self.line`, flushing first when the client waits for replies.
    async fn read(&mut self) -> io::Result<Input> {
        if self.reader.buffer().is_empty() {
            self.flush().await?;
        }
        let max = self.config().limits.max_line_length;
        let t = self.timeout();
        match tokio::time::timeout(t, read_line(&mut self.reader, &mut self.line, max)).await {
            Err(_) => Ok(Input::TimedOut),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Line::Ok)) => Ok(Input::Line),
            Ok(Ok(Line::TooLong)) => Ok(Input::TooLong),
            Ok(Ok(Line::Eof)) => Ok(Input::Closed),
        }
    }

    /// Runs commands until the session ends (`Close`) or STLS was accepted (`StartTls`).
    async fn run(&mut self, greet: bool) -> io::Result<Flow> {
        if greet {
            // No APOP timestamp in the banner: APOP is not offered.
            let greeting = format!(
                "+OK {} Letterbox POP3 server ready\r\n",
                self.config().hostname
            );
            self.send(greeting.as_bytes()).await?;
        }
        loop {
            let flow = match self.read().await? {
                Input::Closed => return Ok(Flow::Close),
                Input::TimedOut => {
                    // RFC 1939 3: after login the timer closes the connection without a
                    // response and without entering UPDATE. Before it, say why.
                    if let State::Authorization { .. } = self.state {
                        let _ = self.err("Disconnected for inactivity").await;
                        let _ = self.flush().await;
                    }
                    return Ok(Flow::Close);
                }
                Input::TooLong => self.bad("Line too long").await?,
                Input::Line => {
                    let line = std::mem::take(&mut self.line);
                    let bad_before = self.bad_commands;
                    let started = std::time::Instant::now();
                    let verb = line.split(|&b| b == b' ').next().unwrap_or_default();
                    let verb = metrics::command_label(
                        std::str::from_utf8(verb).unwrap_or_default(),
                        POP3_VERBS,
                    );
                    let flow = self.command(&line).await;
                    metrics::metrics().command("pop3", verb, started.elapsed());
                    self.line = line;
                    if self.bad_commands == bad_before {
                        self.bad_commands = 0;
                    }
                    flow?
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Close => {
                    self.flush().await?;
                    let _ = self.writer.shutdown().await;
                    return Ok(Flow::Close);
                }
                Flow::StartTls => {
                    self.flush().await?;
                    return Ok(Flow::StartTls);
                }
            }
        }
    }

    async fn command(&mut self, line: &[u8]) -> io::Result<Flow> {
        let (kw, rest) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        };
        let kw = kw.to_ascii_uppercase();
        let authorized = matches!(self.state, State::Transaction(_));
        match (kw.as_slice(), authorized) {
            (b"CAPA", _) => self.capa(rest).await,
            (b"QUIT", _) => self.quit(rest).await,
            (b"USER", false) => self.user(rest).await,
            (b"PASS", false) => self.pass(rest).await,
            (b"AUTH", false) => self.auth(rest).await,
            (b"UTF8", false) => match split_args(rest) {
                Ok(a) if a.is_empty() => self.ok("UTF8 enabled").await,
                _ => self.bad("UTF8 takes no arguments").await,
            },
            (b"APOP", false) => self.bad("APOP is not supported").await,
            (b"STLS", false) => self.stls(rest).await,
            (b"STAT" | b"LIST" | b"UIDL" | b"DELE" | b"RSET" | b"NOOP", true) => {
                let reply = self.transaction(&kw, rest);
                self.reply(reply).await
            }
            (b"RETR", true) => self.retr_or_top(rest, false).await,
            (b"TOP", true) => self.retr_or_top(rest, true).await,
            (
                b"STAT" | b"LIST" | b"UIDL" | b"DELE" | b"RSET" | b"NOOP" | b"RETR" | b"TOP",
                false,
            ) => {
                let cmd = String::from_utf8_lossy(&kw).into_owned();
                self.bad(&format!(
                    "{cmd} is not valid in the AUTHORIZATION state: log in first"
                ))
                .await
            }
            (b"USER" | b"PASS" | b"AUTH" | b"APOP" | b"STLS" | b"UTF8", true) => {
                let cmd = String::from_utf8_lossy(&kw).into_owned();
                self.bad(&format!(
                    "{cmd} is not valid in the TRANSACTION state: already logged in"
                ))
                .await
            }
            _ => self.bad("Unknown command").await,
        }
    }

    // --- AUTHORIZATION ---

    async fn capa(&mut self, rest: &[u8]) -> io::Result<Flow> {
        if !matches!(split_args(rest), Ok(a) if a.is_empty()) {
            return self.bad("CAPA takes no arguments").await;
        }
        let mut caps = vec![
            "TOP".to_string(),
            "UIDL".into(),
            "RESP-CODES".into(),
            "AUTH-RESP-CODE".into(),
            "PIPELINING".into(),
        ];
        // RFC 2449 6.7: before login the server default, marked USER as it varies per
        // user; after login the user's own.
        caps.push(match &self.state {
            State::Authorization { .. } => {
                format!("EXPIRE {} USER", expire_value(self.config().pop3.retention))
            }
            State::Transaction(md) => {
                format!("EXPIRE {}", expire_value(md.account.effective_retention))
            }
        });
        if self.svc.ctx.tls.is_some() && !self.peer.tls {
            caps.push("STLS".into());
        }
        if self.plaintext_allowed() {
            caps.push("USER".into());
            caps.push("SASL PLAIN LOGIN".into());
            caps.push("UTF8 USER".into());
        } else {
            caps.push("UTF8".into());
        }
        caps.push("IMPLEMENTATION Letterbox".into());
        self.reply(Reply::Multi("Capability list follows".into(), caps))
            .await
    }

    /// STLS (RFC 2595 4): only in AUTHORIZATION, only once, only where TLS is set up.
    async fn stls(&mut self, rest: &[u8]) -> io::Result<Flow> {
        if !matches!(split_args(rest), Ok(a) if a.is_empty()) {
            return self.bad("STLS takes no arguments").await;
        }
        if self.peer.tls {
            return self.bad("Command not permitted when TLS active").await;
        }
        if self.svc.ctx.tls.is_none() {
            return self.bad("STLS is not available").await;
        }
        self.ok("Begin TLS negotiation").await?;
        Ok(Flow::StartTls)
    }

    async fn user(&mut self, rest: &[u8]) -> io::Result<Flow> {
        if !self.plaintext_allowed() {
            return self.plaintext_refused().await;
        }
        let Ok(name) = std::str::from_utf8(rest) else {
            return self.bad("User name is not UTF-8").await;
        };
        let name = name.trim();
        if name.is_empty() {
            return self.bad("Missing user name").await;
        }
        self.state = State::Authorization {
            user: Some(name.to_string()),
        };
        self.ok("Send PASS").await
    }

    async fn pass(&mut self, rest: &[u8]) -> io::Result<Flow> {
        let State::Authorization { user } = &mut self.state else {
            return self.bad("PASS is not valid in this state").await;
        };
        let Some(user) = user.take() else {
            return self.bad("Send USER first").await;
        };
        // RFC 1939 7: the password is the whole rest of the line, spaces included.
        match String::from_utf8(rest.to_vec()) {
            Ok(pass) if !pass.is_empty() => self.login(user, pass).await,
            Ok(_) => self.bad("Missing password").await,
            Err(_) => self.sasl_refused("password is not UTF-8").await,
        }
    }

    async fn plaintext_refused(&mut self) -> io::Result<Flow> {
        self.bad("[AUTH] Plaintext authentication disallowed on non-secure connections")
            .await
    }

    async fn auth(&mut self, rest: &[u8]) -> io::Result<Flow> {
        let args = match split_args(rest) {
            Ok(a) => a,
            Err(r) => return self.reply(r).await,
        };
        let allowed = self.plaintext_allowed();
        if args.is_empty() {
            // The pre-RFC 5034 listing some clients still ask for.
            let mechs = if allowed {
                vec!["PLAIN".to_string(), "LOGIN".into()]
            } else {
                vec![]
            };
            return self
                .reply(Reply::Multi("Supported mechanisms follow".into(), mechs))
                .await;
        }
        if args.len() > 2 {
            return self.bad("Too many arguments to AUTH").await;
        }
        let mech = args[0].to_ascii_uppercase();
        let initial = args.get(1).map(|s| s.to_string());
        if !matches!(mech.as_str(), "PLAIN" | "LOGIN") {
            return self.bad("Unsupported authentication mechanism").await;
        }
        if !allowed {
            return self.plaintext_refused().await;
        }
        let creds = if mech == "PLAIN" {
            let resp = match initial {
                Some(r) => r,
                None => match self.sasl_step("").await? {
                    Some(r) => r,
                    None => return Ok(Flow::Close),
                },
            };
            sasl::plain(&resp).map(|c| (c.user, c.password))
        } else {
            let resp = match initial {
                Some(r) => r,
                None => match self.sasl_step(sasl::LOGIN_USER_CHALLENGE).await? {
                    Some(r) => r,
                    None => return Ok(Flow::Close),
                },
            };
            match sasl::login_step(&resp) {
                Err(e) => Err(e),
                Ok(user) => match self.sasl_step(sasl::LOGIN_PASS_CHALLENGE).await? {
                    None => return Ok(Flow::Close),
                    Some(r) => sasl::login_step(&r).map(|p| (user, p)),
                },
            }
        };
        match creds {
            Ok((user, pass)) => self.login(user, pass).await,
            Err(sasl::SaslError::Cancelled) => self.err("Authentication cancelled").await,
            Err(sasl::SaslError::Malformed) => self.sasl_refused("malformed response").await,
            Err(sasl::SaslError::AuthzidMismatch) => {
                self.sasl_refused("authorization identity differs").await
            }
        }
    }

    /// Sends a SASL challenge and reads the client's response line; `None`: the client
    /// is gone. An over-long response comes back as something that is not base64.
    async fn sasl_step(&mut self, challenge: &str) -> io::Result<Option<String>> {
        self.send(format!("+ {challenge}\r\n").as_bytes()).await?;
        match self.read().await? {
            Input::Closed | Input::TimedOut => Ok(None),
            Input::TooLong => Ok(Some("!".into())),
            Input::Line => Ok(Some(String::from_utf8_lossy(&self.line).into_owned())),
        }
    }

    async fn login(&mut self, user: String, pass: String) -> io::Result<Flow> {
        let svc = self.svc.clone();
        match svc
            .ctx
            .login_for(&self.peer, letterbox_store::Protocol::Pop3, &user, &pass)
            .await
        {
            Login::Ok(account) => self.open_maildrop(account).await,
            // Already delayed and logged by the login gate.
            Login::Failed | Login::Blocked => self.auth_failed().await,
            Login::Unavailable(e) => {
                tracing::warn!(peer = %self.peer.addr, "pop3 authentication unavailable: {e}");
                self.err("[SYS/TEMP] Authentication is temporarily unavailable")
                    .await
            }
        }
    }

    /// A SASL response that cannot be decoded fails like a wrong password, as slowly.
    async fn sasl_refused(&mut self, why: &str) -> io::Result<Flow> {
        tracing::info!(peer = %self.peer.addr, "pop3 AUTH refused: {why}");
        self.flush().await?;
        let delay = Duration::from_millis(self.config().auth.failure_delay_ms);
        tokio::time::sleep(delay).await;
        self.auth_failed().await
    }

    /// Answers a failed login; closes the session at `limits.max_auth_failures`.
    async fn auth_failed(&mut self) -> io::Result<Flow> {
        self.auth_failures += 1;
        if self.auth_failures >= self.config().limits.max_auth_failures.max(1) {
            self.err("[AUTH] Authentication failed (too many failures, closing connection)")
                .await?;
            return Ok(Flow::Close);
        }
        self.err("[AUTH] Authentication failed").await
    }

    /// Locks the maildrop and takes the snapshot the session works on.
    async fn open_maildrop(&mut self, account: Account) -> io::Result<Flow> {
        let Some(userip) = self.svc.ctx.userip_slot(&self.peer, account.id) else {
            tracing::warn!(user = %account.address, peer = %self.peer.addr,
                "pop3 login refused: limits.max_userip_connections reached");
            // Temporary (RFC 3206 SYS/TEMP): the client may try again when one of the
            // user's other sessions from this address has ended.
            let text = format!(
                "[SYS/TEMP] Maximum number of connections from user+IP exceeded (limits.max_userip_connections={})",
                self.config().limits.max_userip_connections
            );
            return self.err(&text).await;
        };
        let Some(lock) = self.svc.locks.try_lock(account.id) else {
            tracing::info!(user = %account.address, peer = %self.peer.addr,
                "pop3 maildrop in use");
            return self
                .err("[IN-USE] Mailbox is locked by another POP3 session")
                .await;
        };
        let id = account.id;
        let snap = self
            .svc
            .ctx
            .store
            .run(move |s| {
                let mb = s.mailbox(id, "INBOX")?;
                // The exact octets RETR sends (CRLF lines), counted at delivery.
                let msgs = s.pop3_sizes(mb.id)?;
                Ok((mb, msgs))
            })
            .await;
        let (mb, metas) = match snap {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(user = %account.address, "pop3 cannot open INBOX: {e}");
                return self.err("[SYS/TEMP] Cannot open the mailbox").await;
            }
        };
        let md = Maildrop {
            mailbox: mb.id,
            uidvalidity: mb.uidvalidity,
            msgs: metas
                .into_iter()
                .map(|m| Msg {
                    uid: m.uid,
                    size: m.size,
                    bare_lf: m.bare_lf,
                    deleted: false,
                    retrieved: false,
                })
                .collect(),
            account,
            _lock: lock,
            _userip: userip,
        };
        let (n, octets) = md.stat();
        tracing::info!(user = %md.account.address, peer = %self.peer.addr, messages = n,
            retention = %md.account.effective_retention, "pop3 login");
        let text = format!("{} has {n} messages ({octets} octets)", md.account.address);
        self.state = State::Transaction(md);
        self.ok(&text).await
    }

    // --- TRANSACTION ---

    fn transaction(&mut self, kw: &[u8], rest: &[u8]) -> Reply {
        let State::Transaction(md) = &mut self.state else {
            return Reply::Bad("Not valid in this state".into());
        };
        let args = match split_args(rest) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let cmd = String::from_utf8_lossy(kw);
        let max_args = if matches!(kw, b"STAT" | b"RSET" | b"NOOP") {
            0
        } else {
            1
        };
        if args.len() > max_args {
            return Reply::Bad(format!("Too many arguments to {cmd}"));
        }
        if kw == b"DELE" && args.is_empty() {
            return Reply::Bad("DELE needs a message number".into());
        }
        let index = match args.first().map(|a| md.index(a)) {
            Some(Err(r)) => return r,
            Some(Ok(i)) => Some(i),
            None => None,
        };
        match (kw, index) {
            (b"STAT", _) => {
                let (n, o) = md.stat();
                Reply::Ok(format!("{n} {o}"))
            }
            (b"NOOP", _) => Reply::Ok(String::new()),
            (b"RSET", _) => {
                for m in &mut md.msgs {
                    m.deleted = false;
                    // Under `delete` retention RETR implied a DELE; RSET undoes it too.
                    m.retrieved = false;
                }
                let (n, o) = md.stat();
                Reply::Ok(format!("maildrop has {n} messages ({o} octets)"))
            }
            (b"DELE", Some(i)) => {
                md.msgs[i].deleted = true;
                Reply::Ok(format!("Message {} deleted", i + 1))
            }
            (b"LIST", Some(i)) => Reply::Ok(format!("{} {}", i + 1, md.msgs[i].size)),
            (b"LIST", None) => {
                let (n, o) = md.stat();
                let lines = md.live().map(|(i, m)| format!("{i} {}", m.size)).collect();
                Reply::Multi(format!("{n} messages ({o} octets)"), lines)
            }
            (b"UIDL", Some(i)) => Reply::Ok(format!("{} {}", i + 1, md.uidl(&md.msgs[i]))),
            (b"UIDL", None) => {
                let lines = md
                    .live()
                    .map(|(i, m)| format!("{i} {}", md.uidl(m)))
                    .collect();
                Reply::Multi("Unique-ID listing follows".into(), lines)
            }
            _ => Reply::Bad("Unknown command".into()),
        }
    }

    /// RETR msg, or TOP msg n: streams the message, dot-stuffed.
    async fn retr_or_top(&mut self, rest: &[u8], top: bool) -> io::Result<Flow> {
        let State::Transaction(md) = &self.state else {
            return self.bad("Not valid in this state").await;
        };
        let args = match split_args(rest) {
            Ok(a) => a,
            Err(r) => return self.reply(r).await,
        };
        let want = if top { 2 } else { 1 };
        if args.len() != want {
            let usage = if top { "TOP msg n" } else { "RETR msg" };
            return self.bad(&format!("Usage: {usage}")).await;
        }
        let i = match md.index(args[0]) {
            Ok(i) => i,
            Err(r) => return self.reply(r).await,
        };
        let lines = if top {
            let n = args[1];
            if !n.bytes().all(|b| b.is_ascii_digit()) {
                return self.bad(&format!("Invalid number of lines '{n}'")).await;
            }
            Some(n.parse::<u64>().unwrap_or(u64::MAX))
        } else {
            None
        };
        let (mailbox, uid, size, retention, bare_lf) = (
            md.mailbox,
            md.msgs[i].uid,
            md.msgs[i].size,
            md.account.effective_retention,
            md.msgs[i].bare_lf,
        );
        let store = self.svc.ctx.store.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let mut r = store.open_message(mailbox, uid)?;
            let first = read_chunk(&mut r, Vec::with_capacity(CHUNK))?;
            Ok::<_, StoreError>((r, first))
        })
        .await;
        let (reader, first) = match opened {
            Ok(Ok(x)) => x,
            Ok(Err(StoreError::NotFound(_))) => {
                return self
                    .err(&format!("Message {} was removed by another session", i + 1))
                    .await;
            }
            Ok(Err(e)) => {
                tracing::error!(mailbox, uid, "pop3 cannot read message: {e}");
                return self.err("[SYS/TEMP] Cannot read the message").await;
            }
            Err(e) => {
                tracing::error!(mailbox, uid, "pop3 message read task failed: {e}");
                return self.err("[SYS/TEMP] Cannot read the message").await;
            }
        };
        let head = if top {
            "+OK Top of message follows\r\n".to_string()
        } else {
            format!("+OK {size} octets\r\n")
        };
        self.send(head.as_bytes()).await?;
        if !self
            .stream(reader, first, lines.map(TopLimit::new), size, bare_lf)
            .await?
        {
            // The store failed mid-message: the reply cannot be completed.
            return Ok(Flow::Close);
        }
        if top {
            return Ok(Flow::Continue);
        }
        // The state does not change while streaming.
        let State::Transaction(md) = &mut self.state else {
            return Ok(Flow::Continue);
        };
        let first_retrieval = !md.msgs[i].retrieved;
        md.msgs[i].retrieved = true;
        if matches!(retention, Retention::Days(_)) && first_retrieval {
            let now = letterbox_store::now();
            if let Err(e) = self
                .svc
                .ctx
                .store
                .run(move |s| s.mark_pop3_retrieved(mailbox, &[uid], now))
                .await
            {
                tracing::warn!(mailbox, uid, "pop3 cannot record retrieval: {e}");
            }
        }
        Ok(Flow::Continue)
    }

    /// Sends the message body from `reader`, reading the next chunk on the blocking pool
    /// while the current one is written. Returns false when the store failed mid-way.
    async fn stream(
        &mut self,
        reader: MessageReader,
        first: Vec<u8>,
        mut limit: Option<TopLimit>,
        size: u64,
        bare_lf: bool,
    ) -> io::Result<bool> {
        let mut stuffer = DotStuffer::new(bare_lf);
        let mut out = std::mem::take(&mut self.out);
        let mut reader = Some(reader);
        let mut chunk = first;
        let mut spare = Vec::with_capacity(CHUNK);
        let mut full = true;
        loop {
            let at_end = chunk.len() < CHUNK;
            let take = match &mut limit {
                Some(l) => l.take(&chunk),
                None => chunk.len(),
            };
            let done = at_end || limit.as_ref().is_some_and(TopLimit::done);
            let next = match (done, reader.take()) {
                (false, Some(mut r)) => {
                    let buf = std::mem::take(&mut spare);
                    Some(tokio::task::spawn_blocking(move || {
                        let res = read_chunk(&mut r, buf);
                        (r, res)
                    }))
                }
                _ => None,
            };
            out.clear();
            stuffer.stuff(&chunk[..take], &mut out);
            self.send(&out).await?;
            let Some(next) = next else { break };
            let (r, res) = next.await.map_err(io::Error::other)?;
            match res {
                Ok(c) => {
                    spare = std::mem::replace(&mut chunk, c);
                    reader = Some(r);
                }
                Err(e) => {
                    tracing::error!("pop3 message read failed mid-way: {e}");
                    full = false;
                    break;
                }
            }
        }
        if full {
            if limit.is_none() && stuffer.octets != size {
                tracing::warn!(
                    size,
                    sent = stuffer.octets,
                    "pop3 message size differs from its stored size"
                );
            }
            out.clear();
            stuffer.finish(&mut out);
            self.send(&out).await?;
        }
        out.clear();
        out.shrink_to(CHUNK + CHUNK / 8);
        self.out = out;
        Ok(full)
    }

    // --- QUIT and UPDATE ---

    async fn quit(&mut self, rest: &[u8]) -> io::Result<Flow> {
        if !matches!(split_args(rest), Ok(a) if a.is_empty()) {
            return self.bad("QUIT takes no arguments").await;
        }
        let state = std::mem::replace(&mut self.state, State::Authorization { user: None });
        let State::Transaction(md) = state else {
            self.ok("Letterbox POP3 server signing off").await?;
            return Ok(Flow::Close);
        };
        // UPDATE (RFC 1939 6): DELE'd messages, and under `delete` retention everything
        // retrieved, go now.
        let delete_retrieved = md.account.effective_retention == Retention::Delete;
        let (gone, kept): (Vec<&Msg>, Vec<&Msg>) = md
            .msgs
            .iter()
            .partition(|m| m.deleted || (delete_retrieved && m.retrieved));
        let gone: Vec<u32> = gone.iter().map(|m| m.uid).collect();
        let seen: Vec<u32> = kept.iter().filter(|m| m.retrieved).map(|m| m.uid).collect();
        let left = kept.len();
        let mailbox = md.mailbox;
        let now = letterbox_store::now();
        let n_gone = gone.len();
        let result = self
            .svc
            .ctx
            .store
            .run(move |s| {
                let removed = if gone.is_empty() {
                    Vec::new()
                } else {
                    s.expunge(mailbox, &gone)?
                };
                // Mail fetched and left on the server: \Seen for IMAP, and the first
                // retrieval time, so that a later `<N>d` retention counts from it.
                if !seen.is_empty() {
                    let marked = s
                        .store_flags(mailbox, &seen, FlagOp::Add, Flags::SEEN, &[], None)
                        .and_then(|_| s.mark_pop3_retrieved(mailbox, &seen, now));
                    if let Err(e) = marked {
                        tracing::warn!(mailbox, "pop3 cannot mark retrieved mail: {e}");
                    }
                }
                Ok(removed)
            })
            .await;
        tracing::info!(user = %md.account.address, peer = %self.peer.addr, deleted = n_gone,
            left, "pop3 logout");
        // Release the lock before answering, so the client may reconnect at once.
        drop(md);
        match result {
            Ok(_) => {
                self.ok(&format!(
                    "Letterbox POP3 server signing off ({left} messages left)"
                ))
                .await?
            }
            Err(e) => {
                tracing::error!(mailbox, "pop3 UPDATE failed: {e}");
                self.err("[SYS/TEMP] Some deleted messages were not removed")
                    .await?
            }
        };
        Ok(Flow::Close)
    }
}

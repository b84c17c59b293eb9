//! One SMTP, LMTP or submission session: the RFC 5321 / RFC 2033 / RFC 6409 state machine.
//!
//! States: connected (greeting sent) -> greeted (EHLO/HELO, or LHLO in LMTP) -> in a
//! transaction (MAIL) -> with recipients (RCPT) -> content (DATA, or BDAT chunks) ->
//! delivered, back to greeted. RSET and a new EHLO go back to greeted from anywhere.
//! Submission adds authenticated (AUTH, RFC 4954) between greeted and MAIL.
//!
//! STARTTLS (RFC 3207), on every service when the server has TLS and the connection is
//! not TLS yet: `220 2.0.0`, then the handshake. Whatever the client sent after STARTTLS
//! in the same plaintext batch is discarded unread (RFC 3207 section 4.2 / 6: a
//! man-in-the-middle could otherwise inject commands that would run as if protected), and
//! the session forgets everything learnt before (greeting, transaction, authentication):
//! the client must EHLO again, and sees the capabilities re-announced (without STARTTLS).
//! STARTTLS once TLS is active is a command out of sequence: `503 5.5.1` (RFC 5321 4.1.4,
//! RFC 3463 5.5.1; RFC 3207 4.2 forbids offering it again). Without TLS in the server it
//! is `502 5.5.1`. A failed handshake ends the connection (no way back to plaintext).
//!
//! AUTH (RFC 4954, submission only; port 25 is the inbound MTA and never offers it):
//! PLAIN (RFC 4616) and LOGIN, with or without initial response. Offered only where
//! plaintext passwords are allowed (TLS, loopback, `[auth] allow_plaintext`); elsewhere it
//! is `538 5.7.11`. Success `235 2.7.0`; wrong credentials and blocked logins get the same
//! `535 5.7.8` (the shared gate delays both and logs the reason), and at
//! `[limits] max_auth_failures` in one session `421 4.7.0` closes it; `*` cancels with
//! `501 5.7.0`; undecodable responses are `501 5.5.2`; an over-long response `500 5.5.6`;
//! the store being unavailable `454 4.7.0`. MAIL before AUTH is `530 5.7.0`. The sender
//! must be the account's address (also with a `+tag`) or an explicit alias that leads to
//! it, else `553 5.7.1`; a domain's catch-all does not make every address of the domain
//! the catch-all owner's. Local recipients only for now (see `rcpt`).
//!
//! Replies: RFC 5321 4.2 codes with RFC 3463 enhanced status codes. The ones an operator
//! or a sending server acts on:
//! - `554 5.7.1` recipient in a domain that is not local (never a relay);
//! - `550 5.1.1` unknown local user; `552 5.2.2` mailbox full (at RCPT, or after the data);
//! - `452 4.5.3` too many recipients (`[smtp] max_recipients`);
//! - `552 5.3.4` message over `[smtp] max_message_size` (declared with SIZE, or sent);
//! - `503 5.5.1` command out of sequence; `501 5.1.3` / `501 5.1.7` malformed recipient /
//!   sender path; `500 5.5.2` line over `[limits] max_line_length`;
//! - `421` closing: time-out (`[limits] timeout_unauthenticated`, RFC 5321 4.5.3.2 asks for
//!   minutes; the operator chooses), or `[limits] max_bad_commands` consecutive errors.
//!
//! PIPELINING (RFC 2920): replies are buffered and sent when no complete command is left
//! in the input buffer, and always before waiting for message content.
//!
//! Durability: the `250` after the data is sent only once `Store::deliver` has returned,
//! and the store returns only after its fsyncs. A client that disconnects or goes silent
//! before the end of the data leaves nothing stored and nothing counted.

use crate::data::{self, Content};
use crate::{trace, warning, Mode};
use letterbox_proto::auth::Login;
use letterbox_proto::budget::Reservation;
use letterbox_proto::sasl::{self, SaslError};
use letterbox_proto::{read_line, BoxStream, Context, Line, Peer};
use letterbox_store::{normalize_address, Account, AccountId, Error as StoreError, Resolved};
use smtp_proto::{Error as ParseError, Request};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};

/// Runs one session to its end. Never panics on input; I/O errors end the session.
pub async fn run(ctx: Context, mode: Mode, stream: BoxStream, peer: Peer) {
    let mut session = Session::new(ctx, mode, stream, peer);
    if let Err(e) = session.serve().await {
        tracing::debug!(peer = %peer.addr, "session ended: {e}");
    }
}

/// A mail transaction, from MAIL to the end of the content.
struct Transaction {
    /// Id for the logs, the `Received:` header and the final reply.
    id: String,
    /// Reverse-path without brackets; empty for the null sender (bounces).
    sender: String,
    /// SIZE=n from MAIL (RFC 1870), if given.
    declared_size: Option<u64>,
    smtputf8: bool,
    rcpts: Vec<Recipient>,
    /// BDAT content received so far (RFC 3030); `None` before the first chunk.
    chunks: Option<Vec<u8>>,
    /// Room reserved for that content in the server's content budget.
    room: Option<Reservation>,
}

/// An accepted recipient: the address as given, and the accounts it leads to.
struct Recipient {
    address: String,
    accounts: Vec<AccountId>,
}

/// What happened to one recipient after the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Full,
    Failed,
}

enum Flow {
    Continue,
    Close,
}

pub struct Session {
    ctx: Context,
    mode: Mode,
    peer: Peer,
    io: BufReader<BoxStream>,
    /// Replies not yet sent (PIPELINING).
    out: Vec<u8>,
    /// The name from EHLO/HELO/LHLO; `None` before the greeting.
    helo: Option<String>,
    /// The client greeted with EHLO or LHLO (not HELO).
    esmtp: bool,
    tx: Option<Transaction>,
    bad_commands: u32,
    line: Vec<u8>,
    timeout: Duration,
    /// The authenticated account (submission).
    auth: Option<Account>,
    /// Failed AUTH attempts in this session (`[limits] max_auth_failures`).
    auth_failures: u32,
}

/// A SASL response line, as read.
enum SaslLine {
    Text(String),
    TooLong,
    Eof,
    Timeout,
}

impl Session {
    pub fn new(ctx: Context, mode: Mode, stream: BoxStream, peer: Peer) -> Session {
        let timeout = Duration::from_secs(ctx.config.limits.timeout_unauthenticated.max(1));
        Session {
            ctx,
            mode,
            peer,
            io: BufReader::with_capacity(16 * 1024, stream),
            out: Vec::with_capacity(1024),
            helo: None,
            esmtp: false,
            tx: None,
            bad_commands: 0,
            line: Vec::new(),
            timeout,
            auth: None,
            auth_failures: 0,
        }
    }

    fn submission(&self) -> bool {
        self.mode == Mode::Submission
    }

    fn unauthenticated_timeout(&self) -> Duration {
        Duration::from_secs(self.ctx.config.limits.timeout_unauthenticated.max(1))
    }

    fn hostname(&self) -> &str {
        &self.ctx.config.hostname
    }

    fn max_size(&self) -> u64 {
        self.ctx.config.smtp.max_message_size.0
    }

    fn lmtp(&self) -> bool {
        self.mode == Mode::Lmtp
    }

    /// Queues one reply line: `code esc text`.
    fn reply(&mut self, code: u16, esc: &str, text: &str) {
        let line = if esc.is_empty() {
            format!("{code} {text}\r\n")
        } else {
            format!("{code} {esc} {text}\r\n")
        };
        self.out.extend_from_slice(line.as_bytes());
    }

    /// Sends the queued replies. A client that stops reading them is given the same time
    /// as one that stops writing.
    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            let stream = self.io.get_mut();
            let write = async {
                stream.write_all(&self.out).await?;
                stream.flush().await
            };
            match tokio::time::timeout(self.timeout, write).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client stopped reading",
                    ))
                }
            }
            self.out.clear();
        }
        Ok(())
    }

    /// A client error: counts towards `[limits] max_bad_commands`.
    fn bad(&mut self, code: u16, esc: &str, text: &str) -> Flow {
        self.reply(code, esc, text);
        self.bad_commands += 1;
        if self.bad_commands >= self.ctx.config.limits.max_bad_commands.max(1) {
            let msg = format!("{} Too many errors, closing connection", self.hostname());
            self.reply(421, "4.7.0", &msg);
            tracing::info!(peer = %self.peer.addr, "closing: too many bad commands");
            return Flow::Close;
        }
        Flow::Continue
    }

    fn ok(&mut self, code: u16, esc: &str, text: &str) -> Flow {
        self.bad_commands = 0;
        self.reply(code, esc, text);
        Flow::Continue
    }

    fn timed_out(&mut self) -> Flow {
        let msg = format!("{} Timeout, closing connection", self.hostname());
        self.reply(421, "4.4.2", &msg);
        tracing::info!(peer = %self.peer.addr, "closing: client timed out");
        Flow::Close
    }

    async fn serve(&mut self) -> io::Result<()> {
        let banner = format!(
            "{} {} Letterbox ready",
            self.hostname(),
            if self.lmtp() { "LMTP" } else { "ESMTP" }
        );
        self.reply(220, "", &banner);
        tracing::debug!(peer = %self.peer.addr, mode = ?self.mode, "session start");
        loop {
            // RFC 2920: send the replies once the client's current batch is processed.
            if !self.io.buffer().contains(&b'\n') {
                self.flush().await?;
            }
            let max = self.ctx.config.limits.max_line_length;
            let read =
                tokio::time::timeout(self.timeout, read_line(&mut self.io, &mut self.line, max))
                    .await;
            let flow = match read {
                Err(_) => self.timed_out(),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Line::Eof)) => {
                    if self.tx.is_some() {
                        tracing::info!(peer = %self.peer.addr, "client disconnected mid-transaction: nothing stored");
                    }
                    return Ok(());
                }
                Ok(Ok(Line::TooLong)) => self.bad(500, "5.5.2", "Line too long"),
                Ok(Ok(Line::Ok)) => self.command().await?,
            };
            if let Flow::Close = flow {
                self.flush().await?;
                // A clean end: over TLS this sends close_notify (clients such as
                // `openssl s_client` report a truncation otherwise).
                let stream = self.io.get_mut();
                let _ = tokio::time::timeout(self.timeout, stream.shutdown()).await;
                return Ok(());
            }
        }
    }

    async fn command(&mut self) -> io::Result<Flow> {
        let mut line = std::mem::take(&mut self.line);
        let bare_postmaster = rewrite_bare_postmaster(&mut line, self.hostname());
        line.push(b'\n');
        let parsed = Request::parse(&mut line.iter());
        let verb = command_word(&line);
        let has_args = line
            .get(verb.len()..)
            .is_some_and(|rest| rest.iter().any(|b| !b.is_ascii_whitespace()));
        line.clear();
        self.line = line;
        let req = match parsed {
            Ok(req) => req,
            Err(e) => return Ok(self.parse_error(e, &verb)),
        };
        Ok(match req {
            Request::Ehlo { host } if !self.lmtp() => self.greet(host, true),
            Request::Helo { host } if !self.lmtp() => self.greet(host, false),
            Request::Lhlo { host } if self.mode == Mode::Lmtp => self.greet(host, true),
            Request::Ehlo { .. } | Request::Helo { .. } => {
                self.bad(500, "5.5.1", "This is LMTP (RFC 2033): use LHLO")
            }
            Request::Lhlo { .. } => self.bad(500, "5.5.1", "Command unrecognized"),
            Request::Mail { from } => self.mail(from).await,
            Request::Rcpt { to } => self.rcpt(to, bare_postmaster).await,
            Request::Data => return self.data().await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => return self.bdat(chunk_size as u64, is_last).await,
            Request::Rset => {
                self.tx = None;
                self.ok(250, "2.0.0", "OK")
            }
            Request::Noop { .. } => self.ok(250, "2.0.0", "OK"),
            Request::Quit => {
                let msg = format!("{} closing connection", self.hostname());
                self.reply(221, "2.0.0", &msg);
                Flow::Close
            }
            Request::Vrfy { .. } => self.ok(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            ),
            Request::Expn { .. } => self.bad(502, "5.5.1", "EXPN not available"),
            Request::Help { .. } => {
                let hello = if self.lmtp() { "LHLO" } else { "EHLO HELO" };
                let auth = if self.submission() { " AUTH" } else { "" };
                let msg = format!(
                    "Commands: {hello} STARTTLS{auth} MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP. See RFC 5321{}",
                    match self.mode {
                        Mode::Lmtp => " and RFC 2033",
                        Mode::Submission => " and RFC 6409",
                        Mode::Smtp => "",
                    }
                );
                self.ok(214, "2.0.0", &msg)
            }
            // RFC 3207 4: "501 Syntax error (no parameters allowed)".
            Request::StartTls if has_args => {
                self.bad(501, "5.5.4", "Syntax error (no parameters allowed)")
            }
            Request::StartTls => return self.starttls().await,
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, initial_response).await,
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.bad(502, "5.5.1", "Command not implemented")
            }
        })
    }

    fn parse_error(&mut self, e: ParseError, verb: &str) -> Flow {
        if matches!(verb, "GET" | "POST" | "HEAD" | "PUT" | "CONNECT") {
            // A web client or proxy abuse: nothing to gain by going on (as Postfix does).
            let msg = format!(
                "{} This is not an HTTP server, closing connection",
                self.hostname()
            );
            self.reply(421, "4.7.0", &msg);
            return Flow::Close;
        }
        match e {
            ParseError::UnknownCommand => self.bad(500, "5.5.1", "Command unrecognized"),
            ParseError::InvalidSenderAddress => self.bad(501, "5.1.7", "Bad sender address syntax"),
            ParseError::InvalidRecipientAddress => {
                self.bad(501, "5.1.3", "Bad recipient address syntax")
            }
            ParseError::SyntaxError { syntax } => {
                // A path without its angle brackets is a malformed path too.
                let esc = match verb {
                    "MAIL" => "5.1.7",
                    "RCPT" => "5.1.3",
                    _ => "5.5.4",
                };
                self.bad(501, esc, &format!("Syntax: {syntax}"))
            }
            ParseError::InvalidParameter { param } => {
                self.bad(501, "5.5.4", &format!("Invalid {param} parameter"))
            }
            ParseError::UnsupportedParameter { param } => {
                let param = trace::sanitize(&param, 64);
                self.bad(555, "5.5.4", &format!("Unsupported parameter {param}"))
            }
            _ => self.bad(500, "5.5.2", "Syntax error"),
        }
    }

    fn greet(&mut self, host: String, esmtp: bool) -> Flow {
        // RFC 5321 4.1.4: a new greeting resets any transaction.
        self.tx = None;
        self.esmtp = esmtp;
        let host = trace::sanitize(&host, 255);
        let first = format!(
            "{} Hello {} {}",
            self.hostname(),
            host,
            trace::address_literal(self.peer.addr.ip())
        );
        self.helo = Some(host);
        self.bad_commands = 0;
        if !esmtp {
            self.reply(250, "", &first);
            return Flow::Continue;
        }
        let mut lines = vec![
            first,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.max_size()),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "CHUNKING".to_string(),
        ];
        if self.starttls_available() {
            lines.push("STARTTLS".to_string());
        }
        if self.auth_available() {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        let n = lines.len();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == n { ' ' } else { '-' };
            self.out
                .extend_from_slice(format!("250{sep}{l}\r\n").as_bytes());
        }
        Flow::Continue
    }

    /// STARTTLS is offered when the server has TLS and the connection is not TLS yet
    /// (RFC 3207 4.2: never after the handshake).
    fn starttls_available(&self) -> bool {
        self.ctx.tls.is_some() && !self.peer.tls
    }

    /// AUTH is offered on submission, before authentication, where plaintext passwords
    /// are allowed (TLS, loopback, or `[auth] allow_plaintext`).
    fn auth_available(&self) -> bool {
        self.submission()
            && self.auth.is_none()
            && self.peer.plaintext_auth_allowed(&self.ctx.config)
    }

    /// RFC 3207: `220`, then the TLS handshake on the same connection.
    async fn starttls(&mut self) -> io::Result<Flow> {
        if self.peer.tls {
            // RFC 3207 4.2 forbids offering STARTTLS again; a second one is out of
            // sequence (RFC 5321 4.1.4: 503; RFC 3463 5.5.1).
            return Ok(self.bad(503, "5.5.1", "TLS already active"));
        }
        let Some(tls) = self.ctx.tls.clone() else {
            return Ok(self.bad(502, "5.5.1", "STARTTLS not available"));
        };
        self.bad_commands = 0;
        self.reply(220, "2.0.0", "Ready to start TLS");
        self.flush().await?;
        // RFC 3207 section 4.2 and 6: anything the client sent after STARTTLS in the
        // plaintext stream (already in our buffer) is dropped unread, never executed.
        let pipelined = self.io.buffer().len();
        if pipelined > 0 {
            tracing::warn!(
                peer = %self.peer.addr,
                octets = pipelined,
                "discarding plaintext sent after STARTTLS (RFC 3207: possible command injection)"
            );
        }
        let placeholder: BoxStream = Box::new(tokio::io::duplex(1).0);
        let plain = std::mem::replace(&mut self.io, BufReader::new(placeholder)).into_inner();
        let secure = match tls.accept(plain).await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(peer = %self.peer.addr, "STARTTLS handshake failed: {e}");
                return Err(e);
            }
        };
        self.io = BufReader::with_capacity(16 * 1024, secure);
        self.peer.tls = true;
        // RFC 3207 4.2: forget all knowledge obtained from the client before TLS.
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        self.auth = None;
        self.timeout = self.unauthenticated_timeout();
        tracing::debug!(peer = %self.peer.addr, "STARTTLS: TLS active");
        Ok(Flow::Continue)
    }

    /// Reads one SASL response line (RFC 4954 4), bounded by `[limits] max_line_length`
    /// and the time-out. Its content is a credential: never logged.
    async fn sasl_line(&mut self) -> io::Result<SaslLine> {
        self.flush().await?;
        let max = self.ctx.config.limits.max_line_length;
        let mut buf = Vec::new();
        let read = tokio::time::timeout(self.timeout, read_line(&mut self.io, &mut buf, max)).await;
        Ok(match read {
            Err(_) => SaslLine::Timeout,
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Line::Eof)) => SaslLine::Eof,
            Ok(Ok(Line::TooLong)) => SaslLine::TooLong,
            Ok(Ok(Line::Ok)) => SaslLine::Text(String::from_utf8(buf).unwrap_or_default()),
        })
    }

    /// Sends a `334` challenge and reads the answer; `Err(flow)` when the exchange ends
    /// without one (the reply is queued).
    async fn challenge(&mut self, text: &str) -> io::Result<Result<String, Flow>> {
        self.reply(334, "", text);
        Ok(match self.sasl_line().await? {
            SaslLine::Text(t) => Ok(t),
            SaslLine::TooLong => {
                Err(self.bad(500, "5.5.6", "Authentication exchange line is too long"))
            }
            SaslLine::Eof => Err(Flow::Close),
            SaslLine::Timeout => Err(self.timed_out()),
        })
    }

    /// RFC 4954 AUTH with PLAIN or LOGIN.
    async fn auth(&mut self, mechanism: u64, initial: String) -> io::Result<Flow> {
        if !self.submission() {
            // Port 25 is the inbound MTA: clients submit mail on `submission`.
            return Ok(self.bad(502, "5.5.1", "AUTH not available on this service"));
        }
        if self.helo.is_none() || !self.esmtp {
            return Ok(self.bad(503, "5.5.1", "Send EHLO first"));
        }
        if self.auth.is_some() {
            return Ok(self.bad(503, "5.5.1", "Already authenticated"));
        }
        if self.tx.is_some() {
            return Ok(self.bad(503, "5.5.1", "AUTH not permitted during a mail transaction"));
        }
        if !self.peer.plaintext_auth_allowed(&self.ctx.config) {
            return Ok(self.bad(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism: use STARTTLS",
            ));
        }
        // RFC 4954 4: "=" is an empty initial response; no argument means none was sent.
        let credentials = match mechanism {
            smtp_proto::AUTH_PLAIN => {
                let response = if initial.is_empty() {
                    match self.challenge("").await? {
                        Ok(r) => r,
                        Err(flow) => return Ok(flow),
                    }
                } else {
                    initial
                };
                sasl::plain(&response).map(|c| (c.user, c.password))
            }
            smtp_proto::AUTH_LOGIN => {
                let user = if initial.is_empty() {
                    match self.challenge(sasl::LOGIN_USER_CHALLENGE).await? {
                        Ok(r) => r,
                        Err(flow) => return Ok(flow),
                    }
                } else {
                    initial
                };
                match sasl::login_step(&user) {
                    Err(e) => Err(e),
                    Ok(user) => match self.challenge(sasl::LOGIN_PASS_CHALLENGE).await? {
                        Ok(p) => sasl::login_step(&p).map(|p| (user, p)),
                        Err(flow) => return Ok(flow),
                    },
                }
            }
            _ => {
                return Ok(self.bad(
                    504,
                    "5.5.4",
                    "Unrecognized authentication type: use PLAIN or LOGIN",
                ))
            }
        };
        let (user, password) = match credentials {
            Ok(c) => c,
            Err(SaslError::Cancelled) => {
                return Ok(self.bad(501, "5.7.0", "Authentication cancelled"))
            }
            Err(SaslError::Malformed) => {
                return Ok(self.bad(501, "5.5.2", "Cannot decode the response"))
            }
            Err(SaslError::AuthzidMismatch) => {
                tracing::info!(peer = %self.peer.addr, "AUTH refused: a different authorization identity is not supported");
                return Ok(self.auth_failed());
            }
        };
        match self.ctx.login(&self.peer, &user, &password).await {
            Login::Ok(account) => {
                self.timeout =
                    Duration::from_secs(self.ctx.config.limits.timeout_authenticated.max(1));
                self.auth = Some(account);
                Ok(self.ok(235, "2.7.0", "Authentication successful"))
            }
            // The same answer for both: a blocked client learns nothing (the gate logs why).
            Login::Failed | Login::Blocked => Ok(self.auth_failed()),
            Login::Unavailable(e) => {
                tracing::error!(peer = %self.peer.addr, "AUTH: store unavailable: {e}");
                Ok(self.ok(
                    454,
                    "4.7.0",
                    "Temporary authentication failure, try again later",
                ))
            }
        }
    }

    /// `535 5.7.8`; at `[limits] max_auth_failures` in this session, `421 4.7.0` and
    /// the connection is closed (the shared gate still counts across sessions).
    fn auth_failed(&mut self) -> Flow {
        self.auth_failures += 1;
        if self.auth_failures >= self.ctx.config.limits.max_auth_failures.max(1) {
            self.reply(535, "5.7.8", "Authentication credentials invalid");
            let msg = format!(
                "{} Too many authentication failures, closing connection",
                self.hostname()
            );
            self.reply(421, "4.7.0", &msg);
            tracing::info!(peer = %self.peer.addr, "closing: too many authentication failures");
            return Flow::Close;
        }
        self.bad(535, "5.7.8", "Authentication credentials invalid")
    }

    fn need_greeting(&mut self) -> Option<Flow> {
        if self.helo.is_none() {
            let msg = if self.lmtp() {
                "Send LHLO first"
            } else {
                "Send EHLO or HELO first"
            };
            return Some(self.bad(503, "5.5.1", msg));
        }
        None
    }

    async fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> Flow {
        if let Some(f) = self.need_greeting() {
            return f;
        }
        if self.submission() && self.auth.is_none() {
            return self.bad(530, "5.7.0", "Authentication required");
        }
        if self.tx.is_some() {
            return self.bad(503, "5.5.1", "Nested MAIL command");
        }
        // Parameters of extensions not advertised (RFC 5321 4.1.1.11: 555).
        const SUPPORTED: u64 =
            smtp_proto::MAIL_BODY_7BIT | smtp_proto::MAIL_BODY_8BITMIME | smtp_proto::MAIL_SMTPUTF8;
        let unsupported = from.flags & !SUPPORTED != 0
            || from.trans_id.is_some()
            || from.env_id.is_some()
            || from.solicit.is_some()
            || from.mtrk.is_some()
            // RFC 4954 5: AUTH= is allowed once AUTH is offered; we relay nothing, so
            // its value is not used.
            || (from.auth.is_some() && !self.submission())
            || from.by != 0
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0;
        let has_params = from.flags != 0 || from.size != 0 || unsupported;
        if unsupported || (has_params && !self.esmtp) {
            return self.bad(
                555,
                "5.5.4",
                "MAIL parameters not recognized or not implemented",
            );
        }
        if from.size as u64 > self.max_size() {
            return self.ok(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        let sender = from.address;
        if !sender.is_empty() && !valid_path(&sender) {
            return self.bad(501, "5.1.7", "Bad sender address syntax");
        }
        if !sender.is_ascii() && !smtputf8 {
            return self.bad(553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
        }
        if let Some(account) = self.auth.clone() {
            let shown = trace::sanitize(&sender, 256);
            let check = sender.clone();
            let owned = self
                .ctx
                .store
                .run(move |s| sender_owned(s, &account, &check))
                .await;
            match owned {
                Ok(true) => {}
                Ok(false) => {
                    let who = self
                        .auth
                        .as_ref()
                        .map(|a| a.address.clone())
                        .unwrap_or_default();
                    tracing::info!(peer = %self.peer.addr, user = %who, from = %shown, "submission: sender address refused (not the account's)");
                    return self.bad(
                        553,
                        "5.7.1",
                        &format!("<{shown}>: Sender address not owned by {who}"),
                    );
                }
                Err(e) => {
                    tracing::error!(from = %shown, "sender lookup failed: {e}");
                    return self.ok(451, "4.3.0", "Temporary lookup failure, try again later");
                }
            }
        }
        let id = trace::new_id();
        if let Some(account) = &self.auth {
            // Who submitted what: the delivery lines carry the same id.
            tracing::info!(id = %id, peer = %self.peer.addr, user = %account.address, from = %trace::sanitize(&sender, 256), "submission");
        }
        self.tx = Some(Transaction {
            id,
            sender,
            declared_size: (from.size > 0).then_some(from.size as u64),
            smtputf8,
            rcpts: Vec::new(),
            chunks: None,
            room: None,
        });
        self.ok(250, "2.1.0", "Sender OK")
    }

    async fn rcpt(&mut self, to: smtp_proto::RcptTo<String>, bare_postmaster: bool) -> Flow {
        if let Some(f) = self.need_greeting() {
            return f;
        }
        let max = self.ctx.config.smtp.max_recipients as usize;
        let Some(tx) = self.tx.as_ref() else {
            return self.bad(503, "5.5.1", "Need MAIL before RCPT");
        };
        if tx.chunks.is_some() {
            return self.bad(503, "5.5.1", "RCPT not allowed during BDAT");
        }
        if to.flags != 0 || to.orcpt.is_some() || to.rrvs != 0 {
            return self.bad(
                555,
                "5.5.4",
                "RCPT parameters not recognized or not implemented",
            );
        }
        if tx.rcpts.len() >= max {
            return self.ok(452, "4.5.3", "Too many recipients");
        }
        let (declared, smtputf8) = (tx.declared_size, tx.smtputf8);
        let address = to.address;
        if !valid_path(&address) {
            return self.bad(501, "5.1.3", "Bad recipient address syntax");
        }
        if !address.is_ascii() && !smtputf8 {
            return self.bad(553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
        }
        let lookup = address.clone();
        let resolved = self
            .ctx
            .store
            .run(move |s| {
                let r = s.resolve(&lookup)?;
                if bare_postmaster && !matches!(r, Resolved::Accounts(_)) {
                    // RFC 5321 4.5.1: `<Postmaster>` without a domain must be accepted:
                    // the postmaster of the first local domain that has one.
                    for d in s.list_domains()? {
                        let pm = format!("postmaster@{d}");
                        if let Resolved::Accounts(a) = s.resolve(&pm)? {
                            return Ok((Resolved::Accounts(a), Some(pm)));
                        }
                    }
                    return Ok((Resolved::NoSuchUser, None));
                }
                Ok((r, None))
            })
            .await;
        let (resolved, address) = match resolved {
            Ok((r, Some(pm))) => (Ok(r), pm),
            Ok((r, None)) => (Ok(r), address),
            Err(e) => (Err(e), address),
        };
        let shown = trace::sanitize(&address, 256);
        match resolved {
            Err(e) => {
                tracing::error!(rcpt = %shown, "recipient lookup failed: {e}");
                self.ok(451, "4.3.0", "Temporary lookup failure, try again later")
            }
            Ok(Resolved::NotLocal) if self.submission() => {
                // Outbound delivery (queue, MX lookup, retries, DSNs) is a later issue;
                // until then submission delivers to the local domains only and says so.
                tracing::info!(peer = %self.peer.addr, rcpt = %shown, "submission: remote recipient refused (no outbound delivery yet)");
                self.ok(
                    550,
                    "5.7.1",
                    &format!("<{shown}>: Outbound delivery is not available yet: this server delivers only to its own domains"),
                )
            }
            Ok(Resolved::NotLocal) => {
                tracing::info!(peer = %self.peer.addr, rcpt = %shown, "relay denied");
                self.ok(554, "5.7.1", &format!("<{shown}>: Relay access denied"))
            }
            Ok(Resolved::NoSuchUser) => self.ok(
                550,
                "5.1.1",
                &format!("<{shown}>: Recipient address rejected: no such user here"),
            ),
            Ok(Resolved::Accounts(accounts)) => {
                if accounts.is_empty() {
                    return self.ok(
                        550,
                        "5.1.1",
                        &format!("<{shown}>: Recipient address rejected: no such user here"),
                    );
                }
                if accounts.iter().all(|a| is_full(a, declared)) {
                    tracing::info!(rcpt = %shown, "refused at RCPT: mailbox full");
                    return self.ok(552, "5.2.2", &format!("<{shown}>: Mailbox full"));
                }
                let ids = accounts.iter().map(|a| a.id).collect();
                if let Some(tx) = self.tx.as_mut() {
                    tx.rcpts.push(Recipient {
                        address,
                        accounts: ids,
                    });
                }
                self.ok(250, "2.1.5", "Recipient OK")
            }
        }
    }

    /// Checks that content may start; replies and returns the flow if not.
    fn content_allowed(&mut self) -> Option<Flow> {
        if let Some(f) = self.need_greeting() {
            return Some(f);
        }
        let lmtp = self.lmtp();
        let Some(tx) = self.tx.as_ref() else {
            return Some(self.bad(503, "5.5.1", "Need MAIL command"));
        };
        if tx.rcpts.is_empty() {
            // RFC 2033 4.2: LMTP's DATA without a successful RCPT is 503.
            let code = if lmtp { 503 } else { 554 };
            return Some(self.bad(code, "5.5.1", "No valid recipients"));
        }
        None
    }

    async fn data(&mut self) -> io::Result<Flow> {
        if let Some(f) = self.content_allowed() {
            return Ok(f);
        }
        if self.tx.as_ref().is_some_and(|t| t.chunks.is_some()) {
            return Ok(self.bad(503, "5.5.1", "DATA not allowed after BDAT"));
        }
        self.bad_commands = 0;
        self.reply(354, "", "End data with <CR><LF>.<CR><LF>");
        self.flush().await?;
        let max = self.max_size();
        // Held until the message is stored (or refused).
        let mut room = self.ctx.content_budget.reserve();
        match data::read_data(&mut self.io, max, self.timeout, &mut room).await? {
            Content::Complete(body) => {
                self.deliver(body).await;
                Ok(Flow::Continue)
            }
            Content::NoRoom => Ok(self.no_room()),
            Content::TooBig => {
                self.tx = None;
                Ok(self.ok(
                    552,
                    "5.3.4",
                    "Message size exceeds fixed maximum message size",
                ))
            }
            Content::Eof => {
                tracing::info!(peer = %self.peer.addr, "client disconnected during DATA: nothing stored");
                self.tx = None;
                Ok(Flow::Close)
            }
            Content::Timeout => {
                self.tx = None;
                Ok(self.timed_out())
            }
        }
    }

    /// RFC 3030 BDAT. The chunk's octets are always read, whatever the reply, so that the
    /// session stays in step with the client.
    async fn bdat(&mut self, size: u64, last: bool) -> io::Result<Flow> {
        let refused = self.helo.is_none() || self.tx.as_ref().is_none_or(|t| t.rcpts.is_empty());
        let max = self.max_size();
        let timeout = self.timeout;
        let budget = self.ctx.content_budget.clone();
        let content = match self.tx.as_mut().filter(|_| !refused) {
            Some(tx) => {
                let buf = tx.chunks.get_or_insert_with(Vec::new);
                let room = tx.room.get_or_insert_with(|| budget.reserve());
                data::read_chunk(&mut self.io, size, Some((buf, room)), max, timeout).await?
            }
            None => data::read_chunk(&mut self.io, size, None, 0, timeout).await?,
        };
        match content {
            Content::Eof => {
                tracing::info!(peer = %self.peer.addr, "client disconnected during BDAT: nothing stored");
                self.tx = None;
                return Ok(Flow::Close);
            }
            Content::Timeout => {
                self.tx = None;
                return Ok(self.timed_out());
            }
            _ if refused => {
                return Ok(self.content_allowed().unwrap_or(Flow::Continue));
            }
            Content::NoRoom => return Ok(self.no_room()),
            Content::TooBig => {
                self.tx = None;
                return Ok(self.ok(
                    552,
                    "5.3.4",
                    "Message size exceeds fixed maximum message size",
                ));
            }
            Content::Complete(_) => {}
        }
        if !last {
            return Ok(self.ok(250, "2.0.0", &format!("{size} octets received")));
        }
        let body = self
            .tx
            .as_mut()
            .and_then(|t| t.chunks.take())
            .unwrap_or_default();
        let body = data::normalize_line_ends(body);
        if body.len() as u64 > max {
            self.tx = None;
            return Ok(self.ok(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
        }
        self.bad_commands = 0;
        self.deliver(body).await;
        Ok(Flow::Continue)
    }

    /// The server's budget for content in memory is spent: a temporary refusal (RFC 3463
    /// X.3.1, "mail system full"), so the sender retries; the transaction is over.
    fn no_room(&mut self) -> Flow {
        tracing::warn!(peer = %self.peer.addr, "message refused for now: limits.max_buffered_content reached");
        self.tx = None;
        self.ok(452, "4.3.1", "Insufficient system storage, try again later")
    }

    /// Stores the content for every recipient of the transaction and queues the replies:
    /// one per recipient in LMTP, one in SMTP.
    async fn deliver(&mut self, body: Vec<u8>) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        let now = letterbox_store::now();
        let size = body.len();
        let body = Arc::new(body);
        let helo = self.helo.clone().unwrap_or_default();
        let trace = trace::Trace {
            hostname: &self.ctx.config.hostname,
            helo: &helo,
            peer: self.peer.addr,
            protocol: {
                let p = trace::protocol(self.lmtp(), self.esmtp, self.peer.tls, tx.smtputf8);
                if self.auth.is_some() {
                    trace::authenticated(p)
                } else {
                    p
                }
            },
            id: &tx.id,
            sender: &tx.sender,
            date: now,
        };
        // One copy per account, even when several recipients (aliases, +tags) lead to it;
        // its prefix names the first of them.
        let mut items: Vec<(AccountId, Vec<u8>)> = Vec::new();
        let mut per_rcpt: Vec<Vec<usize>> = Vec::with_capacity(tx.rcpts.len());
        for r in &tx.rcpts {
            let mut idx = Vec::new();
            for &a in &r.accounts {
                let i = match items.iter().position(|(id, _)| *id == a) {
                    Some(i) => i,
                    None => {
                        items.push((a, trace::prefix(&trace, &r.address)));
                        items.len() - 1
                    }
                };
                if !idx.contains(&i) {
                    idx.push(i);
                }
            }
            per_rcpt.push(idx);
        }
        let n = items.len();
        let accounts: Vec<AccountId> = items.iter().map(|(a, _)| *a).collect();
        let result = self
            .ctx
            .store
            .run(move |s| s.deliver(body, now, items, true))
            .await;
        let mut outcomes = vec![Outcome::Failed; n];
        // A full disk is told apart: 452 4.3.1 (RFC 3463: mail system full).
        let disk_full = match &result {
            Err(e) => matches!(e, StoreError::DiskFull),
            Ok(r) => r.iter().any(|r| matches!(r, Err(StoreError::DiskFull))),
        };
        let (fail_code, fail_status, fail_text) = match disk_full {
            true => (452, "4.3.1", "Insufficient system storage, try again later"),
            false => (451, "4.3.0", "Temporary failure, try again later"),
        };
        match result {
            Ok(results) => {
                for (i, r) in results.into_iter().enumerate().take(n) {
                    outcomes[i] = match r {
                        Ok(appended) => {
                            if appended.crossed_warning.is_some() {
                                // Before the reply, so that the warning is there when the
                                // sender learns of the delivery.
                                if let Err(e) = warning::deliver_pending(
                                    &self.ctx.store,
                                    &self.ctx.config,
                                    accounts[i],
                                )
                                .await
                                {
                                    tracing::error!(id = %tx.id, account = accounts[i], "quota warning not delivered: {e}");
                                }
                            }
                            Outcome::Delivered
                        }
                        Err(StoreError::OverQuota) => Outcome::Full,
                        Err(e) => {
                            tracing::error!(id = %tx.id, account = accounts[i], "delivery failed: {e}");
                            Outcome::Failed
                        }
                    };
                }
            }
            Err(e) => tracing::error!(id = %tx.id, "delivery failed: {e}"),
        }
        let rcpt_outcome = |idx: &Vec<usize>| -> Outcome {
            if idx.iter().any(|&i| outcomes[i] == Outcome::Delivered) {
                Outcome::Delivered
            } else if !idx.is_empty() && idx.iter().all(|&i| outcomes[i] == Outcome::Full) {
                Outcome::Full
            } else {
                Outcome::Failed
            }
        };
        let results: Vec<(String, Outcome)> = tx
            .rcpts
            .iter()
            .zip(&per_rcpt)
            .map(|(r, idx)| (trace::sanitize(&r.address, 256), rcpt_outcome(idx)))
            .collect();
        let sender = trace::sanitize(&tx.sender, 256);
        for (rcpt, o) in &results {
            match o {
                Outcome::Delivered => {
                    tracing::info!(id = %tx.id, from = %sender, to = %rcpt, size, proto = trace.protocol, "delivered")
                }
                Outcome::Full => {
                    tracing::info!(id = %tx.id, from = %sender, to = %rcpt, size, "not delivered: mailbox full")
                }
                Outcome::Failed => {
                    tracing::warn!(id = %tx.id, from = %sender, to = %rcpt, size, "not delivered: temporary failure")
                }
            }
        }
        if self.lmtp() {
            // RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
            for (rcpt, o) in &results {
                match o {
                    Outcome::Delivered => {
                        self.reply(250, "2.0.0", &format!("<{rcpt}> Delivered, id={}", tx.id))
                    }
                    Outcome::Full => self.reply(552, "5.2.2", &format!("<{rcpt}> Mailbox full")),
                    Outcome::Failed => {
                        self.reply(fail_code, fail_status, &format!("<{rcpt}> {fail_text}"))
                    }
                }
            }
            return;
        }
        let delivered = results
            .iter()
            .filter(|(_, o)| *o == Outcome::Delivered)
            .count();
        if delivered > 0 {
            for (rcpt, o) in results.iter().filter(|(_, o)| *o != Outcome::Delivered) {
                // SMTP has one reply for all recipients: the others have the message, so it
                // is accepted, and this recipient's failure is only logged. A DSN to the
                // sender (RFC 3464) comes with outbound delivery.
                tracing::warn!(
                    id = %tx.id,
                    from = %sender,
                    to = %rcpt,
                    "message accepted for {delivered} other recipient(s) but NOT delivered to <{rcpt}>: {}; no bounce was sent (DSNs come with outbound delivery)",
                    if *o == Outcome::Full { "mailbox full" } else { "storage failure" }
                );
            }
            self.ok(
                250,
                "2.0.0",
                &format!("Message accepted for delivery, id={}", tx.id),
            );
        } else if results.iter().all(|(_, o)| *o == Outcome::Full) {
            self.ok(552, "5.2.2", "Mailbox full");
        } else {
            self.ok(fail_code, fail_status, fail_text);
        }
    }
}

/// For the fuzz target (`crates/smtp/fuzz`): everything a session does with a command line
/// before it needs the store: the bare-postmaster rewrite, the verb, the parser, the path
/// checks, the header sanitising, and SASL decoding of an AUTH initial response.
#[doc(hidden)]
pub fn fuzz_command_line(input: &[u8]) {
    let mut line = input.to_vec();
    let _ = rewrite_bare_postmaster(&mut line, "mx.example.com");
    line.push(b'\n');
    let verb = command_word(&line);
    let _ = line.get(verb.len()..);
    let Ok(req) = Request::parse(&mut line.iter()) else {
        return;
    };
    match req {
        Request::Mail { from } => {
            let _ = valid_path(&from.address);
            let _ = trace::sanitize(&from.address, 256);
        }
        Request::Rcpt { to } => {
            let _ = valid_path(&to.address);
            let _ = trace::sanitize(&to.address, 256);
        }
        Request::Ehlo { host } | Request::Helo { host } | Request::Lhlo { host } => {
            let _ = trace::sanitize(&host, 255);
        }
        Request::Auth {
            initial_response, ..
        } => {
            let _ = sasl::plain(&initial_response);
            let _ = sasl::login_step(&initial_response);
        }
        _ => {}
    }
}

/// Whether an authenticated account may use `sender` as its envelope sender: its own
/// address, the same with a `+tag`, or an explicit alias (not a domain's catch-all) that
/// resolves to it. The null sender is not the account's.
fn sender_owned(
    s: &dyn letterbox_store::Backend,
    account: &Account,
    sender: &str,
) -> letterbox_store::Result<bool> {
    let own = normalize_address(&account.address);
    let sender = normalize_address(sender);
    let Some((local, domain)) = sender.rsplit_once('@') else {
        return Ok(false);
    };
    let base = local.split_once('+').map(|(b, _)| format!("{b}@{domain}"));
    if sender == own || base.as_deref() == Some(own.as_str()) {
        return Ok(true);
    }
    let mut explicit = false;
    for a in std::iter::once(sender.as_str()).chain(base.as_deref()) {
        match s.list_aliases(Some(a)) {
            Ok(v) if !v.is_empty() => explicit = true,
            Ok(_) | Err(StoreError::NotFound(_)) | Err(StoreError::Invalid(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if !explicit {
        return Ok(false);
    }
    Ok(match s.resolve(&sender)? {
        Resolved::Accounts(v) => v.iter().any(|a| a.id == account.id),
        _ => false,
    })
}

/// Usage at or over the limit, or the declared size would take it over.
fn is_full(a: &Account, declared: Option<u64>) -> bool {
    match a.effective_limit {
        None => false,
        Some(limit) => {
            a.quota_used >= limit
                || declared.is_some_and(|n| a.quota_used.saturating_add(n) > limit)
        }
    }
}

/// The command verb, upper-cased (for error replies).
fn command_word(line: &[u8]) -> String {
    let end = line
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b':')
        .unwrap_or(line.len());
    String::from_utf8_lossy(&line[..end.min(16)]).to_ascii_uppercase()
}

/// RFC 5321 4.5.1: `RCPT TO:<Postmaster>` has no domain. Rewrites it to
/// `postmaster@hostname` (resolved against the local domains later) and says so.
fn rewrite_bare_postmaster(line: &mut Vec<u8>, hostname: &str) -> bool {
    let upper = line.to_ascii_uppercase();
    let Some(rest) = upper.strip_prefix(b"RCPT TO:") else {
        return false;
    };
    let lead = rest.iter().take_while(|b| **b == b' ').count();
    let rest = &rest[lead..];
    if !rest.starts_with(b"<POSTMASTER>") {
        return false;
    }
    let at = 8 + lead + "<POSTMASTER".len();
    let mut out = line[..at].to_vec();
    out.push(b'@');
    out.extend_from_slice(hostname.as_bytes());
    out.extend_from_slice(&line[at..]);
    *line = out;
    true
}

/// A path's address: `local@domain`, the domain a name (labels; U-labels allowed for
/// SMTPUTF8) or an address literal.
fn valid_path(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || addr.len() > 512 {
        return false;
    }
    if let Some(lit) = domain.strip_prefix('[') {
        return lit.len() > 1 && lit.ends_with(']');
    }
    !domain.is_empty()
        && domain.len() <= 255
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn postmaster_rewrite() {
        let mut l = b"RCPT TO:<Postmaster> X".to_vec();
        assert!(rewrite_bare_postmaster(&mut l, "mx.example.com"));
        assert_eq!(l, b"RCPT TO:<Postmaster@mx.example.com> X");
        let mut l = b"rcpt to: <postmaster>".to_vec();
        assert!(rewrite_bare_postmaster(&mut l, "h"));
        assert_eq!(l, b"rcpt to: <postmaster@h>");
        let mut l = b"RCPT TO:<postmaster@example.com>".to_vec();
        assert!(!rewrite_bare_postmaster(&mut l, "h"));
    }

    #[test]
    fn paths() {
        assert!(valid_path("a@example.com"));
        assert!(valid_path("a@[127.0.0.1]"));
        assert!(valid_path("üser@exämple.com"));
        for bad in ["a@", "@a", "a", "a@b..c", "a@-b.c", "a@b c", "a@[]"] {
            assert!(!valid_path(bad), "{bad}");
        }
    }
}

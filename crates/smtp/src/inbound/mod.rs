//! One SMTP, LMTP or submission session: the RFC 5321 / RFC 2033 / RFC 6409 state machine.
//!
//! States: connected (greeting sent) -> greeted (EHLO/HELO, or LHLO in LMTP) -> in a
//! transaction (MAIL) -> with recipients (RCPT) -> content (DATA, or BDAT chunks) ->
//! delivered, back to greeted. RSET and a new EHLO go back to greeted from anywhere.
//! Submission adds authenticated (AUTH, RFC 4954) between greeted and MAIL.
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
//! One file per command, as in `crates/imap/src/commands/`: [`ehlo`] (EHLO, HELO, LHLO),
//! [`starttls`], [`auth`], [`mail`], [`rcpt`], [`data`] and [`bdat`] (content), [`deliver`]
//! (storing it, durability), [`rset`], [`noop`], [`quit`], [`vrfy`] (VRFY, EXPN), [`help`];
//! [`submit`]: submission's remote recipients (limits, hold, the outbound queue).

mod auth;
mod bdat;
mod counts;
mod data;
mod deliver;
mod ehlo;
mod help;
mod mail;
mod noop;
mod quit;
mod rcpt;
mod rset;
mod starttls;
mod submit;
mod vrfy;

use crate::{trace, Mode};
use letterbox_proto::budget::Reservation;
use letterbox_proto::sasl;
use letterbox_proto::{metrics, read_line, BoxStream, Context, Line, Peer};
use letterbox_store::{Account, AccountId};
use smtp_proto::{Error as ParseError, Request};
use std::io;
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
    /// Remote recipients (submission only), queued at the end of the data.
    remote: Vec<submit::RemoteRcpt>,
    /// RFC 3461 ENVID and RET=FULL from MAIL (submission only).
    envid: Option<String>,
    ret_full: bool,
    /// BODY=8BITMIME declared (RFC 6152).
    body_8bit: bool,
}

/// An accepted recipient: the address as given, and the accounts it leads to.
struct Recipient {
    address: String,
    accounts: Vec<AccountId>,
    /// Accounts behind this address (an alias) that an operator disabled: they take no
    /// copy, and the sender gets a DSN for them once the message is accepted.
    disabled: Vec<AccountId>,
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
        if (code, esc) == (552, "5.3.4") {
            // Every refusal of a message for its size goes through here.
            metrics::metrics().bounced(self.mode_name(), "size");
        }
        self.reply(code, esc, text);
        Flow::Continue
    }

    /// The listener kind, as metrics label it.
    fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Smtp => "smtp",
            Mode::Lmtp => "lmtp",
            Mode::Submission => "submission",
        }
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
                Ok(Ok(Line::Ok)) => {
                    let started = std::time::Instant::now();
                    let verb = metrics::command_label(&command_word(&self.line), SMTP_VERBS);
                    let flow = self.command().await?;
                    metrics::metrics().command(self.mode_name(), verb, started.elapsed());
                    flow
                }
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
        let bare_postmaster = rcpt::rewrite_bare_postmaster(&mut line, self.hostname());
        line.push(b'\n');
        let verb = command_word(&line);
        // smtp-proto 0.1.7 restarts a number that overflows (its "none" sentinel is
        // usize::MAX): `SIZE=` with 21 digits would parse as its last digit(s).
        let parsed = match overlong_number(&line, &verb) {
            Some(e) => Err(e),
            None => Request::parse(&mut line.iter()),
        };
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
            Request::Rset => self.rset(),
            Request::Noop { .. } => self.noop(),
            Request::Quit => self.quit(),
            Request::Vrfy { .. } => self.vrfy(),
            Request::Expn { .. } => self.expn(),
            Request::Help { .. } => self.help(),
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
}

/// For the fuzz target (`crates/smtp/fuzz`): everything a session does with a command line
/// before it needs the store: the bare-postmaster rewrite, the verb, the parser, the path
/// checks, the header sanitising, and SASL decoding of an AUTH initial response.
#[doc(hidden)]
pub fn fuzz_command_line(input: &[u8]) {
    let mut line = input.to_vec();
    let _ = rcpt::rewrite_bare_postmaster(&mut line, "mx.example.com");
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

/// The command verb, upper-cased (for error replies).
/// The verbs `letterbox_command_duration_seconds` names (others count as `OTHER`).
const SMTP_VERBS: &[&str] = &[
    "EHLO", "HELO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "EXPN",
    "HELP", "STARTTLS", "AUTH",
];

/// A number no u64 holds where the parser reads one: MAIL's `SIZE=` (RFC 1870:
/// `size-value ::= 1*20DIGIT`) or BDAT's chunk size (RFC 3030). More than 20 digits is
/// always over `u64::MAX`; the parser's own errors for these arguments are returned.
fn overlong_number(line: &[u8], verb: &str) -> Option<ParseError> {
    let too_long = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count() > 20;
    let words = || line.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty());
    match verb {
        "MAIL" => words()
            .filter(|w| w.len() > 5 && w[..5].eq_ignore_ascii_case(b"SIZE="))
            .any(|w| too_long(&w[5..]))
            .then_some(ParseError::InvalidParameter { param: "SIZE" }),
        "BDAT" => words()
            .nth(1)
            .is_some_and(too_long)
            .then_some(ParseError::SyntaxError {
                syntax: "BDAT chunk-size [LAST]",
            }),
        _ => None,
    }
}

fn command_word(line: &[u8]) -> String {
    let end = line
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b':')
        .unwrap_or(line.len());
    String::from_utf8_lossy(&line[..end.min(16)]).to_ascii_uppercase()
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

/// Whether a path's domain (not an address literal) is a valid name once mapped to its
/// A-label (RFC 5891, UTS #46): `x@xn--zz.example` with an `xn--` label that is not
/// Punycode is not. Call after [`valid_path`].
fn valid_idn(addr: &str) -> bool {
    match addr.rsplit_once('@') {
        Some((_, d)) if d.starts_with('[') => true,
        Some((_, d)) => letterbox_store::validate_domain(d).is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

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

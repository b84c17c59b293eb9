//! Mail into Letterbox: the `smtp` listener (an inbound MTA that delivers to local
//! mailboxes only, never a relay), the `lmtp` listener (RFC 2033, for use behind Postfix or
//! Exim) and the `submission` listener (RFC 6409: authenticated clients; `submissions` is
//! the same service inside implicit TLS, RFC 8314). All run the same session state machine
//! ([`inbound`]); they differ in the greeting command (EHLO/HELO or LHLO), in the replies
//! after the message data (SMTP: one; LMTP: one per accepted recipient), and in
//! authentication (submission only: AUTH is required before MAIL, and the sender must be
//! the account's own address or one of its aliases).
//!
//! Submission delivers to local recipients at once (quota, warnings) and queues the
//! message for remote ones (issue 12, [`inbound`]'s `submit.rs`: per-account limits, the
//! operator's hold, DKIM signing, the fsynced queue entry before the `250`); the queue
//! itself is `letterbox-queue`, the SMTP client `letterbox-outbound`. Port 25 and LMTP
//! deliver to local recipients only (never a relay).
//!
//! Standards:
//! - RFC 5321 (SMTP): commands, reply codes, the `Received:` trace header (4.4), limits and
//!   time-outs (4.5.3). RFC 2033 (LMTP).
//! - RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 2034/3463 enhanced status
//!   codes, RFC 2920 PIPELINING, RFC 3030 CHUNKING (BDAT). RFC 3848 names the `with`
//!   protocol in `Received:` (ESMTP, ESMTPS, LMTP, ...).
//! - RFC 3207 STARTTLS (all three services, when the server has TLS), RFC 4954 AUTH with
//!   the SASL mechanisms PLAIN (RFC 4616) and LOGIN, RFC 6409 message submission, RFC 8314
//!   implicit TLS for `submissions`.
//! - Plaintext passwords: AUTH is offered only where `Peer::plaintext_auth_allowed` (TLS,
//!   loopback, or `[auth] allow_plaintext`); elsewhere AUTH answers `538 5.7.11`. Logins go
//!   through the shared gate (`Context::login`: growing delays, blocks). Passwords and
//!   SASL payloads are never logged.
//!
//! Quota: a recipient whose mailbox is full is refused at RCPT (`552 5.2.2`) when it is
//! already full or the declared SIZE would not fit; otherwise the store refuses it at
//! delivery and the reply says so (per recipient in LMTP). A delivery that takes usage
//! across a `[quota] warn_at` threshold delivers a warning message ([`warning`]).
//!
//! Status of issue 7 here: STARTTLS on all three services, `submission`/`submissions`
//! with AUTH and sender ownership, throttled logins, fuzzing of the command-line handling
//! and content readers (`fuzz/run.sh`, libFuzzer on stable). Not yet: SASL mechanisms other than PLAIN
//! and LOGIN (no SCRAM, no EXTERNAL), an `Authenticated sender` note in `Received:`.
//!
//! Requests are parsed with the `smtp-proto` crate, one line at a time, from a line reader
//! that never holds more than `[limits] max_line_length` octets.

pub mod data;
pub mod inbound;
pub mod trace;
pub mod warning;

use letterbox_proto::{BoxStream, Context, Peer, Service};
use std::sync::Arc;

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// RFC 5321 ESMTP, inbound: local recipients only.
    Smtp,
    /// RFC 2033 LMTP: LHLO, and one reply per recipient after the data.
    Lmtp,
    /// RFC 6409 message submission: AUTH before MAIL, sender owned by the account; remote
    /// recipients go to the outbound queue.
    Submission,
}

/// The `smtp`, `lmtp` or `submission` service.
pub struct SmtpService {
    ctx: Context,
    mode: Mode,
}

impl SmtpService {
    pub fn new(ctx: Context, mode: Mode) -> SmtpService {
        SmtpService { ctx, mode }
    }
}

/// The inbound SMTP service (`[listen] smtp`).
pub fn smtp(ctx: Context) -> Arc<dyn Service> {
    Arc::new(SmtpService::new(ctx, Mode::Smtp))
}

/// The LMTP service (`[listen] lmtp`).
pub fn lmtp(ctx: Context) -> Arc<dyn Service> {
    Arc::new(SmtpService::new(ctx, Mode::Lmtp))
}

/// The message submission service (`[listen] submission`, STARTTLS; and `submissions`,
/// which the binary wraps in TLS before the session starts).
pub fn submission(ctx: Context) -> Arc<dyn Service> {
    Arc::new(SmtpService::new(ctx, Mode::Submission))
}

impl Service for SmtpService {
    fn name(&self) -> &'static str {
        match self.mode {
            Mode::Smtp => "smtp",
            Mode::Lmtp => "lmtp",
            Mode::Submission => "submission",
        }
    }

    /// RFC 5321 3.1 / 4.2.3: a server that cannot serve the client now answers `421`.
    fn busy(&self) -> &'static [u8] {
        b"421 4.7.0 Too many connections, try again later\r\n"
    }

    fn serve(
        self: Arc<Self>,
        stream: BoxStream,
        peer: Peer,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            inbound::run(self.ctx.clone(), self.mode, stream, peer).await;
        })
    }
}

#[cfg(test)]
mod tests;

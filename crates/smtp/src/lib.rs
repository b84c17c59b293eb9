//! Inbound delivery for Letterbox: the `smtp` listener (an inbound MTA that delivers to
//! local mailboxes only, never a relay) and the `lmtp` listener (RFC 2033, for use behind
//! Postfix or Exim). Both run the same session state machine ([`session`]); they differ in
//! the greeting command (EHLO/HELO or LHLO) and in the replies after the message data
//! (SMTP: one; LMTP: one per accepted recipient).
//!
//! Standards:
//! - RFC 5321 (SMTP): commands, reply codes, the `Received:` trace header (4.4), limits and
//!   time-outs (4.5.3). RFC 2033 (LMTP).
//! - RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 2034/3463 enhanced status
//!   codes, RFC 2920 PIPELINING, RFC 3030 CHUNKING (BDAT). RFC 3848 names the `with`
//!   protocol in `Received:` (ESMTP, ESMTPS, LMTP, ...).
//! - STARTTLS (RFC 3207) comes with the TLS work; see `Session::starttls` for the seam.
//!
//! Quota: a recipient whose mailbox is full is refused at RCPT (`552 5.2.2`) when it is
//! already full or the declared SIZE would not fit; otherwise the store refuses it at
//! delivery and the reply says so (per recipient in LMTP). A delivery that takes usage
//! across a `[quota] warn_at` threshold delivers a warning message ([`warning`]).
//!
//! Requests are parsed with the `smtp-proto` crate, one line at a time, from a line reader
//! that never holds more than `[limits] max_line_length` octets.

pub mod data;
pub mod session;
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
}

/// The `smtp` or `lmtp` service.
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

impl Service for SmtpService {
    fn name(&self) -> &'static str {
        match self.mode {
            Mode::Smtp => "smtp",
            Mode::Lmtp => "lmtp",
        }
    }

    fn serve(
        self: Arc<Self>,
        stream: BoxStream,
        peer: Peer,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            session::run(self.ctx.clone(), self.mode, stream, peer).await;
        })
    }
}

#[cfg(test)]
mod tests;

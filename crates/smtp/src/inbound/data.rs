//! DATA (RFC 5321 4.1.1.4): `354`, then the content up to `<CRLF>.<CRLF>`, read with
//! dot-unstuffing by [`crate::data::read_data`] within `[smtp] max_message_size` and the
//! server's content budget (`[limits] max_buffered_content`).

use super::{Flow, Session};
use crate::data::{self, Content};
use std::io;

impl Session {
    /// Checks that content may start; replies and returns the flow if not.
    pub(super) fn content_allowed(&mut self) -> Option<Flow> {
        if let Some(f) = self.need_greeting() {
            return Some(f);
        }
        let lmtp = self.lmtp();
        let Some(tx) = self.tx.as_ref() else {
            return Some(self.bad(503, "5.5.1", "Need MAIL command"));
        };
        if tx.rcpts.is_empty() && tx.remote.is_empty() {
            // RFC 2033 4.2: LMTP's DATA without a successful RCPT is 503.
            let code = if lmtp { 503 } else { 554 };
            return Some(self.bad(code, "5.5.1", "No valid recipients"));
        }
        None
    }

    pub(super) async fn data(&mut self) -> io::Result<Flow> {
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

    /// The server's budget for content in memory is spent: a temporary refusal (RFC 3463
    /// X.3.1, "mail system full"), so the sender retries; the transaction is over.
    pub(super) fn no_room(&mut self) -> Flow {
        tracing::warn!(peer = %self.peer.addr, "message refused for now: limits.max_buffered_content reached");
        self.tx = None;
        self.ok(452, "4.3.1", "Insufficient system storage, try again later")
    }
}

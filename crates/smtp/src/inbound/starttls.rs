//! STARTTLS (RFC 3207), on every service when the server has TLS and the connection is
//! not TLS yet: `220 2.0.0`, then the handshake. Whatever the client sent after STARTTLS
//! in the same plaintext batch is discarded unread (RFC 3207 section 4.2 / 6: a
//! man-in-the-middle could otherwise inject commands that would run as if protected), and
//! the session forgets everything learnt before (greeting, transaction, authentication):
//! the client must EHLO again, and sees the capabilities re-announced (without STARTTLS).
//! STARTTLS once TLS is active is a command out of sequence: `503 5.5.1` (RFC 5321 4.1.4,
//! RFC 3463 5.5.1; RFC 3207 4.2 forbids offering it again). Without TLS in the server it
//! is `502 5.5.1`. A failed handshake ends the connection (no way back to plaintext).

use super::{Flow, Session};
use letterbox_proto::BoxStream;
use std::io;
use tokio::io::BufReader;

impl Session {
    /// RFC 3207: `220`, then the TLS handshake on the same connection.
    pub(super) async fn starttls(&mut self) -> io::Result<Flow> {
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
}

//! STARTTLS (RFC 9051 6.2.1, RFC 3501 6.2.1).
//!
//! Answers `OK Begin TLS negotiation now` itself (the handshake follows that line),
//! takes the stream back from the connection — dropping anything the client pipelined
//! after the command, as RFC 9051 requires (no plaintext injection) — wraps it with the
//! server's TLS (`letterbox_proto::tls`), and goes on in the not-authenticated state
//! with `peer.tls` set, so CAPABILITY now offers AUTH=PLAIN/LOGIN everywhere.

use crate::conn::Conn;
use crate::session::{Fatal, Reply, Session, Status};

pub async fn run(s: &mut Session, tag: &str) -> Result<Reply, Fatal> {
    if s.peer.tls {
        return Ok(Reply::bad("TLS is already active"));
    }
    if s.compressed {
        // After UNAUTHENTICATE: TLS would have to go above the compression.
        return Ok(Reply::bad("STARTTLS is not allowed after COMPRESS"));
    }
    let Some(tls) = s.ctx.tls.clone() else {
        return Ok(Reply::no("TLS is not available on this listener").code("UNAVAILABLE"));
    };
    s.conn
        .push(format!("{tag} OK Begin TLS negotiation now\r\n").as_bytes());
    s.conn.flush().await?;
    let placeholder = Conn::for_config(Box::new(tokio::io::empty()), &s.ctx.config);
    let plain = std::mem::replace(&mut s.conn, placeholder).into_inner();
    match tls.accept(plain).await {
        Ok(stream) => {
            s.conn = Conn::for_config(stream, &s.ctx.config);
            s.peer.tls = true;
            Ok(Reply {
                status: Status::Sent,
                code: None,
                text: String::new(),
            })
        }
        Err(e) => {
            tracing::debug!(peer = %s.peer.addr, "imap: STARTTLS handshake failed: {e}");
            Err(Fatal::Closed)
        }
    }
}

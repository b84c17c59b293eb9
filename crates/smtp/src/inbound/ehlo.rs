//! EHLO and HELO (RFC 5321 4.1.1.1), LHLO in LMTP (RFC 2033 4.1): the greeting, which
//! resets any transaction (RFC 5321 4.1.4), and the extensions announced after EHLO/LHLO.

use super::{Flow, Session};
use crate::trace;

impl Session {
    pub(super) fn greet(&mut self, host: String, esmtp: bool) -> Flow {
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
        if self.submission() {
            // RFC 3461: NOTIFY/ORCPT on RCPT, RET/ENVID on MAIL (outbound queue, DSNs).
            lines.push("DSN".to_string());
        }
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
}

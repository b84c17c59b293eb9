//! AUTH (RFC 4954, submission only; port 25 is the inbound MTA and never offers it):
//! PLAIN (RFC 4616) and LOGIN, with or without initial response. Offered only where
//! plaintext passwords are allowed (TLS, loopback, `[auth] allow_plaintext`); elsewhere it
//! is `538 5.7.11`. Success `235 2.7.0`; wrong credentials and blocked logins get the same
//! `535 5.7.8` (the shared gate delays both and logs the reason), and at
//! `[limits] max_auth_failures` in one session `421 4.7.0` closes it; `*` cancels with
//! `501 5.7.0`; undecodable responses are `501 5.5.2`; an over-long response `500 5.5.6`;
//! the store being unavailable `454 4.7.0`. MAIL before AUTH is `530 5.7.0` (see
//! [`super::mail`] for the sender check).

use super::{Flow, Session};
use letterbox_proto::auth::Login;
use letterbox_proto::sasl::{self, SaslError};
use letterbox_proto::{read_line, Line};
use std::io;
use std::time::Duration;

/// A SASL response line, as read.
enum SaslLine {
    Text(String),
    TooLong,
    Eof,
    Timeout,
}

impl Session {
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
    pub(super) async fn auth(&mut self, mechanism: u64, initial: String) -> io::Result<Flow> {
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
        match self
            .ctx
            .login_for(
                &self.peer,
                letterbox_store::Protocol::Smtp,
                &user,
                &password,
            )
            .await
        {
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
}

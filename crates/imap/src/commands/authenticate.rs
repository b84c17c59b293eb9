//! AUTHENTICATE (RFC 9051 6.2.2) with PLAIN (RFC 4616) and LOGIN, and an initial
//! response on the command line (SASL-IR, RFC 4959). `*` cancels (`BAD`).

use super::login;
use crate::conn::ReadError;
use crate::session::{Fatal, Reply, Session};
use letterbox_proto::sasl::{self, SaslError};

async fn challenge(s: &mut Session, c: &str) -> Result<String, Fatal> {
    s.conn.push(format!("+ {c}\r\n").as_bytes());
    s.conn.flush().await?;
    match s.conn.read_line().await {
        Ok(l) => Ok(String::from_utf8_lossy(&l).into_owned()),
        Err(ReadError::LineTooLong) => Err(Fatal::Bye("[TOOBIG] Line too long".into())),
        Err(_) => Err(Fatal::Closed),
    }
}

fn sasl_reply(s: &mut Session, e: SaslError) -> Result<Reply, Fatal> {
    match e {
        SaslError::Cancelled => Ok(Reply::bad("Authentication cancelled")),
        SaslError::Malformed => Ok(Reply::bad("Malformed SASL response")),
        SaslError::AuthzidMismatch => login::failed(s),
    }
}

pub async fn run(
    s: &mut Session,
    mechanism: &str,
    initial: Option<String>,
) -> Result<Reply, Fatal> {
    if !s.peer.plaintext_auth_allowed(&s.ctx.config) {
        return Ok(Reply::no("Plaintext authentication requires TLS").code("PRIVACYREQUIRED"));
    }
    match mechanism {
        "PLAIN" => {
            let response = match initial {
                Some(r) => r,
                None => challenge(s, "").await?,
            };
            match sasl::plain(&response) {
                Ok(c) => login::check_password(s, c.user, c.password).await,
                Err(e) => sasl_reply(s, e),
            }
        }
        "LOGIN" => {
            let user = match initial {
                Some(r) => r,
                None => challenge(s, sasl::LOGIN_USER_CHALLENGE).await?,
            };
            let user = match sasl::login_step(&user) {
                Ok(u) => u,
                Err(e) => return sasl_reply(s, e),
            };
            let pass = challenge(s, sasl::LOGIN_PASS_CHALLENGE).await?;
            match sasl::login_step(&pass) {
                Ok(p) => login::check_password(s, user, p).await,
                Err(e) => sasl_reply(s, e),
            }
        }
        _ => Ok(Reply::no("Unsupported authentication mechanism").code("CANNOT")),
    }
}

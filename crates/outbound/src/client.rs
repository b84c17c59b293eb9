//! One SMTP client session to one remote host (RFC 5321 as a client): greeting, EHLO
//! (HELO when EHLO is refused), STARTTLS (RFC 3207), AUTH PLAIN to a smarthost (RFC 4954),
//! then one transaction with every recipient of the destination: MAIL, the RCPTs and DATA
//! sent in one batch when the server offers PIPELINING (RFC 2920), one at a time
//! otherwise. MAIL carries SIZE (RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531)
//! and the DSN parameters RET/ENVID, RCPT NOTIFY/ORCPT (RFC 3461) when the server offers
//! them. A message the server cannot take (too large for its SIZE, 8-bit octets without
//! 8BITMIME, a non-ASCII mailbox name or a UTF-8 header without SMTPUTF8) is refused here
//! with a permanent result and a clear reason: it is never converted or truncated.
//! Domains are sent as A-labels (RFC 5890/5891), which needs no SMTPUTF8; the SMTPUTF8
//! parameter goes with MAIL when the server offers it and the message needs it or was
//! submitted with it (RFC 6531 3.4). Without it, a recipient whose local part is not
//! ASCII is refused alone (RFC 6531 3.2); a non-ASCII sender or header refuses all.

use crate::{Envelope, RcptResult};
use letterbox_proto::BoxStream;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The longest reply line read (RFC 5321 4.5.3.1.5 says 512; servers send more).
const MAX_REPLY_LINE: usize = 4096;
/// The most lines one reply may have.
const MAX_REPLY_LINES: usize = 200;

/// A reply: its code and its text lines joined with spaces.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }
    pub fn positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
}

/// What the server announced after EHLO.
#[derive(Debug, Default, Clone)]
pub struct Caps {
    pub esmtp: bool,
    pub pipelining: bool,
    pub size: Option<u64>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub starttls: bool,
    pub auth_plain: bool,
}

impl Caps {
    fn from_reply(r: &Reply) -> Caps {
        let mut c = Caps {
            esmtp: true,
            ..Caps::default()
        };
        for l in r.lines.iter().skip(1) {
            let mut words = l.split_ascii_whitespace();
            let kw = words.next().unwrap_or("").to_ascii_uppercase();
            match kw.as_str() {
                "PIPELINING" => c.pipelining = true,
                "SIZE" => c.size = words.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0),
                "8BITMIME" => c.eight_bit = true,
                "SMTPUTF8" => c.smtputf8 = true,
                "DSN" => c.dsn = true,
                "STARTTLS" => c.starttls = true,
                "AUTH" => c.auth_plain = words.any(|w| w.eq_ignore_ascii_case("PLAIN")),
                _ => {}
            }
        }
        c
    }
}

/// A failure before any transaction: the next host may be tried.
#[derive(Debug)]
pub struct HostError {
    pub text: String,
    /// A 5xx at greeting/EHLO (the host refuses us): still worth trying the next MX.
    pub permanent: bool,
}

impl HostError {
    fn io(e: io::Error) -> HostError {
        HostError {
            text: format!("connection failed: {e}"),
            permanent: false,
        }
    }
}

pub struct Conn {
    io: BufReader<BoxStream>,
    timeout: Duration,
    pub caps: Caps,
    pub tls: bool,
}

impl Conn {
    pub fn new(stream: BoxStream, timeout: Duration, tls: bool) -> Conn {
        Conn {
            io: BufReader::with_capacity(8192, stream),
            timeout,
            caps: Caps::default(),
            tls,
        }
    }

    pub fn into_stream(self) -> BoxStream {
        self.io.into_inner()
    }

    /// Whether the server sent anything not yet read (must be nothing before STARTTLS).
    pub fn has_buffered(&self) -> bool {
        !self.io.buffer().is_empty()
    }

    pub async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let io = self.io.get_mut();
        match tokio::time::timeout(self.timeout, async {
            io.write_all(data).await?;
            io.flush().await
        })
        .await
        {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out sending")),
        }
    }

    pub async fn reply(&mut self) -> io::Result<Reply> {
        match tokio::time::timeout(self.timeout, self.read_reply()).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out waiting for a reply",
            )),
        }
    }

    async fn read_reply(&mut self) -> io::Result<Reply> {
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = (&mut self.io)
                .take(MAX_REPLY_LINE as u64)
                .read_until(b'\n', &mut buf)
                .await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by the server",
                ));
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed reply"))?;
            let sep = line.as_bytes().get(3).copied().unwrap_or(b' ');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if sep != b'-' || lines.len() >= MAX_REPLY_LINES {
                return Ok(Reply { code, lines });
            }
        }
    }

    /// Reads the greeting and says EHLO (HELO if EHLO is refused).
    pub async fn hello(&mut self, helo: &str, greeting: bool) -> Result<(), HostError> {
        if greeting {
            let g = self.reply().await.map_err(HostError::io)?;
            if !g.positive() {
                return Err(HostError {
                    text: format!("greeting: {}", g.text()),
                    permanent: !g.transient(),
                });
            }
        }
        self.send(format!("EHLO {helo}\r\n").as_bytes())
            .await
            .map_err(HostError::io)?;
        let r = self.reply().await.map_err(HostError::io)?;
        if r.positive() {
            self.caps = Caps::from_reply(&r);
            return Ok(());
        }
        self.send(format!("HELO {helo}\r\n").as_bytes())
            .await
            .map_err(HostError::io)?;
        let r2 = self.reply().await.map_err(HostError::io)?;
        if r2.positive() {
            self.caps = Caps::default();
            return Ok(());
        }
        Err(HostError {
            text: format!("EHLO: {}", r.text()),
            permanent: !r2.transient(),
        })
    }

    /// AUTH PLAIN (RFC 4954, RFC 4616).
    pub async fn auth_plain(&mut self, user: &str, password: &str) -> Result<(), HostError> {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{user}\0{password}").as_bytes());
        self.send(format!("AUTH PLAIN {token}\r\n").as_bytes())
            .await
            .map_err(HostError::io)?;
        let r = self.reply().await.map_err(HostError::io)?;
        if r.positive() {
            Ok(())
        } else {
            Err(HostError {
                text: format!("relay AUTH: {}", r.text()),
                permanent: false,
            })
        }
    }

    pub async fn quit(&mut self) {
        if self.send(b"QUIT\r\n").await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.read_reply()).await;
        }
    }

    /// One transaction for every recipient of `env`. Returns one result per recipient,
    /// in order.
    pub async fn transaction(&mut self, env: &Envelope<'_>) -> Vec<RcptResult> {
        let n = env.rcpts.len();
        let perm = |text: String| vec![RcptResult::Perm(text); n];
        // What the message needs, checked before anything is sent.
        let size = env.body.len() as u64;
        if let Some(max) = self.caps.size {
            if size > max {
                return perm(format!(
                    "552 5.3.4 Message too big for the remote server: {size} octets, it accepts at most {max} (SIZE)"
                ));
            }
        }
        let eight_bit = env.body_8bit || env.body.iter().any(|b| *b >= 0x80);
        if eight_bit && !self.caps.eight_bit {
            return perm(
                "554 5.6.3 The message has 8-bit content and the remote server does not offer 8BITMIME; it was not converted"
                    .to_string(),
            );
        }
        // RFC 6531 3.2 with RFC 5890/5891: domains go as A-labels (`crate::wire_address`),
        // so only a non-ASCII local part, or UTF-8 in the header (RFC 6532), needs
        // SMTPUTF8. Without it at the server, such a recipient (or, for the sender or the
        // header, the whole message) is bounced here, never sent malformed or downgraded.
        let sender = crate::wire_address(env.sender);
        let wire: Vec<String> = env
            .rcpts
            .iter()
            .map(|r| crate::wire_address(r.address))
            .collect();
        let header_utf8 = header_section(env.body).iter().any(|b| *b >= 0x80);
        let mut results: Vec<Option<RcptResult>> = vec![None; n];
        if !self.caps.smtputf8 {
            let whole = if !sender.is_ascii() {
                Some(format!(
                    "the sender's mailbox name <{}> is not ASCII",
                    env.sender
                ))
            } else if header_utf8 {
                Some("its header has UTF-8 (RFC 6532)".to_string())
            } else {
                None
            };
            if let Some(why) = whole {
                return perm(format!(
                    "553 5.6.7 The message needs SMTPUTF8 ({why}) and the remote server does not offer it (RFC 6531 3.2); it was not sent"
                ));
            }
            for ((slot, w), r) in results.iter_mut().zip(&wire).zip(&env.rcpts) {
                if !w.is_ascii() {
                    *slot = Some(RcptResult::Perm(format!(
                        "553 5.6.7 The recipient's mailbox name <{}> is not ASCII and the remote server does not offer SMTPUTF8 (RFC 6531 3.2); it was not sent",
                        r.address
                    )));
                }
            }
            if results.iter().all(|r| r.is_some()) {
                return results.into_iter().flatten().collect();
            }
        }
        let utf8 = self.caps.smtputf8
            && (env.smtputf8
                || header_utf8
                || !sender.is_ascii()
                || wire.iter().any(|w| !w.is_ascii()));
        let mut mail = format!("MAIL FROM:<{sender}>");
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if eight_bit {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }
        if self.caps.dsn {
            if env.ret_full {
                mail.push_str(" RET=FULL");
            }
            if let Some(id) = env.envid {
                mail.push_str(&format!(" ENVID={}", xtext(id)));
            }
        }
        mail.push_str("\r\n");
        // `None` for a recipient already refused above: it is not sent.
        let rcpt_lines: Vec<Option<String>> = env
            .rcpts
            .iter()
            .zip(&wire)
            .zip(&results)
            .map(|((r, w), refused)| {
                if refused.is_some() {
                    return None;
                }
                let mut l = format!("RCPT TO:<{w}>");
                if self.caps.dsn {
                    if let Some(notify) = notify_param(r.notify) {
                        l.push_str(&format!(" NOTIFY={notify}"));
                    }
                    if let Some(o) = r.orcpt {
                        l.push_str(&format!(" ORCPT=rfc822;{}", xtext(o)));
                    }
                }
                l.push_str("\r\n");
                Some(l)
            })
            .collect();
        let temp_all = |text: String| vec![RcptResult::Temp(text); n];
        let mail_reply;
        let data_reply;
        if self.caps.pipelining {
            let mut batch = mail.clone();
            for l in rcpt_lines.iter().flatten() {
                batch.push_str(l);
            }
            batch.push_str("DATA\r\n");
            if let Err(e) = self.send(batch.as_bytes()).await {
                return temp_all(format!(
                    "451 4.4.2 lost connection sending the envelope: {e}"
                ));
            }
            mail_reply = match self.reply().await {
                Ok(r) => r,
                Err(e) => return temp_all(format!("451 4.4.2 no reply to MAIL: {e}")),
            };
            for (slot, _) in results
                .iter_mut()
                .zip(&rcpt_lines)
                .filter(|(_, l)| l.is_some())
            {
                match self.reply().await {
                    Ok(r) => *slot = rcpt_outcome(&r),
                    Err(e) => return temp_all(format!("451 4.4.2 no reply to RCPT: {e}")),
                }
            }
            data_reply = match self.reply().await {
                Ok(r) => r,
                Err(e) => return temp_all(format!("451 4.4.2 no reply to DATA: {e}")),
            };
        } else {
            if let Err(e) = self.send(mail.as_bytes()).await {
                return temp_all(format!("451 4.4.2 lost connection: {e}"));
            }
            mail_reply = match self.reply().await {
                Ok(r) => r,
                Err(e) => return temp_all(format!("451 4.4.2 no reply to MAIL: {e}")),
            };
            if mail_reply.positive() {
                for (slot, l) in results.iter_mut().zip(&rcpt_lines) {
                    let Some(l) = l else { continue };
                    if let Err(e) = self.send(l.as_bytes()).await {
                        return temp_all(format!("451 4.4.2 lost connection: {e}"));
                    }
                    match self.reply().await {
                        Ok(r) => *slot = rcpt_outcome(&r),
                        Err(e) => return temp_all(format!("451 4.4.2 no reply to RCPT: {e}")),
                    }
                }
            }
            if !mail_reply.positive() || results.iter().all(|r| r.is_some()) {
                return finish_refused(&mail_reply, results, &rcpt_lines);
            }
            if let Err(e) = self.send(b"DATA\r\n").await {
                return temp_all(format!("451 4.4.2 lost connection: {e}"));
            }
            data_reply = match self.reply().await {
                Ok(r) => r,
                Err(e) => return temp_all(format!("451 4.4.2 no reply to DATA: {e}")),
            };
        }
        if !mail_reply.positive() || results.iter().all(|r| r.is_some()) {
            // Nothing accepted: the DATA reply (an error) does not matter. (A server
            // that answered 354 anyway gets no content: the caller closes the connection.)
            return finish_refused(&mail_reply, results, &rcpt_lines);
        }
        if data_reply.code != 354 {
            let r = outcome_of(&data_reply, "DATA");
            return results
                .into_iter()
                .map(|s| s.unwrap_or_else(|| r.clone()))
                .collect();
        }
        let body = dot_stuff(env.body);
        if let Err(e) = self.send(&body).await {
            return results
                .into_iter()
                .map(|s| {
                    s.unwrap_or_else(|| {
                        RcptResult::Temp(format!(
                            "451 4.4.2 lost connection sending the message: {e}"
                        ))
                    })
                })
                .collect();
        }
        let end = match self.reply().await {
            Ok(r) => r,
            Err(e) => {
                return results
                    .into_iter()
                    .map(|s| {
                        s.unwrap_or_else(|| {
                            RcptResult::Temp(format!("451 4.4.2 no reply after the message: {e}"))
                        })
                    })
                    .collect()
            }
        };
        let r = if end.positive() {
            RcptResult::Delivered(end.text())
        } else {
            outcome_of(&end, "end of data")
        };
        results
            .into_iter()
            .map(|s| s.unwrap_or_else(|| r.clone()))
            .collect()
    }
}

/// The header section of a message (up to the blank line; all of it when there is none).
fn header_section(body: &[u8]) -> &[u8] {
    let end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(body.len());
    &body[..end]
}

/// `None` for an accepted recipient (its outcome waits for the data), else its failure.
fn rcpt_outcome(r: &Reply) -> Option<RcptResult> {
    if r.positive() {
        None
    } else {
        Some(outcome_of(r, "RCPT"))
    }
}

fn outcome_of(r: &Reply, stage: &str) -> RcptResult {
    let text = format!("{} (in reply to {stage})", r.text());
    if r.transient() {
        RcptResult::Temp(text)
    } else {
        RcptResult::Perm(text)
    }
}

/// Outcomes when nothing was accepted; `lines[i]` is `None` for a recipient refused
/// before the transaction, which keeps its own reason.
fn finish_refused(
    mail: &Reply,
    results: Vec<Option<RcptResult>>,
    lines: &[Option<String>],
) -> Vec<RcptResult> {
    let m = outcome_of(mail, "MAIL");
    results
        .into_iter()
        .zip(lines)
        .map(|(s, l)| match s {
            Some(r) if l.is_none() => r,
            _ if !mail.positive() => m.clone(),
            s => {
                s.unwrap_or_else(|| RcptResult::Temp("451 4.4.2 transaction not completed".into()))
            }
        })
        .collect()
}

fn notify_param(bits: u8) -> Option<String> {
    if bits == 0 {
        return None;
    }
    if bits & 8 != 0 {
        return Some("NEVER".into());
    }
    let mut v = Vec::new();
    if bits & 1 != 0 {
        v.push("SUCCESS");
    }
    if bits & 2 != 0 {
        v.push("FAILURE");
    }
    if bits & 4 != 0 {
        v.push("DELAY");
    }
    Some(v.join(","))
}

/// RFC 3461 4: xtext, `+XX` for octets outside `!`..`~` and for `+` and `=`.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// RFC 5321 4.5.2: a line starting with `.` gets another; the content ends with
/// `CRLF.CRLF`. The stored message has CRLF line ends.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 5);
    let mut at_line_start = true;
    for &b in body {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(b".x"), b"..x\r\n.\r\n");
    }

    #[test]
    fn notify() {
        assert_eq!(notify_param(2 | 4).as_deref(), Some("FAILURE,DELAY"));
        assert_eq!(notify_param(8).as_deref(), Some("NEVER"));
        assert_eq!(notify_param(0), None);
    }
}

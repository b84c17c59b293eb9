//! Minimal protocol clients written for the benchmark: LMTP/SMTP (RFC 2033, RFC 5321),
//! POP3 (RFC 1939) and IMAP4rev1 (RFC 3501, IDLE RFC 2177). They speak just enough of each
//! protocol to drive the workloads, and they check every reply: an unexpected answer is an
//! error, which the workload turns into FAIL.
//!
//! The response parsing is in plain functions (`smtp_reply_line`, `pop3_stat`,
//! `pop3_unstuff`, `imap_literal_len`, `imap_tagged`, `imap_exists`, `imap_search`) so
//! it can be unit-tested without a server.

use anyhow::{anyhow, bail, Context as _, Result};
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// Longest line we accept from a server (a FETCH line is short, literals are read apart;
/// `* THREAD` of 100,000 messages is a few MB).
const MAX_LINE: usize = 1 << 26;

/// A buffered connection.
pub struct Conn {
    s: BufStream<TcpStream>,
    /// Octets read and written so far (the resync workload's "bytes exchanged").
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Conn> {
        let t = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        t.set_nodelay(true)?;
        Ok(Conn {
            s: BufStream::with_capacity(64 * 1024, 64 * 1024, t),
            bytes_in: 0,
            bytes_out: 0,
        })
    }

    /// One line including its CRLF; an error at end of stream.
    pub async fn line(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(128);
        let n = (&mut self.s)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        self.bytes_in += n as u64;
        if !buf.ends_with(b"\n") {
            bail!("line longer than {MAX_LINE} octets or truncated");
        }
        Ok(buf)
    }

    /// One line including its CRLF, appended to `buf`; an error at end of stream.
    pub async fn line_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let start = buf.len();
        let n = (&mut self.s)
            .take(MAX_LINE as u64)
            .read_until(b'\n', buf)
            .await?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        self.bytes_in += n as u64;
        if !buf[start..].ends_with(b"\n") {
            bail!("line longer than {MAX_LINE} octets or truncated");
        }
        Ok(())
    }

    pub async fn exact(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0; n];
        self.s.read_exact(&mut buf).await?;
        self.bytes_in += n as u64;
        Ok(buf)
    }

    pub async fn send(&mut self, data: &[u8]) -> Result<()> {
        self.bytes_out += data.len() as u64;
        self.s.write_all(data).await?;
        self.s.flush().await?;
        Ok(())
    }

    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.bytes_out += data.len() as u64;
        self.s.write_all(data).await?;
        Ok(())
    }
}

fn show(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    let s = s.trim_end();
    if s.len() > 200 {
        format!("{}...", &s[..s.floor_char_boundary(200)])
    } else {
        s.to_string()
    }
}

// ------------------------------------------------------------------------------------
// SMTP / LMTP

/// One reply line: `(code, last line?, text)`; `None` when it is not a reply line.
pub fn smtp_reply_line(line: &[u8]) -> Option<(u16, bool, String)> {
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = std::str::from_utf8(&line[..3]).ok()?.parse().ok()?;
    let last = match line.get(3) {
        None | Some(b' ') | Some(b'\r') | Some(b'\n') => true,
        Some(b'-') => false,
        _ => return None,
    };
    let text = String::from_utf8_lossy(line.get(4..).unwrap_or(b""))
        .trim_end()
        .to_string();
    Some((code, last, text))
}

/// Dot-stuffs a message for DATA (RFC 5321 4.5.2) and appends the terminating dot line.
pub fn dot_stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 64);
    let mut start = true;
    for &b in msg {
        if start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

pub struct Smtp {
    c: Conn,
    lmtp: bool,
    size: bool,
}

impl Smtp {
    pub async fn connect(addr: SocketAddr, lmtp: bool) -> Result<Smtp> {
        let mut s = Smtp {
            c: Conn::connect(addr).await?,
            lmtp,
            size: false,
        };
        s.expect(220).await.context("greeting")?;
        let hello = if lmtp { "LHLO" } else { "EHLO" };
        s.c.send(format!("{hello} bench.localhost\r\n").as_bytes())
            .await?;
        let caps = s.expect(250).await.context(hello)?;
        s.size = caps
            .lines()
            .any(|l| l.eq_ignore_ascii_case("SIZE") || l.to_ascii_uppercase().starts_with("SIZE "));
        Ok(s)
    }

    async fn reply(&mut self) -> Result<(u16, String)> {
        let mut text = String::new();
        loop {
            let line = self.c.line().await?;
            let (code, last, t) =
                smtp_reply_line(&line).ok_or_else(|| anyhow!("bad reply {:?}", show(&line)))?;
            text.push_str(&t);
            if last {
                return Ok((code, text));
            }
            text.push('\n');
        }
    }

    async fn expect(&mut self, code: u16) -> Result<String> {
        let (c, t) = self.reply().await?;
        if c != code {
            bail!("expected {code}, got {c} {t}");
        }
        Ok(t)
    }

    /// One transaction; every recipient must be accepted and the message stored for each.
    pub async fn deliver(&mut self, from: &str, rcpts: &[String], msg: &[u8]) -> Result<()> {
        let mail = if self.size {
            format!("MAIL FROM:<{from}> SIZE={}\r\n", msg.len())
        } else {
            format!("MAIL FROM:<{from}>\r\n")
        };
        self.c.send(mail.as_bytes()).await?;
        self.expect(250).await.context("MAIL FROM")?;
        for r in rcpts {
            self.c.send(format!("RCPT TO:<{r}>\r\n").as_bytes()).await?;
            self.expect(250)
                .await
                .with_context(|| format!("RCPT TO {r}"))?;
        }
        self.c.send(b"DATA\r\n").await?;
        self.expect(354).await.context("DATA")?;
        self.c.send(&dot_stuff(msg)).await?;
        let replies = if self.lmtp { rcpts.len() } else { 1 };
        for _ in 0..replies {
            self.expect(250).await.context("end of data")?;
        }
        Ok(())
    }

    pub async fn quit(mut self) -> Result<()> {
        self.c.send(b"QUIT\r\n").await?;
        self.expect(221).await?;
        Ok(())
    }
}

// ------------------------------------------------------------------------------------
// POP3

/// `+OK n size` of STAT.
pub fn pop3_stat(line: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(line).ok()?;
    let mut it = s.strip_prefix("+OK ")?.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Removes the byte-stuffing of one line of a multi-line response; `None` for the
/// terminating `.` line.
pub fn pop3_unstuff(line: &[u8]) -> Option<&[u8]> {
    if line == b".\r\n" || line == b".\n" {
        None
    } else if line.starts_with(b".") {
        Some(&line[1..])
    } else {
        Some(line)
    }
}

pub struct Pop3 {
    c: Conn,
}

impl Pop3 {
    pub async fn connect(addr: SocketAddr) -> Result<Pop3> {
        let mut p = Pop3 {
            c: Conn::connect(addr).await?,
        };
        p.ok().await.context("greeting")?;
        Ok(p)
    }

    async fn ok(&mut self) -> Result<Vec<u8>> {
        let line = self.c.line().await?;
        if !line.starts_with(b"+OK") {
            bail!("{}", show(&line));
        }
        Ok(line)
    }

    pub async fn cmd(&mut self, cmd: &str) -> Result<Vec<u8>> {
        self.c.send(format!("{cmd}\r\n").as_bytes()).await?;
        self.ok()
            .await
            .with_context(|| cmd.split(' ').next().unwrap_or("").to_string())
    }

    pub async fn login(addr: SocketAddr, user: &str, pass: &str) -> Result<Pop3> {
        let mut p = Pop3::connect(addr).await?;
        p.cmd(&format!("USER {user}")).await?;
        p.cmd(&format!("PASS {pass}")).await.context("PASS")?;
        Ok(p)
    }

    pub async fn stat(&mut self) -> Result<(u64, u64)> {
        let l = self.cmd("STAT").await?;
        pop3_stat(&l).ok_or_else(|| anyhow!("bad STAT {:?}", show(&l)))
    }

    /// A multi-line command's body, unstuffed (lines keep their CRLF).
    pub async fn multi(&mut self, cmd: &str) -> Result<Vec<u8>> {
        self.cmd(cmd).await?;
        let mut out = Vec::new();
        loop {
            let line = self.c.line().await?;
            match pop3_unstuff(&line) {
                None => return Ok(out),
                Some(l) => out.extend_from_slice(l),
            }
        }
    }

    /// [`Pop3::multi`] into `out` (appended), reading lines straight into it.
    pub async fn multi_into(&mut self, cmd: &str, out: &mut Vec<u8>) -> Result<()> {
        self.cmd(cmd).await?;
        loop {
            let start = out.len();
            self.c.line_into(out).await?;
            let line = &out[start..];
            if line == b".\r\n" || line == b".\n" {
                out.truncate(start);
                return Ok(());
            }
            if line.starts_with(b".") {
                out.remove(start);
            }
        }
    }

    /// `LIST`: (message number, size) pairs.
    pub async fn list(&mut self) -> Result<Vec<(u64, u64)>> {
        let body = self.multi("LIST").await?;
        body.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty() && *l != b"\r")
            .map(|l| {
                let s = String::from_utf8_lossy(l);
                let mut it = s.split_whitespace();
                let n = it.next().and_then(|x| x.parse().ok());
                let z = it.next().and_then(|x| x.parse().ok());
                n.zip(z).ok_or_else(|| anyhow!("bad LIST line {s:?}"))
            })
            .collect()
    }

    pub async fn quit(mut self) -> Result<()> {
        self.cmd("QUIT").await?;
        Ok(())
    }
}

// ------------------------------------------------------------------------------------
// IMAP

/// The octet count of a literal announced at the end of a line (`{123}` or `{123+}`).
pub fn imap_literal_len(line: &[u8]) -> Option<usize> {
    let l = line.strip_suffix(b"\r\n").or(line.strip_suffix(b"\n"))?;
    let l = l.strip_suffix(b"}")?;
    let open = l.iter().rposition(|&b| b == b'{')?;
    let n = &l[open + 1..];
    let n = n.strip_suffix(b"+").unwrap_or(n);
    if n.is_empty() || !n.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(n).ok()?.parse().ok()
}

/// A tagged completion `TAG OK|NO|BAD text` for `tag`: `(status, text)`.
pub fn imap_tagged<'a>(line: &'a [u8], tag: &str) -> Option<(&'a str, &'a str)> {
    let s = std::str::from_utf8(line).ok()?;
    let rest = s.strip_prefix(tag)?.strip_prefix(' ')?;
    let (status, text) = rest.split_once(' ').unwrap_or((rest.trim_end(), ""));
    Some((status.trim_end(), text.trim_end()))
}

/// `* N EXISTS`.
pub fn imap_exists(line: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(line).ok()?;
    let mut it = s.strip_prefix("* ")?.split_whitespace();
    let n = it.next()?.parse().ok()?;
    it.next()?.eq_ignore_ascii_case("EXISTS").then_some(n)
}

/// `* SEARCH 1 2 3` (numbers).
pub fn imap_search(line: &[u8]) -> Option<Vec<u64>> {
    let s = std::str::from_utf8(line).ok()?;
    let rest = s.strip_prefix("* ")?;
    let (word, nums) = rest.split_once(' ').unwrap_or((rest.trim_end(), ""));
    if !word.trim_end().eq_ignore_ascii_case("SEARCH") {
        return None;
    }
    nums.split_whitespace().map(|n| n.parse().ok()).collect()
}

/// A `sequence-set` of numbers (no `*`) expanded, e.g. `3:5,9` to 3, 4, 5, 9.
pub fn imap_seq_set(s: &str) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    for part in s.trim().split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
        out.extend(a.min(b)..=a.max(b));
    }
    Some(out)
}

/// `* VANISHED [(EARLIER) ]uid-set` (RFC 7162): the UIDs.
pub fn imap_vanished(line: &[u8]) -> Option<Vec<u64>> {
    let s = std::str::from_utf8(line).ok()?;
    let rest = s.strip_prefix("* VANISHED ")?;
    let rest = rest.strip_prefix("(EARLIER) ").unwrap_or(rest);
    imap_seq_set(rest)
}

/// A `* n FETCH (... UID u ...)` line: u.
pub fn imap_fetch_uid(line: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(line).ok()?;
    let i = s.find(" FETCH (")?;
    let rest = &s[i + 8..];
    let j = rest.find("UID ")?;
    if j > 0 && !rest[..j].ends_with(' ') {
        return None;
    }
    rest[j + 4..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// `[NAME n]` response code anywhere in a line (e.g. `HIGHESTMODSEQ`, `UIDVALIDITY`).
pub fn imap_code_number(line: &[u8], name: &str) -> Option<u64> {
    let s = std::str::from_utf8(line).ok()?;
    let i = s.find(&format!("[{name} "))?;
    s[i + name.len() + 2..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// `* STATUS box (MESSAGES n ...)`: the MESSAGES value.
pub fn imap_status_messages(line: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(line).ok()?;
    let up = s.to_ascii_uppercase();
    if !up.starts_with("* STATUS ") {
        return None;
    }
    let i = up.rfind("MESSAGES ")?;
    s[i + 9..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// One response line with its literals read in full (the line text keeps the `{n}`
/// markers; `literals` holds their contents in order).
#[derive(Debug, Default)]
pub struct ImapLine {
    pub text: Vec<u8>,
    pub literals: Vec<Vec<u8>>,
}

/// A command's untagged lines and its tagged status.
#[derive(Debug)]
pub struct ImapResp {
    pub lines: Vec<ImapLine>,
    #[allow(dead_code)]
    pub text: String,
}

pub struct Imap {
    c: Conn,
    n: u64,
}

impl Imap {
    pub async fn connect(addr: SocketAddr) -> Result<Imap> {
        let mut i = Imap {
            c: Conn::connect(addr).await?,
            n: 0,
        };
        let g = i.c.line().await?;
        if !g.starts_with(b"* OK") {
            bail!("greeting {}", show(&g));
        }
        Ok(i)
    }

    pub async fn login(addr: SocketAddr, user: &str, pass: &str) -> Result<Imap> {
        let mut i = Imap::connect(addr).await?;
        i.cmd(&format!("LOGIN \"{user}\" \"{pass}\"")).await?;
        Ok(i)
    }

    async fn read(&mut self) -> Result<ImapLine> {
        let mut l = ImapLine::default();
        loop {
            let line = self.c.line().await?;
            let lit = imap_literal_len(&line);
            l.text.extend_from_slice(&line);
            match lit {
                Some(n) => l.literals.push(self.c.exact(n).await?),
                None => return Ok(l),
            }
        }
    }

    fn next_tag(&mut self) -> String {
        self.n += 1;
        format!("b{}", self.n)
    }

    async fn finish(&mut self, tag: &str, what: &str) -> Result<ImapResp> {
        let mut lines = Vec::new();
        loop {
            let l = self.read().await?;
            if let Some((status, text)) = imap_tagged(&l.text, tag) {
                if status.eq_ignore_ascii_case("OK") {
                    return Ok(ImapResp {
                        lines,
                        text: text.to_string(),
                    });
                }
                bail!("{what}: {status} {text}");
            }
            if l.text.starts_with(b"* BYE") && what != "LOGOUT" {
                bail!("{what}: {}", show(&l.text));
            }
            lines.push(l);
        }
    }

    /// Sends one command and reads its whole response; NO/BAD are errors.
    pub async fn cmd(&mut self, cmd: &str) -> Result<ImapResp> {
        let tag = self.next_tag();
        self.c.send(format!("{tag} {cmd}\r\n").as_bytes()).await?;
        let what = cmd.split(' ').take(2).collect::<Vec<_>>().join(" ");
        let what = if cmd.starts_with("LOGIN") {
            "LOGIN".to_string()
        } else {
            what
        };
        self.finish(&tag, &what).await
    }

    /// APPEND with a synchronizing literal.
    pub async fn append(&mut self, mailbox: &str, flags: &str, msg: &[u8]) -> Result<ImapResp> {
        let tag = self.next_tag();
        self.c
            .send(format!("{tag} APPEND {mailbox} ({flags}) {{{}}}\r\n", msg.len()).as_bytes())
            .await?;
        loop {
            let l = self.read().await?;
            if l.text.starts_with(b"+") {
                break;
            }
            if let Some((status, text)) = imap_tagged(&l.text, &tag) {
                bail!("APPEND: {status} {text}");
            }
        }
        self.c.write(msg).await?;
        self.c.send(b"\r\n").await?;
        self.finish(&tag, "APPEND").await
    }

    /// Starts IDLE and waits for the continuation.
    pub async fn idle(&mut self) -> Result<String> {
        let tag = self.next_tag();
        self.c.send(format!("{tag} IDLE\r\n").as_bytes()).await?;
        loop {
            let l = self.read().await?;
            if l.text.starts_with(b"+") {
                return Ok(tag);
            }
            if let Some((status, text)) = imap_tagged(&l.text, &tag) {
                bail!("IDLE: {status} {text}");
            }
        }
    }

    /// In IDLE: waits for `* N EXISTS` and returns N.
    pub async fn wait_exists(&mut self) -> Result<u64> {
        loop {
            let l = self.read().await?;
            if let Some(n) = imap_exists(&l.text) {
                return Ok(n);
            }
            if l.text.starts_with(b"* BYE") {
                bail!("{}", show(&l.text));
            }
        }
    }

    pub async fn done(&mut self, tag: &str) -> Result<()> {
        self.c.send(b"DONE\r\n").await?;
        self.finish(tag, "IDLE").await?;
        Ok(())
    }

    /// Octets (read, written) on this connection so far.
    pub fn bytes(&self) -> (u64, u64) {
        (self.c.bytes_in, self.c.bytes_out)
    }

    pub async fn logout(mut self) -> Result<()> {
        self.cmd("LOGOUT").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_replies() {
        assert_eq!(
            smtp_reply_line(b"250-PIPELINING\r\n"),
            Some((250, false, "PIPELINING".into()))
        );
        assert_eq!(
            smtp_reply_line(b"250 2.1.5 Ok\r\n"),
            Some((250, true, "2.1.5 Ok".into()))
        );
        assert_eq!(smtp_reply_line(b"354\r\n"), Some((354, true, "".into())));
        assert_eq!(smtp_reply_line(b"hello\r\n"), None);
        assert_eq!(smtp_reply_line(b"25x ok\r\n"), None);
        assert_eq!(
            dot_stuff(b"a\r\n.b\r\n..\r\n"),
            b"a\r\n..b\r\n...\r\n.\r\n".to_vec()
        );
        assert_eq!(dot_stuff(b".x"), b"..x\r\n.\r\n".to_vec());
    }

    #[test]
    fn pop3_responses() {
        assert_eq!(pop3_stat(b"+OK 12 34567\r\n"), Some((12, 34567)));
        assert_eq!(pop3_stat(b"-ERR no\r\n"), None);
        assert_eq!(pop3_stat(b"+OK\r\n"), None);
        assert_eq!(pop3_unstuff(b".\r\n"), None);
        assert_eq!(pop3_unstuff(b"..x\r\n"), Some(&b".x\r\n"[..]));
        assert_eq!(pop3_unstuff(b"plain\r\n"), Some(&b"plain\r\n"[..]));
    }

    #[test]
    fn imap_responses() {
        assert_eq!(imap_literal_len(b"* 1 FETCH (BODY[] {123}\r\n"), Some(123));
        assert_eq!(imap_literal_len(b"a APPEND INBOX {5+}\r\n"), Some(5));
        assert_eq!(imap_literal_len(b"* OK {x}\r\n"), None);
        assert_eq!(imap_literal_len(b"* OK done\r\n"), None);
        assert_eq!(
            imap_tagged(b"b7 OK [READ-WRITE] SELECT completed\r\n", "b7"),
            Some(("OK", "[READ-WRITE] SELECT completed"))
        );
        assert_eq!(imap_tagged(b"b7 NO\r\n", "b7"), Some(("NO", "")));
        assert_eq!(imap_tagged(b"b71 OK x\r\n", "b7"), None);
        assert_eq!(imap_tagged(b"* OK x\r\n", "b7"), None);
        assert_eq!(imap_exists(b"* 42 EXISTS\r\n"), Some(42));
        assert_eq!(imap_exists(b"* 42 RECENT\r\n"), None);
        assert_eq!(imap_search(b"* SEARCH 3 17\r\n"), Some(vec![3, 17]));
        assert_eq!(imap_search(b"* SEARCH\r\n"), Some(vec![]));
        assert_eq!(imap_search(b"* 3 EXISTS\r\n"), None);
        assert_eq!(
            imap_status_messages(b"* STATUS INBOX (MESSAGES 231 UIDNEXT 44292)\r\n"),
            Some(231)
        );
        assert_eq!(
            imap_status_messages(b"* STATUS \"a b\" (UIDNEXT 9 MESSAGES 0)\r\n"),
            Some(0)
        );
        assert_eq!(
            imap_vanished(b"* VANISHED (EARLIER) 3:5,9\r\n"),
            Some(vec![3, 4, 5, 9])
        );
        assert_eq!(imap_vanished(b"* VANISHED 7\r\n"), Some(vec![7]));
        assert_eq!(imap_vanished(b"* 7 EXPUNGE\r\n"), None);
        assert_eq!(
            imap_fetch_uid(b"* 3 FETCH (UID 12 FLAGS (\\Seen) MODSEQ (5))\r\n"),
            Some(12)
        );
        assert_eq!(imap_fetch_uid(b"* 3 FETCH (FLAGS () UID 12)\r\n"), Some(12));
        assert_eq!(imap_fetch_uid(b"* 3 FETCH (FLAGS ())\r\n"), None);
        assert_eq!(
            imap_code_number(b"* OK [HIGHESTMODSEQ 715] Highest\r\n", "HIGHESTMODSEQ"),
            Some(715)
        );
        assert_eq!(
            imap_code_number(b"* OK [UIDVALIDITY 9] x\r\n", "HIGHESTMODSEQ"),
            None
        );
    }
}

//! `letterbox import imap`: an account pulled from any IMAP server (RFC 9051, and the
//! RFC 3501 servers still in the field), for sources whose files we cannot read.
//!
//! What is read, over one client connection (`imap://` with STARTTLS when the server
//! offers it, RFC 9051 6.2.1; or `imaps://`, RFC 8314 3.2; certificates checked against
//! the system's roots plus `--tls-ca-file`):
//! - folders: `LIST "" "*"` (RFC 9051 6.3.9), names kept in the modified UTF-7 the
//!   server sends (RFC 3501 5.1.3), the source's hierarchy delimiter made `/`; `\Noselect`
//!   and `\NonExistent` entries are not folders; special-use attributes (RFC 6154, asked
//!   with `RETURN (SPECIAL-USE)` when the server has the capability) or a well-known name
//!   put a folder into the account's own `\Sent`, `\Trash`...;
//! - subscriptions: `LSUB "" "*"` (RFC 3501 6.3.9; still answered by RFC 9051 servers);
//! - per folder, with `EXAMINE` (read-only, so nothing loses `\Recent` or gains `\Seen`):
//!   UIDVALIDITY and UIDNEXT, then `UID FETCH 1:* (UID FLAGS INTERNALDATE)` and the bodies
//!   with `BODY.PEEK[]` (RFC 9051 6.4.5), in batches, each message stored as it arrives.
//!
//! Identities: IMAP shows each folder's UIDVALIDITY and each message's UID, and the store
//! can take given UIDs (`import.rs`), so they are kept: an IMAP client's cache stays valid
//! (RFC 9051 2.3.1.1), where imapsync-style copies give new ones. POP3 UIDLs cannot be
//! read over IMAP; `--pop3-uidl-format` rebuilds them when the source made them from UID
//! and UIDVALIDITY (Dovecot's default `%08Xu%08Xv`), otherwise leave-on-server POP3
//! clients download the INBOX again, and the summary says so.
//!
//! Restart: each message is keyed by source, folder, UIDVALIDITY and UID; a rerun asks the
//! store which keys it holds and fetches only the others. A message the source cannot
//! give (a `NO` to its FETCH, a body over `[import] max_message_size`) is listed and
//! skipped; a refused login, a lost connection or a timeout (`[import] imap_timeout`)
//! stops the run with one line, and a rerun resumes.

use crate::maildir::{expand_uidl, target_name};
use crate::mbox::days_from_civil;
use crate::{to_crlf, Error, Progress, Result, Summary};
use letterbox_store::{
    Account, Backend, Flags, ImportMessage, Imported, NewMessage, SpecialUse, DELIMITER,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// UIDs asked for in one `UID FETCH ... BODY.PEEK[]` command.
const FETCH_BATCH: usize = 200;
/// Longest response line (outside literals) accepted from the source.
const MAX_LINE: usize = 1 << 20;
/// Progress is reported every this many messages within a folder.
const PROGRESS_EVERY: u64 = 1000;

/// Options of `letterbox import imap`.
#[derive(Debug, Clone)]
pub struct Options {
    /// `imap://host[:port]` or `imaps://host[:port]`.
    pub url: String,
    pub user: String,
    pub password: String,
    pub merge: bool,
    /// The source's POP3 UIDL format, when it made UIDLs from UID and UIDVALIDITY.
    pub pop3_uidl_format: Option<String>,
    /// Extra trusted certificates (PEM), e.g. the source's self-signed one.
    pub tls_ca_file: Option<PathBuf>,
    /// Allow LOGIN without TLS to a host that is not loopback.
    pub allow_plaintext: bool,
    pub max_message_size: u64,
    pub timeout: Duration,
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    tls: bool,
    host: String,
    port: u16,
}

fn parse_url(url: &str) -> Result<Url> {
    let bad = || {
        Error::Invalid(format!(
            "--from {url}: expected imap://HOST[:PORT] or imaps://HOST[:PORT]"
        ))
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("imaps://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("imap://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let rest = rest.trim_end_matches('/');
    let default = if tls { 993 } else { 143 };
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default,
            None => return Err(bad()),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (rest.to_string(), default),
        }
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(bad());
    }
    Ok(Url { tls, host, port })
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// Only while STARTTLS swaps the plain stream for the TLS one.
    Gone,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Gone => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Gone => Ok(()),
        }
    }
}

/// One parsed item of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// An atom, a number or NIL.
    Atom(String),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    List(Vec<Item>),
    /// A literal larger than the message limit, read and dropped: its size.
    Dropped(u64),
}

impl Item {
    fn text(&self) -> Option<String> {
        match self {
            Item::Atom(a) => Some(a.clone()),
            Item::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
}

/// A response read whole: the text, with each literal's `{N}` left in place and its
/// octets in `literals`, in order.
struct Raw {
    text: Vec<u8>,
    literals: Vec<Option<Vec<u8>>>,
}

/// A tagged response: `OK`, `NO` or `BAD`, and its text.
struct Done {
    status: String,
    text: String,
}

struct Client {
    io: BufReader<Stream>,
    next_tag: u32,
    max_literal: u64,
    /// What to say in errors: `imap://host:port`.
    name: String,
    caps: HashSet<String>,
}

fn remote(name: &str, what: impl std::fmt::Display) -> Error {
    Error::Remote(format!("{name}: {what}"))
}

impl Client {
    fn connect(url: &Url, opts: &Options) -> Result<Client> {
        let name = format!(
            "{}://{}:{}",
            if url.tls { "imaps" } else { "imap" },
            url.host,
            url.port
        );
        let addrs: Vec<_> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| Error::Connect(format!("{name}: {e}")))?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, opts.timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            Error::Connect(format!(
                "{name}: {}",
                last.map(|e| e.to_string())
                    .unwrap_or_else(|| "no address".into())
            ))
        })?;
        let loopback = tcp.peer_addr().is_ok_and(|a| a.ip().is_loopback());
        let set = |t: &TcpStream| {
            t.set_read_timeout(Some(opts.timeout))
                .and_then(|()| t.set_write_timeout(Some(opts.timeout)))
                .and_then(|()| t.set_nodelay(true))
        };
        set(&tcp).map_err(|e| Error::Connect(format!("{name}: {e}")))?;
        let stream = if url.tls {
            Stream::Tls(Box::new(tls(tcp, &url.host, opts, &name)?))
        } else {
            Stream::Plain(tcp)
        };
        let mut c = Client {
            io: BufReader::with_capacity(64 * 1024, stream),
            next_tag: 1,
            max_literal: opts.max_message_size,
            name,
            caps: HashSet::new(),
        };
        let greeting = c.read_raw()?;
        let g = String::from_utf8_lossy(&greeting.text).into_owned();
        if g.starts_with("* BYE") || !(g.starts_with("* OK") || g.starts_with("* PREAUTH")) {
            return Err(Error::Connect(format!(
                "{}: refused: {}",
                c.name,
                g.trim_end()
            )));
        }
        c.capability()?;
        if !url.tls {
            if c.caps.contains("STARTTLS") {
                c.run("STARTTLS", |_| Ok(()))?;
                // Nothing may come before the handshake (RFC 9051 6.2.1): octets already
                // buffered would be an injection.
                if !c.io.buffer().is_empty() {
                    return Err(remote(&c.name, "data after the STARTTLS reply"));
                }
                let Stream::Plain(tcp) = std::mem::replace(c.io.get_mut(), Stream::Gone) else {
                    return Err(remote(&c.name, "STARTTLS on a TLS connection"));
                };
                let s = tls(tcp, &url.host, opts, &c.name)?;
                c.io = BufReader::with_capacity(64 * 1024, Stream::Tls(Box::new(s)));
                c.capability()?;
            } else if !loopback && !opts.allow_plaintext {
                return Err(Error::Connect(format!(
                    "{}: the server offers no STARTTLS: the password would travel in clear \
                     (use imaps://, or --allow-plaintext on a trusted network)",
                    c.name
                )));
            }
        }
        Ok(c)
    }
}

fn tls(
    tcp: TcpStream,
    host: &str,
    opts: &Options,
    name: &str,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    if let Some(path) = &opts.tls_ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<std::result::Result<_, _>>())
            .map_err(|e| Error::Invalid(format!("--tls-ca-file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Error::Invalid(format!(
                "--tls-ca-file {}: no certificate found",
                path.display()
            )));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| Error::Invalid(format!("--tls-ca-file {}: {e}", path.display())))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Connect(format!("{name}: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = ServerName::try_from(host.to_string())
        .map_err(|e| Error::Connect(format!("{name}: {e}")))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), server)
        .map_err(|e| Error::Connect(format!("{name}: {e}")))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // Handshake now, so that a certificate problem is reported as such.
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| Error::Connect(format!("{name}: TLS: {e}")))?;
    }
    Ok(s)
}

/// An argument of a command: as is, or an astring (quoted, or a literal when it cannot
/// be quoted).
enum Arg<'a> {
    Raw(&'a str),
    Astring(&'a [u8]),
}

impl Client {
    fn io_err(&self, e: std::io::Error) -> Error {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                remote(&self.name, "timed out ([import] imap_timeout)")
            }
            _ => remote(&self.name, e),
        }
    }

    /// One line up to its LF, without it and the CR.
    fn read_line(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let n = (&mut self.io)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', out)
            .map_err(|e| self.io_err(e))?;
        if n == 0 {
            return Err(remote(&self.name, "connection closed by the server"));
        }
        if out.last() != Some(&b'\n') {
            return Err(remote(&self.name, "response line too long"));
        }
        out.pop();
        if out.last() == Some(&b'\r') {
            out.pop();
        }
        if out.len() - start > MAX_LINE {
            return Err(remote(&self.name, "response line too long"));
        }
        Ok(())
    }

    /// One whole response, literals included.
    fn read_raw(&mut self) -> Result<Raw> {
        let mut raw = Raw {
            text: Vec::new(),
            literals: Vec::new(),
        };
        loop {
            self.read_line(&mut raw.text)?;
            let Some(n) = literal_at_end(&raw.text) else {
                return Ok(raw);
            };
            if n > self.max_literal {
                std::io::copy(&mut (&mut self.io).take(n), &mut std::io::sink())
                    .map_err(|e| self.io_err(e))?;
                raw.literals.push(None);
                // Keep the size for the caller's message.
                raw.text.extend_from_slice(format!("<{n}>").as_bytes());
            } else {
                let mut buf = Vec::with_capacity(n as usize);
                let got = (&mut self.io)
                    .take(n)
                    .read_to_end(&mut buf)
                    .map_err(|e| self.io_err(e))?;
                if got as u64 != n {
                    return Err(remote(&self.name, "connection closed inside a literal"));
                }
                raw.literals.push(Some(buf));
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.io
            .get_mut()
            .write_all(bytes)
            .and_then(|()| self.io.get_mut().flush())
            .map_err(|e| self.io_err(e))
    }

    /// Sends a command and reads its responses up to the tagged one, giving each
    /// untagged response to `untagged`; a `NO` or `BAD` is an error.
    fn run_args(
        &mut self,
        args: &[Arg],
        untagged: &mut dyn FnMut(Vec<Item>) -> Result<()>,
    ) -> Result<Done> {
        let tag = format!("m{}", self.next_tag);
        self.next_tag += 1;
        let mut line = tag.clone().into_bytes();
        for a in args {
            line.push(b' ');
            match a {
                Arg::Raw(s) => line.extend_from_slice(s.as_bytes()),
                Arg::Astring(s) if quotable(s) => {
                    line.push(b'"');
                    for &b in *s {
                        if b == b'"' || b == b'\\' {
                            line.push(b'\\');
                        }
                        line.push(b);
                    }
                    line.push(b'"');
                }
                Arg::Astring(s) => {
                    // A synchronizing literal: wait for the continuation (RFC 9051 4.3).
                    line.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
                    self.send(&line)?;
                    line.clear();
                    let r = self.read_raw()?;
                    if !r.text.starts_with(b"+") {
                        let t = String::from_utf8_lossy(&r.text).into_owned();
                        return Err(remote(&self.name, format!("literal refused: {t}")));
                    }
                    line.extend_from_slice(s);
                }
            }
        }
        line.extend_from_slice(b"\r\n");
        self.send(&line)?;
        loop {
            let r = self.read_raw()?;
            if r.text.starts_with(b"* ") {
                let items = parse(&r.text[2..], &mut r.literals.into_iter());
                if matches!(items.first(), Some(Item::Atom(a)) if a.eq_ignore_ascii_case("BYE")) {
                    let t = String::from_utf8_lossy(&r.text[2..]).into_owned();
                    return Err(remote(&self.name, format!("closed the connection: {t}")));
                }
                untagged(items)?;
                continue;
            }
            if r.text.starts_with(b"+") {
                return Err(remote(&self.name, "unexpected continuation request"));
            }
            let text = String::from_utf8_lossy(&r.text).into_owned();
            let Some(rest) = text.strip_prefix(&tag).and_then(|r| r.strip_prefix(' ')) else {
                // A response for another tag: not ours, ignore.
                continue;
            };
            let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let done = Done {
                status: status.to_ascii_uppercase(),
                text: text.to_string(),
            };
            if done.status != "OK" {
                return Err(Error::Rejected {
                    status: done.status,
                    text: done.text,
                });
            }
            return Ok(done);
        }
    }

    fn run(&mut self, cmd: &str, untagged: impl FnMut(Vec<Item>) -> Result<()>) -> Result<Done> {
        let mut f = untagged;
        self.run_args(&[Arg::Raw(cmd)], &mut f)
    }

    fn capability(&mut self) -> Result<()> {
        let mut caps = HashSet::new();
        self.run("CAPABILITY", |items| {
            if matches!(items.first(), Some(Item::Atom(a)) if a.eq_ignore_ascii_case("CAPABILITY"))
            {
                for i in &items[1..] {
                    if let Item::Atom(a) = i {
                        caps.insert(a.to_ascii_uppercase());
                    }
                }
            }
            Ok(())
        })
        .map_err(|e| self.named(e))?;
        self.caps = caps;
        Ok(())
    }

    /// A server's `NO`/`BAD` to a command we expected to work, named.
    fn named(&self, e: Error) -> Error {
        match e {
            Error::Rejected { status, text } => remote(&self.name, format!("{status} {text}")),
            e => e,
        }
    }

    fn login(&mut self, user: &str, password: &str) -> Result<()> {
        if self.caps.contains("LOGINDISABLED") {
            return Err(Error::Connect(format!(
                "{}: the server refuses LOGIN here (LOGINDISABLED): use imaps://",
                self.name
            )));
        }
        let r = self.run_args(
            &[
                Arg::Raw("LOGIN"),
                Arg::Astring(user.as_bytes()),
                Arg::Astring(password.as_bytes()),
            ],
            &mut |_| Ok(()),
        );
        match r {
            Ok(_) => {}
            Err(Error::Rejected { text, .. }) => {
                return Err(Error::Auth(format!(
                    "{}: login as {user} refused: {}",
                    self.name,
                    text.trim()
                )))
            }
            Err(e) => return Err(e),
        }
        // Capabilities may change after login (RFC 9051 6.2.3).
        self.capability()
    }
}

/// Whether octets can go in a quoted string (RFC 9051 4.3: no CR, LF, NUL or 8-bit).
fn quotable(s: &[u8]) -> bool {
    s.iter()
        .all(|&b| (0x01..0x80).contains(&b) && b != b'\r' && b != b'\n')
}

/// The size of a literal announced at the end of a line: `{N}` or `{N+}`.
fn literal_at_end(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 19 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Parses a response's items (after `* `). Lenient: what it cannot read ends the list.
fn parse(text: &[u8], literals: &mut dyn Iterator<Item = Option<Vec<u8>>>) -> Vec<Item> {
    let mut pos = 0;
    parse_list(text, &mut pos, literals, 0)
}

fn parse_list(
    t: &[u8],
    pos: &mut usize,
    lits: &mut dyn Iterator<Item = Option<Vec<u8>>>,
    depth: usize,
) -> Vec<Item> {
    let mut out = Vec::new();
    while *pos < t.len() {
        match t[*pos] {
            b' ' => *pos += 1,
            b')' => {
                *pos += 1;
                if depth > 0 {
                    return out;
                }
            }
            b'(' => {
                *pos += 1;
                if depth >= 64 {
                    return out;
                }
                out.push(Item::List(parse_list(t, pos, lits, depth + 1)));
            }
            b'"' => {
                *pos += 1;
                let mut s = Vec::new();
                while *pos < t.len() && t[*pos] != b'"' {
                    if t[*pos] == b'\\' && *pos + 1 < t.len() {
                        *pos += 1;
                    }
                    s.push(t[*pos]);
                    *pos += 1;
                }
                *pos += 1;
                out.push(Item::Str(s));
            }
            b'{' => {
                let close = t[*pos..].iter().position(|&b| b == b'}');
                let Some(close) = close else {
                    return out;
                };
                let inner = &t[*pos + 1..*pos + close];
                let inner = inner.strip_suffix(b"+").unwrap_or(inner);
                let n: u64 = std::str::from_utf8(inner)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                *pos += close + 1;
                match lits.next() {
                    Some(Some(v)) => out.push(Item::Str(v)),
                    Some(None) => {
                        // Skip the `<N>` marker read_raw left.
                        if t.get(*pos) == Some(&b'<') {
                            if let Some(e) = t[*pos..].iter().position(|&b| b == b'>') {
                                *pos += e + 1;
                            }
                        }
                        out.push(Item::Dropped(n));
                    }
                    None => return out,
                }
            }
            _ => {
                let start = *pos;
                let mut bracket = 0usize;
                while *pos < t.len() {
                    let b = t[*pos];
                    if b == b'[' {
                        bracket += 1;
                    } else if b == b']' {
                        bracket = bracket.saturating_sub(1);
                    } else if bracket == 0 && (b == b' ' || b == b'(' || b == b')') {
                        break;
                    }
                    *pos += 1;
                }
                out.push(Item::Atom(
                    String::from_utf8_lossy(&t[start..*pos]).into_owned(),
                ));
            }
        }
    }
    out
}

/// `07-Dec-2026 10:00:00 +0100` (RFC 9051 date-time) as seconds since the epoch.
fn parse_internal_date(s: &str) -> Option<i64> {
    let (date, rest) = s.trim().split_once(' ')?;
    let (time, zone) = rest.trim().split_once(' ')?;
    let mut d = date.trim().splitn(3, '-');
    let day: i64 = d.next()?.trim().parse().ok()?;
    let mon = d.next()?;
    let month = crate::mbox::MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(mon))? as i64
        + 1;
    let year: i64 = d.next()?.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 || !(1..=31).contains(&day) {
        return None;
    }
    let z = zone.trim();
    if z.len() != 5 {
        return None;
    }
    let sign = match &z[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let zh: i64 = z[1..3].parse().ok()?;
    let zm: i64 = z[3..5].parse().ok()?;
    let local = days_from_civil(year, month, day) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    Some(local - sign * (zh * 3600 + zm * 60))
}

/// Flags and keywords of a FETCH FLAGS list; `\Recent` and unknown system flags dropped.
fn flags_of(list: &[Item]) -> (Flags, Vec<String>) {
    let mut flags = Flags::default();
    let mut kw = Vec::new();
    for i in list {
        let Some(f) = i.text() else { continue };
        match f.to_ascii_lowercase().as_str() {
            "\\seen" => flags = flags.union(Flags::SEEN),
            "\\answered" => flags = flags.union(Flags::ANSWERED),
            "\\flagged" => flags = flags.union(Flags::FLAGGED),
            "\\deleted" => flags = flags.union(Flags::DELETED),
            "\\draft" => flags = flags.union(Flags::DRAFT),
            _ if f.starts_with('\\') => {}
            _ => kw.push(f),
        }
    }
    (flags, kw)
}

/// The attribute-value pairs of a FETCH response (`* N FETCH (...)`).
fn fetch_items(items: &[Item]) -> Option<HashMap<String, Item>> {
    match items {
        [Item::Atom(_), Item::Atom(f), Item::List(l), ..] if f.eq_ignore_ascii_case("FETCH") => {
            let mut m = HashMap::new();
            for pair in l.chunks(2) {
                if let [Item::Atom(k), v] = pair {
                    m.insert(k.to_ascii_uppercase(), v.clone());
                }
            }
            Some(m)
        }
        _ => None,
    }
}

/// Compact UID set text: `1:5,7,9:12`.
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let mut j = i;
        while j + 1 < uids.len() && uids[j + 1] == uids[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if i == j {
            out.push_str(&uids[i].to_string());
        } else {
            out.push_str(&format!("{}:{}", uids[i], uids[j]));
        }
        i = j + 1;
    }
    out
}

/// One selectable folder of the source.
#[derive(Debug)]
struct SourceFolder {
    /// As the server names it (for EXAMINE).
    raw: Vec<u8>,
    /// `/`-separated, for the store.
    name: String,
    special_use: Option<SpecialUse>,
}

fn special_use_attr(a: &str) -> Option<SpecialUse> {
    use SpecialUse::*;
    Some(match a.to_ascii_lowercase().as_str() {
        "\\sent" => Sent,
        "\\drafts" => Drafts,
        "\\trash" => Trash,
        "\\junk" => Junk,
        "\\archive" => Archive,
        _ => return None,
    })
}

/// The store name of a source folder name with delimiter `delim`.
fn store_name(raw: &[u8], delim: Option<u8>) -> std::result::Result<String, String> {
    let s = std::str::from_utf8(raw).map_err(|_| "the name is not UTF-7/ASCII".to_string())?;
    if s.eq_ignore_ascii_case("INBOX") {
        return Ok("INBOX".into());
    }
    let s = match delim {
        Some(d) if d != DELIMITER as u8 => {
            if s.contains(DELIMITER) {
                return Err(format!(
                    "the name holds '{DELIMITER}', Letterbox's hierarchy delimiter"
                ));
            }
            s.replace(d as char, &DELIMITER.to_string())
        }
        _ => s.to_string(),
    };
    // The store keeps names decoded; the server sent modified UTF-7 (RFC 3501 5.1.3).
    Ok(letterbox_imap::utf7::decode(s.as_bytes()).unwrap_or(s))
}

/// What `import imap` adds to the summary: what clients will see.
#[derive(Debug, Default, Clone)]
pub struct ImapReport {
    pub summary: Summary,
    /// Whether POP3 UIDLs were rebuilt (`--pop3-uidl-format`).
    pub pop3_uidls: bool,
}

/// Imports the account `opts.user` of the server `opts.url` into `account`.
pub fn import(
    store: &dyn Backend,
    account: &Account,
    opts: &Options,
    progress: Progress,
) -> Result<ImapReport> {
    let url = parse_url(&opts.url)?;
    if let Some(f) = &opts.pop3_uidl_format {
        expand_uidl(f, 1, 1, "")?;
        if f.contains("%g") {
            return Err(Error::Invalid(
                "--pop3-uidl-format: %g (the Maildir file name) cannot be known over IMAP".into(),
            ));
        }
    }
    let mut c = Client::connect(&url, opts)?;
    c.login(&opts.user, &opts.password)?;
    let source = format!("imap:{}:{}/{}", url.host, url.port, opts.user);
    let start = store.import_begin(account.id, &source, opts.merge)?;
    progress(&format!(
        "importing {} as {} into {} ({start:?})",
        c.name, opts.user, account.address
    ));

    // Folders.
    let list_cmd = if c.caps.contains("SPECIAL-USE") {
        "LIST \"\" \"*\" RETURN (SPECIAL-USE)"
    } else {
        "LIST \"\" \"*\""
    };
    let mut folders: Vec<SourceFolder> = Vec::new();
    let mut summary = Summary::default();
    let mut bad_names: Vec<(String, String)> = Vec::new();
    c.run(list_cmd, |items| {
        let [Item::Atom(kind), Item::List(attrs), delim, name, ..] = &items[..] else {
            return Ok(());
        };
        if !kind.eq_ignore_ascii_case("LIST") {
            return Ok(());
        }
        let attrs: Vec<String> = attrs.iter().filter_map(Item::text).collect();
        if attrs.iter().any(|a| {
            a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
        }) {
            return Ok(());
        }
        let delim = match delim {
            Item::Str(d) if d.len() == 1 => Some(d[0]),
            _ => None,
        };
        let raw = match name {
            Item::Str(s) => s.clone(),
            Item::Atom(a) => a.clone().into_bytes(),
            _ => return Ok(()),
        };
        match store_name(&raw, delim) {
            Ok(n) => folders.push(SourceFolder {
                raw,
                name: n,
                special_use: attrs.iter().find_map(|a| special_use_attr(a)),
            }),
            Err(why) => bad_names.push((format!("folder {}", String::from_utf8_lossy(&raw)), why)),
        }
        Ok(())
    })
    .map_err(|e| c.named(e))?;
    for (what, why) in bad_names {
        progress(&format!("skipped {what}: {why}"));
        summary.skipped.push((what, why));
    }
    // INBOX first, then in name order (parents before children).
    folders.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
    folders.dedup_by(|a, b| a.name == b.name);

    let mailboxes = store.list_mailboxes(account.id)?;
    let mut names: HashMap<String, String> = HashMap::new();
    let done: HashSet<String> = store
        .imported_keys(account.id, &format!("{source}:"))?
        .into_iter()
        .collect();
    for f in &folders {
        let target = match f.special_use {
            Some(su) if f.name != "INBOX" => mailboxes
                .iter()
                .find(|m| m.special_use == Some(su))
                .map(|m| m.name.clone())
                .unwrap_or_else(|| target_name(&f.name, &mailboxes)),
            _ => target_name(&f.name, &mailboxes),
        };
        names.insert(f.name.clone(), target.clone());
        match import_folder(
            store,
            &mut c,
            account,
            f,
            &target,
            &source,
            &done,
            opts,
            &mut summary,
            progress,
        ) {
            Ok(()) => {}
            // The folder could not be made or examined: skipped whole.
            Err(
                e @ (Error::Rejected { .. } | Error::Store(letterbox_store::Error::Invalid(_))),
            ) => {
                let e = c.named(e);
                progress(&format!("{}: skipped: {e}", f.name));
                summary
                    .skipped
                    .push((format!("folder {}", f.name), e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }

    // Subscriptions, mapped as the folders were.
    let mut subs = Vec::new();
    c.run("LSUB \"\" \"*\"", |items| {
        if let [Item::Atom(kind), Item::List(_), delim, name, ..] = &items[..] {
            if kind.eq_ignore_ascii_case("LSUB") {
                let delim = match delim {
                    Item::Str(d) if d.len() == 1 => Some(d[0]),
                    _ => None,
                };
                let raw = match name {
                    Item::Str(s) => s.clone(),
                    Item::Atom(a) => a.clone().into_bytes(),
                    _ => return Ok(()),
                };
                if let Ok(n) = store_name(&raw, delim) {
                    subs.push(n);
                }
            }
        }
        Ok(())
    })
    .map_err(|e| c.named(e))?;
    let replace = start != letterbox_store::ImportStart::Merge;
    let wanted: Vec<String> = subs
        .iter()
        .map(|s| names.get(s).cloned().unwrap_or_else(|| s.clone()))
        .collect();
    for name in &wanted {
        if let Err(e) = store.subscribe(account.id, name) {
            summary
                .skipped
                .push((format!("subscription {name}"), e.to_string()));
        }
    }
    if replace {
        for name in store.subscriptions(account.id)? {
            if !wanted.contains(&name) {
                store.unsubscribe(account.id, &name)?;
            }
        }
    }
    let _ = c.run("LOGOUT", |_| Ok(()));
    store.import_finish(account.id, &source)?;
    Ok(ImapReport {
        summary,
        pop3_uidls: opts.pop3_uidl_format.is_some(),
    })
}

/// What the first pass learns of a message.
struct Meta {
    uid: u32,
    flags: Flags,
    keywords: Vec<String>,
    date: Option<i64>,
}

#[allow(clippy::too_many_arguments)]
fn import_folder(
    store: &dyn Backend,
    c: &mut Client,
    account: &Account,
    f: &SourceFolder,
    target: &str,
    source: &str,
    done: &HashSet<String>,
    opts: &Options,
    summary: &mut Summary,
    progress: Progress,
) -> Result<()> {
    let mut uidvalidity = 0u32;
    let mut uidnext = 0u32;
    let mut exists = 0u32;
    c.run_args(&[Arg::Raw("EXAMINE"), Arg::Astring(&f.raw)], &mut |items| {
        match &items[..] {
            [Item::Atom(n), Item::Atom(k), ..] if k.eq_ignore_ascii_case("EXISTS") => {
                exists = n.parse().unwrap_or(0);
            }
            [Item::Atom(ok), Item::Atom(code), ..] if ok.eq_ignore_ascii_case("OK") => {
                // `[UIDVALIDITY 3857529045]`: one atom, brackets kept by the parser.
                let inner = code.trim_start_matches('[').trim_end_matches(']');
                let mut w = inner.split_ascii_whitespace();
                let (k, v) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
                let v: u32 = v.parse().unwrap_or(0);
                match k.to_ascii_uppercase().as_str() {
                    "UIDVALIDITY" => uidvalidity = v,
                    "UIDNEXT" => uidnext = v,
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    let keep = uidvalidity != 0;
    let uv = if keep {
        uidvalidity
    } else {
        letterbox_store::now().clamp(1, u32::MAX as i64) as u32
    };
    let im = store.import_mailbox(account.id, target, uv)?;
    summary.folders += 1;

    // Pass 1: UIDs, flags and dates of every message.
    let mut metas: Vec<Meta> = Vec::new();
    if exists > 0 {
        c.run("UID FETCH 1:* (UID FLAGS INTERNALDATE)", |items| {
            if let Some(m) = fetch_items(&items) {
                let uid = m
                    .get("UID")
                    .and_then(Item::text)
                    .and_then(|u| u.parse::<u32>().ok());
                if let Some(uid) = uid.filter(|&u| u > 0) {
                    let (flags, keywords) = match m.get("FLAGS") {
                        Some(Item::List(l)) => flags_of(l),
                        _ => (Flags::default(), Vec::new()),
                    };
                    let date = m
                        .get("INTERNALDATE")
                        .and_then(Item::text)
                        .and_then(|d| parse_internal_date(&d));
                    metas.push(Meta {
                        uid,
                        flags,
                        keywords,
                        date,
                    });
                }
            }
            Ok(())
        })?;
    }
    metas.sort_by_key(|m| m.uid);
    metas.dedup_by_key(|m| m.uid);
    let key_of = |uid: u32| format!("{source}:{}:{uv}:{uid}", f.name);
    let todo: Vec<&Meta> = metas
        .iter()
        .filter(|m| !done.contains(&key_of(m.uid)))
        .collect();
    summary.already += (metas.len() - todo.len()) as u64;
    progress(&format!(
        "{} -> {}: {} messages, {} to fetch (UIDVALIDITY {}{})",
        f.name,
        im.mailbox.name,
        metas.len(),
        todo.len(),
        im.mailbox.uidvalidity,
        if im.keeps_uids {
            ""
        } else {
            ", new UIDs: merged into a mailbox with mail"
        }
    ));
    let by_uid: HashMap<u32, &Meta> = todo.iter().map(|m| (m.uid, *m)).collect();
    let is_inbox = im.mailbox.name == "INBOX";
    let mut count = 0u64;
    for batch in todo.chunks(FETCH_BATCH) {
        let uids: Vec<u32> = batch.iter().map(|m| m.uid).collect();
        let mut got: HashSet<u32> = HashSet::new();
        let mut failure: Option<Error> = None;
        let cmd = format!("UID FETCH {} (UID BODY.PEEK[])", uid_set(&uids));
        let r = c.run(&cmd, |items| {
            if failure.is_some() {
                return Ok(());
            }
            let Some(m) = fetch_items(&items) else {
                return Ok(());
            };
            let Some(uid) = m
                .get("UID")
                .and_then(Item::text)
                .and_then(|u| u.parse::<u32>().ok())
            else {
                return Ok(());
            };
            let Some(meta) = by_uid.get(&uid) else {
                return Ok(());
            };
            if !got.insert(uid) {
                return Ok(());
            }
            let what = format!("{} UID {uid}", f.name);
            let body = match m.get("BODY[]") {
                Some(Item::Str(b)) if !b.is_empty() => b,
                Some(Item::Dropped(n)) => {
                    let why = format!(
                        "{n} bytes, larger than the limit of {} bytes",
                        opts.max_message_size
                    );
                    progress(&format!("skipped {what}: {why}"));
                    summary.skipped.push((what, why));
                    return Ok(());
                }
                _ => {
                    progress(&format!("skipped {what}: the server sent no body"));
                    summary
                        .skipped
                        .push((what, "the server sent no body".into()));
                    return Ok(());
                }
            };
            let data = to_crlf(body);
            let size = data.len() as u64;
            let uidl = match (&opts.pop3_uidl_format, is_inbox && im.keeps_uids && keep) {
                (Some(fmt), true) => expand_uidl(fmt, uid, uv, "").ok(),
                _ => None,
            };
            let want = (im.keeps_uids && keep).then_some(uid);
            let msg = ImportMessage {
                key: key_of(uid),
                uid: want,
                message: NewMessage {
                    prefix: Vec::new(),
                    body: Arc::new(data),
                    flags: meta.flags,
                    keywords: meta.keywords.clone(),
                    internal_date: meta.date.unwrap_or_else(letterbox_store::now),
                },
                pop3_uidl: uidl,
            };
            match store.import_message(im.mailbox.id, msg) {
                Ok(Imported::Stored { uid: stored, .. }) => {
                    summary.messages += 1;
                    summary.bytes += size;
                    if want != Some(stored) {
                        summary.new_uids += 1;
                    }
                }
                Ok(Imported::AlreadyImported) => summary.already += 1,
                Err(
                    e @ (letterbox_store::Error::Invalid(_) | letterbox_store::Error::Refused(_)),
                ) => {
                    progress(&format!("skipped {what}: {e}"));
                    summary.skipped.push((what, e.to_string()));
                }
                Err(e) => failure = Some(e.into()),
            }
            count += 1;
            if count.is_multiple_of(PROGRESS_EVERY) {
                progress(&format!("{}: {count} messages", f.name));
            }
            Ok(())
        });
        if let Some(e) = failure {
            return Err(e);
        }
        match r {
            Ok(_) => {}
            // Some messages could not be read (e.g. expunged meanwhile): the rest stands.
            Err(Error::Rejected { status, text }) => {
                progress(&format!("{}: FETCH answered {status} {text}", f.name));
            }
            Err(e) => return Err(e),
        }
        for m in batch {
            if !got.contains(&m.uid) {
                let what = format!("{} UID {}", f.name, m.uid);
                let why = "not returned by the server (expunged meanwhile?)".to_string();
                progress(&format!("skipped {what}: {why}"));
                summary.skipped.push((what, why));
            }
        }
    }
    if keep {
        store.import_finish_mailbox(im.mailbox.id, uidnext.max(1))?;
    } else {
        store.import_finish_mailbox(im.mailbox.id, 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("imaps://mail.example.com").unwrap(),
            Url {
                tls: true,
                host: "mail.example.com".into(),
                port: 993
            }
        );
        assert_eq!(
            parse_url("imap://127.0.0.1:1143/").unwrap(),
            Url {
                tls: false,
                host: "127.0.0.1".into(),
                port: 1143
            }
        );
        assert_eq!(parse_url("imap://[::1]:143").unwrap().host, "::1");
        assert!(parse_url("pop3://x").is_err());
        assert!(parse_url("imap://h:x").is_err());
        assert!(parse_url("imap://").is_err());
    }

    #[test]
    fn responses() {
        let lits = vec![Some(b"Subject: x\r\n\r\nhi\r\n".to_vec())];
        let items = parse(
            b"12 FETCH (UID 7 FLAGS (\\Seen $Label1 \\Recent) INTERNALDATE \"07-Dec-2026 10:00:00 +0100\" BODY[] {19})",
            &mut lits.into_iter(),
        );
        let m = fetch_items(&items).unwrap();
        assert_eq!(m["UID"], Item::Atom("7".into()));
        assert_eq!(m["BODY[]"], Item::Str(b"Subject: x\r\n\r\nhi\r\n".to_vec()));
        let Item::List(l) = &m["FLAGS"] else { panic!() };
        assert_eq!(flags_of(l), (Flags::SEEN, vec!["$Label1".to_string()]));
        assert_eq!(
            parse_internal_date("07-Dec-2026 10:00:00 +0100"),
            Some(1_796_637_600 - 3600)
        );
        assert_eq!(
            parse_internal_date(" 7-Dec-2026 10:00:00 -0000"),
            Some(1_796_637_600)
        );
        assert_eq!(parse_internal_date("junk"), None);
        let items = parse(
            b"LIST (\\HasNoChildren \\Sent) \"/\" \"Sent \\\"x\\\"\"",
            &mut std::iter::empty(),
        );
        assert_eq!(items[3], Item::Str(b"Sent \"x\"".to_vec()));
        assert_eq!(literal_at_end(b"* 1 FETCH (BODY[] {42}"), Some(42));
        assert_eq!(literal_at_end(b"* 1 FETCH (BODY[] {42+}"), Some(42));
        assert_eq!(literal_at_end(b"* OK {x}"), None);
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(store_name(b"Lists.rust", Some(b'.')).unwrap(), "Lists/rust");
        assert!(store_name(b"a/b", Some(b'.')).is_err());
        assert_eq!(store_name(b"inbox", Some(b'.')).unwrap(), "INBOX");
        assert_eq!(
            store_name(b"Caf&AOk-.x", Some(b'.')).unwrap(),
            "Caf\u{e9}/x"
        );
    }
}

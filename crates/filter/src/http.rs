//! The few lines of HTTP/1.1 (RFC 9112) rspamd needs: `POST` with a `Content-Length`
//! body, answers framed by `Content-Length` or `chunked`, on persistent connections
//! (RFC 9112 9.3) kept in a small pool per endpoint.
//!
//! Why a pool: a new loopback TCP connection per scanned message (connect, accept,
//! close, `TIME_WAIT`) costs more than our whole part of the scan (issue 13). rspamd keeps
//! HTTP/1.1 connections open (its workers answer `Connection: keep-alive`), so every scan
//! after the first reuses a connection. At most `[filter] rspamd_keepalive` idle
//! connections are kept per endpoint, each for [`IDLE_TIMEOUT`] at most (rspamd closes
//! its side after a while too); `rspamd_keepalive = 0` opens a connection per request,
//! as before.
//!
//! A request on a reused connection that fails before any byte of the answer arrived
//! (the server closed it while it was idle: RFC 9112 9.3.1's race) is sent again once,
//! on a new connection. The requests sent here (a scan, a learn) may be repeated.
//!
//! No general HTTP stack in the delivery path, by measurement (issue 13,
//! docs/BENCHMARKS.md, 2026-12-07 06:00): hyper's pooled client (`hyper-util`'s
//! `legacy::Client`, at the versions `reqwest` already brings) was tried in its place,
//! handed the message without a copy, and cost about 37,000 more instructions per scanned
//! message (callgrind, `bench/filter-cost --rspamd`): the scan's share of a delivery went
//! from 3.4% to 5.7%, and Sieve with rspamd over the 10% the issue allows. rspamd is on
//! loopback, plain HTTP/1.1 with `Content-Length` or `chunked` answers: what is parsed
//! here.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest answer read.
pub const MAX_RESPONSE: usize = 4 << 20;
/// Longest answer head (status line and header fields).
const MAX_HEAD: usize = 64 << 10;
/// An idle connection older than this is closed rather than reused.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// An HTTP endpoint (`host:port` and a base path) and its idle connections.
#[derive(Debug)]
pub struct Endpoint {
    pub authority: String,
    pub base: String,
    max_idle: usize,
    idle: Mutex<Vec<(TcpStream, Instant)>>,
}

/// A successful exchange: the status and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Endpoint {
    /// `http://host[:port][/base]`; `max_idle`: idle connections kept (0: none).
    pub fn parse(url: &str, max_idle: usize) -> Option<Endpoint> {
        let rest = url.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return None;
        }
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Some(Endpoint {
            authority,
            base: path.to_string(),
            max_idle,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn take_idle(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((s, since)) = idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT {
                return Some(s);
            }
        }
        None
    }

    fn put_idle(&self, s: TcpStream) {
        if self.max_idle == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
        if idle.len() < self.max_idle {
            idle.push((s, Instant::now()));
        }
    }

    /// One `POST` of `body` to `base + path` with extra header fields.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, String> {
        let keep = self.max_idle > 0;
        let mut req = format!(
            "POST {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: {}\r\nContent-Length: {}\r\n",
            self.base,
            self.authority,
            if keep { "keep-alive" } else { "close" },
            body.len()
        );
        for (k, v) in headers {
            req.push_str(k);
            req.push_str(": ");
            req.push_str(v);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        if let Some(mut s) = self.take_idle() {
            match exchange(&mut s, &req, body).await {
                Ok((answer, reusable)) => {
                    if reusable && keep {
                        self.put_idle(s);
                    }
                    return Ok(answer);
                }
                // Closed while idle: once more on a new connection.
                Err(Failure::BeforeAnswer(_)) => {}
                Err(Failure::During(e)) => return Err(e),
            }
        }
        let mut s = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let _ = s.set_nodelay(true);
        match exchange(&mut s, &req, body).await {
            Ok((answer, reusable)) => {
                if reusable && keep {
                    self.put_idle(s);
                }
                Ok(answer)
            }
            Err(Failure::BeforeAnswer(e)) | Err(Failure::During(e)) => Err(e),
        }
    }
}

enum Failure {
    /// Nothing of the answer arrived (a reused connection the peer had closed).
    BeforeAnswer(String),
    During(String),
}

/// Sends one request and reads its answer; also says whether the connection can carry
/// another request.
async fn exchange(s: &mut TcpStream, head: &str, body: &[u8]) -> Result<(Answer, bool), Failure> {
    // One write for a small request (head and body together), two for a large one.
    let sent = if body.len() <= 64 << 10 {
        let mut all = Vec::with_capacity(head.len() + body.len());
        all.extend_from_slice(head.as_bytes());
        all.extend_from_slice(body);
        s.write_all(&all).await
    } else {
        match s.write_all(head.as_bytes()).await {
            Ok(()) => s.write_all(body).await,
            Err(e) => Err(e),
        }
    };
    sent.map_err(|e| Failure::BeforeAnswer(e.to_string()))?;
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let head_end = loop {
        if let Some(i) = memfind(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(Failure::During("HTTP answer head too long".into()));
        }
        let n = read_more(s, &mut buf).await.map_err(|e| {
            if buf.is_empty() {
                Failure::BeforeAnswer(e)
            } else {
                Failure::During(e)
            }
        })?;
        if n == 0 {
            let e = "connection closed before the answer".to_string();
            return Err(if buf.is_empty() {
                Failure::BeforeAnswer(e)
            } else {
                Failure::During(e)
            });
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut words = status_line.split_whitespace();
    let version = words.next().unwrap_or("");
    let status = words
        .next()
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| Failure::During("malformed HTTP status line".into()))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    // HTTP/1.1 is persistent unless told otherwise; HTTP/1.0 only when told so.
    let mut reusable = version == "HTTP/1.1";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse()
                    .map_err(|_| Failure::During("malformed Content-Length".into()))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                reusable = false;
            } else if v.contains("keep-alive") {
                reusable = true;
            }
        }
    }
    let mut rest = buf.split_off(head_end + 4);
    let during = Failure::During;
    let body = if chunked {
        loop {
            match dechunk(&rest) {
                Chunks::Done(body, used) => {
                    if used != rest.len() {
                        reusable = false; // more than the answer: out of step
                    }
                    break body;
                }
                Chunks::Malformed => return Err(during("malformed chunked answer".into())),
                Chunks::Partial => {}
            }
            if rest.len() > MAX_RESPONSE {
                return Err(during("answer too long".into()));
            }
            if read_more(s, &mut rest).await.map_err(during)? == 0 {
                return Err(during("connection closed in the answer".into()));
            }
        }
    } else if let Some(len) = length {
        if len > MAX_RESPONSE {
            return Err(during("answer too long".into()));
        }
        while rest.len() < len {
            if read_more(s, &mut rest).await.map_err(during)? == 0 {
                return Err(during("connection closed in the answer".into()));
            }
        }
        if rest.len() > len {
            reusable = false;
            rest.truncate(len);
        }
        rest
    } else {
        // Delimited by the end of the connection.
        reusable = false;
        loop {
            if rest.len() > MAX_RESPONSE {
                return Err(during("answer too long".into()));
            }
            if read_more(s, &mut rest).await.map_err(during)? == 0 {
                break rest;
            }
        }
    };
    Ok((Answer { status, body }, reusable))
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, String> {
    buf.reserve(8192);
    s.read_buf(buf).await.map_err(|e| e.to_string())
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, PartialEq)]
enum Chunks {
    /// The body, and the octets of the input it took (trailer included).
    Done(Vec<u8>, usize),
    Partial,
    Malformed,
}

/// A `chunked` body (RFC 9112 7.1), as far as it has arrived.
fn dechunk(data: &[u8]) -> Chunks {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = memfind(&data[at..], b"\r\n") else {
            return if data.len() - at > 1024 { Chunks::Malformed } else { Chunks::Partial };
        };
        let Ok(size_text) = std::str::from_utf8(&data[at..at + eol]) else {
            return Chunks::Malformed;
        };
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Chunks::Malformed;
        };
        at += eol + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(eol) = memfind(&data[at..], b"\r\n") else {
                    return Chunks::Partial;
                };
                at += eol + 2;
                if eol == 0 {
                    return Chunks::Done(out, at);
                }
            }
        }
        if size > MAX_RESPONSE || out.len() + size > MAX_RESPONSE {
            return Chunks::Malformed;
        }
        if data.len() < at + size + 2 {
            return Chunks::Partial;
        }
        if &data[at + size..at + size + 2] != b"\r\n" {
            return Chunks::Malformed;
        }
        out.extend_from_slice(&data[at..at + size]);
        at += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"),
            Chunks::Done(b"abcde".to_vec(), 24)
        );
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=1\r\nd"), Chunks::Partial);
        assert_eq!(dechunk(b"3\r\nabc\r\n0\r\n"), Chunks::Partial);
        assert_eq!(dechunk(b"zz\r\n"), Chunks::Malformed);
        assert_eq!(dechunk(b"1\r\nabc\r\n"), Chunks::Malformed);
    }

    #[test]
    fn urls() {
        let e = Endpoint::parse("http://127.0.0.1:11333/", 4).unwrap();
        assert_eq!((e.authority.as_str(), e.base.as_str()), ("127.0.0.1:11333", ""));
        assert_eq!(Endpoint::parse("http://localhost", 0).unwrap().authority, "localhost:80");
        assert!(Endpoint::parse("https://x", 0).is_none());
    }

    /// A loopback server that answers each request on one connection in turn, with the
    /// given framing, then closes: the client must reuse the connection, and open a new
    /// one (once) when the idle one was closed.
    #[tokio::test]
    async fn keeps_connections_and_recovers_from_a_closed_one() {
        use tokio::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut accepted = 0;
            // First connection: two requests (Content-Length, then chunked), then closed.
            // Second connection: one request, `Connection: close`.
            while accepted < 2 {
                let (mut s, _) = l.accept().await.unwrap();
                accepted += 1;
                let answers: Vec<&[u8]> = if accepted == 1 {
                    vec![
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n",
                    ]
                } else {
                    vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nthird"]
                };
                for a in answers {
                    let mut got = Vec::new();
                    loop {
                        let mut b = [0u8; 4096];
                        let n = s.read(&mut b).await.unwrap();
                        got.extend_from_slice(&b[..n]);
                        if let Some(i) = memfind(&got, b"\r\n\r\n") {
                            if got.len() >= i + 4 + 4 {
                                break;
                            }
                        }
                    }
                    assert!(got.ends_with(b"\r\n\r\nbody"));
                    s.write_all(a).await.unwrap();
                }
                drop(s);
            }
            accepted
        });
        let ep = Endpoint::parse(&format!("http://{addr}"), 2).unwrap();
        let a = ep.post("/x", &[("A", "b")], b"body").await.unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"first"[..]));
        let a = ep.post("/x", &[], b"body").await.unwrap();
        assert_eq!(a.body, b"second");
        // The server closed the first connection; the idle one fails before any answer,
        // and the request goes again on a new connection.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let a = ep.post("/x", &[], b"body").await.unwrap();
        assert_eq!(a.body, b"third");
        assert!(ep.idle.lock().unwrap().is_empty(), "Connection: close is not kept");
        assert_eq!(server.await.unwrap(), 2);
    }
}

//! The connection layer: reads whole commands, literals included, within the limits.
//!
//! A command is a line; a line that ends with a literal marker (`{n}`, `{n+}` of
//! LITERAL+ (RFC 7888), `~{n}` of literal8) is followed by n octets and then by the rest
//! of the command, another line. Before asking for a literal the size is checked against
//! `imap.max_literal_size` (and the command as a whole against that plus
//! `limits.max_line_length`):
//! - a synchronizing literal that is too big is refused with `tag NO [TOOBIG]` before
//!   the client sends it (the client abandons the command; RFC 7888 section 4);
//! - a non-synchronizing one that is too big is already on its way: the session ends with
//!   `* BYE`, as nothing else can resynchronise the stream.
//!
//! After login, literals also count against the server-wide budget for message content
//! held in memory (`[limits] max_buffered_content`, shared with SMTP DATA): the
//! reservation lasts until the command has run ([`Conn::release_budget`]). When the
//! budget is spent, a synchronizing literal is refused before it is sent and a
//! non-synchronizing one is read and dropped (with the rest of its command), both
//! answered `tag NO [UNAVAILABLE]`: the client tries again later and the session lives.
//!
//! Lines longer than `limits.max_line_length` end the session too. A client that closes
//! the connection mid-literal yields [`ReadError::Eof`]: the half-read command is dropped
//! and nothing is stored.
//!
//! The stream is kept whole (not split) so that STARTTLS can take it back and wrap it
//! (issue 7): see [`Conn::into_inner`].

use letterbox_proto::budget::{Budget, Reservation};
use letterbox_proto::{BoxStream, Line};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[derive(Debug)]
pub enum Input {
    /// A complete command, literals in line.
    Command(Vec<u8>),
    /// A synchronizing literal over the limit was refused; the tag to answer, if any.
    LiteralRefused { tag: Option<String>, size: u64 },
    /// A literal did not fit in the server's content budget: the command was refused
    /// (before its literal, or read and dropped); the tag to answer, if any.
    NoRoom { tag: Option<String> },
}

#[derive(Debug)]
pub enum ReadError {
    Eof,
    LineTooLong,
    /// A non-synchronizing literal over the limit.
    LiteralTooBig,
    Io(std::io::Error),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// A literal marker at the end of a line: (size, synchronizing).
pub fn trailing_literal(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let mut sync = true;
    if let Some(d) = digits.strip_suffix(b"+") {
        digits = d;
        sync = false;
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    Some((size, sync))
}

fn tag_of(buf: &[u8]) -> Option<String> {
    let t: Vec<u8> = buf
        .iter()
        .take_while(|&&b| crate::parser::is_atom_char(b) && b != b'+')
        .copied()
        .collect();
    (!t.is_empty() && buf.get(t.len()) == Some(&b' '))
        .then(|| String::from_utf8_lossy(&t).into_owned())
}

pub struct Conn {
    stream: BufReader<BoxStream>,
    max_line: usize,
    max_literal: u64,
    /// A client that stops reading cannot hold a session (and its memory) for ever.
    write_timeout: std::time::Duration,
    /// Responses waiting for [`Conn::flush`].
    pub out: Vec<u8>,
    /// The content budget literals count against (after login), and what the command
    /// being read or run holds of it.
    budget: Option<Arc<Budget>>,
    room: Option<Reservation>,
}

impl Conn {
    pub fn new(
        stream: BoxStream,
        max_line: usize,
        max_literal: u64,
        write_timeout: std::time::Duration,
    ) -> Conn {
        Conn {
            stream: BufReader::new(stream),
            max_line,
            max_literal,
            write_timeout,
            out: Vec::with_capacity(4096),
            budget: None,
            room: None,
        }
    }

    /// Makes literals count against `budget` (`None`: they do not, before login).
    pub fn set_budget(&mut self, budget: Option<Arc<Budget>>) {
        self.budget = budget;
    }

    /// Gives back what the last command's literals reserved of the budget.
    pub fn release_budget(&mut self) {
        self.room = None;
    }

    /// A connection with the configured limits.
    pub fn for_config(stream: BoxStream, config: &letterbox_proto::Config) -> Conn {
        Conn::new(
            stream,
            config.limits.max_line_length,
            config.imap.max_literal_size.0,
            std::time::Duration::from_secs(config.limits.timeout_authenticated),
        )
    }

    /// Changes the literal limit: before login a client may send no literal longer than
    /// a command line (a LOGIN's password), so an unauthenticated client cannot make the
    /// server buffer `imap.max_literal_size` octets.
    pub fn set_max_literal(&mut self, max: u64) {
        self.max_literal = max;
    }

    /// Changes how long a write may wait for the client to read (before login, the
    /// shorter `limits.timeout_unauthenticated`).
    pub fn set_write_timeout(&mut self, timeout: std::time::Duration) {
        self.write_timeout = timeout;
    }

    /// Reads one command.
    pub async fn read_command(&mut self) -> Result<Input, ReadError> {
        self.room = self.budget.as_ref().map(|b| b.reserve());
        let mut buf = Vec::new();
        let mut line = Vec::new();
        let total_max = self.max_literal.saturating_add(self.max_line as u64);
        // Set once a literal did not fit the budget: the rest of the command is dropped.
        let mut no_room: Option<Option<String>> = None;
        let mut dropped = 0u64;
        loop {
            match letterbox_proto::read_line(&mut self.stream, &mut line, self.max_line).await? {
                Line::Ok => {}
                Line::TooLong => return Err(ReadError::LineTooLong),
                Line::Eof => return Err(ReadError::Eof),
            }
            if no_room.is_none() {
                buf.extend_from_slice(&line);
            }
            if buf.len() as u64 > total_max {
                return Err(ReadError::LineTooLong);
            }
            let Some((size, sync)) = trailing_literal(&line) else {
                if let Some(tag) = no_room {
                    self.room = None;
                    return Ok(Input::NoRoom { tag });
                }
                return Ok(Input::Command(buf));
            };
            if no_room.is_some() {
                if sync {
                    // The client waits for a go-ahead it will not get: the command ends.
                    self.room = None;
                    return Ok(Input::NoRoom {
                        tag: no_room.flatten(),
                    });
                }
                // The command's limits hold for what is dropped too.
                dropped = dropped.saturating_add(size);
                if size > self.max_literal || dropped > total_max {
                    return Err(ReadError::LiteralTooBig);
                }
                self.discard(size).await?;
                continue;
            }
            if size > self.max_literal || (buf.len() as u64).saturating_add(size) > total_max {
                if sync {
                    return Ok(Input::LiteralRefused {
                        tag: tag_of(&buf),
                        size,
                    });
                }
                return Err(ReadError::LiteralTooBig);
            }
            let fits = match &mut self.room {
                Some(room) => room.cover(buf.len().saturating_add(size as usize)),
                None => true,
            };
            if !fits {
                let tag = tag_of(&buf);
                if sync {
                    self.room = None;
                    return Ok(Input::NoRoom { tag });
                }
                // Already on its way: read it into nothing, then the rest of the command.
                no_room = Some(tag);
                dropped = buf.len() as u64 + size;
                buf = Vec::new();
                self.discard(size).await?;
                continue;
            }
            if sync {
                self.stream
                    .get_mut()
                    .write_all(b"+ Ready for literal data\r\n")
                    .await?;
                self.stream.get_mut().flush().await?;
            }
            buf.extend_from_slice(b"\r\n");
            // Read as it arrives (no allocation up front for octets not yet sent).
            let want = buf.len() + size as usize;
            let got = (&mut self.stream).take(size).read_to_end(&mut buf).await?;
            if got as u64 != size || buf.len() != want {
                return Err(ReadError::Eof);
            }
        }
    }

    /// Reads `size` octets of a literal into nothing.
    async fn discard(&mut self, size: u64) -> Result<(), ReadError> {
        let got =
            tokio::io::copy(&mut (&mut self.stream).take(size), &mut tokio::io::sink()).await?;
        if got != size {
            return Err(ReadError::Eof);
        }
        Ok(())
    }

    /// Reads one plain line (AUTHENTICATE responses, IDLE's `DONE`).
    pub async fn read_line(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut line = Vec::new();
        match letterbox_proto::read_line(&mut self.stream, &mut line, self.max_line).await? {
            Line::Ok => Ok(line),
            Line::TooLong => Err(ReadError::LineTooLong),
            Line::Eof => Err(ReadError::Eof),
        }
    }

    /// Waits until input is available (or the peer closed); cancel-safe, consumes nothing.
    pub async fn readable(&mut self) -> std::io::Result<bool> {
        Ok(!self.stream.fill_buf().await?.is_empty())
    }

    /// True when the client has already sent more (pipelining).
    pub fn has_buffered_input(&self) -> bool {
        !self.stream.buffer().is_empty()
    }

    pub fn push(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
    }

    /// [`push`](Self::push) of a buffer the caller is done with: taken as it is when
    /// nothing is queued (a FETCH chunk's output is not copied again).
    pub fn push_vec(&mut self, data: Vec<u8>) {
        if self.out.is_empty() {
            self.out = data;
        } else {
            self.out.extend_from_slice(&data);
        }
    }

    /// Sends what is queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let w = self.stream.get_mut();
            let write = async {
                w.write_all(&self.out).await?;
                w.flush().await
            };
            match tokio::time::timeout(self.write_timeout, write).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "client stopped reading",
                    ))
                }
            }
            self.out.clear();
            // A big answer (a large BODY[]) does not stay allocated for the session's life.
            if self.out.capacity() > 1 << 20 {
                self.out.shrink_to(64 << 10);
            }
        }
        Ok(())
    }

    /// Ends the connection cleanly: over TLS this sends close_notify, without which
    /// clients such as `openssl s_client` report a truncation attack. Bounded like a write.
    pub async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(self.write_timeout, self.stream.get_mut().shutdown()).await;
    }

    /// The stream back, for STARTTLS. Input the client sent ahead of the TLS handshake is
    /// dropped on purpose (CVE-2011-0411-style command injection).
    pub fn into_inner(self) -> BoxStream {
        self.stream.into_inner()
    }

    /// The stream back with the input already read from it, for COMPRESS (what the
    /// client sent after the command belongs to the compressed stream).
    pub fn into_parts(self) -> (BoxStream, Vec<u8>) {
        let pending = self.stream.buffer().to_vec();
        (self.stream.into_inner(), pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        assert_eq!(trailing_literal(b"a APPEND x {12}"), Some((12, true)));
        assert_eq!(trailing_literal(b"a APPEND x {12+}"), Some((12, false)));
        assert_eq!(trailing_literal(b"a APPEND x ~{3}"), Some((3, true)));
        assert_eq!(trailing_literal(b"a APPEND x {}"), None);
        assert_eq!(trailing_literal(b"a APPEND x {1a}"), None);
        assert_eq!(trailing_literal(b"a NOOP"), None);
        assert_eq!(
            trailing_literal(b"a x {99999999999999999999999}"),
            Some((u64::MAX, true))
        );
        assert_eq!(tag_of(b"a1 APPEND"), Some("a1".into()));
        assert_eq!(tag_of(b"{5}"), None);
    }

    #[tokio::test]
    async fn literals_and_limits() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut conn = Conn::new(
            Box::new(server),
            1024,
            10,
            std::time::Duration::from_secs(5),
        );
        let (mut cr, mut cw) = tokio::io::split(client);
        cw.write_all(b"a LOGIN {5}\r\n").await.unwrap();
        let t = tokio::spawn(async move {
            let mut b = [0u8; 26];
            cr.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"+ Ready for literal data\r\n");
            cw.write_all(b"alice {3+}\r\npw!\r\nb APPEND x {11}\r\nc X {1+}\r\nZ\r\n")
                .await
                .unwrap();
            (cr, cw)
        });
        match conn.read_command().await.unwrap() {
            Input::Command(c) => assert_eq!(c, b"a LOGIN {5}\r\nalice {3+}\r\npw!"),
            i => panic!("{i:?}"),
        }
        let (_cr, mut cw) = t.await.unwrap();
        match conn.read_command().await.unwrap() {
            Input::LiteralRefused { tag, size } => {
                assert_eq!(tag.as_deref(), Some("b"));
                assert_eq!(size, 11);
            }
            i => panic!("{i:?}"),
        }
        assert!(matches!(conn.read_command().await, Ok(Input::Command(_))));
        cw.write_all(b"d APPEND x {4+}\r\nab").await.unwrap();
        drop(cw);
        drop(_cr);
        assert!(matches!(conn.read_command().await, Err(ReadError::Eof)));
    }

    #[tokio::test]
    async fn literals_count_against_the_content_budget() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut conn = Conn::new(
            Box::new(server),
            1024,
            1 << 20,
            std::time::Duration::from_secs(5),
        );
        // One 64 KiB unit for everyone.
        let budget = Arc::new(Budget::new(64 * 1024));
        conn.set_budget(Some(budget.clone()));
        let (mut cr, mut cw) = tokio::io::split(client);
        let big = vec![b'x'; 70_000];
        let mut input = b"a APPEND x {70000+}\r\n".to_vec();
        input.extend_from_slice(&big);
        input.extend_from_slice(
            b" {3+}\r\nabc\r\nb APPEND x {70000}\r\nc APPEND x {5+}\r\nhello\r\n",
        );
        cw.write_all(&input).await.unwrap();
        // Non-synchronizing: read and dropped with the rest of its command.
        match conn.read_command().await.unwrap() {
            Input::NoRoom { tag } => assert_eq!(tag.as_deref(), Some("a")),
            i => panic!("{i:?}"),
        }
        // Synchronizing: refused before the client sends it (no go-ahead is written).
        match conn.read_command().await.unwrap() {
            Input::NoRoom { tag } => assert_eq!(tag.as_deref(), Some("b")),
            i => panic!("{i:?}"),
        }
        // A small one fits, and holds its room until released.
        match conn.read_command().await.unwrap() {
            Input::Command(c) => assert_eq!(c, b"c APPEND x {5+}\r\nhello"),
            i => panic!("{i:?}"),
        }
        assert!(!budget.reserve().cover(1), "held while the command runs");
        conn.release_budget();
        assert!(budget.reserve().cover(64 * 1024), "given back");
        drop(cw);
        let mut rest = Vec::new();
        drop(conn);
        cr.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "no go-ahead was sent: {rest:?}");
    }
}

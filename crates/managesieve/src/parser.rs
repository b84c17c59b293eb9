//! ManageSieve command syntax (RFC 5804 4): a command name, then arguments that are atoms,
//! numbers, quoted strings (`"..."` with `\"` and `\\`) or literals (`{N+}` or `{N}`, a
//! line end, then exactly N octets; the client never waits for a continuation), up to
//! the line end. Reading is bounded: a line by `[limits] max_line_length`, a literal by
//! the caller's limit (a larger one is read and dropped, and reported as too large).

use letterbox_proto::{read_line, Line};
use tokio::io::{AsyncBufRead, AsyncReadExt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Atom(String),
    /// A quoted string or a literal, as octets.
    String(Vec<u8>),
}

impl Arg {
    pub fn text(&self) -> Option<String> {
        match self {
            Arg::String(b) => String::from_utf8(b.clone()).ok(),
            Arg::Atom(a) => Some(a.clone()),
        }
    }
}

#[derive(Debug)]
pub enum Read {
    /// The command (upper-cased) and its arguments.
    Command(String, Vec<Arg>),
    /// Malformed: the reason, for a `NO`.
    Bad(String),
    /// A literal over the limit (read and dropped).
    TooBig,
    Eof,
}

/// Reads one command.
pub async fn read_command<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max_line: usize,
    max_literal: u64,
) -> std::io::Result<Read> {
    let mut args: Vec<Arg> = Vec::new();
    let mut name: Option<String> = None;
    let mut line = Vec::new();
    let mut too_big = false;
    loop {
        match read_line(r, &mut line, max_line).await? {
            Line::Ok => {}
            Line::TooLong => return Ok(Read::Bad("line too long".into())),
            Line::Eof => return Ok(Read::Eof),
        }
        let mut i = 0;
        let b = &line[..];
        let mut literal: Option<u64> = None;
        while i < b.len() {
            match b[i] {
                b' ' | b'\t' => i += 1,
                b'"' => {
                    i += 1;
                    let mut s = Vec::new();
                    loop {
                        match b.get(i) {
                            None => return Ok(Read::Bad("unterminated quoted string".into())),
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(b'\\') => {
                                match b.get(i + 1) {
                                    Some(&c @ (b'"' | b'\\')) => s.push(c),
                                    _ => return Ok(Read::Bad("bad escape in quoted string".into())),
                                }
                                i += 2;
                            }
                            Some(&c) => {
                                s.push(c);
                                i += 1;
                            }
                        }
                    }
                    args.push(Arg::String(s));
                }
                b'{' => {
                    let Some(end) = b[i..].iter().position(|&c| c == b'}') else {
                        return Ok(Read::Bad("malformed literal".into()));
                    };
                    let inner = &b[i + 1..i + end];
                    let digits = inner.strip_suffix(b"+").unwrap_or(inner);
                    if i + end + 1 != b.len() || digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
                        return Ok(Read::Bad("malformed literal".into()));
                    }
                    let n: u64 = std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).unwrap_or(u64::MAX);
                    literal = Some(n);
                    i = b.len();
                }
                _ => {
                    let start = i;
                    while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'"' | b'{') {
                        i += 1;
                    }
                    let atom = String::from_utf8_lossy(&b[start..i]).to_string();
                    if name.is_none() && args.is_empty() {
                        name = Some(atom.to_ascii_uppercase());
                    } else {
                        args.push(Arg::Atom(atom));
                    }
                }
            }
        }
        let Some(n) = literal else {
            break;
        };
        if n > max_literal {
            too_big = true;
            let mut sink = tokio::io::sink();
            let copied = tokio::io::copy(&mut (&mut *r).take(n), &mut sink).await?;
            if copied < n {
                return Ok(Read::Eof);
            }
            args.push(Arg::String(Vec::new()));
        } else {
            let mut data = vec![0u8; n as usize];
            if r.read_exact(&mut data).await.is_err() {
                return Ok(Read::Eof);
            }
            args.push(Arg::String(data));
        }
        // The rest of the command continues on the line after the literal.
    }
    if too_big {
        return Ok(Read::TooBig);
    }
    match name {
        Some(n) => Ok(Read::Command(n, args)),
        None if args.is_empty() => Ok(Read::Bad("empty command".into())),
        None => Ok(Read::Bad("missing command name".into())),
    }
}

/// A quoted string for a response (RFC 5804 4: no CR/LF in quoted strings; a literal
/// otherwise).
pub fn string(s: &[u8]) -> Vec<u8> {
    if s.len() < 1024 && !s.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0) {
        let mut out = Vec::with_capacity(s.len() + 2);
        out.push(b'"');
        for &c in s {
            if c == b'"' || c == b'\\' {
                out.push(b'\\');
            }
            out.push(c);
        }
        out.push(b'"');
        out
    } else {
        let mut out = format!("{{{}}}\r\n", s.len()).into_bytes();
        out.extend_from_slice(s);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(input: &[u8]) -> Read {
        let mut r = tokio::io::BufReader::new(input);
        read_command(&mut r, 1024, 100).await.unwrap()
    }

    #[tokio::test]
    async fn commands() {
        match parse(b"putScript \"my \\\"s\\\"\" {5+}\r\nkeep;\r\n").await {
            Read::Command(n, a) => {
                assert_eq!(n, "PUTSCRIPT");
                assert_eq!(a, vec![Arg::String(b"my \"s\"".to_vec()), Arg::String(b"keep;".to_vec())]);
            }
            other => panic!("{other:?}"),
        }
        match parse(b"AUTHENTICATE \"PLAIN\" {4}\r\nabcd\r\n").await {
            Read::Command(n, a) => assert_eq!((n.as_str(), a.len()), ("AUTHENTICATE", 2)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(b"PUTSCRIPT \"x\" {500+}\r\n").await, Read::Eof));
        let mut big = b"PUTSCRIPT \"x\" {150+}\r\n".to_vec();
        big.extend_from_slice(&[b'a'; 150]);
        big.extend_from_slice(b"\r\n");
        assert!(matches!(parse(&big).await, Read::TooBig));
        assert!(matches!(parse(b"X \"open\r\n").await, Read::Bad(_)));
        assert!(matches!(parse(b"X {abc}\r\n").await, Read::Bad(_)));
        assert!(matches!(parse(b"").await, Read::Eof));
        assert_eq!(string(b"a\"b"), b"\"a\\\"b\"");
        assert_eq!(string(b"a\r\nb"), b"{4}\r\na\r\nb");
    }
}

//! Reading message content: the DATA stream (RFC 5321 4.1.1.4, dot-stuffing 4.5.2) and
//! BDAT chunks (RFC 3030).
//!
//! What is stored is the content exactly as sent, with two transformations:
//! - dot-unstuffing (DATA only): a line's leading `.` is removed;
//! - a bare LF (an LF not preceded by CR) becomes CRLF, in DATA and in BDAT alike. Stored
//!   messages are always CRLF text, as RFC 5322 requires and as IMAP and POP3 sizes and
//!   offsets assume. A bare CR is left as it is.
//!
//! Line length: RFC 5321 4.5.3.1.6 limits text lines to 1000 octets, but real mail breaks
//! that rule, and refusing it bounces legitimate messages. Letterbox accepts longer lines
//! and stores them unchanged; only the message size limit (`[smtp] max_message_size`)
//! bounds the content, so memory stays bounded whatever the client sends. A message over
//! the limit is read to its end (to stay in step with the client) and then refused with
//! `552 5.3.4`.
//!
//! Every read waits at most the session's time-out.

use letterbox_proto::budget::Reservation;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// How reading message content ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Content {
    /// The whole content, within the size limit.
    Complete(Vec<u8>),
    /// The content was read to its end but exceeded the size limit; nothing kept.
    TooBig,
    /// The client closed the connection before the end.
    Eof,
    /// The client stayed silent longer than the time-out.
    Timeout,
    /// The content was read to its end, but the server's budget for content in memory
    /// (`[limits] max_buffered_content`) was spent; nothing kept. A temporary refusal.
    NoRoom,
}

async fn fill<R: AsyncBufRead + Unpin>(
    r: &mut R,
    timeout: Duration,
) -> std::io::Result<Option<&[u8]>> {
    match tokio::time::timeout(timeout, r.fill_buf()).await {
        Ok(Ok(b)) => Ok(Some(b)),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(None),
    }
}

/// Reads DATA content up to the terminating `.` line, unstuffing dots and turning bare LF
/// into CRLF. Keeps at most `max` octets of content.
/// Room is reserved in `room` as the content grows.
pub async fn read_data<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: u64,
    timeout: Duration,
    room: &mut Reservation,
) -> std::io::Result<Content> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut body: Vec<u8> = Vec::new();
    let mut too_big = false;
    let mut no_room = false;
    // The current line, with its LF when complete. Once the message is too big, only the
    // first octets of each line are kept: enough to recognise the terminator.
    let mut line: Vec<u8> = Vec::new();
    loop {
        line.clear();
        loop {
            let Some(avail) = fill(r, timeout).await? else {
                return Ok(Content::Timeout);
            };
            if avail.is_empty() {
                return Ok(Content::Eof);
            }
            let (chunk, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (&avail[..=i], true),
                None => (avail, false),
            };
            let n = chunk.len();
            if too_big {
                // Keep the first 3 octets (".\r\n" at most) and the line end.
                let room = 3usize.saturating_sub(line.len()).min(n);
                line.extend_from_slice(&chunk[..room]);
                if done && room < n {
                    line.push(b'\n');
                }
            } else {
                line.extend_from_slice(chunk);
                // A line that cannot fit any more: stop keeping it (+2 for the line end
                // normalisation and a stuffed dot). The same when the server has no room.
                let over = body.len() + line.len() > max.saturating_add(3);
                if over || !room.cover(body.len() + line.len() + 1) {
                    too_big = true;
                    no_room = !over;
                    body = Vec::new();
                    line.truncate(3);
                    if done && line.last() != Some(&b'\n') {
                        line.push(b'\n');
                    }
                }
            }
            r.consume(n);
            if done {
                break;
            }
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(if no_room {
                Content::NoRoom
            } else if too_big {
                Content::TooBig
            } else {
                Content::Complete(body)
            });
        }
        if too_big {
            continue;
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        body.extend_from_slice(content);
        // Line end: `\n` was read; make it CRLF.
        if !(content.ends_with(b"\r\n")) {
            body.pop();
            body.extend_from_slice(b"\r\n");
        }
        if body.len() > max {
            too_big = true;
            body = Vec::new();
        }
    }
}

/// Reads one BDAT chunk of exactly `size` octets, appending it to `into` unless that would
/// take `into` past `max` (then the octets are read and dropped, and the result is
/// `TooBig`). The octets are kept as sent; see [`normalize_line_ends`] for the end.
/// With `into`, room for the whole chunk is reserved in its reservation first.
pub async fn read_chunk<R: AsyncBufRead + Unpin>(
    r: &mut R,
    size: u64,
    into: Option<(&mut Vec<u8>, &mut Reservation)>,
    max: u64,
    timeout: Duration,
) -> std::io::Result<Content> {
    let mut left = size;
    let mut no_room = false;
    let keep = match into {
        Some((v, room)) if (v.len() as u64).saturating_add(size) <= max => {
            let total = usize::try_from(v.len() as u64 + size).unwrap_or(usize::MAX);
            no_room = !room.cover(total);
            (!no_room).then_some(v)
        }
        _ => None,
    };
    let too_big = keep.is_none();
    let mut keep = keep;
    if let Some(v) = keep.as_deref_mut() {
        v.reserve(size as usize);
    }
    while left > 0 {
        let Some(avail) = fill(r, timeout).await? else {
            return Ok(Content::Timeout);
        };
        if avail.is_empty() {
            return Ok(Content::Eof);
        }
        let n = avail.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if let Some(v) = keep.as_deref_mut() {
            v.extend_from_slice(&avail[..n]);
        }
        r.consume(n);
        left -= n as u64;
    }
    Ok(if no_room {
        Content::NoRoom
    } else if too_big {
        Content::TooBig
    } else {
        Content::Complete(Vec::new())
    })
}

/// Turns every bare LF into CRLF (an LF already preceded by CR is left alone).
pub fn normalize_line_ends(body: Vec<u8>) -> Vec<u8> {
    let bare = body
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || body[i - 1] != b'\r'))
        .count();
    if bare == 0 {
        return body;
    }
    let mut out = Vec::with_capacity(body.len() + bare);
    let mut prev = 0u8;
    for &b in &body {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_room_reads_to_the_end_and_keeps_nothing() {
        // A budget of one 64 KiB unit, already taken by another message.
        let budget = letterbox_proto::budget::Budget::new(64 * 1024);
        let mut other = budget.reserve();
        assert!(other.cover(1));
        let mut input = b"line\r\n".repeat(10);
        input.extend_from_slice(b".\r\nQUIT\r\n");
        let mut r = tokio::io::BufReader::with_capacity(7, &input[..]);
        let got = read_data(
            &mut r,
            1 << 20,
            Duration::from_secs(5),
            &mut budget.reserve(),
        )
        .await
        .unwrap();
        assert_eq!(got, Content::NoRoom);
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut rest)
            .await
            .unwrap();
        assert_eq!(rest, b"QUIT\r\n", "still in step with the client");
        drop(other);
        let mut r = tokio::io::BufReader::with_capacity(7, &input[..]);
        let got = read_data(
            &mut r,
            1 << 20,
            Duration::from_secs(5),
            &mut budget.reserve(),
        )
        .await
        .unwrap();
        assert_eq!(got, Content::Complete(b"line\r\n".repeat(10)));
    }

    fn room() -> Reservation {
        letterbox_proto::budget::Budget::new(1 << 30).reserve()
    }

    async fn data(input: &[u8], max: u64) -> Content {
        let mut r = tokio::io::BufReader::with_capacity(5, input);
        read_data(&mut r, max, Duration::from_secs(5), &mut room())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn unstuffing_and_line_ends() {
        assert_eq!(
            data(b"a\r\n..b\r\n.c\r\nbare\nx\r\r\n.\r\nRSET\r\n", 1000).await,
            Content::Complete(b"a\r\n.b\r\nc\r\nbare\r\nx\r\r\n".to_vec())
        );
        assert_eq!(data(b".\r\n", 1000).await, Content::Complete(vec![]));
        assert_eq!(data(b".\n", 1000).await, Content::Complete(vec![]));
        assert_eq!(
            data(b"a\r\n..\r\n.\r\n", 1000).await,
            Content::Complete(b"a\r\n.\r\n".to_vec())
        );
        assert_eq!(
            data(b"a\r\n. \r\n.\r\n", 1000).await,
            Content::Complete(b"a\r\n \r\n".to_vec())
        );
        assert_eq!(data(b"a\r\nb", 1000).await, Content::Eof);
        assert_eq!(data(b"a\r\n.", 1000).await, Content::Eof);
    }

    #[tokio::test]
    async fn size_limit() {
        assert_eq!(
            data(b"0123456789\r\n.\r\n", 12).await,
            Content::Complete(b"0123456789\r\n".to_vec())
        );
        assert_eq!(data(b"0123456789\r\n.\r\n", 11).await, Content::TooBig);
        let mut big = vec![b'x'; 100_000];
        big.extend_from_slice(b"\r\n..\r\nmore\r\n.\r\n");
        assert_eq!(data(&big, 1000).await, Content::TooBig);
        // The stream stays in step: what follows the terminator is still there.
        let mut input = big.clone();
        input.extend_from_slice(b"QUIT\r\n");
        let mut r = tokio::io::BufReader::with_capacity(7, &input[..]);
        assert_eq!(
            read_data(&mut r, 1000, Duration::from_secs(5), &mut room())
                .await
                .unwrap(),
            Content::TooBig
        );
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut rest)
            .await
            .unwrap();
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[tokio::test]
    async fn chunks() {
        let input: &[u8] = b"hello\nworldQUIT\r\n";
        let mut r = tokio::io::BufReader::with_capacity(3, input);
        let mut v = Vec::new();
        let mut room = room();
        let t = Duration::from_secs(5);
        assert_eq!(
            read_chunk(&mut r, 6, Some((&mut v, &mut room)), 100, t)
                .await
                .unwrap(),
            Content::Complete(vec![])
        );
        assert_eq!(
            read_chunk(&mut r, 5, Some((&mut v, &mut room)), 10, t)
                .await
                .unwrap(),
            Content::TooBig
        );
        assert_eq!(v, b"hello\n");
        let mut line = Vec::new();
        letterbox_proto::read_line(&mut r, &mut line, 100)
            .await
            .unwrap();
        assert_eq!(line, b"QUIT");
        assert_eq!(
            normalize_line_ends(b"a\nb\r\nc\n\n\r".to_vec()),
            b"a\r\nb\r\nc\r\n\r\n\r"
        );
        assert_eq!(normalize_line_ends(b"\n".to_vec()), b"\r\n");
    }
}

//! The multi-line response body of RETR and TOP (RFC 1939 section 3): byte-stuffing of
//! lines that start with `.`, the line limit of TOP, and the terminating line.
//!
//! Both work on a stream of chunks, so a message never has to be held whole. A "line
//! start" is the first octet of the message and every octet after an LF. A message stored
//! with LF-only line ends (IMAP APPEND may store one) is sent with CRLF (`crlf`), and
//! one without a final line end gets one, so that RETR sends exactly the size LIST gave
//! (`letterbox_store::line_ends`).

/// Dot-stuffs a message body chunk by chunk and ends it with the terminating `.` line.
#[derive(Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    /// The last two octets passed in (before stuffing), to know whether the body ended
    /// with CRLF.
    tail: [u8; 2],
    /// Octets passed on (after CRLF repair, before stuffing): what LIST and STAT count.
    pub octets: u64,
    /// Send LF-only line ends as CRLF (the message has some: known from the store).
    pub crlf: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            tail: [0, 0],
            octets: 0,
            crlf: false,
        }
    }
}

impl DotStuffer {
    /// A stuffer; `crlf`: the message has LF-only line ends to send as CRLF.
    pub fn new(crlf: bool) -> DotStuffer {
        DotStuffer {
            crlf,
            ..DotStuffer::default()
        }
    }

    /// Appends `input`, dot-stuffed (and with bare LFs made CRLF when `crlf`), to `out`.
    pub fn stuff(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.crlf && !input.is_empty() {
            let mut fixed = Vec::with_capacity(input.len() + input.len() / 16 + 2);
            let mut copied = 0;
            for i in memchr::memchr_iter(b'\n', input) {
                let before = if i == 0 { self.tail[1] } else { input[i - 1] };
                if before != b'\r' {
                    fixed.extend_from_slice(&input[copied..i]);
                    fixed.push(b'\r');
                    copied = i;
                }
            }
            if !fixed.is_empty() {
                fixed.extend_from_slice(&input[copied..]);
                return self.stuff_crlf(&fixed, out);
            }
        }
        self.stuff_crlf(input, out)
    }

    /// [`Self::stuff`] of octets whose line ends are CRLF already.
    fn stuff_crlf(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        out.reserve(input.len() + 16);
        // Dots are rare and lines are many: look for dots (SIMD), not for line ends.
        let mut copied = 0;
        for i in memchr::memchr_iter(b'.', input) {
            let line_start = match i {
                0 => self.at_line_start,
                _ => input[i - 1] == b'\n',
            };
            if line_start {
                out.extend_from_slice(&input[copied..i]);
                out.push(b'.');
                copied = i;
            }
        }
        out.extend_from_slice(&input[copied..]);
        self.at_line_start = input[input.len() - 1] == b'\n';
        self.octets += input.len() as u64;
        if input.len() >= 2 {
            self.tail = [input[input.len() - 2], input[input.len() - 1]];
        } else {
            self.tail = [self.tail[1], input[0]];
        }
    }

    /// Appends the end of the response: CRLF when the body did not end with one (an
    /// empty body needs none), then `.` CRLF.
    pub fn finish(&self, out: &mut Vec<u8>) {
        if self.octets > 0 && self.tail != *b"\r\n" {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// Cuts a message after its header, the blank line and `n` body lines (TOP msg n).
#[derive(Debug)]
pub struct TopLimit {
    in_header: bool,
    /// Octets of the current line seen in earlier chunks, and whether all were CR.
    line_octets: u64,
    line_cr_only: bool,
    body_lines_left: u64,
    done: bool,
}

impl TopLimit {
    pub fn new(body_lines: u64) -> TopLimit {
        TopLimit {
            in_header: true,
            line_octets: 0,
            line_cr_only: true,
            body_lines_left: body_lines,
            done: false,
        }
    }

    /// True once everything wanted has been passed: the caller stops reading.
    pub fn done(&self) -> bool {
        self.done
    }

    /// How many octets at the start of `chunk` belong to the output.
    pub fn take(&mut self, chunk: &[u8]) -> usize {
        if self.done {
            return 0;
        }
        if !self.in_header && self.body_lines_left == 0 {
            self.done = true;
            return 0;
        }
        let mut pos = 0;
        while pos < chunk.len() {
            let Some(i) = chunk[pos..].iter().position(|&b| b == b'\n') else {
                let part = &chunk[pos..];
                self.line_octets += part.len() as u64;
                self.line_cr_only &= part.iter().all(|&b| b == b'\r');
                return chunk.len();
            };
            let line = &chunk[pos..pos + i];
            // Empty: nothing before the LF but the CR of the CRLF.
            let empty = self.line_octets + line.len() as u64 <= 1
                && self.line_cr_only
                && line.iter().all(|&b| b == b'\r');
            pos += i + 1;
            self.line_octets = 0;
            self.line_cr_only = true;
            if self.in_header {
                if empty {
                    self.in_header = false;
                    if self.body_lines_left == 0 {
                        self.done = true;
                        return pos;
                    }
                }
            } else {
                self.body_lines_left -= 1;
                if self.body_lines_left == 0 {
                    self.done = true;
                    return pos;
                }
            }
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuff_in_chunks(msg: &[u8], chunk: usize) -> Vec<u8> {
        let mut d = DotStuffer::default();
        let mut out = Vec::new();
        for c in msg.chunks(chunk.max(1)) {
            d.stuff(c, &mut out);
        }
        d.finish(&mut out);
        assert_eq!(d.octets, msg.len() as u64);
        out
    }

    /// What a client does: split at CRLF, stop at ".", drop one leading dot.
    fn unstuff(wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = wire;
        loop {
            let i = rest.windows(2).position(|w| w == b"\r\n").expect("CRLF");
            let line = &rest[..i];
            rest = &rest[i + 2..];
            if line == b"." {
                assert!(rest.is_empty(), "data after the terminator");
                return out;
            }
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
            out.extend_from_slice(b"\r\n");
        }
    }

    #[test]
    fn stuffing_every_chunking() {
        let cases: &[&[u8]] = &[
            b"",
            b"a\r\n",
            b".\r\n",
            b"..\r\n",
            b"Subject: x\r\n\r\n.hidden\r\n.\r\n..\r\nend\r\n",
            b"no newline at the end",
            b"ends with dot\r\n.",
            b"\r\n\r\n.",
            b"x\r",
        ];
        for msg in cases {
            for chunk in 1..=msg.len().max(1) {
                let wire = stuff_in_chunks(msg, chunk);
                let mut expect = msg.to_vec();
                if !expect.is_empty() && !expect.ends_with(b"\r\n") {
                    expect.extend_from_slice(b"\r\n");
                }
                assert_eq!(unstuff(&wire), expect, "{msg:?} chunk {chunk}");
                assert_eq!(
                    wire,
                    stuff_in_chunks(msg, msg.len()),
                    "chunking changes nothing"
                );
            }
        }
        assert_eq!(stuff_in_chunks(b"", 1), b".\r\n");
        assert_eq!(stuff_in_chunks(b".a\r\n", 1), b"..a\r\n.\r\n");
        assert_eq!(stuff_in_chunks(b"a\r\n.", 1), b"a\r\n..\r\n.\r\n");
        assert_eq!(stuff_in_chunks(b"abc", 2), b"abc\r\n.\r\n");
    }

    fn top(msg: &[u8], n: u64, chunk: usize) -> Vec<u8> {
        let mut t = TopLimit::new(n);
        let mut out = Vec::new();
        for c in msg.chunks(chunk.max(1)) {
            let k = t.take(c);
            out.extend_from_slice(&c[..k]);
            if t.done() {
                break;
            }
        }
        out
    }

    #[test]
    fn bare_lf_made_crlf_in_every_chunking() {
        let msg: &[u8] = b"\nSubject: x\n.dot\r\nmixed\n\n.\nend";
        let want: &[u8] = b"\r\nSubject: x\r\n..dot\r\nmixed\r\n\r\n..\r\nend\r\n.\r\n";
        for chunk in 1..=msg.len() {
            let mut s = DotStuffer::new(true);
            let mut out = Vec::new();
            for c in msg.chunks(chunk) {
                s.stuff(c, &mut out);
            }
            s.finish(&mut out);
            assert_eq!(out, want, "chunk {chunk}");
            // The stored size + one per bare LF (`finish` adds the final CRLF).
            assert_eq!(s.octets, msg.len() as u64 + 5);
        }
    }

    #[test]
    fn top_limits() {
        let m = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3";
        for chunk in 1..=m.len() {
            assert_eq!(top(m, 0, chunk), b"A: 1\r\nB: 2\r\n\r\n", "chunk {chunk}");
            assert_eq!(top(m, 1, chunk), b"A: 1\r\nB: 2\r\n\r\nl1\r\n");
            assert_eq!(top(m, 2, chunk), b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
            assert_eq!(top(m, 3, chunk), m);
            assert_eq!(top(m, 99, chunk), m);
        }
        // No body at all: the whole header.
        assert_eq!(top(b"A: 1\r\n", 0, 3), b"A: 1\r\n");
        // A body that starts at once (no header).
        assert_eq!(top(b"\r\nbody\r\nmore\r\n", 1, 2), b"\r\nbody\r\n");
        // A line with only a CR in the header does not end it early.
        for chunk in 1..6 {
            assert_eq!(
                top(b"A: 1\r\n\r\r\nB\r\n\r\nb\r\n", 0, chunk),
                b"A: 1\r\n\r\r\nB\r\n\r\n"
            );
        }
    }
}

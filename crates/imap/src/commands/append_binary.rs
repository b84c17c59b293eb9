//! Binary content sent by APPEND as a literal8 (RFC 3516 4.4: `~{n}`), stored in
//! base64, as Dovecot does (its binary converter).
//!
//! RFC 3516 lets a client APPEND a message whose parts are `Content-Transfer-Encoding:
//! binary` (NULs and bare octets included). Such octets cannot be sent back in a plain
//! `BODY[...]` literal (RFC 9051 4.3: no NUL in a literal), and a client that does not
//! speak BINARY must still get a readable message. So each leaf part declared `binary`
//! is rewritten once, at APPEND: its `Content-Transfer-Encoding` field becomes `base64`
//! and its body the base64 of the octets sent, in lines of 76 characters (RFC 2045
//! 6.8). `BINARY[part]` and `BINARY.SIZE[part]` decode it back to exactly the octets
//! the client sent; the rest of the message (headers, other parts, boundaries) is
//! stored as sent. A message without such a part is stored unchanged. RFC822.SIZE and
//! the quota count the stored (converted) octets.

use base64::Engine;
use letterbox_message::{Part, PartKind};

/// The message with its `binary` leaf parts in base64, or `None` when it has none.
pub fn to_base64(raw: &[u8]) -> Option<Vec<u8>> {
    let parsed = letterbox_message::parse(raw);
    let mut leaves = Vec::new();
    collect(&parsed.root, &mut leaves);
    if leaves.is_empty() {
        return None;
    }
    leaves.sort_by_key(|p| p.offset_header);
    let mut out = Vec::with_capacity(raw.len() * 4 / 3 + 256);
    let mut pos = 0usize;
    for p in leaves {
        let (h, b, e) = (
            p.offset_header as usize,
            p.offset_body as usize,
            p.offset_end as usize,
        );
        // Offsets come from our own parse of these octets; anything out of order
        // (overlapping parts) leaves the message as sent.
        if h < pos || !(h <= b && b <= e && e <= raw.len()) {
            return None;
        }
        out.extend_from_slice(&raw[pos..h]);
        rewrite_header(&raw[h..b], &mut out);
        let lines = encode_lines(&raw[b..e]);
        out.extend_from_slice(&lines);
        // The line break before a boundary belongs to the boundary (RFC 2046 5.1.1):
        // keep the one that follows rather than add a blank line.
        let break_follows = raw[e..].starts_with(b"\r\n") || raw[e..].starts_with(b"\n");
        if break_follows && !lines.is_empty() {
            out.truncate(out.len() - 2);
        }
        pos = e;
    }
    out.extend_from_slice(&raw[pos..]);
    Some(out)
}

fn collect<'a>(p: &'a Part, out: &mut Vec<&'a Part>) {
    match &p.kind {
        PartKind::Leaf => {
            if p.encoding
                .as_deref()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case("binary"))
            {
                out.push(p);
            }
        }
        PartKind::Multipart(parts) => parts.iter().for_each(|c| collect(c, out)),
        PartKind::Message(_, inner) => collect(inner, out),
    }
}

/// The header with its `Content-Transfer-Encoding` field (and its folded lines)
/// replaced by `Content-Transfer-Encoding: base64`, in the header's own line ending.
fn rewrite_header(header: &[u8], out: &mut Vec<u8>) {
    const NAME: &[u8] = b"content-transfer-encoding:";
    let mut in_cte = false;
    let mut done = false;
    for line in header.split_inclusive(|&c| c == b'\n') {
        let folded = line.first().is_some_and(|&c| c == b' ' || c == b'\t');
        if in_cte && folded {
            continue;
        }
        in_cte = false;
        if !done && line.len() >= NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME) {
            let eol: &[u8] = if line.ends_with(b"\r\n") {
                b"\r\n"
            } else {
                b"\n"
            };
            out.extend_from_slice(b"Content-Transfer-Encoding: base64");
            out.extend_from_slice(eol);
            in_cte = true;
            done = true;
            continue;
        }
        out.extend_from_slice(line);
    }
}

/// Base64 in CRLF-terminated lines of 76 characters.
fn encode_lines(body: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(body);
    let mut out = Vec::with_capacity(text.len() + text.len() / 76 * 2 + 2);
    for chunk in text.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_part_becomes_base64_and_the_rest_stays() {
        let raw = b"From: a@b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding:\r\n binary\r\n\r\n\0-\xe4\r\n\r\n";
        let out = to_base64(raw).unwrap();
        assert_eq!(
            out,
            b"From: a@b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAC3kDQoNCg==\r\n"
        );
        assert_eq!(to_base64(b"From: a@b\r\n\r\nplain\r\n"), None);
        let multi = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\nContent-Transfer-Encoding: BINARY\r\n\r\n\0\0\r\n--x--\r\n";
        let out = to_base64(multi).unwrap();
        assert_eq!(
            out,
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\nContent-Transfer-Encoding: base64\r\n\r\nAAA=\r\n--x--\r\n".to_vec()
        );
    }
}

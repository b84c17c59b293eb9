//! IMAP's rendering of a parsed message (RFC 9051 7.5.2): ENVELOPE and BODYSTRUCTURE/BODY
//! from the stored structure, and the string syntax they use (RFC 9051 4.3: quoted or
//! literal; RFC 6855 3: UTF-8 quoted once UTF8=ACCEPT is enabled). Here, beside the
//! parse, so that the store can keep a message's BODYSTRUCTURE rendered at delivery
//! ([`bodystructure`], issue 18) and IMAP answers a first FETCH BODYSTRUCTURE of a big
//! mailbox with octets read, not trees decoded and rendered; IMAP's FETCH renders with
//! the very same functions.
//!
//! A string goes quoted when it is short, free of CR, LF and NUL, and — for IMAP4rev1
//! sessions — 7-bit (RFC 3501 `QUOTED-CHAR` is 7-bit; RFC 9051 allows UTF-8 there).
//! Otherwise it is a literal (`{n}` CRLF octets), and a literal holding NUL (only BINARY
//! can produce one) is a literal8 (`~{n}`, RFC 3516).

use crate::{Address, Envelope, Part, PartKind};

/// The version of [`body_structure`]'s and [`envelope`]'s output, kept with every stored
/// rendering: change it whenever either writes other octets for the same tree or
/// envelope, and renderings stored before are then ignored (and rendered again).
pub const RENDERING: &[u8; 4] = b"LBB1";

/// A message's BODYSTRUCTURE (extended, the tree's root at depth 0) rendered for a
/// session without UTF8=ACCEPT, as FETCH writes it after `BODYSTRUCTURE `. The same
/// octets serve a UTF8=ACCEPT session when [`same_with_utf8`] says so.
pub fn bodystructure(root: &Part) -> Vec<u8> {
    let mut v = Vec::with_capacity(256);
    body_structure(&mut v, root, true, false, 0);
    v
}

/// Whether a rendering made without UTF8=ACCEPT is also the one with it: it holds no
/// literal (CR appears only in a literal's `{n}` CRLF), so every string was quoted, i.e.
/// 7-bit, and UTF8=ACCEPT only changes how 8-bit strings are written.
pub fn same_with_utf8(rendered: &[u8]) -> bool {
    !rendered.contains(&b'\r')
}

/// Strings longer than this go as literals even when they could be quoted.
const MAX_QUOTED: usize = 1024;

pub fn needs_literal(s: &[u8], utf8_ok: bool) -> bool {
    if s.len() > MAX_QUOTED {
        return true;
    }
    if s.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return true;
    }
    if s.iter().any(|&b| b >= 0x80) {
        return !(utf8_ok && std::str::from_utf8(s).is_ok());
    }
    // Many escapes read worse than a literal.
    s.iter().filter(|&&b| b == b'"' || b == b'\\').count() > 8
}

pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    if s.contains(&0) {
        out.push(b'~');
    }
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

pub fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// `string`: quoted or literal.
pub fn string(out: &mut Vec<u8>, s: &[u8], utf8_ok: bool) {
    if needs_literal(s, utf8_ok) {
        literal(out, s);
    } else {
        quoted(out, s);
    }
}

/// `nstring`.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>, utf8_ok: bool) {
    match s {
        Some(s) => string(out, s, utf8_ok),
        None => out.extend_from_slice(b"NIL"),
    }
}

fn addresses(out: &mut Vec<u8>, list: &[Address], utf8: bool) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        nstring(out, a.name.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        nstring(out, a.adl.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        nstring(out, a.mailbox.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        nstring(out, a.host.as_deref().map(str::as_bytes), utf8);
        out.push(b')');
    }
    out.push(b')');
}

/// A message's ENVELOPE rendered on its own, as FETCH writes it after `ENVELOPE `
/// ([`envelope`]): what the store keeps rendered at delivery (without UTF8=ACCEPT; the
/// same octets serve a UTF8=ACCEPT session when [`same_with_utf8`] says so) and IMAP's
/// message cache keeps per message.
pub fn rendered_envelope(e: &Envelope, utf8: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(256);
    envelope(&mut v, e, utf8);
    v
}

pub fn envelope(out: &mut Vec<u8>, e: &Envelope, utf8: bool) {
    let ns =
        |out: &mut Vec<u8>, s: &Option<String>| nstring(out, s.as_deref().map(str::as_bytes), utf8);
    out.push(b'(');
    ns(out, &e.date);
    out.push(b' ');
    ns(out, &e.subject);
    for list in [&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc] {
        out.push(b' ');
        addresses(out, list, utf8);
    }
    out.push(b' ');
    ns(out, &e.in_reply_to);
    out.push(b' ');
    ns(out, &e.message_id);
    out.push(b')');
}

fn params(out: &mut Vec<u8>, p: &[(String, String)], utf8: bool) {
    if p.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in p.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.as_bytes(), utf8);
        out.push(b' ');
        string(out, v.as_bytes(), utf8);
    }
    out.push(b')');
}

/// `body-ext-*` after md5 (1part) or params (mpart): disposition, language, location.
fn ext_tail(out: &mut Vec<u8>, p: &Part, utf8: bool) {
    out.push(b' ');
    match &p.disposition {
        Some((kind, dp)) => {
            out.push(b'(');
            string(out, kind.as_bytes(), utf8);
            out.push(b' ');
            params(out, dp, utf8);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    if p.language.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        for (i, l) in p.language.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            string(out, l.as_bytes(), utf8);
        }
        out.push(b')');
    }
    out.push(b' ');
    nstring(out, p.location.as_deref().map(str::as_bytes), utf8);
}

const EMPTY_TEXT: &[u8] = b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";

/// BODYSTRUCTURE (`extended`) or BODY.
pub fn body_structure(out: &mut Vec<u8>, p: &Part, extended: bool, utf8: bool, depth: usize) {
    if depth > 100 {
        out.extend_from_slice(EMPTY_TEXT);
        return;
    }
    out.push(b'(');
    match &p.kind {
        PartKind::Multipart(children) => {
            if children.is_empty() {
                // A multipart needs a part (RFC 9051 `body-type-mpart`): an empty one.
                out.extend_from_slice(&EMPTY_TEXT[..EMPTY_TEXT.len() - 1]);
                if extended {
                    out.extend_from_slice(b" NIL NIL NIL NIL");
                }
                out.push(b')');
            }
            for c in children {
                body_structure(out, c, extended, utf8, depth + 1);
            }
            out.push(b' ');
            string(out, p.mime_subtype.as_bytes(), utf8);
            if extended {
                out.push(b' ');
                params(out, &p.params, utf8);
                ext_tail(out, p, utf8);
            }
        }
        kind => {
            string(out, p.mime_type.as_bytes(), utf8);
            out.push(b' ');
            string(out, p.mime_subtype.as_bytes(), utf8);
            out.push(b' ');
            if p.params.is_empty() && p.mime_type == "text" {
                // RFC 2045 5.2 default, as Dovecot writes it.
                out.extend_from_slice(b"(\"charset\" \"us-ascii\")");
            } else {
                params(out, &p.params, utf8);
            }
            out.push(b' ');
            nstring(out, p.content_id.as_deref().map(str::as_bytes), utf8);
            out.push(b' ');
            nstring(out, p.description.as_deref().map(str::as_bytes), utf8);
            out.push(b' ');
            string(
                out,
                p.encoding.as_deref().unwrap_or("7bit").as_bytes(),
                utf8,
            );
            out.extend_from_slice(format!(" {}", p.body_len()).as_bytes());
            if let PartKind::Message(env, inner) = kind {
                out.push(b' ');
                envelope(out, env, utf8);
                out.push(b' ');
                body_structure(out, inner, extended, utf8, depth + 1);
                out.extend_from_slice(format!(" {}", p.body_lines).as_bytes());
            } else if p.mime_type == "text" {
                out.extend_from_slice(format!(" {}", p.body_lines).as_bytes());
            }
            if extended {
                out.push(b' ');
                nstring(out, p.md5.as_deref().map(str::as_bytes), utf8);
                ext_tail(out, p, utf8);
            }
        }
    }
    out.push(b')');
}

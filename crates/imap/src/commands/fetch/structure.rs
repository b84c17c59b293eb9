//! ENVELOPE and BODYSTRUCTURE/BODY from the structure stored at delivery (RFC 9051
//! 7.5.2); nothing is parsed here.

use crate::response::{nstring, string};
use letterbox_message::{Address, Envelope, Part, PartKind};

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

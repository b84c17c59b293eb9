//! Writing responses: strings quoted or sent as literals as their content requires,
//! `NIL`, lists, flags. Everything is appended to a `Vec<u8>` the session flushes.
//!
//! A string goes quoted when it is short, free of CR, LF and NUL, and — for IMAP4rev1
//! sessions — 7-bit (RFC 3501 `QUOTED-CHAR` is 7-bit; RFC 9051 allows UTF-8 there).
//! Otherwise it is a literal (`{n}` CRLF octets), and a literal holding NUL (only BINARY
//! can produce one) is a literal8 (`~{n}`, RFC 3516).

use letterbox_store::Flags;

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

/// `astring`: a bare atom when it can be one (and is not `NIL`), else a string.
pub fn astring(out: &mut Vec<u8>, s: &[u8], utf8_ok: bool) {
    if !s.is_empty()
        && s.iter()
            .all(|&b| crate::parser::is_atom_char(b) || b == b']')
        && !s.eq_ignore_ascii_case(b"NIL")
    {
        out.extend_from_slice(s);
    } else {
        string(out, s, utf8_ok);
    }
}

/// A flag list body (without parentheses): system flags, then keywords.
pub fn flags(out: &mut Vec<u8>, f: Flags, keywords: &[String], recent: bool) {
    out.push(b'(');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b' ');
        }
        first = false;
    };
    // The order of the FLAGS response (and Dovecot's).
    for (flag, name) in [
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::SEEN, "\\Seen"),
        (Flags::DRAFT, "\\Draft"),
    ] {
        if f.contains(flag) {
            sep(out);
            out.extend_from_slice(name.as_bytes());
        }
    }
    if recent {
        sep(out);
        out.extend_from_slice(b"\\Recent");
    }
    for k in keywords {
        sep(out);
        out.extend_from_slice(k.as_bytes());
    }
    out.push(b')');
}

/// Compresses sorted numbers into a `sequence-set` (`1:3,7,9:10`).
pub fn sequence_set(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nums.len() {
        let start = nums[i];
        let mut end = start;
        while i + 1 < nums.len() && nums[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = nums[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[u8], utf8: bool) -> String {
        let mut o = Vec::new();
        string(&mut o, v, utf8);
        String::from_utf8_lossy(&o).into_owned()
    }

    #[test]
    fn strings() {
        assert_eq!(s(b"hello", false), "\"hello\"");
        assert_eq!(s(b"", false), "\"\"");
        assert_eq!(s(b"a\"b\\c", false), "\"a\\\"b\\\\c\"");
        assert_eq!(s(b"a\r\nb", false), "{4}\r\na\r\nb");
        assert_eq!(s("Jörg".as_bytes(), false), "{5}\r\nJörg");
        assert_eq!(s("Jörg".as_bytes(), true), "\"Jörg\"");
        assert_eq!(s(b"\xff", true), "{1}\r\n\u{fffd}");
        let mut o = Vec::new();
        literal(&mut o, b"a\0b");
        assert_eq!(o, b"~{3}\r\na\0b");
        let mut o = Vec::new();
        astring(&mut o, b"INBOX", false);
        astring(&mut o, b" ", false);
        astring(&mut o, b"nil", false);
        assert_eq!(o, b"INBOX\" \"\"nil\"");
        assert_eq!(sequence_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(sequence_set(&[]), "");
    }
}

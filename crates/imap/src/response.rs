//! Writing responses: strings quoted or sent as literals as their content requires,
//! `NIL`, lists, flags. Everything is appended to a `Vec<u8>` the session flushes.
//!
//! A string goes quoted or as a literal as `letterbox_message::imap` decides (RFC 9051
//! 4.3, RFC 3516 literal8, RFC 6855 UTF-8 quoted strings).

use letterbox_store::Flags;

// The string syntax is the message crate's, shared with the BODYSTRUCTURE the store
// keeps rendered (`letterbox_message::imap`).
pub use letterbox_message::imap::{literal, needs_literal, nstring, quoted, string};

/// A decimal number appended without formatting machinery (every FETCH response
/// line has several: sequence number, UID, size).
pub fn number(out: &mut Vec<u8>, mut n: u64) {
    let mut d = [0u8; 20];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&d[i..]);
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

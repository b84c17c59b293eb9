//! Modified UTF-7 for mailbox names (RFC 3501 section 5.1.3), spoken to IMAP4rev1
//! clients; sessions that enable IMAP4rev2 or UTF8=ACCEPT get UTF-8 (RFC 9051 5.1).
//!
//! Printable ASCII stands for itself except `&`, written `&-`; other characters are
//! UTF-16, base64-encoded with `,` for `/`, between `&` and `-`. Decoding is strict (RFC
//! 3501: no redundant shifts, no encoded printable ASCII, padding bits zero), so a name
//! has exactly one spelling and two spellings cannot reach the same mailbox.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64_value(b: u8) -> Option<u32> {
    B64.iter().position(|&c| c == b).map(|i| i as u32)
}

pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    fn flush(out: &mut String, pending: &mut Vec<u16>) {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let mut bits: u32 = 0;
        let mut nbits = 0;
        for u in pending.drain(..) {
            bits = (bits << 16) | u32::from(u);
            nbits += 16;
            while nbits >= 6 {
                nbits -= 6;
                out.push(B64[((bits >> nbits) & 63) as usize] as char);
            }
            bits &= (1 << nbits) - 1;
        }
        if nbits > 0 {
            out.push(B64[((bits << (6 - nbits)) & 63) as usize] as char);
        }
        out.push('-');
    }
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut out, &mut pending);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut pending);
    out
}

/// Decodes a modified UTF-7 name; `None` if it is not valid modified UTF-7.
pub fn decode(s: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last_was_shift = false;
    while i < s.len() {
        let b = s[i];
        if b == b'&' {
            let end = i + 1 + s[i + 1..].iter().position(|&c| c == b'-')?;
            let enc = &s[i + 1..end];
            if enc.is_empty() {
                out.push('&');
                last_was_shift = false;
            } else {
                if last_was_shift {
                    return None; // two shifted runs back to back
                }
                let mut bits: u32 = 0;
                let mut nbits = 0;
                let mut units = Vec::new();
                for &c in enc {
                    bits = (bits << 6) | b64_value(c)?;
                    nbits += 6;
                    if nbits >= 16 {
                        nbits -= 16;
                        units.push((bits >> nbits) as u16);
                        bits &= (1 << nbits) - 1;
                    }
                }
                if nbits >= 6 || bits != 0 {
                    return None;
                }
                let text = String::from_utf16(&units).ok()?;
                if text.chars().any(|c| (' '..='~').contains(&c)) {
                    return None;
                }
                out.push_str(&text);
                last_was_shift = true;
            }
            i = end + 1;
            continue;
        }
        if !(0x20..=0x7e).contains(&b) {
            return None;
        }
        out.push(b as char);
        last_was_shift = false;
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        assert_eq!(encode("A&B"), "A&-B");
        assert_eq!(decode(b"A&-B").as_deref(), Some("A&B"));
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode(b"Entw&APw-rfe").as_deref(), Some("Entwürfe"));
        assert_eq!(encode("😀"), "&2D3eAA-");
        assert_eq!(decode(b"&2D3eAA-").as_deref(), Some("😀"));
        assert_eq!(decode(b"&U,BTFw-&ZeVnLIqe-"), None);
        assert_eq!(decode(b"&AGE-"), None); // encoded "a"
        assert_eq!(decode(b"&U,B"), None);
        assert_eq!(decode("ü".as_bytes()), None);
        for s in ["", "INBOX", "a/b c", "Ünïcödé & more", "日本語&"] {
            assert_eq!(decode(encode(s).as_bytes()).as_deref(), Some(s));
        }
    }
}

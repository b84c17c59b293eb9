//! Attachment removal (issue 15): rewrites a message so that chosen leaf parts are
//! replaced, in place, by Thunderbird's deleted-attachment placeholder, which
//! Thunderbird and KMail display as "deleted attachment":
//!
//! ```text
//! Content-Type: text/x-moz-deleted; name="Deleted: FILE"
//! Content-Transfer-Encoding: 8bit
//! Content-Disposition: inline; filename="Deleted: FILE"
//! X-Mozilla-Altered: AttachmentDeleted; date="Sun Dec 06 20:55:00 2026"
//!
//! <a short text>, then the original part's header lines
//! ```
//!
//! Only the octets `[offset_header, offset_end)` of each removed part change (the
//! offsets of [`crate::parse`], the one parser); every other octet, the multipart
//! delimiters included (RFC 2046 5.1.1: the CRLF before a delimiter belongs to it), stays
//! as it was, and one header field `X-Letterbox-Attachments-Removed` is put first to
//! say when, how much and by which rule. File names are written per RFC 2231
//! (`filename*=utf-8''...`) and RFC 2047 (`name="=?utf-8?b?...?="`, as Thunderbird and
//! Outlook read it in Content-Type) when they are not plain printable ASCII.
//!
//! Refused, whatever the selection: text/plain and text/html parts that are not
//! attachments (the message's body), parts that already are placeholders, message/*
//! parts (message/rfc822, message/delivery-status, message/global...) and what is inside
//! them, signature parts; and the whole message when it is signed or encrypted
//! (multipart/signed, multipart/encrypted, application/pkcs7-mime: RFC 1847, RFC 3156,
//! RFC 8551), since any change breaks the signature, unless the caller forces it.

use crate::{ParsedMessage, Part, PartKind};

/// One part chosen for removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// IMAP section number (`2`, `1.3`).
    pub section: String,
    pub mime_type: String,
    pub filename: String,
    /// Octets of the original part (header and body).
    pub size: u64,
}

/// The outcome for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing matched.
    Nothing,
    /// Signed or encrypted, not forced: untouched.
    Signed,
    /// The rewritten octets and what was removed.
    Stripped {
        octets: Vec<u8>,
        removed: Vec<Removed>,
    },
}

/// Removes from `raw` (parsed as `parsed`) every removable leaf part whose body is at
/// least `min_body` octets. `now` (seconds since the epoch) dates the placeholders;
/// `rule` is recorded in the added header (printable ASCII; anything else is dropped).
pub fn strip(
    raw: &[u8],
    parsed: &ParsedMessage,
    min_body: u64,
    force: bool,
    now: i64,
    rule: &str,
) -> Outcome {
    strip_chosen(raw, parsed, min_body, None, force, now, rule)
}

/// As [`strip`], for the removable leaf parts at the given IMAP `sections` only (the
/// portal's per-attachment button); a section that is not removable is left alone.
pub fn strip_sections(
    raw: &[u8],
    parsed: &ParsedMessage,
    sections: &[String],
    force: bool,
    now: i64,
    rule: &str,
) -> Outcome {
    strip_chosen(raw, parsed, 0, Some(sections), force, now, rule)
}

/// The removable leaf parts of a message (section, part), as [`strip`] would choose them
/// with no size limit.
pub fn removable_parts(parsed: &ParsedMessage) -> Vec<(String, &Part)> {
    let mut chosen = Vec::new();
    collect(&parsed.root, "", 0, true, &mut chosen);
    chosen
}

/// Signed or encrypted: [`strip`] refuses it unless forced.
pub fn is_signed(parsed: &ParsedMessage) -> bool {
    signed(&parsed.root)
}

fn strip_chosen(
    raw: &[u8],
    parsed: &ParsedMessage,
    min_body: u64,
    sections: Option<&[String]>,
    force: bool,
    now: i64,
    rule: &str,
) -> Outcome {
    if !force && signed(&parsed.root) {
        return Outcome::Signed;
    }
    let mut chosen = Vec::new();
    collect(&parsed.root, "", min_body, true, &mut chosen);
    if let Some(only) = sections {
        chosen.retain(|(s, _)| only.contains(s));
    }
    chosen.retain(|(_, p)| (p.offset_end as usize) <= raw.len() && p.offset_header <= p.offset_end);
    if chosen.is_empty() {
        return Outcome::Nothing;
    }
    let date = ctime(now);
    let mut out = Vec::with_capacity(raw.len());
    let mut removed = Vec::new();
    let mut at = 0usize;
    let mut body = Vec::new();
    for (section, p) in &chosen {
        let (h, e) = (p.offset_header as usize, p.offset_end as usize);
        if h < at {
            continue; // nested in a part already replaced (cannot happen for leaves)
        }
        body.extend_from_slice(&raw[at..h]);
        let original = &raw[h..e];
        let header = &raw[h..(p.offset_body as usize).clamp(h, e)];
        let filename = name_of(p);
        body.extend_from_slice(&placeholder(
            &filename,
            &date,
            header,
            original.ends_with(b"\n"),
        ));
        removed.push(Removed {
            section: section.clone(),
            mime_type: format!("{}/{}", p.mime_type, p.mime_subtype),
            filename,
            size: original.len() as u64,
        });
        at = e;
    }
    body.extend_from_slice(&raw[at..]);
    let freed = raw.len().saturating_sub(body.len());
    let rule: String = rule
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect();
    out.extend_from_slice(
        format!(
            "X-Letterbox-Attachments-Removed: {} part(s), {} octets removed, {}; rule: {}\r\n",
            removed.len(),
            freed,
            iso(now),
            rule
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    Outcome::Stripped {
        octets: out,
        removed,
    }
}

fn signed(p: &Part) -> bool {
    let t = (p.mime_type.as_str(), p.mime_subtype.as_str());
    if matches!(t, ("multipart", "signed") | ("multipart", "encrypted"))
        || matches!(
            t,
            ("application", "pkcs7-mime") | ("application", "x-pkcs7-mime")
        )
    {
        return true;
    }
    match &p.kind {
        PartKind::Multipart(parts) => parts.iter().any(signed),
        _ => false,
    }
}

fn collect<'a>(
    p: &'a Part,
    section: &str,
    min_body: u64,
    root: bool,
    out: &mut Vec<(String, &'a Part)>,
) {
    match &p.kind {
        PartKind::Multipart(parts) => {
            for (i, c) in parts.iter().enumerate() {
                let s = if section.is_empty() {
                    format!("{}", i + 1)
                } else {
                    format!("{section}.{}", i + 1)
                };
                collect(c, &s, min_body, false, out);
            }
        }
        PartKind::Message(..) => {}
        PartKind::Leaf => {
            if !root && removable(p) && u64::from(p.body_len()) >= min_body {
                out.push((section.to_string(), p));
            }
        }
    }
}

fn removable(p: &Part) -> bool {
    let attachment = p
        .disposition
        .as_ref()
        .is_some_and(|(d, _)| d.eq_ignore_ascii_case("attachment"));
    match (p.mime_type.as_str(), p.mime_subtype.as_str()) {
        ("text", "x-moz-deleted") => false,
        ("text", "plain" | "html") => attachment,
        ("message", _) | ("multipart", _) => false,
        (
            "application",
            "pgp-signature" | "pkcs7-signature" | "x-pkcs7-signature" | "pgp-encrypted",
        ) => false,
        _ => true,
    }
}

fn name_of(p: &Part) -> String {
    let param = |list: &[(String, String)], key: &str| {
        list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    p.disposition
        .as_ref()
        .and_then(|(_, ps)| param(ps, "filename"))
        .or_else(|| param(&p.params, "name"))
        .unwrap_or_else(|| format!("part.{}", p.mime_subtype))
}

fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        && s.len() <= 60
}

/// The placeholder entity (header and body); ends with CRLF when the original did.
fn placeholder(filename: &str, date: &str, original_header: &[u8], crlf_end: bool) -> Vec<u8> {
    let name = format!("Deleted: {filename}");
    let (ct_name, disp_name) = if plain(&name) {
        (format!("name=\"{name}\""), format!("filename=\"{name}\""))
    } else {
        (
            format!("name=\"=?UTF-8?B?{}?=\"", base64(name.as_bytes())),
            format!("filename*=UTF-8''{}", pct(name.as_bytes())),
        )
    };
    let mut v = format!(
        "Content-Type: text/x-moz-deleted; {ct_name}\r\nContent-Transfer-Encoding: 8bit\r\n\
         Content-Disposition: inline; {disp_name}\r\nX-Mozilla-Altered: AttachmentDeleted; date=\"{date}\"\r\n\r\n\
         The attachment was removed from this message by the mail server.\r\n\
         The original MIME headers for the attachment were:\r\n"
    )
    .into_bytes();
    let mut h = original_header;
    while let Some(x) = h.strip_suffix(b"\n") {
        h = x.strip_suffix(b"\r").unwrap_or(x);
    }
    v.extend_from_slice(h);
    if crlf_end {
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// RFC 2231 section 4 `attribute-char`s kept, every other octet as %XX.
fn pct(s: &[u8]) -> String {
    let mut o = String::new();
    for &b in s {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn base64(s: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::new();
    for c in s.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                o.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

fn civil(t: i64) -> (i64, u32, u32, i64, i64) {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, days, secs)
}

/// `Sun Dec 06 20:55:00 2026`, the form Thunderbird writes in X-Mozilla-Altered.
fn ctime(t: i64) -> String {
    let (y, m, d, days, s) = civil(t);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} {}",
        WD[days.rem_euclid(7) as usize],
        MO[(m as usize).clamp(1, 12) - 1],
        d,
        s / 3600,
        s / 60 % 60,
        s % 60,
        y
    )
}

fn iso(t: i64) -> String {
    let (y, m, d, _, s) = civil(t);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(base64(b"Deleted: \xc3\xa9.pdf"), "RGVsZXRlZDogw6kucGRm");
        assert_eq!(pct("Deleted: é.pdf".as_bytes()), "Deleted%3A%20%C3%A9.pdf");
        assert_eq!(ctime(1_796_590_500), "Sun Dec 06 20:55:00 2026");
    }

    #[test]
    fn strips_only_the_chosen_sections() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\nAAAA\r\n--b\r\nContent-Type: application/pdf; name=b.pdf\r\n\r\nBBBB\r\n--b--\r\n";
        let p = crate::parse(raw);
        let all: Vec<String> = removable_parts(&p).into_iter().map(|(s, _)| s).collect();
        assert_eq!(all, ["2", "3"]);
        assert!(!is_signed(&p));
        let Outcome::Stripped { octets, removed } =
            strip_sections(raw, &p, &["3".to_string()], false, 0, "t")
        else {
            panic!()
        };
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].filename, "b.pdf");
        let s = String::from_utf8(octets).unwrap();
        assert!(s.contains("AAAA") && !s.contains("BBBB"), "{s}");
        // The body (section 1) is never removable, even when asked for.
        assert_eq!(
            strip_sections(raw, &p, &["1".to_string()], false, 0, "t"),
            Outcome::Nothing
        );
    }

    #[test]
    fn strips_in_place() {
        let raw = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n--b--\r\n";
        let p = crate::parse(raw);
        let Outcome::Stripped { octets, removed } = strip(raw, &p, 0, false, 0, "test") else {
            panic!()
        };
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].section, "2");
        let s = String::from_utf8(octets).unwrap();
        let body = s.split_once("\r\n").unwrap().1;
        assert!(body.starts_with("Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/x-moz-deleted; name=\"Deleted: a.pdf\"\r\n"), "{s}");
        assert!(
            body.ends_with("Content-Transfer-Encoding: base64\r\n--b--\r\n"),
            "{s}"
        );
    }
}

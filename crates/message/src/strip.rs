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
    strip_sections(raw, parsed, None, min_body, force, now, rule)
}

/// The removable leaf parts of a message (section, part), as [`strip`] would choose them
/// with no size limit (the portal's "Remove" buttons).
pub fn removable_parts(parsed: &ParsedMessage) -> Vec<(String, &Part)> {
    let mut chosen = Vec::new();
    collect(&parsed.root, "", 0, true, &mut chosen);
    chosen
}

/// Signed or encrypted: [`strip`] refuses to change it unless forced.
pub fn is_signed(parsed: &ParsedMessage) -> bool {
    signed(&parsed.root)
}

/// [`strip`], limited to the parts whose IMAP section number is in `sections` (a user's
/// choice of attachments, e.g. in the portal); the same refusals hold.
pub fn strip_sections(
    raw: &[u8],
    parsed: &ParsedMessage,
    sections: Option<&[String]>,
    min_body: u64,
    force: bool,
    now: i64,
    rule: &str,
) -> Outcome {
    let mut chosen = Vec::new();
    collect(&parsed.root, "", min_body, true, &mut chosen);
    if let Some(only) = sections {
        chosen.retain(|(section, _)| only.iter().any(|s| s == section));
    }
    chosen.retain(|(_, p)| {
        (p.offset_end as usize) <= raw.len()
            && p.offset_header <= p.offset_body
            && p.offset_body <= p.offset_end
    });
    if chosen.is_empty() {
        return Outcome::Nothing;
    }
    // Only a message that would change is refused (a signed message with nothing to
    // remove is simply left alone, and a daily policy does not report it every day).
    if !force && signed(&parsed.root) {
        return Outcome::Signed;
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
        let filename = name_of(header, p);
        body.extend_from_slice(&placeholder(
            &filename,
            &date,
            header,
            original.ends_with(b"\n"),
            eol_of(header),
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
    // The message's own line ending (bare-LF messages stay bare-LF).
    // One line of at most about 300 octets (the rule is cut at 200), within RFC 5322's
    // 998.
    let eol = eol_of(&raw[..raw.len().min(4096)]);
    let rule: String = rule
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect();
    out.extend_from_slice(
        format!(
            "X-Letterbox-Attachments-Removed: {} part(s), {} octets removed, {}; rule: {}{}",
            removed.len(),
            freed,
            iso(now),
            rule,
            eol
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
        // A report's parts (RFC 6522: the human part, message/delivery-status or
        // message/disposition-notification, the returned message or its headers) are
        // what makes it a report: never touched.
        PartKind::Multipart(_) if p.mime_subtype == "report" => {}
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

/// The part's file name, decoded: `filename` of Content-Disposition, else `name` of
/// Content-Type, with RFC 2231 continuations and charsets and RFC 2047 encoded words
/// resolved by mail-parser (the crate that parses everything else); control characters
/// dropped. A part without one is called `part.SUBTYPE`.
fn name_of(header: &[u8], p: &Part) -> String {
    use mail_parser::MimeHeaders;
    let mut h = header.to_vec();
    if !h.ends_with(b"\n\n") && !h.ends_with(b"\r\n\r\n") {
        h.extend_from_slice(b"\r\n");
    }
    let parsed = mail_parser::MessageParser::default().parse_headers(&h[..]);
    let name = parsed
        .as_ref()
        .and_then(|m| m.attachment_name())
        .map(|n| n.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|n| !n.trim().is_empty());
    name.unwrap_or_else(|| format!("part.{}", p.mime_subtype))
}

/// `\r\n`, or `\n` when `bytes` has line ends and none of them is CRLF.
fn eol_of(bytes: &[u8]) -> &'static str {
    match memchr::memchr(b'\n', bytes) {
        Some(i) if i == 0 || bytes[i - 1] != b'\r' => "\n",
        _ => "\r\n",
    }
}

fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        && s.len() <= 60
}

/// The placeholder entity (header and body); ends with a line end when the original
/// did. Long or non-ASCII names are folded: RFC 2047 encoded words of whole UTF-8
/// characters (at most 75 octets each, section 2; section 5 allows them in a quoted
/// `name`, as Thunderbird and Outlook read and write it) and RFC 2231 continuations
/// (`filename*0*=UTF-8''...; filename*1*=...`, section 3 and 4) of at most 50 octets, so no line passes 78.
fn placeholder(
    filename: &str,
    date: &str,
    original_header: &[u8],
    crlf_end: bool,
    eol: &str,
) -> Vec<u8> {
    let name = format!("Deleted: {filename}");
    let fold = format!("{eol} ");
    let (ct_name, disp_name) = if plain(&name) {
        (format!("name=\"{name}\""), format!("filename=\"{name}\""))
    } else {
        let words: Vec<String> = utf8_chunks(&name, 39)
            .into_iter()
            .map(|c| format!("=?UTF-8?B?{}?=", base64(c.as_bytes())))
            .collect();
        let pieces = pct_chunks(&name, 50);
        let disp = if pieces.len() == 1 {
            format!("filename*=UTF-8''{}", pieces[0])
        } else {
            pieces
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i == 0 {
                        format!("filename*0*=UTF-8''{c}")
                    } else {
                        format!("filename*{i}*={c}")
                    }
                })
                .collect::<Vec<_>>()
                .join(&format!(";{fold}"))
        };
        (format!("name=\"{}\"", words.join(&fold)), disp)
    };
    // Thunderbird's own form, one line each, when it fits in 78 characters; folded
    // after the `;` otherwise.
    let sep = |field: &str, param: &str| {
        if field.len() + 2 + param.len() <= 78 {
            " ".to_string()
        } else {
            fold.clone()
        }
    };
    let (s1, s2) = (
        sep("Content-Type: text/x-moz-deleted;", &ct_name),
        sep("Content-Disposition: inline;", &disp_name),
    );
    let mut v = format!(
        "Content-Type: text/x-moz-deleted;{s1}{ct_name}{eol}Content-Transfer-Encoding: 8bit{eol}\
         Content-Disposition: inline;{s2}{disp_name}{eol}X-Mozilla-Altered: AttachmentDeleted; date=\"{date}\"{eol}{eol}\
         The attachment was removed from this message by the mail server.{eol}\
         The original MIME headers for the attachment were:{eol}"
    )
    .into_bytes();
    let mut h = original_header;
    while let Some(x) = h.strip_suffix(b"\n") {
        h = x.strip_suffix(b"\r").unwrap_or(x);
    }
    v.extend_from_slice(h);
    if crlf_end {
        v.extend_from_slice(eol.as_bytes());
    }
    v
}

/// `s` cut into pieces of at most `max` octets, never inside a UTF-8 character.
fn utf8_chunks(s: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let next = i + c.len_utf8();
        if next - start > max && end > start {
            out.push(&s[start..end]);
            start = end;
        }
        end = next;
    }
    if end > start {
        out.push(&s[start..end]);
    }
    out
}

/// The RFC 2231 %-encoded form of `s` in pieces of at most `max` characters, never
/// splitting a character (readers such as mail-parser decode each piece on its own).
fn pct_chunks(s: &str, max: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut buf = [0u8; 4];
    for c in s.chars() {
        let one = pct(c.encode_utf8(&mut buf).as_bytes());
        if out.last().is_some_and(|l| l.len() + one.len() > max) {
            out.push(String::new());
        }
        if let Some(l) = out.last_mut() {
            l.push_str(&one);
        }
    }
    out
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
            strip_sections(raw, &p, Some(&["3".to_string()]), 0, false, 0, "t")
        else {
            panic!()
        };
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].filename, "b.pdf");
        let s = String::from_utf8(octets).unwrap();
        assert!(s.contains("AAAA") && !s.contains("BBBB"), "{s}");
        // The body (section 1) is never removable, even when asked for.
        assert_eq!(
            strip_sections(raw, &p, Some(&["1".to_string()]), 0, false, 0, "t"),
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

    fn stripped(raw: &[u8], force: bool) -> (String, Vec<Removed>) {
        let p = crate::parse(raw);
        match strip(raw, &p, 0, force, 0, "t") {
            Outcome::Stripped { octets, removed } => (String::from_utf8(octets).unwrap(), removed),
            o => panic!("{o:?}"),
        }
    }

    fn mixed(att_header: &str, eol: &str) -> Vec<u8> {
        format!(
            "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n{att_header}\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n--b--\r\n"
        )
        .replace("\r\n", eol)
        .into_bytes()
    }

    /// The name a reader gets back from the placeholder (mail-parser decodes RFC 2047
    /// and RFC 2231 as Thunderbird does).
    fn names_read_back(octets: &str) -> (String, String) {
        use mail_parser::MimeHeaders;
        let at = octets.find("Content-Type: text/x-moz-deleted").unwrap();
        let end = octets[at..].find("\r\n\r\n").unwrap() + at + 4;
        let m = mail_parser::MessageParser::default()
            .parse_headers(octets[at..end].as_bytes())
            .unwrap();
        (
            m.content_type().unwrap().attribute("name").unwrap().to_string(),
            m.content_disposition().unwrap().attribute("filename").unwrap().to_string(),
        )
    }

    #[test]
    fn encoded_names_are_decoded_then_encoded_again() {
        // RFC 2231 continuations with a charset, and RFC 2047 in a quoted name.
        for (h, want) in [
            (
                "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*0*=utf-8''%E6%96%87; filename*1*=%E4%BB%B6.pdf",
                "\u{6587}\u{4ef6}.pdf",
            ),
            ("Content-Type: application/pdf; name=\"=?UTF-8?B?w6l0w6kucGRm?=\"", "\u{e9}t\u{e9}.pdf"),
            ("Content-Type: application/pdf; name=\"=?ISO-8859-1?Q?r=E9sum=E9=2Epdf?=\"", "r\u{e9}sum\u{e9}.pdf"),
        ] {
            let (out, removed) = stripped(&mixed(h, "\r\n"), false);
            assert_eq!(removed[0].filename, want, "{h}");
            let (n, f) = names_read_back(&out);
            assert_eq!((n.as_str(), f.as_str()), (format!("Deleted: {want}").as_str(), format!("Deleted: {want}").as_str()));
        }
    }

    #[test]
    fn long_names_are_folded_and_read_back_whole() {
        let long = "\u{e9}t\u{e9} ".repeat(40) + "rapport.pdf";
        let h = format!("Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*=utf-8''{}", pct(long.as_bytes()));
        let (out, _) = stripped(&mixed(&h, "\r\n"), false);
        let at = out.find("Content-Type: text/x-moz-deleted").unwrap();
        let header = &out[at..at + out[at..].find("\r\n\r\n").unwrap()];
        for line in header.split("\r\n") {
            assert!(line.len() <= 78, "{line}");
        }
        for w in header.split(|c| c == '"' || c == ' ').filter(|w| w.starts_with("=?")) {
            assert!(w.len() <= 75, "{w}");
        }
        assert!(header.contains("filename*0*=UTF-8''Deleted%3A%20"), "{header}");
        let (n, f) = names_read_back(&out);
        assert_eq!(n, format!("Deleted: {long}"));
        assert_eq!(f, format!("Deleted: {long}"));
    }

    #[test]
    fn bare_lf_messages_stay_bare_lf() {
        let raw = mixed("Content-Type: application/pdf; name=a.pdf", "\n");
        let (out, _) = stripped(&raw, false);
        assert!(!out.contains('\r'), "{out:?}");
        assert!(out.contains("\nContent-Type: text/x-moz-deleted; name=\"Deleted: a.pdf\"\nContent-Transfer-Encoding: 8bit\n"), "{out:?}");
        assert!(out.ends_with("Content-Transfer-Encoding: base64\n--b--\n"), "{out:?}");
    }

    #[test]
    fn refusals() {
        let p = |raw: &[u8]| strip(raw, &crate::parse(raw), 0, false, 0, "t");
        // A report's parts, a forwarded message, bodies and placeholders stay.
        let report = b"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 5.0.0\r\n\r\n--r\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: x\r\n\r\n--r--\r\n";
        assert_eq!(p(report), Outcome::Nothing);
        let fwd = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: application/pdf\r\n\r\nQUJD\r\n--c--\r\n\r\n--b--\r\n";
        assert_eq!(p(fwd), Outcome::Nothing);
        let (once, _) = stripped(&mixed("Content-Type: application/pdf; name=a.pdf", "\r\n"), false);
        assert_eq!(p(once.as_bytes()), Outcome::Nothing);
        // Signed: refused when something would go, left alone when nothing would.
        let signed = b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=s\r\n\r\n--s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pdf\r\n\r\nQUJD\r\n--b--\r\n\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\nSIG\r\n--s--\r\n";
        assert_eq!(p(signed), Outcome::Signed);
        let (_, removed) = stripped(signed, true);
        assert_eq!(removed.len(), 1, "forced: the PDF only, never the signature");
        let plain_signed = b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=s\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\nhi\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\nSIG\r\n--s--\r\n";
        assert_eq!(p(plain_signed), Outcome::Nothing);
        let smime = b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\r\nMIAG\r\n";
        assert_eq!(p(smime), Outcome::Nothing, "a single-part message: nothing to replace");
    }

    #[test]
    fn chosen_sections_only() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\nQUJD\r\n--b\r\nContent-Type: image/png; name=b.png\r\n\r\nQUJD\r\n--b--\r\n";
        let p = crate::parse(raw);
        let only = ["3".to_string()];
        let Outcome::Stripped { removed, .. } = strip_sections(raw, &p, Some(&only), 0, false, 0, "t") else {
            panic!()
        };
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].filename, "b.png");
        // The body (section 1) is never removable, even when chosen.
        let body = ["1".to_string()];
        assert_eq!(strip_sections(raw, &p, Some(&body), 0, false, 0, "t"), Outcome::Nothing);
    }
}

//! `BODY[section]` and `BINARY[section]`: which octets a section names (from the stored part
//! offsets), HEADER.FIELDS selection on a header's octets, and content-transfer decoding
//! for BINARY (RFC 3516). Part numbers follow RFC 9051 6.4.5 ([`Part::find`]): `n` of a
//! message/rfc822 part is the whole encapsulated message, `n.HEADER`/`n.TEXT`/
//! `n.HEADER.FIELDS` its header and body, `n.1` the first part inside it.

use crate::parser::{Section, SectionText};
use base64::Engine;
use letterbox_message::{Part, PartKind};

#[derive(Debug, PartialEq, Eq)]
pub enum Extract {
    /// The section does not exist: `NIL`.
    Nil,
    /// Octets `offset..offset+len` of the message.
    Range(u64, u64),
    /// A header (octet range) filtered by field names.
    Fields {
        offset: u64,
        len: u64,
        not: bool,
        fields: Vec<String>,
    },
}

fn header_range(p: &Part) -> (u64, u64) {
    (u64::from(p.offset_header), u64::from(p.header_len()))
}

fn body_range(p: &Part) -> (u64, u64) {
    (u64::from(p.offset_body), u64::from(p.body_len()))
}

/// The encapsulated message's top entity, for `n.HEADER`/`n.TEXT` on message/rfc822.
fn inner_message(p: &Part) -> Option<&Part> {
    match &p.kind {
        PartKind::Message(_, inner) => Some(inner),
        _ => None,
    }
}

pub fn locate(root: &Part, size: u64, sec: &Section) -> Extract {
    let (target, is_root) = if sec.part.is_empty() {
        (root, true)
    } else {
        match root.find(&sec.part) {
            Some(p) => (p, false),
            None => return Extract::Nil,
        }
    };
    // HEADER/TEXT of a part apply to the message it encapsulates; of the top, to itself.
    let msg = if is_root {
        Some(target)
    } else {
        inner_message(target)
    };
    let (o, l) = match &sec.text {
        None if is_root => (0, size),
        None => body_range(target),
        Some(SectionText::Mime) => header_range(target),
        Some(SectionText::Header) => match msg {
            Some(m) => header_range(m),
            None => return Extract::Nil,
        },
        Some(SectionText::Text) => match msg {
            Some(m) => body_range(m),
            None => return Extract::Nil,
        },
        Some(SectionText::HeaderFields { not, fields }) => match msg {
            Some(m) => {
                let (offset, len) = header_range(m);
                return Extract::Fields {
                    offset,
                    len,
                    not: *not,
                    fields: fields.clone(),
                };
            }
            None => return Extract::Nil,
        },
    };
    Extract::Range(o, l)
}

/// The fields of a header whose names are (or, with `not`, are not) in `fields`, in
/// their original order, followed by the blank line.
pub fn filter_header(header: &[u8], fields: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if content.is_empty() {
            break;
        }
        if matches!(content[0], b' ' | b'\t') {
            if keep {
                out.extend_from_slice(line);
            }
            continue;
        }
        let name = content
            .iter()
            .position(|&b| b == b':')
            .map(|i| &content[..i])
            .unwrap_or(content);
        let name = name.trim_ascii_end();
        let listed = fields
            .iter()
            .any(|f| f.as_bytes().eq_ignore_ascii_case(name));
        keep = listed != not;
        if keep {
            out.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The section label as echoed in the response (`1.HEADER.FIELDS (FROM)`).
pub fn label(sec: &Section) -> String {
    let mut s: Vec<String> = sec.part.iter().map(u32::to_string).collect();
    if let Some(t) = &sec.text {
        s.push(match t {
            SectionText::Header => "HEADER".into(),
            SectionText::Text => "TEXT".into(),
            SectionText::Mime => "MIME".into(),
            SectionText::HeaderFields { not, fields } => format!(
                "HEADER.FIELDS{} ({})",
                if *not { ".NOT" } else { "" },
                fields
                    .iter()
                    .map(|f| f.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        });
    }
    s.join(".")
}

#[derive(Debug)]
pub struct UnknownCte;

/// Undoes a content-transfer-encoding (RFC 2045): base64, quoted-printable, or identity.
pub fn decode_cte(encoding: Option<&str>, body: &[u8]) -> Result<Vec<u8>, UnknownCte> {
    let enc = encoding.unwrap_or("7bit").trim().to_ascii_lowercase();
    match enc.as_str() {
        "7bit" | "8bit" | "binary" | "" => Ok(body.to_vec()),
        "base64" => Ok(decode_base64(body)),
        "quoted-printable" => Ok(decode_qp(body)),
        _ => Err(UnknownCte),
    }
}

fn decode_base64(body: &[u8]) -> Vec<u8> {
    let mut clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    // Lenient: drop a dangling sextet that cannot form an octet.
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&clean)
        .unwrap_or_default()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Quoted-printable (RFC 2045 6.7): `=XX` is an octet; white space at the end of a line
/// is transport padding and goes (rule 3); `=` ending a line, white space after it
/// allowed, is a soft line break and joins the lines (rule 5). An `=` that starts
/// neither stays as it is (the lenient reading RFC 2045 suggests), as Dovecot decodes.
fn decode_qp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        let (content, eol) = match line.strip_suffix(b"\r\n") {
            Some(c) => (c, &b"\r\n"[..]),
            None => match line.strip_suffix(b"\n") {
                Some(c) => (c, &b"\n"[..]),
                None => (line, &b""[..]),
            },
        };
        let keep = content
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(0, |i| i + 1);
        let content = &content[..keep];
        let (content, soft) = match content.strip_suffix(b"=") {
            Some(c) => (c, true),
            None => (content, false),
        };
        let mut i = 0;
        while i < content.len() {
            let b = content[i];
            if b == b'=' {
                if let (Some(h), Some(l)) = (
                    content.get(i + 1).copied().and_then(hex),
                    content.get(i + 2).copied().and_then(hex),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            out.push(b);
            i += 1;
        }
        if !soft {
            out.extend_from_slice(eol);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let h = b"From: a@x\r\nTo: b@y,\r\n c@z\r\nSubject: hi\r\n\r\n";
        assert_eq!(
            filter_header(h, &["to".into(), "SUBJECT".into()], false),
            b"To: b@y,\r\n c@z\r\nSubject: hi\r\n\r\n"
        );
        assert_eq!(
            filter_header(h, &["to".into()], true),
            b"From: a@x\r\nSubject: hi\r\n\r\n"
        );
        assert_eq!(filter_header(h, &["X".into()], false), b"\r\n");
    }

    #[test]
    fn decoding() {
        assert_eq!(
            decode_cte(Some("BASE64"), b"aGVs\r\nbG8=\r\n").unwrap(),
            b"hello"
        );
        assert_eq!(
            decode_cte(Some("quoted-printable"), b"a=3Db=\r\nc=ZZ").unwrap(),
            b"a=bc=ZZ"
        );
        assert_eq!(decode_cte(None, b"x").unwrap(), b"x");
        // Padding at line ends goes; `=` then white space is still a soft break.
        assert_eq!(
            decode_cte(
                Some("quoted-printable"),
                b"hello  \r\nbar=\r\n\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\nx=4"
            )
            .unwrap(),
            b"hello\r\nbar\r\nfoo\t \tb\r\nfoo bar\r\nx=4"
        );
        assert!(decode_cte(Some("x-uuencode"), b"x").is_err());
    }
}

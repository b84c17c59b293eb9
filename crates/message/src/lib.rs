//! The one place a message is parsed: once, when it is stored.
//!
//! [`parse`] turns the raw octets of an RFC 5322 message into a [`ParsedMessage`]: the
//! IMAP envelope (RFC 9051 section 7.5.2, `ENVELOPE`), the MIME tree with each part's
//! header/body offsets, sizes and line counts (what `BODYSTRUCTURE` and `BODY[section]`
//! need), the `Date:` as a timestamp (SEARCH SENTBEFORE, SORT) and the text a search
//! needs (decoded header values and decoded text bodies). The store keeps it beside the
//! blob, so FETCH and SEARCH never parse again.
//!
//! MIME decoding itself is `mail-parser`'s. What IMAP wants raw (header values with their
//! encoded words, RFC 2047, left as sent) is cut from the original octets here, since
//! `mail-parser` hands back decoded values. Envelope addresses follow RFC 5322 section 3.4
//! with groups rendered as RFC 9051 asks (a start marker with the group name and a NIL
//! end marker).
//!
//! Search text: `search_headers` holds the top-level header's fields, `search_body` every
//! other entity's header fields (MIME part headers, so an attachment's `name=` and
//! `filename=` are found; an encapsulated message's header) and the decoded text of the
//! text parts (content transfer encoding and charset undone, HTML without tags). Header
//! values have their encoded words decoded (RFC 2047) and, for Content-Type and
//! Content-Disposition, their parameters (RFC 2231 decoded). SEARCH TEXT (RFC 9051 6.4.4)
//! reads both, BODY the second; the store's trigram filter indexes exactly these texts.
//! The content of non-text parts is not searched (as Dovecot without a full-text index).
//!
//! Structure, compared with Dovecot 2.3 on real-world shapes (tests/imap/mime_corpus.py):
//! - where Dovecot and the RFCs agree, the same answers: display names from comments
//!   (`address.rs`), also in nested messages; section numbering (RFC 9051 6.4.5, see
//!   [`Part::find`]); an empty part's header ends before the line end that belongs to the
//!   next boundary (RFC 2046 5.1.1), its body has 0 octets and 0 lines; a multipart whose
//!   closing boundary is missing ends with the message; one with no delimiter at all has
//!   a single empty text/plain part (its body is all preamble); a message/rfc822 body is the
//!   whole encapsulated message, epilogue included;
//! - a Content-Type that does not parse (`text`, `/plain`, `te xt/pl ain`) and a
//!   multipart without a boundary (RFC 2046 5.1.1 requires one) are text/plain;
//!   charset=us-ascii, as RFC 2045 5.2 recommends for an invalid field. Dovecot answers
//!   empty type strings, or a multipart holding one empty part, which hides the text;
//! - a message/rfc822 part with a base64 or quoted-printable encoding (which RFC 2046
//!   5.2.1 forbids) is read as a message from its octets as they stand, as Dovecot reads
//!   it, so that BODYSTRUCTURE keeps the envelope, body and line count RFC 9051 requires
//!   of that type (its size is the RFC 2046 body; Dovecot adds the boundary's CRLF);
//! - line counts count a last line without a line end (Dovecot counts line ends only):
//!   RFC 9051 asks for the size "in text lines";
//! - a nested multipart whose own closing boundary is missing ends at its enclosing
//!   multipart's next delimiter (RFC 2046 5.1.2), as Dovecot reads it: mail-parser runs
//!   it to the end, so a multipart whose parts do not start at its delimiter lines is
//!   split again at them, each part parsed on its own (down to `MAX_RESPLIT_DEPTH`).
//!
//! Offsets are relative to the parsed octets. A message stored with a per-recipient
//! prefix (Return-Path, Delivered-To, Received) is parsed without it, so one parse serves
//! every recipient; readers shift offsets by the prefix length ([`Part::shifted`]).

use mail_parser::{Encoding, HeaderName, MessageParser, MessagePart, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};

/// mail-parser, whose [`mail_parser::Message`] [`parse_shared`] hands to the filters.
pub use mail_parser;

mod address;
pub mod casemap;
pub mod date;
pub mod imap;
pub mod searchable;
pub mod sortkeys;
pub mod strip;
pub mod subject;
pub use address::{parse_address_list, Address};

/// The encoding version of [`ParsedMessage`]: 3 stored the envelope first
/// ([`ParsedMessage::decode_envelope`]); 4 keeps that layout but changes what is in it
/// (display names from comments, MIME part headers in the body's search text, the
/// offsets of empty parts, encoded message/rfc822 parts, invalid Content-Types).
/// [`ParsedMessage::decode`] answers `None` for any other version, and the store then
/// parses the message again from its octets and keeps the new parse (older answers
/// would differ from a new parse's).
pub const STRUCTURE_VERSION: u8 = 4;

/// Everything a reader of the message needs without parsing it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParsedMessage {
    /// The top-level entity: its header is the message header.
    pub root: Part,
    /// The envelope of the top-level message.
    pub envelope: Envelope,
    /// `Date:` as seconds since the epoch (UTC), when present and valid.
    pub sent_date: Option<i64>,
    /// Decoded header fields, one `name: value` a line (SEARCH HEADER, FROM, SUBJECT...).
    pub search_headers: String,
    /// Decoded text of the text parts (SEARCH BODY and TEXT).
    pub search_body: String,
    /// The first characters of the text, for RFC 8970 PREVIEW.
    pub preview: String,
    /// Decoded values SORT and THREAD need (RFC 5256, RFC 5957); version 2.
    pub sort: SortFields,
}

/// What SORT, THREAD and THREADID need that the envelope keeps raw or not at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SortFields {
    /// `Subject:` with its encoded words (RFC 2047) decoded, unfolded.
    pub subject: Option<String>,
    /// Decoded display name of the first `From:` / `To:` address (RFC 5957), if any.
    pub from_display: Option<String>,
    pub to_display: Option<String>,
    /// The message IDs of `References:`, in order, without their angle brackets.
    pub references: Vec<String>,
}

/// The message IDs of a header value (`Message-ID`, `In-Reply-To`, `References`), in
/// order: what stands between `<` and `>`, white space (folding) removed. Text outside
/// angle brackets (phrases, comments) is skipped.
pub fn message_ids(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find(['>', '<']) else {
            break;
        };
        if after.as_bytes()[end] == b'<' {
            rest = &after[end..];
            continue;
        }
        let id: String = after[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if !id.is_empty() {
            out.push(id);
        }
        rest = &after[end + 1..];
    }
    out
}

/// The IMAP envelope: raw (undecoded, unfolded) header values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub date: Option<String>,
    pub subject: Option<String>,
    pub from: Vec<Address>,
    pub sender: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub in_reply_to: Option<String>,
    pub message_id: Option<String>,
}

/// One MIME entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// Offset of the entity's header.
    pub offset_header: u32,
    /// Offset of its body (just past the blank line ending the header).
    pub offset_body: u32,
    /// Offset just past its body.
    pub offset_end: u32,
    /// Lines in the body (text/* and message/rfc822 report it).
    pub body_lines: u32,
    /// `Content-Type` type and subtype, lower case (`text`, `plain`); defaults applied.
    pub mime_type: String,
    pub mime_subtype: String,
    /// `Content-Type` parameters as sent (names lower-cased).
    pub params: Vec<(String, String)>,
    pub content_id: Option<String>,
    pub description: Option<String>,
    /// `Content-Transfer-Encoding` as sent; `None` means 7BIT.
    pub encoding: Option<String>,
    pub md5: Option<String>,
    /// `Content-Disposition` value and parameters.
    pub disposition: Option<(String, Vec<(String, String)>)>,
    pub language: Vec<String>,
    pub location: Option<String>,
    pub kind: PartKind,
}

/// What a part contains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PartKind {
    /// A single body.
    Leaf,
    /// `multipart/*`: the sub-parts, in order.
    Multipart(Vec<Part>),
    /// `message/rfc822` (or `message/global`) whose body is a message: its envelope and
    /// top-level entity.
    Message(Box<Envelope>, Box<Part>),
}

impl Part {
    /// Header length of this entity in octets.
    pub fn header_len(&self) -> u32 {
        self.offset_body - self.offset_header
    }
    /// Body length in octets.
    pub fn body_len(&self) -> u32 {
        self.offset_end - self.offset_body
    }
    /// The same part with every offset moved by `by` octets (a stored prefix).
    pub fn shifted(&self, by: u32) -> Part {
        let mut p = self.clone();
        p.shift(by);
        p
    }
    /// Moves every offset by `by` octets, in place.
    pub fn shift(&mut self, by: u32) {
        self.offset_header += by;
        self.offset_body += by;
        self.offset_end += by;
        match &mut self.kind {
            PartKind::Leaf => {}
            PartKind::Multipart(parts) => parts.iter_mut().for_each(|p| p.shift(by)),
            PartKind::Message(_, p) => p.shift(by),
        }
    }
    /// The part at an IMAP section path (`[1, 2]` for `1.2`), numbered as RFC 9051
    /// 6.4.5 (and RFC 3501) asks: the parts of a multipart count from 1; a non-multipart
    /// entity has only part 1, itself; and a path that goes on past a message/rfc822
    /// part continues inside the encapsulated message (its multipart's parts, or its
    /// single body as part 1). So `1` of a message/rfc822 part is the whole encapsulated
    /// message, header included, and `1.1` what it contains.
    pub fn find(&self, path: &[u32]) -> Option<&Part> {
        let mut part = self;
        for (i, &n) in path.iter().enumerate() {
            part = match &part.kind {
                PartKind::Multipart(parts) => parts.get((n as usize).checked_sub(1)?)?,
                _ if n == 1 => part,
                _ => return None,
            };
            if i + 1 < path.len() {
                if let PartKind::Message(_, inner) = &part.kind {
                    part = inner;
                }
            }
        }
        Some(part)
    }
}

/// The stored form after the envelope: the rest of a [`ParsedMessage`].
#[derive(Serialize)]
struct RestRef<'a> {
    root: &'a Part,
    sent_date: Option<i64>,
    search_headers: &'a str,
    search_body: &'a str,
    preview: &'a str,
    sort: &'a SortFields,
}

#[derive(Deserialize)]
struct Rest {
    root: Part,
    sent_date: Option<i64>,
    search_headers: String,
    search_body: String,
    preview: String,
    sort: SortFields,
}

impl ParsedMessage {
    /// Serialises for storage: one version byte, the envelope's length (u32, little
    /// endian) and the envelope, then the rest, so that FETCH ENVELOPE decodes only the
    /// envelope ([`decode_envelope`](Self::decode_envelope)).
    pub fn encode(&self) -> Vec<u8> {
        let env = postcard::to_allocvec(&self.envelope).expect("serialising to memory cannot fail");
        let rest = RestRef {
            root: &self.root,
            sent_date: self.sent_date,
            search_headers: &self.search_headers,
            search_body: &self.search_body,
            preview: &self.preview,
            sort: &self.sort,
        };
        let mut out = Vec::with_capacity(env.len() + 256);
        out.push(STRUCTURE_VERSION);
        out.extend_from_slice(&(env.len() as u32).to_le_bytes());
        out.extend_from_slice(&env);
        postcard::to_extend(&rest, out).expect("serialising to memory cannot fail")
    }
    /// The envelope and the rest, as stored.
    fn split(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
        let (&STRUCTURE_VERSION, rest) = bytes.split_first()? else {
            return None;
        };
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        (len <= rest.len()).then(|| rest.split_at(len))
    }
    /// Reads what [`encode`](Self::encode) wrote; `None` if it is of another version or damaged.
    pub fn decode(bytes: &[u8]) -> Option<ParsedMessage> {
        match bytes.split_first() {
            Some((&STRUCTURE_VERSION, _)) => {
                let (env, rest) = Self::split(bytes)?;
                let envelope = postcard::from_bytes(env).ok()?;
                let r: Rest = postcard::from_bytes(rest).ok()?;
                Some(ParsedMessage {
                    root: r.root,
                    envelope,
                    sent_date: r.sent_date,
                    search_headers: r.search_headers,
                    search_body: r.search_body,
                    preview: r.preview,
                    sort: r.sort,
                })
            }
            _ => None,
        }
    }
    /// Only the envelope of what [`encode`](Self::encode) wrote; `None` as for
    /// [`decode`](Self::decode).
    pub fn decode_envelope(bytes: &[u8]) -> Option<Envelope> {
        match Self::split(bytes) {
            Some((env, _)) => postcard::from_bytes(env).ok(),
            None => Self::decode(bytes).map(|p| p.envelope),
        }
    }
}

/// The stored form of a message's "head" ([`ParsedMessage::encode_head`]): what SEARCH
/// of header keys, SORT and THREAD read, without the MIME tree or the body's text.
#[derive(Serialize)]
struct HeadRef<'a> {
    envelope: &'a Envelope,
    sent_date: Option<i64>,
    search_headers: &'a str,
    sort: &'a SortFields,
}

#[derive(Deserialize)]
struct Head {
    envelope: Envelope,
    sent_date: Option<i64>,
    search_headers: String,
    sort: SortFields,
}

impl ParsedMessage {
    /// Serialises the head: the envelope, the sent date, the top-level header's search
    /// text and the sort fields (one version byte first, as [`encode`](Self::encode)).
    /// `search_headers` must still be in `self` (the store takes it out afterwards).
    pub fn encode_head(&self) -> Vec<u8> {
        let head = HeadRef {
            envelope: &self.envelope,
            sent_date: self.sent_date,
            search_headers: &self.search_headers,
            sort: &self.sort,
        };
        let out = vec![STRUCTURE_VERSION];
        postcard::to_extend(&head, out).expect("serialising to memory cannot fail")
    }

    /// Reads what [`encode_head`](Self::encode_head) wrote, as a `ParsedMessage` whose
    /// envelope, sent date, `search_headers` and sort fields are those of the message;
    /// it holds no MIME tree (`root` is an empty text/plain leaf), no `search_body` and
    /// no preview, so only readers of those four may be given it. `None` if it is of
    /// another version or damaged.
    pub fn decode_head(bytes: &[u8]) -> Option<ParsedMessage> {
        let (&STRUCTURE_VERSION, rest) = bytes.split_first()? else {
            return None;
        };
        let h: Head = postcard::from_bytes(rest).ok()?;
        Some(ParsedMessage {
            root: Part::empty_leaf(),
            envelope: h.envelope,
            sent_date: h.sent_date,
            search_headers: h.search_headers,
            search_body: String::new(),
            preview: String::new(),
            sort: h.sort,
        })
    }

    /// Only the MIME tree of what [`encode`](Self::encode) wrote (FETCH BODYSTRUCTURE),
    /// with nothing else decoded; `None` as for [`decode`](Self::decode).
    pub fn decode_root(bytes: &[u8]) -> Option<Part> {
        #[derive(Deserialize)]
        struct RootOnly {
            root: Part,
        }
        let (_, rest) = Self::split(bytes)?;
        postcard::from_bytes::<RootOnly>(rest).ok().map(|r| r.root)
    }
}

impl Part {
    /// A text/plain leaf of no octets: the placeholder tree of a decoded head.
    fn empty_leaf() -> Part {
        Part {
            offset_header: 0,
            offset_body: 0,
            offset_end: 0,
            body_lines: 0,
            mime_type: "text".into(),
            mime_subtype: "plain".into(),
            params: Vec::new(),
            content_id: None,
            description: None,
            encoding: None,
            md5: None,
            disposition: None,
            language: Vec::new(),
            location: None,
            kind: PartKind::Leaf,
        }
    }
}

/// Line ends as stored: every bare LF becomes CRLF (RFC 5322 section 2.3 allows no
/// other line end), so that sizes are the octets POP3 and IMAP send.
pub fn to_crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    let mut prev = 0u8;
    for &b in input {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// How deep nested multiparts and messages are followed.
const MAX_DEPTH: usize = 50;
/// Down to this depth a multipart the MIME parser split wrongly is split again at its
/// delimiters, each part parsed on its own (parsing those octets once more per level:
/// the bound keeps a hostile message's cost linear).
const MAX_RESPLIT_DEPTH: usize = 8;
/// How many characters of text a preview keeps (RFC 8970 says at most 256; Dovecot
/// keeps 200).
const PREVIEW_CHARS: usize = 200;

/// Parses a message. Never fails: octets that are not a valid message still give a
/// structure (a text/plain body, possibly empty), as IMAP servers must serve them.
pub fn parse(raw: &[u8]) -> ParsedMessage {
    parse_shared(raw).0
}

/// [`parse`], also answering mail-parser's reading of the message (`None`: no header
/// found, or the parser failed), for a delivery's filters: a Sieve script reads the
/// message through it (`sieve-rs`), so that the delivery parses the message once for the
/// store and every recipient's script. A filter that added header fields above the
/// message reads it through [`with_prefix`].
pub fn parse_shared(raw: &[u8]) -> (ParsedMessage, Option<mail_parser::Message<'_>>) {
    // A panic in the MIME parser on hostile input (mail-parser has had debug assertions
    // that fire on malformed MIME) must not fail a delivery: fall back to a plain body.
    std::panic::catch_unwind(|| parse_mime_keep(raw, 0)).unwrap_or_else(|_| (fallback(raw), None))
}

fn parse_mime_depth(raw: &[u8], depth: usize) -> ParsedMessage {
    parse_mime_keep(raw, depth).0
}

fn parse_mime_keep(raw: &[u8], depth: usize) -> (ParsedMessage, Option<mail_parser::Message<'_>>) {
    let parser = MessageParser::default();
    let Some(msg) = parser.parse(raw) else {
        return (fallback(raw), None);
    };
    let mut search_body = String::new();
    let mut search_headers = String::new();
    let root = convert(
        raw,
        &msg.parts,
        0,
        depth,
        &mut search_body,
        &mut search_headers,
        true,
        &mut vec![false; msg.parts.len()],
    );
    let envelope = envelope_of(raw, &msg.parts[0]);
    let sent_date = msg.date().map(|d| d.to_timestamp());
    let preview = make_preview(&preview_text(&msg));
    let sort = sort_fields(raw, &msg, &envelope);
    let parsed = ParsedMessage {
        root,
        envelope,
        sent_date,
        search_headers,
        search_body,
        preview,
        sort,
    };
    (parsed, Some(msg))
}

/// mail-parser's reading of `joined`, which is header fields a filter added (CRLF-ended
/// lines: rspamd's `X-Spam-Status`, `Authentication-Results`) followed by `raw`, made
/// from `message`, the reading of `raw` alone ([`parse_shared`]), without parsing `raw`
/// again: the added fields are parsed and put first in the top-level header, and every
/// offset into `raw` moves past them. It equals `MessageParser::parse(joined)`. When it
/// could differ (`raw` has no header, starts with a folded line that would continue the
/// last added field, or an added field is a MIME one that changes how the message
/// reads), `joined` is parsed whole instead.
pub fn with_prefix<'x>(
    message: Option<mail_parser::Message<'x>>,
    raw: &'x [u8],
    joined: &'x [u8],
) -> Option<mail_parser::Message<'x>> {
    let Some(prefix_len) = joined.len().checked_sub(raw.len()) else {
        return MessageParser::default().parse(joined);
    };
    if prefix_len == 0 {
        return message;
    }
    let prefix = &joined[..prefix_len];
    let structural = |h: &mail_parser::Header| {
        matches!(
            h.name,
            HeaderName::ContentType
                | HeaderName::ContentTransferEncoding
                | HeaderName::ContentDisposition
                | HeaderName::MimeVersion
        )
    };
    let added = match (&message, raw.first()) {
        (Some(_), Some(&b)) if b != b' ' && b != b'\t' && prefix.ends_with(b"\r\n") => {
            MessageParser::default()
                .parse_headers(prefix)
                .and_then(|m| m.parts.into_iter().next())
                .map(|p| p.headers)
                .filter(|h| !h.is_empty() && !h.iter().any(structural))
        }
        _ => None,
    };
    let (Some(mut message), Some(added)) = (message, added) else {
        return MessageParser::default().parse(joined);
    };
    shift_message(&mut message, raw, joined, prefix_len as u32);
    if let Some(root) = message.parts.first_mut() {
        root.offset_header = 0;
        let own = std::mem::take(&mut root.headers);
        root.headers = added;
        root.headers.extend(own);
    }
    Some(message)
}

/// Moves the offsets of a reading of `raw` (and of the messages inside it that share
/// its octets: unencoded message/rfc822 parts) by `by`, onto `joined`.
fn shift_message<'x>(message: &mut mail_parser::Message<'x>, raw: &[u8], joined: &'x [u8], by: u32) {
    message.raw_message = std::borrow::Cow::Borrowed(joined);
    for part in &mut message.parts {
        part.offset_header += by;
        part.offset_body += by;
        part.offset_end += by;
        for h in &mut part.headers {
            h.offset_field += by;
            h.offset_start += by;
            h.offset_end += by;
        }
        if let PartType::Message(inner) = &mut part.body {
            // An encoded message/rfc822 part is read from its decoded octets, which it
            // owns, and its offsets count from them: left as it is.
            let shared = matches!(&inner.raw_message,
                std::borrow::Cow::Borrowed(r) if r.as_ptr() == raw.as_ptr() && r.len() == raw.len());
            if shared {
                shift_message(inner, raw, joined, by);
            }
        }
    }
}

fn fallback(raw: &[u8]) -> ParsedMessage {
    let body_start = find_body_start(raw);
    let text = String::from_utf8_lossy(&raw[body_start..]).into_owned();
    ParsedMessage {
        root: Part {
            offset_header: 0,
            offset_body: body_start as u32,
            offset_end: raw.len() as u32,
            body_lines: count_lines(&raw[body_start..]),
            mime_type: "text".into(),
            mime_subtype: "plain".into(),
            params: vec![("charset".into(), "us-ascii".into())],
            content_id: None,
            description: None,
            encoding: None,
            md5: None,
            disposition: None,
            language: vec![],
            location: None,
            kind: PartKind::Leaf,
        },
        envelope: Envelope::default(),
        sent_date: None,
        search_headers: String::new(),
        preview: make_preview(&text),
        search_body: text,
        sort: SortFields::default(),
    }
}

/// The first display name of an address header, decoded (empty names count as none).
fn first_display(value: Option<&mail_parser::HeaderValue>) -> Option<String> {
    use mail_parser::{Address as MpAddress, HeaderValue};
    let Some(HeaderValue::Address(a)) = value else {
        return None;
    };
    let first = match a {
        MpAddress::List(list) => list.first(),
        MpAddress::Group(groups) => groups.iter().flat_map(|g| g.addresses.iter()).next(),
    }?;
    first
        .name
        .as_deref()
        .map(|n| n.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|n| !n.is_empty())
}

fn sort_fields(raw: &[u8], msg: &mail_parser::Message, env: &Envelope) -> SortFields {
    let top = &msg.parts[0];
    let references = top
        .headers
        .iter()
        .filter(|h| h.name == HeaderName::References)
        .flat_map(|h| message_ids(&raw_value(raw, h.offset_start, h.offset_end)))
        .collect();
    SortFields {
        subject: msg
            .subject()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .or_else(|| env.subject.clone()),
        from_display: first_display(msg.header(HeaderName::From)),
        to_display: first_display(msg.header(HeaderName::To)),
        references,
    }
}

fn find_body_start(raw: &[u8]) -> usize {
    if raw.starts_with(b"\r\n") {
        return 2;
    }
    if raw.starts_with(b"\n") {
        return 1;
    }
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(raw.len()),
    }
}

fn count_lines(body: &[u8]) -> u32 {
    let n = body.iter().filter(|&&b| b == b'\n').count();
    // A last line without a line end still counts (as Dovecot counts).
    (n + usize::from(!body.is_empty() && !body.ends_with(b"\n"))) as u32
}

/// The text a preview is made of (RFC 8970 section 3, as Dovecot does): the message's
/// first text body (an HTML one without its tags), not attachments, without quoted
/// lines (`>`).
fn preview_text(msg: &mail_parser::Message) -> String {
    let Some(part) = msg
        .text_body
        .first()
        .or(msg.html_body.first())
        .and_then(|&id| msg.parts.get(id as usize))
    else {
        return String::new();
    };
    let text = match &part.body {
        PartType::Text(t) => t.to_string(),
        PartType::Html(h) => strip_html(h),
        _ => return String::new(),
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with('>'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn make_preview(text: &str) -> String {
    let mut out = String::new();
    let mut last_space = true;
    for c in text.chars() {
        if out.chars().count() >= PREVIEW_CHARS {
            break;
        }
        if c.is_whitespace() || c.is_control() {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out.trim_end().to_string()
}

/// The raw value of a header: unfolded, surrounding white space trimmed.
fn raw_value(raw: &[u8], start: u32, end: u32) -> String {
    let bytes = raw.get(start as usize..end as usize).unwrap_or_default();
    // Non-ASCII octets (SMTPUTF8 headers) stay UTF-8 when they are; otherwise Latin-1.
    let text = match std::str::from_utf8(bytes) {
        Ok(utf8) => utf8.replace(['\r', '\n'], ""),
        Err(_) => bytes
            .iter()
            .filter(|&&b| b != b'\r' && b != b'\n')
            .map(|&b| b as char)
            .collect(),
    };
    text.trim().to_string()
}

fn first_raw(raw: &[u8], part: &MessagePart, name: HeaderName) -> Option<String> {
    part.headers
        .iter()
        .find(|h| h.name == name)
        .map(|h| raw_value(raw, h.offset_start, h.offset_end))
}

fn addresses(raw: &[u8], part: &MessagePart, name: HeaderName) -> Vec<Address> {
    part.headers
        .iter()
        .filter(|h| h.name == name)
        .flat_map(|h| parse_address_list(&raw_value(raw, h.offset_start, h.offset_end)))
        .collect()
}

fn envelope_of(raw: &[u8], part: &MessagePart) -> Envelope {
    let from = addresses(raw, part, HeaderName::From);
    let mut sender = addresses(raw, part, HeaderName::Sender);
    let mut reply_to = addresses(raw, part, HeaderName::ReplyTo);
    // RFC 9051 7.5.2: sender and reply-to default to from.
    if sender.is_empty() {
        sender = from.clone();
    }
    if reply_to.is_empty() {
        reply_to = from.clone();
    }
    Envelope {
        date: first_raw(raw, part, HeaderName::Date),
        subject: first_raw(raw, part, HeaderName::Subject),
        from,
        sender,
        reply_to,
        to: addresses(raw, part, HeaderName::To),
        cc: addresses(raw, part, HeaderName::Cc),
        bcc: addresses(raw, part, HeaderName::Bcc),
        in_reply_to: first_raw(raw, part, HeaderName::InReplyTo),
        message_id: first_raw(raw, part, HeaderName::MessageId),
    }
}

fn encoding_name(part: &MessagePart, raw: &[u8]) -> Option<String> {
    first_raw(raw, part, HeaderName::ContentTransferEncoding)
        .filter(|s| !s.is_empty())
        .or(match part.encoding {
            Encoding::None => None,
            Encoding::QuotedPrintable => Some("quoted-printable".into()),
            Encoding::Base64 => Some("base64".into()),
        })
}

/// `seen` marks the parts of `parts` already converted: on malformed nesting mail-parser
/// can list an ancestor (or a part twice) among a multipart's children, and following
/// those would multiply the tree exponentially (a 676-octet message took gigabytes and
/// seconds): each part is converted once.
#[allow(clippy::too_many_arguments)]
fn convert(
    raw: &[u8],
    parts: &[MessagePart],
    index: usize,
    depth: usize,
    body_text: &mut String,
    header_text: &mut String,
    collect_headers: bool,
    seen: &mut [bool],
) -> Part {
    let part = &parts[index];
    seen[index] = true;
    // The top-level header is the message's header (SEARCH HEADER, TEXT); every other
    // entity's header (MIME part headers, an encapsulated message's header) is part of
    // the body (SEARCH BODY, TEXT): an attachment's file name is found.
    let fields = if collect_headers {
        &mut *header_text
    } else {
        &mut *body_text
    };
    for h in &part.headers {
        fields.push_str(h.name.as_str());
        fields.push_str(": ");
        fields.push_str(&decoded_header_text(raw, h));
        fields.push('\n');
    }
    let ct = part.content_type();
    let (mut mime_type, mut mime_subtype) = match ct {
        Some(ct) => (
            ct.c_type.to_ascii_lowercase(),
            ct.c_subtype
                .as_deref()
                .map(str::to_ascii_lowercase)
                .unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    let mut params: Vec<(String, String)> = ct
        .and_then(|ct| ct.attributes.as_ref())
        .map(|attrs| {
            attrs
                .iter()
                .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
                .collect()
        })
        .unwrap_or_default();
    if !is_token(&mime_type) || !is_token(&mime_subtype) {
        // A Content-Type that does not parse (RFC 2045 5.1 `type "/" subtype` of
        // tokens) is taken as the default, as RFC 2045 5.2 recommends (Dovecot answers
        // empty strings instead, which clients cannot show).
        if !mime_type.is_empty() {
            params.clear();
        }
        mime_type.clear();
        mime_subtype.clear();
    }
    if mime_type.is_empty() || mime_subtype.is_empty() {
        // RFC 2045 5.2 default; a digest's children default to message/rfc822 (handled by
        // mail-parser returning the part as Message).
        if matches!(part.body, PartType::Message(_)) {
            mime_type = "message".into();
            mime_subtype = "rfc822".into();
        } else {
            mime_type = "text".into();
            mime_subtype = "plain".into();
            if !params.iter().any(|(k, _)| k == "charset") {
                params.push(("charset".into(), "us-ascii".into()));
            }
        }
    }
    let disposition = part.content_disposition().map(|d| {
        (
            d.c_type.to_ascii_lowercase(),
            d.attributes
                .as_ref()
                .map(|attrs| {
                    attrs
                        .iter()
                        .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        )
    });
    let language = first_raw(raw, part, HeaderName::ContentLanguage)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let kind = match &part.body {
        PartType::Multipart(children)
            if depth < MAX_RESPLIT_DEPTH
                && !split_as_parser_did(raw, part, parts, children, &params) =>
        {
            // The parts do not start where this multipart's own delimiter lines are (an
            // inner multipart that never closes ran past them): split at the delimiters
            // and parse each part on its own, bounded by them (RFC 2046 5.1.2: an
            // enclosing boundary ends the inner multipart), as Dovecot reads it.
            let boundary = boundary_of(&params).unwrap_or_default();
            let delims = delimiters(raw, part.offset_body, part.offset_end, boundary.as_bytes());
            let mut subs = Vec::new();
            for (i, d) in delims.iter().enumerate() {
                if d.close {
                    break;
                }
                let end = delims.get(i + 1).map_or(part.offset_end, |n| n.cut);
                let slice = raw.get(d.after as usize..end as usize).unwrap_or_default();
                let sub = parse_mime_depth(slice, depth + 1);
                body_text.push_str(&sub.search_headers);
                push_text(body_text, &sub.search_body);
                let mut root = sub.root;
                root.shift(d.after);
                subs.push(root);
            }
            PartKind::Multipart(subs)
        }
        PartType::Multipart(children) if depth < MAX_DEPTH => {
            let mut subs = Vec::new();
            for &c in children {
                let c = c as usize;
                if c < parts.len() && !seen[c] {
                    subs.push(convert(
                        raw,
                        parts,
                        c,
                        depth + 1,
                        body_text,
                        header_text,
                        false,
                        seen,
                    ));
                }
            }
            PartKind::Multipart(subs)
        }
        PartType::Message(inner)
            if depth < MAX_DEPTH
                && part.encoding == Encoding::None
                && !inner.parts.is_empty()
                && inner.parts[0].offset_header >= part.offset_body =>
        {
            // An unencoded message/rfc822: mail-parser parsed it in place, so its offsets
            // are offsets into `raw`.
            let env = envelope_of(raw, &inner.parts[0]);
            let mut inner_root = convert(
                raw,
                &inner.parts,
                0,
                depth + 1,
                body_text,
                header_text,
                false,
                &mut vec![false; inner.parts.len()],
            );
            // The encapsulated message is this part's whole body (a multipart's
            // epilogue included: its TEXT runs to the end).
            inner_root.offset_end = inner_root.offset_end.max(part.offset_end);
            PartKind::Message(Box::new(env), Box::new(inner_root))
        }
        PartType::Text(text) => {
            push_text(body_text, text);
            PartKind::Leaf
        }
        PartType::Html(html) => {
            push_text(body_text, &strip_html(html));
            PartKind::Leaf
        }
        _ => PartKind::Leaf,
    };
    let mut kind = kind;
    let is_message = matches!(kind, PartKind::Message(..));
    if is_message && mime_type != "message" {
        mime_type = "message".into();
        mime_subtype = "rfc822".into();
    }
    let (mut offset_body, mut offset_end) = (part.offset_body, part.offset_end);
    if !collect_headers
        && offset_body == offset_end
        && raw
            .get(offset_end as usize..)
            .is_some_and(|r| r.starts_with(b"--"))
        && offset_body >= part.offset_header + 2
        && raw.get(offset_body as usize - 2..offset_body as usize) == Some(b"\r\n")
    {
        // An empty part whose header runs into the next boundary: the line end before
        // the boundary is the boundary's (RFC 2046 5.1.1), not a blank line ending
        // the header.
        offset_body -= 2;
        offset_end -= 2;
    }
    match &kind {
        PartKind::Leaf if mime_type == "multipart" && boundary_of(&params).is_some() => {
            // A multipart with no delimiter in its body (all preamble, which RFC 2046
            // 5.1.1 says to ignore): one empty text/plain part (RFC 9051 needs one), as
            // Dovecot answers.
            let end = part.offset_end;
            kind = PartKind::Multipart(vec![Part {
                offset_header: end,
                offset_body: end,
                offset_end: end,
                body_lines: 0,
                mime_type: "text".into(),
                mime_subtype: "plain".into(),
                params: vec![("charset".into(), "us-ascii".into())],
                content_id: None,
                description: None,
                encoding: None,
                md5: None,
                disposition: None,
                language: vec![],
                location: None,
                kind: PartKind::Leaf,
            }]);
        }
        PartKind::Leaf if mime_type == "multipart" => {
            // A multipart without a boundary (RFC 2046 5.1.1 requires one) cannot be
            // split: an invalid Content-Type, read as text/plain (RFC 2045 5.2).
            (mime_type, mime_subtype) = ("text".into(), "plain".into());
            params = vec![("charset".into(), "us-ascii".into())];
        }
        PartKind::Leaf
            if mime_type == "message"
                && matches!(mime_subtype.as_str(), "rfc822" | "global")
                && depth < MAX_DEPTH =>
        {
            // A message/rfc822 that mail-parser did not parse in place (a
            // Content-Transfer-Encoding RFC 2046 5.2.1 forbids for it): its octets as
            // they stand are the message, as Dovecot reads them, so that BODYSTRUCTURE
            // keeps the envelope and body RFC 9051 requires for this type.
            let slice = raw
                .get(offset_body as usize..offset_end as usize)
                .unwrap_or_default();
            let mut inner = parse_mime_depth(slice, depth + 1);
            inner.root.shift(offset_body);
            kind = PartKind::Message(Box::new(inner.envelope), Box::new(inner.root));
        }
        _ => {}
    }
    let body = raw
        .get(offset_body as usize..offset_end as usize)
        .unwrap_or_default();
    let body_lines = count_lines(body);
    Part {
        offset_header: part.offset_header,
        offset_body,
        offset_end,
        body_lines,
        mime_type,
        mime_subtype,
        params,
        content_id: first_raw(raw, part, HeaderName::ContentId),
        description: first_raw(raw, part, HeaderName::ContentDescription),
        encoding: encoding_name(part, raw),
        md5: part
            .headers
            .iter()
            .find(|h| h.name.as_str().eq_ignore_ascii_case("Content-MD5"))
            .map(|h| raw_value(raw, h.offset_start, h.offset_end)),
        disposition,
        language,
        location: first_raw(raw, part, HeaderName::ContentLocation),
        kind,
    }
}

fn boundary_of(params: &[(String, String)]) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == "boundary")
        .map(|(_, v)| v.clone())
        .filter(|b| !b.is_empty())
}

/// A delimiter line of a multipart (RFC 2046 5.1.1).
struct Delimiter {
    /// Where the part before it ends: before the line end that precedes the line.
    cut: u32,
    /// Just past the line: where the next part's header starts.
    after: u32,
    /// The close delimiter (`--boundary--`).
    close: bool,
}

/// The delimiter lines for `boundary` in `raw[start..end]`: `--boundary` at a line
/// start, then `--` (close) or only white space to the line end. (Found with memchr's
/// memmem: a big part is not walked line by line.)
fn delimiters(raw: &[u8], start: u32, end: u32, boundary: &[u8]) -> Vec<Delimiter> {
    let mut out = Vec::new();
    let (start, end) = (start as usize, (end as usize).min(raw.len()));
    let Some(body) = raw.get(start..end) else {
        return out;
    };
    let needle = [b"\n--", boundary].concat();
    // A delimiter may open the body itself, without a line end before it.
    let first = body.starts_with(&needle[1..]).then_some(start).into_iter();
    let rest = memchr::memmem::find_iter(body, &needle).map(|i| start + i + 1);
    for p in first.chain(rest) {
        let after_name = p + needle.len() - 1;
        let line_end = raw[after_name..end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(end, |i| after_name + i + 1);
        let rest = &raw[after_name..line_end];
        let close = rest.starts_with(b"--");
        if !close && !rest.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let cut = if p >= start + 2 && &raw[p - 2..p] == b"\r\n" {
            p - 2
        } else if p > start && raw[p - 1] == b'\n' {
            p - 1
        } else {
            p
        };
        out.push(Delimiter {
            cut: cut as u32,
            after: line_end as u32,
            close,
        });
        if close {
            break;
        }
    }
    out
}

/// Did the MIME parser split this multipart where its delimiter lines are? (It does
/// unless, for one, a part inside runs past them.)
fn split_as_parser_did(
    raw: &[u8],
    part: &MessagePart,
    parts: &[MessagePart],
    children: &[u32],
    params: &[(String, String)],
) -> bool {
    let Some(boundary) = boundary_of(params) else {
        return true;
    };
    let delims = delimiters(raw, part.offset_body, part.offset_end, boundary.as_bytes());
    let ours = delims.iter().filter(|d| !d.close).map(|d| d.after);
    let theirs = children
        .iter()
        .filter_map(|&c| parts.get(c as usize))
        .map(|p| p.offset_header);
    delims.is_empty() || ours.eq(theirs)
}

/// An RFC 2045 5.1 token: visible ASCII but no tspecials.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

fn push_text(out: &mut String, text: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(text);
}

/// A header field's value as SEARCH compares it: encoded words (RFC 2047) decoded,
/// unfolded; Content-Type and Content-Disposition with their parameters (RFC 2231
/// decoded), so that `name=`/`filename=` are searchable; fields mail-parser does not
/// read (Received, unparsable ones) as sent.
fn decoded_header_text(raw: &[u8], h: &mail_parser::Header) -> String {
    use mail_parser::HeaderValue;
    match &h.value {
        HeaderValue::ContentType(ct) => {
            let mut out = match &ct.c_subtype {
                Some(s) => format!("{}/{}", ct.c_type, s),
                None => ct.c_type.to_string(),
            };
            for a in ct.attributes.iter().flatten() {
                out.push_str("; ");
                out.push_str(&a.name);
                out.push('=');
                out.push_str(&a.value);
            }
            out
        }
        HeaderValue::Received(_) | HeaderValue::Empty => {
            raw_value(raw, h.offset_start, h.offset_end)
        }
        _ => decoded_header_value(h),
    }
}

fn decoded_header_value(h: &mail_parser::Header) -> String {
    use mail_parser::HeaderValue;
    match &h.value {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(l) => l.join(", "),
        HeaderValue::Address(a) => a
            .iter()
            .map(|addr| match (&addr.name, &addr.address) {
                (Some(n), Some(a)) => format!("{n} <{a}>"),
                (None, Some(a)) => a.to_string(),
                (Some(n), None) => n.to_string(),
                (None, None) => String::new(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        HeaderValue::DateTime(d) => d.to_rfc822(),
        HeaderValue::ContentType(ct) => match &ct.c_subtype {
            Some(s) => format!("{}/{}", ct.c_type, s),
            None => ct.c_type.to_string(),
        },
        HeaderValue::Received(_) | HeaderValue::Empty => String::new(),
    }
}

/// Text of an HTML body for searching: tags removed, common entities decoded.
fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests;

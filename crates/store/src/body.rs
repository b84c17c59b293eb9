//! What every backend makes of a message body before its transaction (issue 17: written
//! once for SQLite and PostgreSQL): the parse (RFC 5322 / MIME structure, envelope,
//! head, search text) encoded as stored, the top-level header octets, the trigram filter,
//! the POP3 line ends; and the decoder of a stored search text.

use letterbox_message::ParsedMessage;

/// A parse as stored: the structure (envelope, MIME tree) and, apart, the header octets,
/// the trigram filter of the search text and the search text, so that FETCH reads a few
/// hundred bytes per message and never the decoded body text, and SEARCH decodes the
/// text only of the messages whose filter lets its words through.
pub(crate) struct Encoded {
    pub(crate) structure: Vec<u8>,
    pub(crate) header: Vec<u8>,
    pub(crate) grams: Vec<u8>,
    pub(crate) search: Vec<u8>,
    /// The head (envelope, sent date, header search text, sort fields: heads.rs).
    pub(crate) head: Vec<u8>,
    /// IMAP's BODYSTRUCTURE of the message, rendered without UTF8=ACCEPT after the
    /// rendering's version (`letterbox_message::imap::RENDERING`): [`bodystructure`].
    pub(crate) bodystructure: Vec<u8>,
    /// IMAP's ENVELOPE of the message, rendered the same way: [`envelope`].
    pub(crate) envelope: Vec<u8>,
    /// The searchable head SEARCH's header keys scan, after its version
    /// (`letterbox_message::searchable::VERSION`): [`searchable`].
    pub(crate) searchable: Vec<u8>,
    /// What SORT (DATE) and THREAD read, after its version
    /// (`letterbox_message::sortkeys::VERSION`): [`sortkeys`].
    pub(crate) sortkeys: Vec<u8>,
    /// What POP3 needs for exact sizes (`line_ends.rs`).
    pub(crate) line_ends: crate::line_ends::LineEnds,
    /// The search text before compression (compared with a skeleton's: `dedup.rs`).
    pub(crate) search_raw: Vec<u8>,
    /// The rows a split body's skeleton makes redundant (`dedup.rs`).
    pub(crate) slim: crate::sqlite::dedup::Slim,
}

/// zstd level for the stored search text.
const SEARCH_ZSTD_LEVEL: i32 = 3;

pub(crate) fn encode_parsed(body: &[u8]) -> Encoded {
    encode_given(body, None)
}

/// [`encode_parsed`] of a body whose parse the caller may hold already (`parsed`, made
/// by `letterbox_message::parse_shared` of these very octets: a delivery parses once for
/// its filters and the store, `Backend::deliver_to`).
pub(crate) fn encode_given(body: &[u8], parsed: Option<ParsedMessage>) -> Encoded {
    let mut p = parsed.unwrap_or_else(|| letterbox_message::parse(body));
    let head = p.encode_head();
    let bodystructure = bodystructure(&p.root);
    let envelope = envelope(&p.envelope);
    let searchable = searchable(&p);
    let sortkeys = sortkeys(&p);
    let search = (
        std::mem::take(&mut p.search_headers),
        std::mem::take(&mut p.search_body),
    );
    let raw = crate::sqlite::dedup::search_raw(&search.0, &search.1);
    let header_end = (p.root.offset_body as usize).min(body.len());
    Encoded {
        structure: p.encode(),
        header: body[..header_end].to_vec(),
        grams: crate::grams::build(&search.0, &search.1),
        search: zstd::bulk::compress(&raw, SEARCH_ZSTD_LEVEL).unwrap_or_default(),
        head,
        bodystructure,
        envelope,
        searchable,
        sortkeys,
        line_ends: crate::line_ends::LineEnds::of(body),
        search_raw: raw,
        slim: crate::sqlite::dedup::Slim::default(),
    }
}

/// A message's BODYSTRUCTURE as the store keeps it (issue 18): the rendering's version,
/// then IMAP's octets (`letterbox_message::imap::bodystructure`). Made at delivery from
/// the one parse, so that a first FETCH BODYSTRUCTURE of a big mailbox reads rendered
/// answers ([`Backend::bodystructures_many`]) instead of decoding and rendering every
/// MIME tree. Offsets do not enter it (sizes and line counts only), so a message's
/// per-recipient prefix does not change it and one row serves every copy of the blob.
pub(crate) fn bodystructure(root: &letterbox_message::Part) -> Vec<u8> {
    let r = letterbox_message::imap::bodystructure(root);
    let mut v = Vec::with_capacity(4 + r.len());
    v.extend_from_slice(letterbox_message::imap::RENDERING);
    v.extend_from_slice(&r);
    v
}

/// The rendering of a stored [`bodystructure`], if it is of this build's version.
pub(crate) fn stored_bodystructure(stored: &[u8]) -> Option<&[u8]> {
    stored.strip_prefix(&letterbox_message::imap::RENDERING[..])
}

/// A message's ENVELOPE as the store keeps it (issue 18, `envelopes.rs`; RFC 9051
/// 7.5.2): the rendering's version, then IMAP's octets without UTF8=ACCEPT
/// (`letterbox_message::imap::envelope`), made at delivery from the one parse, so that
/// a first FETCH ENVELOPE of a big mailbox copies rendered answers
/// ([`Backend::envelopes_rendered_many`]) instead of unpacking every stored structure
/// and decoding and rendering its envelope. Nothing in it depends on the per-recipient
/// prefix (the envelope is the blob's top-level header's). Read back with
/// [`stored_bodystructure`] (the same version prefix).
pub(crate) fn envelope(e: &letterbox_message::Envelope) -> Vec<u8> {
    let r = letterbox_message::imap::rendered_envelope(e, false);
    let mut v = Vec::with_capacity(4 + r.len());
    v.extend_from_slice(letterbox_message::imap::RENDERING);
    v.extend_from_slice(&r);
    v
}

/// A message's searchable head as the store keeps it (issue 18, `searchables.rs`): the
/// record's version, then the record (`letterbox_message::searchable::encode`), made at
/// delivery from the one parse (its envelope, sent date and header search text, the
/// same fields as the stored head IMAP would decode), so that the first header SEARCH
/// of a big mailbox reads records instead of decoding every head. Like the
/// BODYSTRUCTURE, nothing in it depends on the per-recipient prefix.
pub(crate) fn searchable(p: &ParsedMessage) -> Vec<u8> {
    let r = letterbox_message::searchable::encode(p);
    let mut v = Vec::with_capacity(4 + r.len());
    v.extend_from_slice(letterbox_message::searchable::VERSION);
    v.extend_from_slice(&r);
    v
}

/// The record of a stored [`searchable`], if it is of this build's version and intact
/// (its CRC: `letterbox_message::searchable::valid`).
pub(crate) fn stored_searchable(stored: &[u8]) -> Option<&[u8]> {
    stored
        .strip_prefix(&letterbox_message::searchable::VERSION[..])
        .filter(|r| letterbox_message::searchable::valid(r))
}

/// A message's sort keys as the store keeps them (issue 18, `sortkeys.rs`): the
/// record's version, then the record (`letterbox_message::sortkeys`), made at delivery
/// from the one parse. Nothing in it depends on the per-recipient prefix.
pub(crate) fn sortkeys(p: &ParsedMessage) -> Vec<u8> {
    let r = letterbox_message::sortkeys::SortKeys::of(p).encode();
    let mut v = Vec::with_capacity(4 + r.len());
    v.extend_from_slice(letterbox_message::sortkeys::VERSION);
    v.extend_from_slice(&r);
    v
}

/// The record of stored [`sortkeys`], if it is of this build's version or the one
/// before (`LBS1`, without base subjects; same layout) (its CRC is checked when it is
/// decoded).
pub(crate) fn stored_sortkeys(stored: &[u8]) -> Option<&[u8]> {
    use letterbox_message::sortkeys::{LBS1, VERSION};
    stored
        .strip_prefix(&VERSION[..])
        .or_else(|| stored.strip_prefix(&LBS1[..]))
}

/// Decompresses stored search texts with one reused context (a fresh zstd context per
/// message cost more than the decompression itself).
pub(crate) struct SearchDecoder(Option<Option<zstd::bulk::Decompressor<'static>>>);

/// Stored search texts larger than this are decoded as a stream.
const MAX_SEARCH_BULK: u64 = 64 << 20;

impl SearchDecoder {
    pub(crate) fn new() -> SearchDecoder {
        SearchDecoder(None)
    }

    pub(crate) fn raw(&mut self, search: &[u8]) -> Option<Vec<u8>> {
        let d = self
            .0
            .get_or_insert_with(|| zstd::bulk::Decompressor::new().ok());
        if let (Some(d), Ok(Some(n))) =
            (d.as_mut(), zstd::zstd_safe::get_frame_content_size(search))
        {
            if n <= MAX_SEARCH_BULK {
                if let Ok(v) = d.decompress(search, n as usize) {
                    return Some(v);
                }
            }
        }
        zstd::stream::decode_all(search).ok()
    }

    /// Puts the stored search text back into a structure.
    pub(crate) fn fill(&mut self, p: &mut ParsedMessage, search: &[u8]) {
        let Some(raw) = self.raw(search) else {
            return;
        };
        if let Ok((headers, body)) = postcard::from_bytes::<(String, String)>(&raw) {
            p.search_headers = headers;
            p.search_body = body;
        }
    }
}

//! FETCH ENVELOPE's answers kept at delivery (issue 18; RFC 9051 7.5.2): each blob's
//! ENVELOPE rendered from the one parse made when it is stored (`body.rs`
//! [`crate::body::envelope`], with the function IMAP's FETCH renders with,
//! `letterbox_message::imap::envelope`, for a session without UTF8=ACCEPT), in
//! `blob_envelope` keyed by the blob's hash, and copied from there into
//! `message_envelope`, keyed by the message row's (mailbox, UID), when the row is
//! inserted (delivery, APPEND, COPY and MOVE, import, replace: `sqlite_tx.rs`
//! `insert_row`, `import.rs`), as `searchables.rs` does for the searchable heads.
//!
//! The first `FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)` of a big mailbox
//! (nothing in IMAP's message cache, e.g. after a restart) then reads the mailbox's
//! renderings in one range scan in UID order, some 300 octets a message, instead of
//! joining every message row to `blob_info` by hash (a seek per message into a table
//! ten times the size), unpacking the stored structure, decoding the envelope and
//! rendering it. The copies sit in their own narrow table, not in the `messages` rows:
//! an ENVELOPE is larger than the rest of a row together, and every other scan of the
//! rows (SELECT's fallbacks, FETCH FLAGS, SORT) would read its pages too. A copy goes
//! with its row (a foreign key, `ON DELETE CASCADE`: expunge, mailbox and account
//! deletion).
//!
//! A row inserted before the table existed has no copy and is read through its blob's
//! rendering; the rendering carries its version (`letterbox_message::imap::RENDERING`),
//! and a blob stored before, or by another rendering, has none: IMAP renders its
//! decoded envelope ([`Backend::envelopes_many`]), the same octets. A UTF8=ACCEPT
//! session (RFC 6855 3) uses a rendering only when it is the same for it
//! (`letterbox_message::imap::same_with_utf8`: no 8-bit string in it).
//!
//! The blob rows live and die with the blob's parse (`put_blob_parse`/
//! `delete_blob_parse` in sqlite.rs). PostgreSQL's twin: `pg/envelopes.rs`.

use crate::searchables::Copies;

/// The ENVELOPE renderings: `blob_envelope`, `message_envelope`.
pub(crate) const ENVELOPE: Copies = Copies {
    blob: "blob_envelope",
    row: "message_envelope",
};

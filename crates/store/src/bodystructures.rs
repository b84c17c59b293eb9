//! FETCH BODYSTRUCTURE's answers kept at delivery (issue 18; RFC 9051 7.5.2): each
//! blob's BODYSTRUCTURE rendered from the one parse made when it is stored
//! (`body.rs` [`crate::body::bodystructure`]), in `blob_bodystructure` keyed by the
//! blob's hash, and copied from there into every message row that points at the blob
//! when the row is inserted (`messages.bodystructure`: delivery, APPEND, COPY and MOVE,
//! import, replace; `sqlite_tx.rs` `insert_row`, `import.rs`). The first
//! `FETCH 1:* (BODYSTRUCTURE)` of a big mailbox (never read before, nothing in IMAP's
//! message cache) is then one range scan over the mailbox's rows in UID order, the
//! octets inline, instead of a seek into `blob_bodystructure` per message (h/coldbs)
//! or the MIME trees through `blob_info`, their decoding and rendering
//! ([`Backend::roots_many`]). A row inserted before the column existed has none and is
//! read through its blob's row; the rendering carries its version, and a blob stored
//! before, or by another rendering, has none and is rendered from its tree.
//!
//! The blob rows live and die with the blob's parse (`put_blob_parse`/
//! `delete_blob_parse` in sqlite.rs); a row's copy goes with the row (expunge).

use crate::sqlite::SqliteBackend;
use crate::*;

impl SqliteBackend {
    /// [`Backend::bodystructures_many`]: the row's own copy first, its blob's row for
    /// rows inserted before it, in one pass over the rows ([`crate::searchables::uid_octets`]).
    pub(crate) fn bodystructures_many_impl(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, Vec<u8>)>> {
        self.read_conn(|c| {
            crate::searchables::uid_octets(
                c,
                "SELECT m.uid, coalesce(m.bodystructure,
                          (SELECT b.data FROM blob_bodystructure b WHERE b.hash = m.blob))
                 FROM messages m
                 WHERE m.mailbox_id = ?1 AND m.uid {uids} ORDER BY m.uid",
                mailbox,
                uids,
                crate::body::stored_bodystructure,
            )
        })
    }
}

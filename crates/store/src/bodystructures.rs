//! FETCH BODYSTRUCTURE's answers kept at delivery (issue 18; RFC 9051 7.5.2): each
//! blob's BODYSTRUCTURE rendered from the one parse made when it is stored
//! (`body.rs` [`crate::body::bodystructure`]), in `blob_bodystructure` keyed by the
//! blob's hash, so that the first `FETCH 1:* (BODYSTRUCTURE)` of a big mailbox (never
//! read before, nothing in IMAP's message cache) reads rendered octets with one seek per
//! message, instead of the MIME trees through `blob_info`, their decoding and rendering
//! ([`Backend::roots_many`]). The same octets as IMAP renders from the tree: the
//! rendering is the message crate's (`letterbox_message::imap`), and it carries its
//! version; a blob stored before, or by another rendering, has none here and is
//! rendered from its tree.
//!
//! The rows live and die with the blob's parse (`put_blob_parse`/`delete_blob_parse`
//! in sqlite.rs); a copy of a message shares its blob, so COPY, MOVE and every
//! recipient of one delivery find the same row.

use crate::sqlite::SqliteBackend;
use crate::*;
use rusqlite::params;
use std::collections::HashSet;

impl SqliteBackend {
    /// [`Backend::bodystructures_many`].
    pub(crate) fn bodystructures_many_impl(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, Vec<u8>)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        self.read_conn(|c| {
            // A dense run of UIDs (a whole mailbox) is one range scan, not a seek per UID.
            let lo = uids.iter().copied().min().unwrap_or(0);
            let hi = uids.iter().copied().max().unwrap_or(0);
            let dense = u64::from(hi - lo) < 2 * uids.len() as u64;
            let mut st = c.prepare_cached(if dense {
                "SELECT m.uid, b.data FROM messages m
                 JOIN blob_bodystructure b ON b.hash = m.blob
                 WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
            } else {
                "SELECT m.uid, b.data FROM messages m
                 JOIN blob_bodystructure b ON b.hash = m.blob
                 WHERE m.mailbox_id = ?1 AND m.uid IN (SELECT value FROM json_each(?2))
                 ORDER BY m.uid"
            })?;
            let (mut rows, wanted) = if dense {
                let w: HashSet<u32> = uids.iter().copied().collect();
                (st.query(params![mailbox, lo, hi])?, Some(w))
            } else {
                let list: Vec<String> = uids.iter().map(u32::to_string).collect();
                (st.query(params![mailbox, format!("[{}]", list.join(","))])?, None)
            };
            let mut out = Vec::with_capacity(uids.len());
            while let Some(r) = rows.next()? {
                let uid = r.get::<_, i64>(0)? as u32;
                if wanted.as_ref().is_some_and(|w| !w.contains(&uid)) {
                    continue;
                }
                if let rusqlite::types::ValueRef::Blob(b) = r.get_ref(1)? {
                    if let Some(octets) = crate::body::stored_bodystructure(b) {
                        out.push((uid, octets.to_vec()));
                    }
                }
            }
            Ok(out)
        })
    }
}

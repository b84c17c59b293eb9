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
            // A dense run of UIDs (a whole mailbox) is one range scan, not a seek per UID;
            // the row's own copy first, its blob's row for rows inserted before it.
            let lo = uids.iter().copied().min().unwrap_or(0);
            let hi = uids.iter().copied().max().unwrap_or(0);
            let dense = u64::from(hi - lo) < 2 * uids.len() as u64;
            let mut st = c.prepare_cached(if dense {
                "SELECT m.uid, coalesce(m.bodystructure,
                          (SELECT b.data FROM blob_bodystructure b WHERE b.hash = m.blob))
                 FROM messages m
                 WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
            } else {
                "SELECT m.uid, coalesce(m.bodystructure,
                          (SELECT b.data FROM blob_bodystructure b WHERE b.hash = m.blob))
                 FROM messages m
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

//! SEARCH's searchable heads kept at delivery (issue 18; RFC 9051 6.4.4 header keys):
//! each blob's record (`letterbox_message::searchable`: exactly the fields FROM, TO,
//! CC, BCC, SUBJECT, HEADER and SENT* compare) made from the one parse when it is
//! stored (`body.rs` [`crate::body::searchable`]), in `blob_searchable` keyed by the
//! blob's hash, so that the first header search of a big mailbox never searched before
//! (nothing in IMAP's message cache) reads records with one seek per message instead of
//! every head through `blob_info` and its decoding ([`Backend::heads_many`]). The record
//! carries its version; a blob stored before, or by another version, has none here and
//! IMAP decodes its head.
//!
//! The rows live and die with the blob's parse (`put_blob_parse`/`delete_blob_parse`
//! in sqlite.rs), beside `blob_bodystructure`; a copy of a message shares its blob, so
//! COPY, MOVE and every recipient of one delivery find the same row.

use crate::sqlite::SqliteBackend;
use crate::*;
use rusqlite::{params, Connection};
use std::collections::HashSet;

/// Keeps a blob's record (`stored`: [`crate::body::searchable`]).
pub(crate) fn put(c: &Connection, hash: &[u8], stored: &[u8]) -> Result<()> {
    c.prepare_cached("INSERT OR REPLACE INTO blob_searchable (hash, data) VALUES (?1, ?2)")?
        .execute(params![hash, stored])?;
    Ok(())
}

/// Drops a blob's record.
pub(crate) fn delete(c: &Connection, hash: &[u8]) -> Result<()> {
    c.prepare_cached("DELETE FROM blob_searchable WHERE hash = ?1")?
        .execute([hash])?;
    Ok(())
}

impl SqliteBackend {
    /// [`Backend::searchables_many`].
    pub(crate) fn searchables_many_impl(
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
                "SELECT m.uid, s.data FROM messages m
                 JOIN blob_searchable s ON s.hash = m.blob
                 WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
            } else {
                "SELECT m.uid, s.data FROM messages m
                 JOIN blob_searchable s ON s.hash = m.blob
                 WHERE m.mailbox_id = ?1 AND m.uid IN (SELECT value FROM json_each(?2))
                 ORDER BY m.uid"
            })?;
            let (mut rows, wanted) = if dense {
                let w: HashSet<u32> = uids.iter().copied().collect();
                (st.query(params![mailbox, lo, hi])?, Some(w))
            } else {
                let list: Vec<String> = uids.iter().map(u32::to_string).collect();
                (
                    st.query(params![mailbox, format!("[{}]", list.join(","))])?,
                    None,
                )
            };
            let mut out = Vec::with_capacity(uids.len());
            while let Some(r) = rows.next()? {
                let uid = r.get::<_, i64>(0)? as u32;
                if wanted.as_ref().is_some_and(|w| !w.contains(&uid)) {
                    continue;
                }
                if let rusqlite::types::ValueRef::Blob(b) = r.get_ref(1)? {
                    if let Some(rec) = crate::body::stored_searchable(b) {
                        out.push((uid, rec.to_vec()));
                    }
                }
            }
            Ok(out)
        })
    }
}

//! SORT (DATE) and THREAD's keys kept at delivery (issue 18; RFC 5256 sections 2.1, 2.2
//! and 4): each blob's record (`letterbox_message::sortkeys`: the sent date, the decoded
//! subject, the first Message-ID and the parent IDs) made from the one parse when it is
//! stored (`body.rs` [`crate::body::sortkeys`]), in `blob_sortkeys` keyed by the blob's
//! hash, and copied from there into every message row that points at the blob when the
//! row is inserted (`messages.sortkeys`: delivery, APPEND, COPY and MOVE, import,
//! replace; `sqlite_tx.rs` `insert_row`, `import.rs`), as `bodystructures.rs` does for
//! the BODYSTRUCTURE rendering. The first `SORT (DATE)` or `THREAD REFERENCES` of a big
//! mailbox (nothing in IMAP's message cache) is then one range scan over the mailbox's
//! rows in UID order, a few dozen octets inline per message, instead of every message's
//! head through `blob_info` and its decoding ([`Backend::heads_many`]). A row inserted
//! before the column existed has none and is read through its blob's row; the record
//! carries its version, and a blob stored before, or by another version, has none and
//! IMAP decodes its head.
//!
//! The blob rows live and die with the blob's parse (`put_blob_parse`/
//! `delete_blob_parse` in sqlite.rs); a row's copy goes with the row (expunge).

use crate::sqlite::SqliteBackend;
use crate::*;
use rusqlite::{params, Connection};

/// About the octets of a record (a subject and two or three IDs): what
/// [`Backend::sortkeys_many`]'s buffer is sized for per message.
pub(crate) const RECORD_OCTETS: usize = 160;

/// Keeps a blob's record (`stored`: [`crate::body::sortkeys`]).
pub(crate) fn put(c: &Connection, hash: &[u8], stored: &[u8]) -> Result<()> {
    c.prepare_cached("INSERT OR REPLACE INTO blob_sortkeys (hash, data) VALUES (?1, ?2)")?
        .execute(params![hash, stored])?;
    Ok(())
}

/// Drops a blob's record.
pub(crate) fn delete(c: &Connection, hash: &[u8]) -> Result<()> {
    c.prepare_cached("DELETE FROM blob_sortkeys WHERE hash = ?1")?
        .execute([hash])?;
    Ok(())
}

impl SqliteBackend {
    /// [`Backend::sortkeys_many`].
    pub(crate) fn sortkeys_many_impl(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Packed> {
        let mut out = Packed::with_capacity(uids.len(), RECORD_OCTETS);
        self.each_sortkeys(mailbox, uids, |uid, rec| out.push(uid, rec))?;
        Ok(out)
    }

    /// [`Backend::sent_dates_many`]: the dates read in place from the rows' records,
    /// nothing copied.
    pub(crate) fn sent_dates_many_impl(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, Option<i64>)>> {
        let mut out = Vec::with_capacity(uids.len());
        self.each_sortkeys(mailbox, uids, |uid, rec| {
            if let Some(d) = letterbox_message::sortkeys::SortKeys::sent_date_of(rec) {
                out.push((uid, d));
            }
        })?;
        Ok(out)
    }

    /// Calls `f` with each record of `uids` of this build's version (CRC not checked),
    /// by ascending UID, in place.
    fn each_sortkeys(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        mut f: impl FnMut(u32, &[u8]),
    ) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        self.read_conn(|c| {
            // A dense run of UIDs (a whole mailbox) is one range scan, not a seek per UID;
            // the row's own copy first, its blob's row for rows inserted before it.
            let lo = uids.iter().copied().min().unwrap_or(0);
            let hi = uids.iter().copied().max().unwrap_or(0);
            let dense = u64::from(hi - lo) < 2 * uids.len() as u64;
            let mut st = c.prepare_cached(if dense {
                "SELECT m.uid, coalesce(m.sortkeys,
                          (SELECT s.data FROM blob_sortkeys s WHERE s.hash = m.blob))
                 FROM messages m
                 WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
            } else {
                "SELECT m.uid, coalesce(m.sortkeys,
                          (SELECT s.data FROM blob_sortkeys s WHERE s.hash = m.blob))
                 FROM messages m
                 WHERE m.mailbox_id = ?1 AND m.uid IN (SELECT value FROM json_each(?2))
                 ORDER BY m.uid"
            })?;
            let (mut rows, wanted) = if dense {
                // The UIDs asked, sorted, to skip the others of the range; none when
                // they are the whole range (a whole mailbox): nothing to look up.
                let mut w = uids.to_vec();
                w.sort_unstable();
                w.dedup();
                let whole = w.len() as u64 == u64::from(hi - lo) + 1;
                (st.query(params![mailbox, lo, hi])?, (!whole).then_some(w))
            } else {
                let list: Vec<String> = uids.iter().map(u32::to_string).collect();
                (
                    st.query(params![mailbox, format!("[{}]", list.join(","))])?,
                    None,
                )
            };
            while let Some(r) = rows.next()? {
                let uid = r.get::<_, i64>(0)? as u32;
                if wanted.as_ref().is_some_and(|w| w.binary_search(&uid).is_err()) {
                    continue;
                }
                if let rusqlite::types::ValueRef::Blob(b) = r.get_ref(1)? {
                    if let Some(rec) = crate::body::stored_sortkeys(b) {
                        f(uid, rec);
                    }
                }
            }
            Ok(())
        })
    }
}

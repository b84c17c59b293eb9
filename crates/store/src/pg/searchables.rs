//! SEARCH's searchable heads kept at delivery on PostgreSQL (issue 18; RFC 9051 6.4.4):
//! the `blobs.searchable` column (migration 140), written with the blob's parse
//! (`pg/tx.rs`) and read here, as the embedded store's `blob_searchable`
//! (`crates/store/src/searchables.rs`, which explains the design).

use super::messages::uid_array;
use super::PgBackend;
use crate::*;

/// [`Backend::searchables_many`].
pub(crate) fn searchables_many(
    b: &PgBackend,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let list = uid_array(uids);
    let rows = b.with_conn(|c| {
        Ok(c.query(
            "SELECT m.uid, b.searchable FROM messages m JOIN blobs b ON b.hash = m.blob
             WHERE m.mailbox_id = $1 AND m.uid = ANY($2) AND b.searchable IS NOT NULL
             ORDER BY m.uid",
            &[&mailbox, &list],
        )?)
    })?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let stored: &[u8] = r.get(1);
            crate::body::stored_searchable(stored).map(|o| (r.get::<_, i64>(0) as u32, o.to_vec()))
        })
        .collect())
}

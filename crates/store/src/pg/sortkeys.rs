//! SORT (DATE) and THREAD's keys kept at delivery on PostgreSQL (issue 18; RFC 5256):
//! the `blobs.sortkeys` column (migration 150), written with the blob's parse
//! (`pg/tx.rs`), copied into each message row as it is inserted (`messages.sortkeys`,
//! same migration) and read here from the rows, through the blob for rows inserted
//! before; as the embedded store's (`crates/store/src/sortkeys.rs`, which explains the
//! design).

use super::messages::uid_array;
use super::PgBackend;
use crate::*;

/// [`Backend::sortkeys_many`].
pub(crate) fn sortkeys_many(
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
            "SELECT m.uid, coalesce(m.sortkeys,
                                   (SELECT b.sortkeys FROM blobs b WHERE b.hash = m.blob))
             FROM messages m
             WHERE m.mailbox_id = $1 AND m.uid = ANY($2)
             ORDER BY m.uid",
            &[&mailbox, &list],
        )?)
    })?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let stored: Option<&[u8]> = r.get(1);
            crate::body::stored_sortkeys(stored?).map(|o| (r.get::<_, i64>(0) as u32, o.to_vec()))
        })
        .collect())
}

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
) -> Result<Packed> {
    let mut out = Packed::with_capacity(uids.len(), crate::sortkeys::RECORD_OCTETS);
    each(b, mailbox, uids, |uid, rec| out.push(uid, rec))?;
    Ok(out)
}

/// [`Backend::sent_dates_many`]: the dates read in place from the records.
pub(crate) fn sent_dates_many(
    b: &PgBackend,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<(u32, Option<i64>)>> {
    let mut out = Vec::with_capacity(uids.len());
    each(b, mailbox, uids, |uid, rec| {
        if let Some(d) = letterbox_message::sortkeys::SortKeys::sent_date_of(rec) {
            out.push((uid, d));
        }
    })?;
    Ok(out)
}

/// Calls `f` with each record of `uids` of this build's version (CRC not checked), by
/// ascending UID.
fn each(
    b: &PgBackend,
    mailbox: MailboxId,
    uids: &[u32],
    mut f: impl FnMut(u32, &[u8]),
) -> Result<()> {
    if uids.is_empty() {
        return Ok(());
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
    for r in &rows {
        let stored: Option<&[u8]> = r.get(1);
        if let Some(rec) = stored.and_then(crate::body::stored_sortkeys) {
            f(r.get::<_, i64>(0) as u32, rec);
        }
    }
    Ok(())
}

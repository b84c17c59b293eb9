//! SEARCH's searchable heads kept at delivery on PostgreSQL (issue 18; RFC 9051 6.4.4):
//! the `blobs.searchable` column (migration 140), written with the blob's parse
//! (`pg/tx.rs`), copied into `message_searchable` keyed by (mailbox, UID) as each
//! message row is inserted (migration 160; `insert_row` in `pg/tx.rs`, one statement)
//! and read here from those copies, through the blob for rows inserted before; as the
//! embedded store's (`crates/store/src/searchables.rs`, which explains the design).

use super::messages::uid_array;
use super::PgBackend;
use crate::*;

/// Per message of `uids`, by ascending UID, the octets `keep` accepts of the second
/// column of `sql`'s rows (`sql` selects (UID, octets) with `$1` the mailbox and `$2`
/// the UIDs as an array); rows without octets, or refused, are left out. Shared with
/// the renderings (`pg/bodystructures.rs`).
pub(crate) fn uid_octets(
    b: &PgBackend,
    sql: &str,
    mailbox: MailboxId,
    uids: &[u32],
    keep: impl Fn(&[u8]) -> Option<&[u8]>,
) -> Result<Vec<(u32, Vec<u8>)>> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let list = uid_array(uids);
    let rows = b.with_conn(|c| Ok(c.query(sql, &[&mailbox, &list])?))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let stored: Option<&[u8]> = r.get(1);
            keep(stored?).map(|o| (r.get::<_, i64>(0) as u32, o.to_vec()))
        })
        .collect())
}

/// Per message of `uids`, by ascending UID, the octets `keep` accepts: the copies of
/// `row_table` (mailbox_id, uid, data), then the rows without one (inserted before it)
/// through their blob's `blob_column`. The searchable heads here, the ENVELOPE
/// renderings (`pg/envelopes.rs`).
pub(crate) fn copies_many(
    b: &PgBackend,
    row_table: &str,
    blob_column: &str,
    mailbox: MailboxId,
    uids: &[u32],
    keep: impl Fn(&[u8]) -> Option<&[u8]> + Copy,
) -> Result<Vec<(u32, Vec<u8>)>> {
    let out = uid_octets(
        b,
        &format!(
            "SELECT uid, data FROM {row_table}
             WHERE mailbox_id = $1 AND uid = ANY($2) ORDER BY uid"
        ),
        mailbox,
        uids,
        keep,
    )?;
    crate::searchables::with_rest(out, uids, |left| {
        uid_octets(
            b,
            &format!(
                "SELECT m.uid, b.{blob_column} FROM messages m JOIN blobs b ON b.hash = m.blob
                 WHERE m.mailbox_id = $1 AND m.uid = ANY($2) AND b.{blob_column} IS NOT NULL
                 ORDER BY m.uid"
            ),
            mailbox,
            left,
            keep,
        )
    })
}

/// [`Backend::searchables_many`]: the rows' copies, then the rows without one
/// (inserted before migration 160) through their blob.
pub(crate) fn searchables_many(
    b: &PgBackend,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>> {
    copies_many(
        b,
        "message_searchable",
        "searchable",
        mailbox,
        uids,
        crate::body::stored_searchable,
    )
}

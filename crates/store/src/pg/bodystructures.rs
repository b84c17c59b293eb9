//! FETCH BODYSTRUCTURE's answers kept at delivery on PostgreSQL (issue 18; RFC 9051
//! 7.5.2): the `blobs.bodystructure` column (migration 125), written with the blob's
//! parse (`pg/tx.rs`), copied into each message row as it is inserted
//! (`messages.bodystructure`, migration 126) and read here from the rows, through the
//! blob for rows inserted before; as the embedded store's (`crates/store/src/
//! bodystructures.rs`, which explains the design).

use super::PgBackend;
use crate::*;

/// [`Backend::bodystructures_many`].
pub(crate) fn bodystructures_many(
    b: &PgBackend,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>> {
    super::searchables::uid_octets(
        b,
        "SELECT m.uid, coalesce(m.bodystructure,
                               (SELECT b.bodystructure FROM blobs b WHERE b.hash = m.blob))
         FROM messages m
         WHERE m.mailbox_id = $1 AND m.uid = ANY($2)
         ORDER BY m.uid",
        mailbox,
        uids,
        crate::body::stored_bodystructure,
    )
}

//! FETCH BODYSTRUCTURE's answers kept at delivery on PostgreSQL (issue 18; RFC 9051
//! 7.5.2): the `blobs.bodystructure` column (migration 125), written with the blob's
//! parse (`pg/tx.rs`), copied per message row as it is inserted into
//! `message_bodystructure` (migration 200; a `messages` column before) and read here
//! from the copies, through the blob for rows inserted before; as the embedded store's
//! (`crates/store/src/bodystructures.rs`, which explains the design).

use super::PgBackend;
use crate::*;

/// [`Backend::bodystructures_many`].
pub(crate) fn bodystructures_many(
    b: &PgBackend,
    mailbox: MailboxId,
    uids: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>> {
    super::searchables::copies_many(
        b,
        "message_bodystructure",
        "bodystructure",
        mailbox,
        uids,
        crate::body::stored_bodystructure,
    )
}

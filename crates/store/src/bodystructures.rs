//! FETCH BODYSTRUCTURE's answers kept at delivery (issue 18; RFC 9051 7.5.2): each
//! blob's BODYSTRUCTURE rendered from the one parse made when it is stored
//! (`body.rs` [`crate::body::bodystructure`]), in `blob_bodystructure` keyed by the
//! blob's hash, and copied from there into `message_bodystructure`, keyed by the message
//! row's (mailbox, UID), when the row is inserted (delivery, APPEND, COPY and MOVE,
//! import, replace; `sqlite_tx.rs` `insert_row`, `import.rs`), as `envelopes.rs` does
//! for ENVELOPE. The first `FETCH 1:* (BODYSTRUCTURE)` of a big mailbox (never read
//! before, nothing in IMAP's message cache) is then one range scan over the mailbox's
//! renderings in UID order instead of a seek into `blob_bodystructure` per message
//! (h/coldbs) or the MIME trees through `blob_info`, their decoding and rendering
//! ([`Backend::roots_many`]).
//!
//! Until 2026-12 the copies were a column of the `messages` rows: a rendering (143
//! octets on average for the bench's 100,000 messages, up to 260; more for a deep
//! multipart) was about half of a row, so every other scan of the rows (FETCH FLAGS,
//! SORT and THREAD's sort keys) read it too. [`migrate_column`] moves a store's copies
//! into the table once when it is opened.
//!
//! A row inserted before either has no copy and is read through its blob's rendering;
//! the rendering carries its version, and a blob stored before, or by another
//! rendering, has none: IMAP renders it from its tree. A copy goes with its row (a
//! foreign key, `ON DELETE CASCADE`). The blob rows live and die with the blob's parse
//! (`put_blob_parse`/`delete_blob_parse` in sqlite.rs). PostgreSQL's twin:
//! `pg/bodystructures.rs`.

use crate::searchables::Copies;
use crate::sqlite::SqliteBackend;
use crate::*;
use rusqlite::Transaction;

/// The BODYSTRUCTURE renderings: `blob_bodystructure`, `message_bodystructure`.
pub(crate) const BODYSTRUCTURE: Copies = Copies {
    blob: "blob_bodystructure",
    row: "message_bodystructure",
};

impl SqliteBackend {
    /// [`Backend::bodystructures_many`]: the rows' copies in one scan, then the rows
    /// without one through their blob's rendering.
    pub(crate) fn bodystructures_many_impl(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, Vec<u8>)>> {
        self.read_conn(|c| BODYSTRUCTURE.many(c, mailbox, uids, crate::body::stored_bodystructure))
    }
}

/// Moves the copies of a store from before `message_bodystructure` (the
/// `messages.bodystructure` column) into it, and drops the column: once, in the
/// transaction that opens the store (SQLite rewrites the rows without it).
pub(crate) fn migrate_column(tx: &Transaction) -> Result<()> {
    let has_column: bool = tx
        .prepare("SELECT 1 FROM pragma_table_info('messages') WHERE name = 'bodystructure'")?
        .exists([])?;
    if has_column {
        let moved = tx.execute(
            "INSERT OR IGNORE INTO message_bodystructure (mailbox_id, uid, data)
               SELECT mailbox_id, uid, bodystructure FROM messages
               WHERE bodystructure IS NOT NULL",
            [],
        )?;
        tx.execute_batch("ALTER TABLE messages DROP COLUMN bodystructure")?;
        tracing::info!("store: {moved} BODYSTRUCTURE rendering(s) moved into their own table");
    }
    Ok(())
}

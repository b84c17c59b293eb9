//! Replacing a message by a rewritten copy (issue 15, `letterbox attachments strip`).
//!
//! IMAP messages are immutable (RFC 9051 2.3.1.1: a UID names the same octets for as
//! long as the UIDVALIDITY lasts), so a changed message is a new message: in ONE write
//! transaction the new octets get the next UID of the same mailbox with the old
//! message's flags, keywords and internal date, and the old UID is expunged through the
//! normal path (recorded for QRESYNC's VANISHED, RFC 7162; sessions see EXPUNGE and
//! EXISTS). The quota moves by the difference at once. A kill at any point leaves either
//! the old message or the new one: the commit is the only switch (the new blob, written
//! before, is unreferenced until then and collected by `gc` if the commit never comes).
//!
//! The new message keeps the old one's save date (`message_saved`), so a stripped
//! message in Trash expires when the original would have; and the transaction writes a
//! `strip` entry to the account's space log (`space.rs`) naming what was freed.
//!
//! The per-recipient prefix of the old message is part of the octets the caller
//! rewrote, so the new message is stored with an empty prefix.

use super::{get_mailbox_by_id, space, SqliteBackend};
use crate::{Error, Flags, MailboxId, Replaced, Result};
use rusqlite::{params, OptionalExtension};

pub(super) fn replace(
    b: &SqliteBackend,
    mailbox: MailboxId,
    uid: u32,
    expected_size: u64,
    body: Vec<u8>,
    detail: String,
) -> Result<Replaced> {
    let prep = b.prepare_blob(&body)?;
    let body = std::sync::Arc::new(body);
    b.write(move |ctx| {
        let mb = get_mailbox_by_id(&ctx.tx, mailbox)?;
        let row: Option<(i64, String, i64, i64)> = ctx
            .tx
            .query_row(
                "SELECT flags, keywords, internal_date, size FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
                params![mailbox, uid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((flags, keywords, internal_date, old_size)) = row else {
            ctx.drop_unused_blob(&prep)?;
            return Err(Error::NotFound(format!("message {uid} in {}", mb.name)));
        };
        if old_size as u64 != expected_size {
            ctx.drop_unused_blob(&prep)?;
            return Err(Error::Refused(format!("message {uid} changed while it was rewritten")));
        }
        let new_size = body.len() as u64;
        ctx.ref_blob(&prep.id, Some(&body), Some(&prep))?;
        let (new_uid, modseq) = ctx.insert_message(
            &mb,
            &[],
            &prep.id,
            new_size,
            Flags(flags.clamp(0, u8::MAX as i64) as u8),
            &keywords,
            internal_date,
        )?;
        ctx.add_usage(mb.account_id, new_size as i64)?;
        // The save date carries over (expiry counts from it).
        ctx.tx.execute(
            "UPDATE message_saved SET saved = COALESCE(
                 (SELECT saved FROM message_saved WHERE mailbox_id = ?1 AND uid = ?2), saved)
             WHERE mailbox_id = ?1 AND uid = ?3",
            params![mailbox, uid, new_uid],
        )?;
        // The old message's expunge frees its size (WriteCtx::expunge).
        let removed = ctx.expunge(&mb, &[uid])?;
        if removed != [uid] {
            return Err(Error::NotFound(format!("message {uid} in {}", mb.name)));
        }
        space::log(
            &ctx.tx,
            mb.account_id,
            "strip",
            &mb.name,
            Some(uid),
            Some(new_uid),
            1,
            (old_size as u64).saturating_sub(new_size),
            &detail,
        )?;
        Ok(Replaced {
            uid: new_uid,
            modseq,
            old_size: old_size as u64,
            new_size,
        })
    })
}

//! `\Recent` for IMAP4rev1 sessions (RFC 3501 2.3.2): a message is recent to exactly
//! one session, the first that selects its mailbox read-write (or has it selected when
//! the message arrives) after it came in. The mailbox row keeps the mark
//! `first_recent`: UIDs from there on have been claimed by no session. Claiming moves
//! the mark to `uidnext` in one write job (the writer thread serialises claims, so two
//! sessions never get the same UIDs); it needs no fsync, as other flag-like state.
//! IMAP4rev2 (RFC 9051) dropped `\Recent`; its sessions claim but never show it.

use super::SqliteBackend;
use crate::{Error, MailboxId, Result};
use rusqlite::{params, OptionalExtension};

/// The UIDs `[from, to)` recent to the caller (see [`crate::Backend::claim_recent`]).
pub(super) fn claim(b: &SqliteBackend, mailbox: MailboxId, take: bool) -> Result<(u32, u32)> {
    let (first, next): (i64, i64) = b.read(|c| {
        c.query_row(
            "SELECT first_recent, uidnext FROM mailboxes WHERE id = ?1",
            [mailbox],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("mailbox #{mailbox}")))
    })?;
    if !take {
        return Ok((clamp(first), u32::MAX));
    }
    if first >= next {
        // Nothing new since the last claim: no write at all.
        return Ok((0, 0));
    }
    let (from, to) = b.write_lazy(move |ctx| {
        let (old, next): (i64, i64) = ctx
            .tx
            .query_row(
                "SELECT first_recent, uidnext FROM mailboxes WHERE id = ?1",
                [mailbox],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("mailbox #{mailbox}")))?;
        if old < next {
            ctx.tx.execute(
                "UPDATE mailboxes SET first_recent = ?2 WHERE id = ?1",
                params![mailbox, next],
            )?;
        }
        Ok((old, next))
    })?;
    Ok((clamp(from), clamp(to)))
}

fn clamp(v: i64) -> u32 {
    v.clamp(0, u32::MAX as i64) as u32
}

//! Replacing a message by a rewritten copy on PostgreSQL (issue 15; the embedded
//! store's `replace.rs` describes the rules): in one transaction the new octets get the
//! next UID of the same mailbox with the old message's flags, keywords, internal date
//! and save date, and the old UID is expunged through the normal path (RFC 7162
//! VANISHED), the quota moving by the difference.

use super::rows;
use super::tx::PgTx;
use super::PgBackend;
use crate::rules::StoreTx;
use crate::*;

/// `after` runs in the same transaction once the new message is in and the old one
/// expunged (the space log's entry of `replace_message_logged`): mailbox, old UID, new
/// UID, octets freed.
pub(crate) fn replace(
    b: &PgBackend,
    mailbox: MailboxId,
    uid: u32,
    expected_size: u64,
    body: Vec<u8>,
    after: impl Fn(&mut PgTx, &Mailbox, u32, u32, u64) -> Result<()> + Send + Sync,
) -> Result<Replaced> {
    let prep = b.prepare_body(&body)?;
    b.rules(|t| {
        let mb = rows::mailbox_by_id(&mut *t.tx, mailbox)?;
        t.lock_account(mb.account_id)?;
        let row = t.tx.query_opt(
            "SELECT flags, keywords, internal_date, size, saved FROM messages
             WHERE mailbox_id = $1 AND uid = $2 FOR UPDATE",
            &[&mailbox, &i64::from(uid)],
        )?;
        let Some(row) = row else {
            return Err(Error::NotFound(format!("message {uid} in {}", mb.name)));
        };
        let old_size = row.get::<_, i64>(3).max(0) as u64;
        if old_size != expected_size {
            return Err(Error::Refused(format!(
                "message {uid} changed while it was rewritten"
            )));
        }
        let saved: i64 = row.get(4);
        let keywords: String = row.get(1);
        let new_size = body.len() as u64;
        t.take_blob_ref(&prep.id, Some(&body), Some(&prep))?;
        let (new_uid, modseq) = crate::rules::insert_message(
            t,
            &mb,
            &[],
            &prep.id,
            new_size,
            Flags(row.get::<_, i32>(0).clamp(0, u8::MAX as i32) as u8),
            &keywords,
            row.get(2),
        )?;
        crate::rules::add_usage(t, mb.account_id, new_size as i64)?;
        // The save date carries over (expiry counts from it).
        t.tx.execute(
            "UPDATE messages SET saved = $3 WHERE mailbox_id = $1 AND uid = $2",
            &[&mailbox, &i64::from(new_uid), &saved],
        )?;
        let removed = crate::rules::expunge(t, &mb, &[uid])?;
        if removed != [uid] {
            return Err(Error::NotFound(format!("message {uid} in {}", mb.name)));
        }
        after(t, &mb, uid, new_uid, old_size.saturating_sub(new_size))?;
        Ok(Replaced {
            uid: new_uid,
            modseq,
            old_size,
            new_size,
        })
    })
}

//! The embedded backend's queries for the store's rules ([`crate::rules::StoreTx`]): a
//! write job's savepoint inside the writer's group transaction (`sqlite.rs`). The writer
//! is the only one, so [`StoreTx::lock_account`] takes no lock.

use super::{
    expire, get_account_by_id, get_mailbox, get_mailbox_by_id, get_message, quota_to_sql,
    Prepared, WriteCtx,
};
use crate::rules::{CopyRow, NewRow, StoreTx, WarnState};
use crate::*;
use rusqlite::{params, OptionalExtension};

impl StoreTx for WriteCtx<'_> {
    type Prepared = Prepared;

    fn options(&self) -> &StoreOptions {
        self.opts
    }

    fn push_change(&mut self, change: Change) {
        self.changes.push(change);
    }

    fn savepoint(&mut self, name: &'static str) -> Result<()> {
        self.tx
            .prepare_cached(&format!("SAVEPOINT {name}"))?
            .execute([])?;
        Ok(())
    }

    fn release(&mut self, name: &'static str) -> Result<()> {
        self.tx
            .prepare_cached(&format!("RELEASE {name}"))?
            .execute([])?;
        Ok(())
    }

    fn rollback_to(&mut self, name: &'static str) -> Result<()> {
        self.tx
            .execute_batch(&format!("ROLLBACK TO {name}; RELEASE {name}"))?;
        Ok(())
    }

    fn lock_account(&mut self, _account: AccountId) -> Result<()> {
        Ok(())
    }

    fn account(&mut self, account: AccountId) -> Result<Account> {
        Ok(get_account_by_id(&self.tx, account)?.into_account(self.opts))
    }

    fn warn_state(&mut self, account: AccountId) -> Result<WarnState> {
        let (level, pending): (i64, i64) = self
            .tx
            .prepare_cached("SELECT warn_level, warn_pending FROM accounts WHERE id = ?1")?
            .query_row([account], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(WarnState {
            level: level.clamp(0, 100) as u8,
            pending: pending.clamp(0, 100) as u8,
        })
    }

    fn set_usage(&mut self, account: AccountId, used: u64, warn: WarnState) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE accounts SET quota_used = ?2, warn_level = ?3, warn_pending = ?4
                 WHERE id = ?1",
            )?
            .execute(params![account, used as i64, warn.level, warn.pending])?;
        Ok(())
    }

    fn set_warn_state(&mut self, account: AccountId, warn: WarnState) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE accounts SET warn_level = ?2, warn_pending = ?3 WHERE id = ?1")?
            .execute(params![account, warn.level, warn.pending])?;
        Ok(())
    }

    fn add_used(&mut self, account: AccountId, delta: i64) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE accounts SET quota_used = MAX(quota_used + ?2, 0) WHERE id = ?1",
            )?
            .execute(params![account, delta])?;
        Ok(())
    }

    fn set_used(&mut self, account: AccountId, used: u64) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE accounts SET quota_used = ?2 WHERE id = ?1")?
            .execute(params![account, used as i64])?;
        Ok(())
    }

    fn set_limit(&mut self, account: AccountId, limit: QuotaLimit) -> Result<()> {
        self.tx.execute(
            "UPDATE accounts SET quota_limit = ?2 WHERE id = ?1",
            params![account, quota_to_sql(limit)],
        )?;
        Ok(())
    }

    fn usage_rows(&mut self, address: Option<&str>) -> Result<Vec<(AccountId, String, i64)>> {
        Ok(match address {
            Some(a) => {
                let r = super::get_account(&self.tx, a)?;
                vec![(r.id, r.address, r.quota_used)]
            }
            None => {
                let mut st = self
                    .tx
                    .prepare("SELECT id, address, quota_used FROM accounts ORDER BY address")?;
                let v = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                v
            }
        })
    }

    fn stored_size(&mut self, account: AccountId) -> Result<u64> {
        let n: i64 = self.tx.query_row(
            "SELECT coalesce(sum(size), 0) FROM messages
             WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?1)",
            [account],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    fn mailbox(&mut self, id: MailboxId) -> Result<Mailbox> {
        get_mailbox_by_id(&self.tx, id)
    }

    fn mailbox_named(&mut self, account: AccountId, name: &str) -> Result<Mailbox> {
        get_mailbox(&self.tx, account, name)
    }

    fn create_mailbox(&mut self, account: AccountId, name: &str) -> Result<Mailbox> {
        WriteCtx::create_mailbox(self, account, name, None)
    }

    fn take_uid_modseq(&mut self, mailbox: MailboxId) -> Result<(i64, u64)> {
        let (uid, modseq): (i64, i64) = self
            .tx
            .prepare_cached(
                "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
             WHERE id = ?1 RETURNING uidnext - 1, highestmodseq",
            )?
            .query_row([mailbox], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok((uid, modseq as u64))
    }

    fn take_modseq(&mut self, mailbox: MailboxId) -> Result<u64> {
        let m: i64 = self.tx.query_row(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?1 RETURNING highestmodseq",
            [mailbox],
            |r| r.get(0),
        )?;
        Ok(m as u64)
    }

    fn insert_row(&mut self, row: NewRow) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internal_date, size, prefix, blob,
                                       sortkeys)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
                     (SELECT data FROM blob_sortkeys WHERE hash = ?9))",
            )?
            .execute(params![
                row.mailbox,
                row.uid,
                row.modseq as i64,
                row.flags.0,
                row.keywords,
                row.internal_date,
                row.size as i64,
                row.prefix,
                &row.blob.0[..]
            ])?;
        crate::searchables::copy_to_row(&self.tx, row.mailbox, row.uid, &row.blob.0)?;
        Ok(())
    }

    fn message(&mut self, mailbox: MailboxId, uid: u32) -> Result<MessageMeta> {
        get_message(&self.tx, mailbox, uid)
    }

    fn copy_row(&mut self, mailbox: MailboxId, uid: u32) -> Result<Option<CopyRow>> {
        Ok(self
            .tx
            .query_row(
                "SELECT uid, flags, keywords, internal_date, size, prefix, blob FROM messages
                 WHERE mailbox_id = ?1 AND uid = ?2",
                params![mailbox, uid],
                |r| {
                    Ok(CopyRow {
                        uid: r.get::<_, i64>(0)? as u32,
                        flags: Flags(r.get::<_, i64>(1)? as u8),
                        keywords: r.get(2)?,
                        internal_date: r.get(3)?,
                        size: r.get::<_, i64>(4)? as u64,
                        prefix: r.get(5)?,
                        blob: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    fn set_flags(
        &mut self,
        mailbox: MailboxId,
        uid: u32,
        flags: Flags,
        keywords: &str,
        modseq: u64,
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE messages SET flags = ?3, keywords = ?4, modseq = ?5 WHERE mailbox_id = ?1 AND uid = ?2",
            params![mailbox, uid, flags.0, keywords, modseq as i64],
        )?;
        Ok(())
    }

    fn delete_row(&mut self, mailbox: MailboxId, uid: u32) -> Result<Option<(u64, Vec<u8>)>> {
        Ok(self
            .tx
            .query_row(
                "DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2 RETURNING size, blob",
                params![mailbox, uid],
                |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?)),
            )
            .optional()?)
    }

    fn record_expunged(&mut self, mailbox: MailboxId, uid: u32, modseq: u64) -> Result<()> {
        self.tx.execute(
            "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)",
            params![mailbox, uid, modseq as i64],
        )?;
        Ok(())
    }

    fn record_saved(&mut self, mailbox: MailboxId, uid: u32) -> Result<()> {
        expire::saved(&self.tx, mailbox, i64::from(uid))
    }

    fn forget_saved(&mut self, mailbox: MailboxId, uid: u32) -> Result<()> {
        expire::forget(&self.tx, mailbox, uid)
    }

    fn prepared_id<'p>(&self, prep: &'p Prepared) -> &'p BlobId {
        &prep.id
    }

    fn take_blob_ref(
        &mut self,
        id: &BlobId,
        body: Option<&[u8]>,
        prep: Option<&Prepared>,
    ) -> Result<()> {
        WriteCtx::ref_blob(self, id, body, prep)
    }

    fn drop_blob_ref(&mut self, hash: &[u8]) -> Result<()> {
        self.tx.execute(
            "UPDATE blobs SET refcount = refcount - 1 WHERE hash = ?1",
            [hash],
        )?;
        Ok(())
    }

    fn discard_prepared(&mut self, prep: &Prepared) -> Result<()> {
        WriteCtx::drop_unused_blob(self, prep)
    }
}

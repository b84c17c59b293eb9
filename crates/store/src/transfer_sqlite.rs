//! The embedded store's queries for moving a store to another backend (`transfer.rs`):
//! the stored forms of secrets (hashes only), save dates, expunged UIDs, the maintenance
//! record.

use super::{get_account, SqliteBackend};
use crate::apppass::Protocols;
use crate::transfer::{ApiTokenRecord, AppPasswordRecord};
use crate::*;
use rusqlite::{params, OptionalExtension};

impl SqliteBackend {
    pub(crate) fn t_password_hash(&self, address: &str) -> Result<String> {
        let a = normalize_address(address);
        self.read(|c| {
            c.query_row("SELECT password_hash FROM accounts WHERE address = ?1", [&a], |r| r.get(0))
                .optional()?
                .ok_or_else(|| Error::NotFound(format!("user {a}")))
        })
    }

    pub(crate) fn t_app_password_records(&self, address: &str) -> Result<Vec<AppPasswordRecord>> {
        self.read(|c| {
            let acct = get_account(c, address)?;
            let mut st = c.prepare(
                "SELECT name, selector, hash, protocols, created, last_used FROM app_passwords
                 WHERE account_id = ?1 ORDER BY name",
            )?;
            let v = st
                .query_map([acct.id], |r| {
                    Ok(AppPasswordRecord {
                        name: r.get(0)?,
                        selector: r.get(1)?,
                        hash: r.get(2)?,
                        protocols: Protocols::from_bits(r.get(3)?),
                        created: r.get(4)?,
                        last_used: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    pub(crate) fn t_restore_app_password(&self, address: &str, rec: &AppPasswordRecord) -> Result<()> {
        let (a, r) = (normalize_address(address), rec.clone());
        self.write(move |ctx| {
            let acct = get_account(&ctx.tx, &a)?;
            let n = ctx.tx.execute(
                "INSERT OR IGNORE INTO app_passwords (account_id, name, selector, hash, protocols, created, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![acct.id, r.name, r.selector, r.hash, r.protocols.bits(), r.created, r.last_used],
            )?;
            if n == 0 {
                return Err(Error::Exists(format!("application password '{}' of {a}", r.name)));
            }
            Ok(())
        })
    }

    pub(crate) fn t_api_token_records(&self) -> Result<Vec<ApiTokenRecord>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT name, selector, hash, created, last_used FROM api_tokens ORDER BY name",
            )?;
            let v = st
                .query_map([], |r| {
                    Ok(ApiTokenRecord {
                        name: r.get(0)?,
                        selector: r.get(1)?,
                        hash: r.get(2)?,
                        created: r.get(3)?,
                        last_used: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    pub(crate) fn t_restore_api_token(&self, rec: &ApiTokenRecord) -> Result<()> {
        let r = rec.clone();
        self.write(move |ctx| {
            let n = ctx.tx.execute(
                "INSERT OR IGNORE INTO api_tokens (name, selector, hash, created, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.name, r.selector, r.hash, r.created, r.last_used],
            )?;
            if n == 0 {
                return Err(Error::Exists(format!("API token '{}'", r.name)));
            }
            Ok(())
        })
    }

    pub(crate) fn t_save_dates(&self, mailbox: MailboxId) -> Result<Vec<(u32, i64)>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT s.uid, s.saved FROM message_saved s
                 JOIN messages m ON m.mailbox_id = s.mailbox_id AND m.uid = s.uid
                 WHERE s.mailbox_id = ?1 ORDER BY s.uid",
            )?;
            let v = st
                .query_map([mailbox], |r| Ok((r.get::<_, i64>(0)? as u32, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    pub(crate) fn t_set_save_dates(&self, mailbox: MailboxId, dates: &[(u32, i64)]) -> Result<()> {
        let dates = dates.to_vec();
        self.write(move |ctx| {
            let mut st = ctx.tx.prepare(
                "INSERT OR REPLACE INTO message_saved (mailbox_id, uid, saved)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uid = ?2)",
            )?;
            for (uid, saved) in dates {
                st.execute(params![mailbox, uid, saved])?;
            }
            Ok(())
        })
    }

    pub(crate) fn t_maintenance_last(&self, task: &str) -> Result<Option<i64>> {
        self.read(|c| {
            Ok(c.query_row("SELECT at FROM maintenance_runs WHERE task = ?1", [task], |r| r.get(0))
                .optional()?)
        })
    }

    pub(crate) fn t_expunged_uids(&self, mailbox: MailboxId) -> Result<Vec<(u32, u64)>> {
        self.read(|c| {
            let mut st =
                c.prepare("SELECT uid, modseq FROM expunged WHERE mailbox_id = ?1 ORDER BY uid")?;
            let v = st
                .query_map([mailbox], |r| Ok((r.get::<_, i64>(0)? as u32, r.get::<_, i64>(1)? as u64)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    pub(crate) fn t_import_expunged(&self, mailbox: MailboxId, uids: &[(u32, u64)]) -> Result<()> {
        let uids = uids.to_vec();
        self.write(move |ctx| {
            let mut st = ctx.tx.prepare(
                "INSERT OR IGNORE INTO expunged (mailbox_id, uid, modseq)
                 SELECT ?1, ?2, ?3 WHERE NOT EXISTS
                   (SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uid = ?2)",
            )?;
            for (uid, modseq) in uids {
                st.execute(params![mailbox, uid, i64::try_from(modseq).unwrap_or(i64::MAX)])?;
            }
            Ok(())
        })
    }
}

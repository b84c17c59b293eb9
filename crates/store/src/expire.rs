//! Trash and Junk expiry (issue 15): messages are expunged a set number of days after
//! they were saved into the folder with the RFC 6154 `\Trash` or `\Junk` attribute.
//!
//! The age counts from the *save date*, as Dovecot's `autoexpunge` does (its
//! `mailbox_autoexpunge` documentation: "the saved-timestamp"), not from the internal
//! date: RFC 9051 6.4.7 and RFC 6851 3.3 make COPY and MOVE keep the internal date, so a
//! year-old message deleted today would otherwise vanish from Trash at once. The save
//! date is a row of `message_saved` written with the message row itself; messages stored
//! before that table existed get one (the time of the first run) before anything is
//! judged, so an upgrade never expunges at once.
//!
//! Removal goes through `WriteCtx::expunge`, the path IMAP EXPUNGE takes: the UIDs are
//! recorded for QRESYNC's VANISHED (RFC 7162 3.2.10), selected sessions hear of them on
//! the change feed, and the quota is freed in the same transaction.
//!
//! Policies: `[expire] trash`/`junk` for everyone, overridden per domain, then per
//! account (the `expire_policy` table; `NULL` inherits, `0` is never).

use super::{get_mailbox_by_id, space, SqliteBackend};
use crate::{
    normalize_address, validate_domain, Backend, Error, ExpirePolicy, Expired, MailboxId, Result,
    SpecialUse,
};
use rusqlite::{params, Connection, Transaction};

/// Records that `uid` was saved into `mailbox` now.
pub(super) fn saved(tx: &Transaction, mailbox: MailboxId, uid: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO message_saved (mailbox_id, uid, saved) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![mailbox, uid, crate::now()])?;
    Ok(())
}

/// Drops the save date of an expunged message.
pub(super) fn forget(tx: &Transaction, mailbox: MailboxId, uid: u32) -> Result<()> {
    tx.prepare_cached("DELETE FROM message_saved WHERE mailbox_id = ?1 AND uid = ?2")?
        .execute(params![mailbox, uid])?;
    Ok(())
}

fn column(folder: SpecialUse) -> Result<&'static str> {
    match folder {
        SpecialUse::Trash => Ok("trash"),
        SpecialUse::Junk => Ok("junk"),
        _ => Err(Error::Invalid(
            "expiry applies to the \\Trash and \\Junk folders only".into(),
        )),
    }
}

pub(super) fn set(
    b: &SqliteBackend,
    scope: &str,
    folder: SpecialUse,
    days: Option<u32>,
) -> Result<()> {
    let col = column(folder)?;
    let scope = if scope.contains('@') {
        let a = normalize_address(scope);
        b.account(&a)?;
        a
    } else {
        let d = validate_domain(scope)?;
        if !b.list_domains()?.contains(&d) {
            return Err(Error::NotFound(format!("domain {d}")));
        }
        d
    };
    b.write(move |ctx| {
        ctx.tx.execute(
            "INSERT OR IGNORE INTO expire_policy (scope) VALUES (?1)",
            [&scope],
        )?;
        ctx.tx.execute(
            &format!("UPDATE expire_policy SET {col} = ?2 WHERE scope = ?1"),
            params![scope, days.map(i64::from)],
        )?;
        ctx.tx.execute(
            "DELETE FROM expire_policy WHERE trash IS NULL AND junk IS NULL",
            [],
        )?;
        Ok(())
    })
}

pub(super) fn policies(b: &SqliteBackend) -> Result<Vec<ExpirePolicy>> {
    b.read(|c| read_policies(c))
}

fn read_policies(c: &Connection) -> Result<Vec<ExpirePolicy>> {
    let mut st = c.prepare("SELECT scope, trash, junk FROM expire_policy ORDER BY scope")?;
    let v = st
        .query_map([], |r| {
            Ok(ExpirePolicy {
                scope: r.get(0)?,
                trash: r
                    .get::<_, Option<i64>>(1)?
                    .map(|d| d.clamp(0, u32::MAX as i64) as u32),
                junk: r
                    .get::<_, Option<i64>>(2)?
                    .map(|d| d.clamp(0, u32::MAX as i64) as u32),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// The days in force for one account's folder: the account's, the domain's, `[expire]`'s
/// (every backend's rule).
pub(crate) fn days_for(
    opts: &crate::StoreOptions,
    policies: &[ExpirePolicy],
    address: &str,
    folder: SpecialUse,
) -> u32 {
    let pick = |p: &ExpirePolicy| match folder {
        SpecialUse::Trash => p.trash,
        _ => p.junk,
    };
    let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let find = |scope: &str| policies.iter().find(|p| p.scope == scope).and_then(pick);
    find(address)
        .or_else(|| find(domain))
        .unwrap_or(match folder {
            SpecialUse::Trash => opts.expire_trash_days,
            _ => opts.expire_junk_days,
        })
}

pub(super) fn run(b: &SqliteBackend, now: i64) -> Result<Vec<Expired>> {
    let policies = policies(b)?;
    let mut out = Vec::new();
    for acct in b.list_accounts()? {
        for mb in b.list_mailboxes(acct.id)? {
            let folder = match mb.special_use {
                Some(f @ (SpecialUse::Trash | SpecialUse::Junk)) => f,
                _ => continue,
            };
            let days = days_for(&b.opts, &policies, &acct.address, folder);
            if days == 0 {
                continue;
            }
            let cutoff = now.saturating_sub(i64::from(days) * 86_400);
            let id = mb.id;
            let (messages, bytes) = b.write(move |ctx| {
                // Messages from before `message_saved`: saved "now" (never in the future
                // of the real clock), so that an upgrade gives them the full period.
                ctx.tx.execute(
                    "INSERT INTO message_saved (mailbox_id, uid, saved)
                     SELECT m.mailbox_id, m.uid, ?2 FROM messages m WHERE m.mailbox_id = ?1
                     AND NOT EXISTS (SELECT 1 FROM message_saved s WHERE s.mailbox_id = m.mailbox_id AND s.uid = m.uid)",
                    params![id, now.min(crate::now())],
                )?;
                let mut st = ctx.tx.prepare(
                    "SELECT m.uid, m.size FROM messages m JOIN message_saved s
                     ON s.mailbox_id = m.mailbox_id AND s.uid = m.uid
                     WHERE m.mailbox_id = ?1 AND s.saved <= ?2 ORDER BY m.uid",
                )?;
                let rows = st
                    .query_map(params![id, cutoff], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                drop(st);
                if rows.is_empty() {
                    return Ok((0, 0));
                }
                let uids: Vec<u32> = rows.iter().map(|r| r.0 as u32).collect();
                let mb = get_mailbox_by_id(&ctx.tx, id)?;
                let removed = ctx.expunge(&mb, &uids)?;
                let bytes: i64 = rows
                    .iter()
                    .filter(|r| removed.contains(&(r.0 as u32)))
                    .map(|r| r.1)
                    .sum();
                let (n, bytes) = (removed.len() as u64, bytes.max(0) as u64);
                if n > 0 {
                    // The space log (space.rs): the user sees what expiry took and when,
                    // and the usage history counts it as freed.
                    space::log(&ctx.tx, mb.account_id, "expire", &mb.name, None, None, n, bytes, &format!("older than {days} days"))?;
                }
                Ok((n, bytes))
            })?;
            if messages > 0 {
                out.push(Expired {
                    address: acct.address.clone(),
                    mailbox: mb.name.clone(),
                    messages,
                    bytes,
                });
            }
        }
    }
    Ok(out)
}

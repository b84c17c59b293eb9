//! Saving space (issue 15): the tables behind automatic attachment removal and the
//! account's space log (the loop that strips is `strip.rs`, the replacement
//! `replace.rs`, expiry `expire.rs`).
//!
//! - `space_log`: one row per replaced message (`strip`) and per folder an expiry run
//!   emptied (`expire`), written in the transaction that frees the space, so the log
//!   never claims a removal that did not commit nor misses one that did.
//! - `strip_policy`: a domain's or an account's own automatic policy; resolution is the
//!   account's, then its domain's, then `[attachments]`'s (as `expire_policy`).
//! - `maintenance_runs`: when a periodic task of `serve` last ran.

use super::SqliteBackend;
use crate::{
    normalize_address, validate_domain, AccountId, Backend, Error, FreedDay, Result, SpaceEvent,
    StripPolicy,
};
use rusqlite::{params, OptionalExtension, Transaction};

/// Appends one entry to an account's space log (inside the caller's transaction).
#[allow(clippy::too_many_arguments)]
pub(super) fn log(
    tx: &Transaction,
    account: AccountId,
    kind: &str,
    mailbox: &str,
    uid: Option<u32>,
    new_uid: Option<u32>,
    messages: u64,
    bytes: u64,
    detail: &str,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO space_log (account_id, at, kind, mailbox, uid, new_uid, messages, bytes, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        account,
        crate::now(),
        kind,
        mailbox,
        uid,
        new_uid,
        messages.min(i64::MAX as u64) as i64,
        bytes.min(i64::MAX as u64) as i64,
        detail
    ])?;
    Ok(())
}

pub(super) fn entries(b: &SqliteBackend, account: AccountId, since: i64) -> Result<Vec<SpaceEvent>> {
    b.read(|c| {
        let mut st = c.prepare_cached(
            "SELECT at, kind, mailbox, uid, new_uid, messages, bytes, detail FROM space_log
             WHERE account_id = ?1 AND at >= ?2 ORDER BY at DESC, id DESC",
        )?;
        let v = st
            .query_map(params![account, since], |r| {
                Ok(SpaceEvent {
                    at: r.get(0)?,
                    kind: r.get(1)?,
                    mailbox: r.get(2)?,
                    uid: r.get::<_, Option<i64>>(3)?.map(|u| u.clamp(0, u32::MAX as i64) as u32),
                    new_uid: r.get::<_, Option<i64>>(4)?.map(|u| u.clamp(0, u32::MAX as i64) as u32),
                    messages: r.get::<_, i64>(5)?.max(0) as u64,
                    bytes: r.get::<_, i64>(6)?.max(0) as u64,
                    detail: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    })
}

pub(super) fn freed_by_day(b: &SqliteBackend, account: AccountId, since_day: i64) -> Result<Vec<FreedDay>> {
    b.read(|c| {
        let mut st = c.prepare_cached(
            "SELECT at / 86400 AS day,
                    SUM(CASE WHEN kind = 'strip' THEN bytes ELSE 0 END),
                    SUM(CASE WHEN kind = 'expire' THEN bytes ELSE 0 END)
             FROM space_log WHERE account_id = ?1 AND at >= ?2 * 86400
             GROUP BY day ORDER BY day",
        )?;
        let v = st
            .query_map(params![account, since_day], |r| {
                Ok(FreedDay {
                    day: r.get(0)?,
                    stripped: r.get::<_, i64>(1)?.max(0) as u64,
                    expired: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    })
}

pub(super) fn purge(b: &SqliteBackend, before: i64) -> Result<u64> {
    b.write(move |ctx| {
        Ok(ctx
            .tx
            .execute("DELETE FROM space_log WHERE at < ?1", [before])? as u64)
    })
}

fn scope_of(b: &SqliteBackend, scope: &str) -> Result<String> {
    if scope.contains('@') {
        let a = normalize_address(scope);
        b.account(&a)?;
        Ok(a)
    } else {
        let d = validate_domain(scope)?;
        if !b.list_domains()?.contains(&d) {
            return Err(Error::NotFound(format!("domain {d}")));
        }
        Ok(d)
    }
}

pub(super) fn set_policy(b: &SqliteBackend, scope: &str, policy: Option<StripPolicy>) -> Result<()> {
    let scope = scope_of(b, scope)?;
    if let Some(p) = &policy {
        if p.folders.iter().any(|f| f.is_empty() || f.contains('\n')) {
            return Err(Error::Invalid("a folder name is empty or has a line break".into()));
        }
        if p.older_than_days > 0 && p.folders.is_empty() {
            return Err(Error::Invalid("a policy needs at least one folder".into()));
        }
    }
    b.write(move |ctx| {
        match &policy {
            None => {
                ctx.tx.execute("DELETE FROM strip_policy WHERE scope = ?1", [&scope])?;
            }
            Some(p) => {
                ctx.tx.execute(
                    "INSERT OR REPLACE INTO strip_policy (scope, older_than_days, larger_than, folders)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        scope,
                        i64::from(p.older_than_days),
                        p.larger_than.min(i64::MAX as u64) as i64,
                        p.folders.join("\n")
                    ],
                )?;
            }
        }
        Ok(())
    })
}

pub(super) fn policies(b: &SqliteBackend) -> Result<Vec<(String, StripPolicy)>> {
    b.read(|c| {
        let mut st = c.prepare_cached(
            "SELECT scope, older_than_days, larger_than, folders FROM strip_policy ORDER BY scope",
        )?;
        let v = st
            .query_map([], |r| {
                let folders: String = r.get(3)?;
                Ok((
                    r.get::<_, String>(0)?,
                    StripPolicy {
                        older_than_days: r.get::<_, i64>(1)?.clamp(0, u32::MAX as i64) as u32,
                        larger_than: r.get::<_, i64>(2)?.max(0) as u64,
                        folders: folders
                            .split('\n')
                            .filter(|f| !f.is_empty())
                            .map(str::to_string)
                            .collect(),
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    })
}

pub(super) fn policy_for(b: &SqliteBackend, address: &str) -> Result<StripPolicy> {
    let address = normalize_address(address);
    let domain = address.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default();
    let all = policies(b)?;
    let find = |s: &str| all.iter().find(|(scope, _)| scope == s).map(|(_, p)| p.clone());
    Ok(find(&address)
        .or_else(|| find(&domain))
        .unwrap_or_else(|| b.opts.strip_policy.clone()))
}

pub(super) fn due(b: &SqliteBackend, task: &str, now: i64, interval: i64) -> Result<bool> {
    let task = task.to_string();
    b.write(move |ctx| {
        let last: Option<i64> = ctx
            .tx
            .query_row("SELECT at FROM maintenance_runs WHERE task = ?1", [&task], |r| r.get(0))
            .optional()?;
        // A clock set back makes the task due again rather than never.
        if last.is_some_and(|l| l <= now && now - l < interval) {
            return Ok(false);
        }
        ctx.tx.execute(
            "INSERT OR REPLACE INTO maintenance_runs (task, at) VALUES (?1, ?2)",
            params![task, now],
        )?;
        Ok(true)
    })
}

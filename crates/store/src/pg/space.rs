//! Trash/Junk expiry policies, attachment-removal policies, the space log and the
//! periodic tasks' schedule (issue 15) on PostgreSQL (issue 17), with the meaning of the
//! embedded store's (`expire.rs`, `space.rs`).
//!
//! [`maintenance_due`] is what keeps N nodes from running one periodic task together:
//! one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` both tests and records the run. Two
//! nodes asking at once conflict on the task's row; PostgreSQL makes the second wait for
//! the first's commit and re-evaluates its `WHERE` against the row the first wrote, so
//! exactly one of them is told "due" per interval.

use crate::*;
use postgres::GenericClient;

/// The scope of a policy: an existing account's address, or a local domain.
fn scope_of(c: &mut impl GenericClient, scope: &str) -> Result<String> {
    if scope.contains('@') {
        let a = normalize_address(scope);
        crate::pg::web::account_id(c, &a)?;
        Ok(a)
    } else {
        let d = validate_domain(scope)?;
        if c.query_opt("SELECT 1 FROM domains WHERE name = $1", &[&d])?.is_none() {
            return Err(Error::NotFound(format!("domain {d}")));
        }
        Ok(d)
    }
}

// --- expiry policies ---

/// [`Backend::set_expire`].
pub(crate) fn set_expire(
    c: &mut impl GenericClient,
    scope: &str,
    folder: SpecialUse,
    days: Option<u32>,
) -> Result<()> {
    let col = match folder {
        SpecialUse::Trash => "trash",
        SpecialUse::Junk => "junk",
        _ => {
            return Err(Error::Invalid(
                "expiry applies to the \\Trash and \\Junk folders only".into(),
            ))
        }
    };
    let mut tx = c.transaction()?;
    let scope = scope_of(&mut tx, scope)?;
    tx.execute(
        &format!(
            "INSERT INTO expire_policy (scope, {col}) VALUES ($1, $2)
             ON CONFLICT (scope) DO UPDATE SET {col} = excluded.{col}"
        ),
        &[&scope, &days.map(i64::from)],
    )?;
    tx.execute(
        "DELETE FROM expire_policy WHERE trash IS NULL AND junk IS NULL",
        &[],
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn expire_policies(c: &mut impl GenericClient) -> Result<Vec<ExpirePolicy>> {
    let days = |v: Option<i64>| v.map(|d| d.clamp(0, u32::MAX as i64) as u32);
    Ok(c
        .query(
            "SELECT scope, trash, junk FROM expire_policy ORDER BY scope",
            &[],
        )?
        .iter()
        .map(|r| ExpirePolicy {
            scope: r.get(0),
            trash: days(r.get(1)),
            junk: days(r.get(2)),
        })
        .collect())
}

/// [`Backend::expire`]: per account, each `\\Trash` and `\\Junk` folder's messages saved
/// there (`messages.saved`) longer ago than the days in force go through the expunge
/// rule, with the folder's space log entry, one transaction per folder.
pub(crate) fn expire(b: &super::PgBackend, now: i64) -> Result<Vec<Expired>> {
    let policies = b.with_conn(expire_policies)?;
    let mut out = Vec::new();
    for acct in b.list_accounts()? {
        for mb in b.list_mailboxes(acct.id)? {
            let folder = match mb.special_use {
                Some(f @ (SpecialUse::Trash | SpecialUse::Junk)) => f,
                _ => continue,
            };
            let days = crate::sqlite::expire::days_for(&b.opts, &policies, &acct.address, folder);
            if days == 0 {
                continue;
            }
            let cutoff = now.saturating_sub(i64::from(days) * 86_400);
            let (messages, bytes) = b.rules(|t| {
                let rows: Vec<(u32, u64)> = t
                    .tx
                    .query(
                        "SELECT uid, size FROM messages WHERE mailbox_id = $1 AND saved <= $2
                         ORDER BY uid",
                        &[&mb.id, &cutoff],
                    )?
                    .iter()
                    .map(|r| {
                        (
                            r.get::<_, i64>(0).clamp(0, u32::MAX as i64) as u32,
                            r.get::<_, i64>(1).max(0) as u64,
                        )
                    })
                    .collect();
                if rows.is_empty() {
                    return Ok((0, 0));
                }
                let uids: Vec<u32> = rows.iter().map(|r| r.0).collect();
                let removed = crate::rules::expunge(t, &mb, &uids)?;
                let bytes: u64 = rows
                    .iter()
                    .filter(|r| removed.contains(&r.0))
                    .map(|r| r.1)
                    .sum();
                let n = removed.len() as u64;
                if n > 0 {
                    log(
                        &mut *t.tx,
                        mb.account_id,
                        "expire",
                        &mb.name,
                        None,
                        None,
                        n,
                        bytes,
                        &format!("older than {days} days"),
                    )?;
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

// --- attachment-removal policies ---

pub(crate) fn set_strip_policy(
    c: &mut impl GenericClient,
    scope: &str,
    policy: Option<&StripPolicy>,
) -> Result<()> {
    if let Some(p) = policy {
        if p.folders.iter().any(|f| f.is_empty() || f.contains('\n')) {
            return Err(Error::Invalid(
                "a folder name is empty or has a line break".into(),
            ));
        }
        if p.older_than_days > 0 && p.folders.is_empty() {
            return Err(Error::Invalid("a policy needs at least one folder".into()));
        }
    }
    let mut tx = c.transaction()?;
    let scope = scope_of(&mut tx, scope)?;
    match policy {
        None => {
            tx.execute("DELETE FROM strip_policy WHERE scope = $1", &[&scope])?;
        }
        Some(p) => {
            tx.execute(
                "INSERT INTO strip_policy (scope, older_than_days, larger_than, folders)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (scope) DO UPDATE SET older_than_days = excluded.older_than_days,
                     larger_than = excluded.larger_than, folders = excluded.folders",
                &[
                    &scope,
                    &i64::from(p.older_than_days),
                    &(p.larger_than.min(i64::MAX as u64) as i64),
                    &p.folders.join("\n"),
                ],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn strip_policies(c: &mut impl GenericClient) -> Result<Vec<(String, StripPolicy)>> {
    Ok(c
        .query(
            "SELECT scope, older_than_days, larger_than, folders FROM strip_policy ORDER BY scope",
            &[],
        )?
        .iter()
        .map(|r| {
            let folders: String = r.get(3);
            (
                r.get(0),
                StripPolicy {
                    older_than_days: r.get::<_, i64>(1).clamp(0, u32::MAX as i64) as u32,
                    larger_than: r.get::<_, i64>(2).max(0) as u64,
                    folders: folders
                        .split('\n')
                        .filter(|f| !f.is_empty())
                        .map(str::to_string)
                        .collect(),
                },
            )
        })
        .collect())
}

/// [`Backend::strip_policy_for`]: the account's, its domain's, or `default`
/// (`[attachments]`).
pub(crate) fn strip_policy_for(
    c: &mut impl GenericClient,
    address: &str,
    default: &StripPolicy,
) -> Result<StripPolicy> {
    let address = normalize_address(address);
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    let all = strip_policies(c)?;
    let find = |s: &str| all.iter().find(|(scope, _)| scope == s).map(|(_, p)| p.clone());
    Ok(find(&address)
        .or_else(|| find(&domain))
        .unwrap_or_else(|| default.clone()))
}

// --- space log ---

/// Appends one entry to an account's space log, in the caller's transaction (the one
/// that frees the space).
#[allow(clippy::too_many_arguments)]
pub(crate) fn log(
    c: &mut impl GenericClient,
    account: AccountId,
    kind: &str,
    mailbox: &str,
    uid: Option<u32>,
    new_uid: Option<u32>,
    messages: u64,
    bytes: u64,
    detail: &str,
) -> Result<()> {
    c.execute(
        "INSERT INTO space_log (account_id, at, kind, mailbox, uid, new_uid, messages, bytes, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &account,
            &now(),
            &kind,
            &mailbox,
            &uid.map(i64::from),
            &new_uid.map(i64::from),
            &(messages.min(i64::MAX as u64) as i64),
            &(bytes.min(i64::MAX as u64) as i64),
            &detail,
        ],
    )?;
    Ok(())
}

pub(crate) fn space_log(
    c: &mut impl GenericClient,
    account: AccountId,
    since: i64,
) -> Result<Vec<SpaceEvent>> {
    let uid = |v: Option<i64>| v.map(|u| u.clamp(0, u32::MAX as i64) as u32);
    Ok(c
        .query(
            "SELECT at, kind, mailbox, uid, new_uid, messages, bytes, detail FROM space_log
             WHERE account_id = $1 AND at >= $2 ORDER BY at DESC, id DESC",
            &[&account, &since],
        )?
        .iter()
        .map(|r| SpaceEvent {
            at: r.get(0),
            kind: r.get(1),
            mailbox: r.get(2),
            uid: uid(r.get(3)),
            new_uid: uid(r.get(4)),
            messages: r.get::<_, i64>(5).max(0) as u64,
            bytes: r.get::<_, i64>(6).max(0) as u64,
            detail: r.get(7),
        })
        .collect())
}

pub(crate) fn space_freed_by_day(
    c: &mut impl GenericClient,
    account: AccountId,
    since_day: i64,
) -> Result<Vec<FreedDay>> {
    Ok(c
        .query(
            "SELECT div(at, 86400)::BIGINT AS day,
                    sum(CASE WHEN kind = 'strip' THEN bytes ELSE 0 END)::BIGINT,
                    sum(CASE WHEN kind = 'expire' THEN bytes ELSE 0 END)::BIGINT
             FROM space_log WHERE account_id = $1 AND at >= $2::BIGINT * 86400
             GROUP BY day ORDER BY day",
            &[&account, &since_day],
        )?
        .iter()
        .map(|r| FreedDay {
            day: r.get(0),
            stripped: r.get::<_, i64>(1).max(0) as u64,
            expired: r.get::<_, i64>(2).max(0) as u64,
        })
        .collect())
}

pub(crate) fn space_log_purge(c: &mut impl GenericClient, before: i64) -> Result<u64> {
    Ok(c.execute("DELETE FROM space_log WHERE at < $1", &[&before])?)
}

// --- periodic tasks ---

/// [`Backend::maintenance_due`]: true for exactly one caller per `interval` however
/// many nodes ask (see the module documentation). A clock set back makes the task due
/// again rather than never.
pub(crate) fn maintenance_due(
    c: &mut impl GenericClient,
    task: &str,
    now: i64,
    interval: i64,
) -> Result<bool> {
    Ok(c
        .query_opt(
            "INSERT INTO maintenance_runs (task, at) VALUES ($1, $2)
             ON CONFLICT (task) DO UPDATE SET at = excluded.at
             WHERE maintenance_runs.at > excluded.at
                OR excluded.at - maintenance_runs.at >= $3
             RETURNING task",
            &[&task, &now, &interval],
        )?
        .is_some())
}

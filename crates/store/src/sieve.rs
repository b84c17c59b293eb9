//! Sieve scripts in the store (issue 13): each account's scripts, the active one, the
//! version of an account's scripts (changed by every put, activate, delete and rename,
//! so that the server caches the compiled active script until it changes), and the
//! records behind vacation's one reply per sender per `:days` (RFC 5230 4.2) and the
//! duplicate test (RFC 7352). Tables `sieve_scripts`, `sieve_versions` (with the counter
//! `sieve_generation`) and `sieve_seen` (schema.sql); rows go with their account (`ON
//! DELETE CASCADE`).
//!
//! Script names follow RFC 5804 1.6: UTF-8 without control characters (nor U+2028 and
//! U+2029), here at most [`MAX_NAME`] characters. The text is stored as given; whether it
//! compiles is the filter's business (`letterbox-filter`), checked before it gets here.

use crate::sqlite::SqliteBackend;
use crate::{AccountId, Error, Result, SieveScript};
use rusqlite::{params, OptionalExtension, Transaction};

/// Longest script name, in characters (RFC 5804 asks servers to take at least 128
/// octets; Dovecot's Pigeonhole also stops at 256).
pub const MAX_NAME: usize = 256;

/// Checks a script name (RFC 5804 1.6).
pub fn validate_script_name(name: &str) -> Result<&str> {
    let bad = name.is_empty()
        || name.chars().count() > MAX_NAME
        || name
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}');
    if bad {
        Err(Error::Invalid(format!("invalid script name '{}'", name.escape_debug())))
    } else {
        Ok(name)
    }
}

/// Gives the account's scripts a new version, from the counter that only grows, in the
/// transaction that changes them.
fn bump_version(tx: &Transaction, account: AccountId) -> Result<()> {
    let v: i64 = tx.query_row(
        "INSERT INTO sieve_generation (id, value) VALUES (1, 1)
         ON CONFLICT(id) DO UPDATE SET value = value + 1 RETURNING value",
        [],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO sieve_versions (account_id, version) VALUES (?1, ?2)
         ON CONFLICT(account_id) DO UPDATE SET version = excluded.version",
        params![account, v],
    )?;
    Ok(())
}

impl SqliteBackend {
    pub(crate) fn sieve_list_impl(&self, account: AccountId) -> Result<Vec<SieveScript>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT name, active, length(script) FROM sieve_scripts
                 WHERE account_id = ?1 ORDER BY name",
            )?;
            let v = st
                .query_map([account], |r| {
                    Ok(SieveScript {
                        name: r.get(0)?,
                        active: r.get::<_, i64>(1)? != 0,
                        size: r.get::<_, i64>(2)? as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    pub(crate) fn sieve_get_impl(&self, account: AccountId, name: &str) -> Result<Vec<u8>> {
        self.read(|c| {
            c.prepare_cached("SELECT script FROM sieve_scripts WHERE account_id = ?1 AND name = ?2")?
                .query_row(params![account, name], |r| r.get(0))
                .optional()?
                .ok_or_else(|| Error::NotFound(format!("script '{}'", name.escape_debug())))
        })
    }

    pub(crate) fn sieve_put_impl(
        &self,
        account: AccountId,
        name: &str,
        script: Vec<u8>,
        max_scripts: Option<u32>,
    ) -> Result<()> {
        let name = validate_script_name(name)?.to_string();
        self.write(move |ctx| {
            let exists: bool = ctx
                .tx
                .query_row(
                    "SELECT 1 FROM sieve_scripts WHERE account_id = ?1 AND name = ?2",
                    params![account, name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !exists {
                if let Some(max) = max_scripts {
                    let n: i64 = ctx.tx.query_row(
                        "SELECT count(*) FROM sieve_scripts WHERE account_id = ?1",
                        [account],
                        |r| r.get(0),
                    )?;
                    if n >= max as i64 {
                        return Err(Error::Refused(format!(
                            "too many scripts (at most {max} per account)"
                        )));
                    }
                }
            }
            ctx.tx.execute(
                "INSERT INTO sieve_scripts (account_id, name, script, active, updated)
                 VALUES (?1, ?2, ?3, 0, ?4)
                 ON CONFLICT(account_id, name) DO UPDATE SET script = excluded.script,
                    updated = excluded.updated",
                params![account, name, script, crate::now()],
            )?;
            bump_version(&ctx.tx, account)
        })
    }

    pub(crate) fn sieve_activate_impl(&self, account: AccountId, name: Option<&str>) -> Result<()> {
        let name = name.map(str::to_string);
        self.write(move |ctx| {
            if let Some(n) = &name {
                let exists = ctx
                    .tx
                    .query_row(
                        "SELECT 1 FROM sieve_scripts WHERE account_id = ?1 AND name = ?2",
                        params![account, n],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if !exists {
                    return Err(Error::NotFound(format!("script '{}'", n.escape_debug())));
                }
            }
            ctx.tx.execute(
                "UPDATE sieve_scripts SET active = (name IS ?2) WHERE account_id = ?1",
                params![account, name],
            )?;
            bump_version(&ctx.tx, account)
        })
    }

    pub(crate) fn sieve_delete_impl(&self, account: AccountId, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |ctx| {
            let active: Option<i64> = ctx
                .tx
                .query_row(
                    "SELECT active FROM sieve_scripts WHERE account_id = ?1 AND name = ?2",
                    params![account, name],
                    |r| r.get(0),
                )
                .optional()?;
            match active {
                None => Err(Error::NotFound(format!("script '{}'", name.escape_debug()))),
                Some(a) if a != 0 => Err(Error::Refused(format!(
                    "script '{}' is active: deactivate it first",
                    name.escape_debug()
                ))),
                Some(_) => {
                    ctx.tx.execute(
                        "DELETE FROM sieve_scripts WHERE account_id = ?1 AND name = ?2",
                        params![account, name],
                    )?;
                    bump_version(&ctx.tx, account)
                }
            }
        })
    }

    pub(crate) fn sieve_rename_impl(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let from = from.to_string();
        let to = validate_script_name(to)?.to_string();
        self.write(move |ctx| {
            let taken = ctx
                .tx
                .query_row(
                    "SELECT 1 FROM sieve_scripts WHERE account_id = ?1 AND name = ?2",
                    params![account, to],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if taken {
                return Err(Error::Exists(format!("script '{}'", to.escape_debug())));
            }
            let n = ctx.tx.execute(
                "UPDATE sieve_scripts SET name = ?3 WHERE account_id = ?1 AND name = ?2",
                params![account, from, to],
            )?;
            if n == 0 {
                return Err(Error::NotFound(format!("script '{}'", from.escape_debug())));
            }
            bump_version(&ctx.tx, account)
        })
    }

    pub(crate) fn sieve_active_impl(&self, account: AccountId) -> Result<Option<(String, Vec<u8>)>> {
        self.read(|c| {
            Ok(c
                .prepare_cached(
                    "SELECT name, script FROM sieve_scripts WHERE account_id = ?1 AND active = 1",
                )?
                .query_row([account], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        })
    }

    pub(crate) fn sieve_version_impl(&self, account: AccountId) -> Result<u64> {
        self.read(|c| {
            let v: Option<i64> = c
                .prepare_cached("SELECT version FROM sieve_versions WHERE account_id = ?1")?
                .query_row([account], |r| r.get(0))
                .optional()?;
            Ok(v.unwrap_or(0) as u64)
        })
    }

    pub(crate) fn sieve_seen_impl(
        &self,
        account: AccountId,
        id: &str,
        expires: i64,
        now: i64,
    ) -> Result<bool> {
        let id = id.to_string();
        // Not fsynced: after a power cut at worst one more vacation reply goes out.
        self.write_lazy(move |ctx| {
            let prev: Option<i64> = ctx
                .tx
                .query_row(
                    "SELECT expires FROM sieve_seen WHERE account_id = ?1 AND id = ?2",
                    params![account, id],
                    |r| r.get(0),
                )
                .optional()?;
            if matches!(prev, Some(e) if e > now) {
                return Ok(true);
            }
            ctx.tx.execute(
                "INSERT INTO sieve_seen (account_id, id, expires) VALUES (?1, ?2, ?3)
                 ON CONFLICT(account_id, id) DO UPDATE SET expires = excluded.expires",
                params![account, id, expires],
            )?;
            // Expired records of this account go as new ones come.
            ctx.tx.execute(
                "DELETE FROM sieve_seen WHERE account_id = ?1 AND expires <= ?2",
                params![account, now],
            )?;
            Ok(false)
        })
    }
}

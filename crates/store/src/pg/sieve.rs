//! Sieve scripts (RFC 5228, managed as RFC 5804 describes) and vacation/duplicate
//! records (RFC 5230, RFC 7352) on PostgreSQL.

use crate::sieve::validate_script_name;
use crate::*;
use r2d2_postgres::postgres::GenericClient;

fn missing(name: &str) -> Error {
    Error::NotFound(format!("script '{}'", name.escape_debug()))
}

pub(crate) fn list(c: &mut impl GenericClient, account: AccountId) -> Result<Vec<SieveScript>> {
    Ok(c.query(
        "SELECT name, active, length(script) FROM sieve_scripts
         WHERE account_id = $1 ORDER BY name COLLATE \"C\"",
        &[&account],
    )?
    .iter()
    .map(|r| SieveScript {
        name: r.get(0),
        active: r.get(1),
        size: r.get::<_, i32>(2).max(0) as u64,
    })
    .collect())
}

pub(crate) fn get(c: &mut impl GenericClient, account: AccountId, name: &str) -> Result<Vec<u8>> {
    Ok(c.query_opt(
        "SELECT script FROM sieve_scripts WHERE account_id = $1 AND name = $2",
        &[&account, &name],
    )?
    .ok_or_else(|| missing(name))?
    .get(0))
}

pub(crate) fn put(
    c: &mut impl GenericClient,
    account: AccountId,
    name: &str,
    script: &[u8],
    max_scripts: Option<u32>,
) -> Result<()> {
    let name = validate_script_name(name)?;
    // The account row serialises two uploads counting scripts at once.
    c.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", &[&account])?;
    let exists = c
        .query_opt(
            "SELECT 1 FROM sieve_scripts WHERE account_id = $1 AND name = $2",
            &[&account, &name],
        )?
        .is_some();
    if !exists {
        if let Some(max) = max_scripts {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM sieve_scripts WHERE account_id = $1",
                    &[&account],
                )?
                .get(0);
            if n >= i64::from(max) {
                return Err(Error::Refused(format!(
                    "too many scripts (at most {max} per account)"
                )));
            }
        }
    }
    c.execute(
        "INSERT INTO sieve_scripts (account_id, name, script, active, updated)
         VALUES ($1, $2, $3, FALSE, $4)
         ON CONFLICT (account_id, name) DO UPDATE SET script = EXCLUDED.script,
             updated = EXCLUDED.updated",
        &[&account, &name, &script, &now()],
    )?;
    Ok(())
}

pub(crate) fn activate(
    c: &mut impl GenericClient,
    account: AccountId,
    name: Option<&str>,
) -> Result<()> {
    if let Some(n) = name {
        if c.query_opt(
            "SELECT 1 FROM sieve_scripts WHERE account_id = $1 AND name = $2",
            &[&account, &n],
        )?
        .is_none()
        {
            return Err(missing(n));
        }
    }
    c.execute(
        "UPDATE sieve_scripts SET active = (name IS NOT DISTINCT FROM $2) WHERE account_id = $1",
        &[&account, &name],
    )?;
    Ok(())
}

pub(crate) fn delete(c: &mut impl GenericClient, account: AccountId, name: &str) -> Result<()> {
    let active: Option<bool> = c
        .query_opt(
            "SELECT active FROM sieve_scripts WHERE account_id = $1 AND name = $2 FOR UPDATE",
            &[&account, &name],
        )?
        .map(|r| r.get(0));
    match active {
        None => Err(missing(name)),
        Some(true) => Err(Error::Refused(format!(
            "script '{}' is active: deactivate it first",
            name.escape_debug()
        ))),
        Some(false) => {
            c.execute(
                "DELETE FROM sieve_scripts WHERE account_id = $1 AND name = $2",
                &[&account, &name],
            )?;
            Ok(())
        }
    }
}

pub(crate) fn rename(
    c: &mut impl GenericClient,
    account: AccountId,
    from: &str,
    to: &str,
) -> Result<()> {
    let to = validate_script_name(to)?;
    if c.query_opt(
        "SELECT 1 FROM sieve_scripts WHERE account_id = $1 AND name = $2",
        &[&account, &to],
    )?
    .is_some()
    {
        return Err(Error::Exists(format!("script '{}'", to.escape_debug())));
    }
    let n = c.execute(
        "UPDATE sieve_scripts SET name = $3 WHERE account_id = $1 AND name = $2",
        &[&account, &from, &to],
    )?;
    if n == 0 {
        return Err(missing(from));
    }
    Ok(())
}

pub(crate) fn active(
    c: &mut impl GenericClient,
    account: AccountId,
) -> Result<Option<(String, Vec<u8>)>> {
    Ok(c.query_opt(
        "SELECT name, script FROM sieve_scripts WHERE account_id = $1 AND active",
        &[&account],
    )?
    .map(|r| (r.get(0), r.get(1))))
}

/// One statement: the upsert's row lock orders two deliveries checking the same id, so
/// exactly one of them sees it unrecorded.
pub(crate) fn seen(
    c: &mut impl GenericClient,
    account: AccountId,
    id: &str,
    expires: i64,
    now: i64,
) -> Result<bool> {
    let r = c.query_one(
        "WITH old AS (SELECT expires FROM sieve_seen WHERE account_id = $1 AND id = $2)
         INSERT INTO sieve_seen (account_id, id, expires) VALUES ($1, $2, $3)
         ON CONFLICT (account_id, id) DO UPDATE
             SET expires = CASE WHEN sieve_seen.expires > $4 THEN sieve_seen.expires
                                ELSE EXCLUDED.expires END
         RETURNING (SELECT expires FROM old)",
        &[&account, &id, &expires, &now],
    )?;
    let prev: Option<i64> = r.get(0);
    c.execute(
        "DELETE FROM sieve_seen WHERE account_id = $1 AND expires <= $2",
        &[&account, &now],
    )?;
    Ok(matches!(prev, Some(e) if e > now))
}

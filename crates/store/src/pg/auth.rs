//! Login blocks, application passwords, the login history and API tokens (issue 14) on
//! PostgreSQL (issue 17), as free functions over a client. What is not SQL (password
//! generation and hashing, the verified cache, token digests) is shared with the
//! embedded store: `apppass.rs`, `apitokens.rs`. Blocks live in the shared database, so
//! a block set after failed logins on one node holds on every node at once.

use crate::apitokens::{digest, new_token, same_digest, selector, ApiToken};
use crate::apppass::{self, AppPassword, Candidate, Protocols, MAX_PER_ACCOUNT, SELECTOR_LEN};
use crate::logins::LoginRecord;
use crate::pg::web::account_id;
use crate::*;
use postgres::GenericClient;

// --- login blocks ---

/// [`Backend::block`]: a block already longer is kept (two nodes blocking the same key
/// at once end with the later `until`).
pub(crate) fn block(c: &mut impl GenericClient, key: &str, until: i64, reason: &str) -> Result<()> {
    c.execute(
        "INSERT INTO auth_blocks (key, until, reason) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO UPDATE SET until = greatest(auth_blocks.until, excluded.until),
                                         reason = excluded.reason",
        &[&key, &until, &reason],
    )?;
    Ok(())
}

pub(crate) fn blocks(c: &mut impl GenericClient, now: i64) -> Result<Vec<(String, i64, String)>> {
    Ok(c
        .query(
            "SELECT key, until, reason FROM auth_blocks WHERE until > $1 ORDER BY key",
            &[&now],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

pub(crate) fn unblock(c: &mut impl GenericClient, key: &str) -> Result<bool> {
    Ok(c.execute("DELETE FROM auth_blocks WHERE key = $1", &[&key])? > 0)
}

// --- failed-login counts, shared by the nodes ---

/// [`Backend::count_login_failure`]: one statement, so that failures on two nodes at
/// once both count. A count whose latest failure is `window` old starts again at 1 (as
/// the in-memory count does); counts gone stale are removed when a new one starts, so
/// the table holds only the keys that failed within the window.
pub(crate) fn count_failure(c: &mut impl GenericClient, key: &str, window: u64, now: i64) -> Result<u32> {
    let stale = now.saturating_sub(window.min(i64::MAX as u64) as i64);
    let n: i64 = c
        .query_one(
            "INSERT INTO auth_failures (key, count, last) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE SET
                 count = CASE WHEN auth_failures.last <= $3 THEN 1 ELSE auth_failures.count + 1 END,
                 last = $2
             RETURNING count",
            &[&key, &now, &stale],
        )?
        .get(0);
    if n == 1 {
        c.execute("DELETE FROM auth_failures WHERE last <= $1", &[&stale])?;
    }
    Ok(n.clamp(0, u32::MAX as i64) as u32)
}

pub(crate) fn clear_failures(c: &mut impl GenericClient, keys: &[String]) -> Result<()> {
    c.execute("DELETE FROM auth_failures WHERE key = ANY($1)", &[&keys])?;
    Ok(())
}

// --- application passwords ---

/// [`Backend::add_app_password`]: returns the password as shown, once. The count limit
/// is checked with the account row locked, so two nodes cannot both add the 50th.
pub(crate) fn app_password_add(
    c: &mut impl GenericClient,
    address: &str,
    name: &str,
    protocols: Protocols,
) -> Result<String> {
    let a = normalize_address(address);
    let name = apppass::check_name(name)?;
    if protocols.is_empty() {
        return Err(Error::Invalid(
            "an application password needs at least one protocol".into(),
        ));
    }
    let (shown, canonical) = apppass::generate();
    let hash = password::hash(&canonical);
    let selector = canonical[..SELECTOR_LEN].to_string();
    let mut tx = c.transaction()?;
    let id: AccountId = tx
        .query_opt("SELECT id FROM accounts WHERE address = $1 FOR UPDATE", &[&a])?
        .ok_or_else(|| Error::NotFound(format!("user {a}")))?
        .get(0);
    let n: i64 = tx
        .query_one(
            "SELECT count(*) FROM app_passwords WHERE account_id = $1",
            &[&id],
        )?
        .get(0);
    if n >= MAX_PER_ACCOUNT {
        return Err(Error::Refused(format!(
            "{a} already has {MAX_PER_ACCOUNT} application passwords; remove one first"
        )));
    }
    let inserted = tx.execute(
        "INSERT INTO app_passwords (account_id, name, selector, hash, protocols, created)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, name) DO NOTHING",
        &[&id, &name, &selector, &hash, &i64::from(protocols.bits()), &now()],
    )?;
    if inserted == 0 {
        return Err(Error::Exists(format!("application password '{name}' of {a}")));
    }
    tx.commit()?;
    Ok(shown)
}

pub(crate) fn app_password_list(c: &mut impl GenericClient, address: &str) -> Result<Vec<AppPassword>> {
    let id = account_id(c, address)?;
    Ok(c
        .query(
            "SELECT name, protocols, created, last_used FROM app_passwords
             WHERE account_id = $1 ORDER BY name",
            &[&id],
        )?
        .iter()
        .map(|r| AppPassword {
            name: r.get(0),
            protocols: Protocols::from_bits(r.get::<_, i64>(1).clamp(0, 255) as u8),
            created: r.get(2),
            last_used: r.get(3),
        })
        .collect())
}

/// [`Backend::remove_app_password`]: the removed row's id, whose verified-cache entry
/// the caller forgets ([`apppass::cache_key`]).
pub(crate) fn app_password_remove(
    c: &mut impl GenericClient,
    address: &str,
    name: &str,
) -> Result<i64> {
    let a = normalize_address(address);
    let name = name.trim();
    let id = account_id(c, &a)?;
    Ok(c
        .query_opt(
            "DELETE FROM app_passwords WHERE account_id = $1 AND name = $2 RETURNING id",
            &[&id, &name],
        )?
        .ok_or_else(|| Error::NotFound(format!("application password '{name}' of {a}")))?
        .get(0))
}

/// The application passwords of `address` whose selector is that of `canon` (a
/// canonical password, [`apppass::canonical`]): the account's id and the candidates,
/// `None` for an unknown address. The caller checks them with
/// [`apppass::check_candidates`].
pub(crate) fn app_password_candidates(
    c: &mut impl GenericClient,
    address: &str,
    canon: &str,
) -> Result<Option<(AccountId, Vec<Candidate>)>> {
    let a = normalize_address(address);
    let Some(row) = c.query_opt("SELECT id FROM accounts WHERE address = $1", &[&a])? else {
        return Ok(None);
    };
    let id: AccountId = row.get(0);
    let selector = &canon[..SELECTOR_LEN.min(canon.len())];
    let candidates = c
        .query(
            "SELECT id, name, hash, protocols FROM app_passwords
             WHERE account_id = $1 AND selector = $2",
            &[&id, &selector],
        )?
        .iter()
        .map(|r| Candidate {
            id: r.get(0),
            name: r.get(1),
            hash: r.get(2),
            protocols: Protocols::from_bits(r.get::<_, i64>(3).clamp(0, 255) as u8),
        })
        .collect();
    Ok(Some((id, candidates)))
}

// --- login history ---

/// [`Backend::record_login`]: one row, the account's older rows beyond `keep` trimmed
/// and the app password's last use noted, in one transaction.
pub(crate) fn record_login(
    c: &mut impl GenericClient,
    account: AccountId,
    login: &LoginRecord,
    keep: u32,
) -> Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let mut tx = c.transaction()?;
    tx.execute(
        "INSERT INTO login_history (account_id, at, remote, protocol, app_password)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &account,
            &login.at,
            &login.remote,
            &login.protocol,
            &login.app_password,
        ],
    )?;
    tx.execute(
        "DELETE FROM login_history WHERE account_id = $1 AND id <= (
             SELECT id FROM login_history WHERE account_id = $1
             ORDER BY id DESC LIMIT 1 OFFSET $2)",
        &[&account, &i64::from(keep)],
    )?;
    if let Some(name) = &login.app_password {
        tx.execute(
            "UPDATE app_passwords SET last_used = $3 WHERE account_id = $1 AND name = $2",
            &[&account, name, &login.at],
        )?;
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn recent_logins(c: &mut impl GenericClient, address: &str) -> Result<Vec<LoginRecord>> {
    let id = account_id(c, address)?;
    Ok(c
        .query(
            "SELECT at, remote, protocol, app_password FROM login_history
             WHERE account_id = $1 ORDER BY id DESC",
            &[&id],
        )?
        .iter()
        .map(|r| LoginRecord {
            at: r.get(0),
            remote: r.get(1),
            protocol: r.get(2),
            app_password: r.get(3),
        })
        .collect())
}

// --- API tokens ---

pub(crate) fn api_token_add(c: &mut impl GenericClient, name: &str) -> Result<String> {
    let (name, token, sel, hash) = new_token(name)?;
    let n = c.execute(
        "INSERT INTO api_tokens (name, selector, hash, created) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING",
        &[&name, &sel, &hash, &now()],
    )?;
    if n == 0 {
        return Err(Error::Exists(format!("API token '{name}'")));
    }
    Ok(token)
}

pub(crate) fn api_token_list(c: &mut impl GenericClient) -> Result<Vec<ApiToken>> {
    Ok(c
        .query(
            "SELECT name, created, last_used FROM api_tokens ORDER BY name",
            &[],
        )?
        .iter()
        .map(|r| ApiToken {
            name: r.get(0),
            created: r.get(1),
            last_used: r.get(2),
        })
        .collect())
}

pub(crate) fn api_token_remove(c: &mut impl GenericClient, name: &str) -> Result<()> {
    let name = name.trim();
    if c.execute("DELETE FROM api_tokens WHERE name = $1", &[&name])? == 0 {
        return Err(Error::NotFound(format!("API token '{name}'")));
    }
    Ok(())
}

/// [`Backend::check_api_token`]: the token's name when it is a live one; its last use
/// is noted to the minute (no write on every request).
pub(crate) fn api_token_check(c: &mut impl GenericClient, token: &str) -> Result<Option<String>> {
    let Some(sel) = selector(token) else {
        return Ok(None);
    };
    let want = digest(token);
    let rows = c.query(
        "SELECT id, name, hash, last_used FROM api_tokens WHERE selector = $1",
        &[&sel],
    )?;
    for r in rows {
        let hash: Vec<u8> = r.get(2);
        if same_digest(&hash, &want) {
            let (id, last_used): (i64, Option<i64>) = (r.get(0), r.get(3));
            let now = now();
            if last_used.is_none_or(|t| t < now - 60) {
                c.execute(
                    "UPDATE api_tokens SET last_used = $2 WHERE id = $1",
                    &[&id, &now],
                )?;
            }
            return Ok(Some(r.get(1)));
        }
    }
    Ok(None)
}

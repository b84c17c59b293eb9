//! The web portal's store ([`crate::web::WebStore`], issue 14) on PostgreSQL (issue 17):
//! sessions, operators, quota requests and their audit trail, usage history, delivery
//! counts and disabled accounts, as free functions over a client with the meaning the
//! trait documents. All of it lives in the shared database, so every node agrees on who
//! is logged in and what was decided; a decision on a quota request locks the request
//! row (`FOR UPDATE`), so that two operators deciding at once on two nodes cannot both
//! win.

use crate::web::*;
use crate::*;
use postgres::GenericClient;

const REQUEST_COLS: &str = "id, account_id, address, size, reason, created, status, decided_by, decided_at, granted_size, note";

fn request_from_row(r: &postgres::Row) -> QuotaRequest {
    let status: String = r.get(6);
    QuotaRequest {
        id: r.get(0),
        account_id: r.get(1),
        address: r.get(2),
        size: r.get::<_, i64>(3).max(0) as u64,
        reason: r.get(4),
        created: r.get(5),
        status: match status.as_str() {
            "approved" => RequestStatus::Approved,
            "denied" => RequestStatus::Denied,
            _ => RequestStatus::Pending,
        },
        decided_by: r.get(7),
        decided_at: r.get(8),
        granted_size: r.get::<_, Option<i64>>(9).map(|n| n.max(0) as u64),
        note: r.get(10),
    }
}

fn clamp(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// An account's id and address by normalised address; `NotFound` as the core says it.
pub(crate) fn account_id(c: &mut impl GenericClient, address: &str) -> Result<AccountId> {
    let a = normalize_address(address);
    Ok(c
        .query_opt("SELECT id FROM accounts WHERE address = $1", &[&a])?
        .ok_or_else(|| Error::NotFound(format!("user {a}")))?
        .get(0))
}

fn account_address(c: &mut impl GenericClient, id: AccountId) -> Result<String> {
    Ok(c
        .query_opt("SELECT address FROM accounts WHERE id = $1", &[&id])?
        .ok_or_else(|| Error::NotFound(format!("account #{id}")))?
        .get(0))
}

pub(crate) fn session_create(
    c: &mut impl GenericClient,
    token_hash: [u8; 32],
    account: AccountId,
    csrf: &str,
    expires: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO web_sessions (token_hash, account_id, csrf, created, expires)
         VALUES ($1, $2, $3, $4, $5)",
        &[&&token_hash[..], &account, &csrf, &now(), &expires],
    )?;
    Ok(())
}

pub(crate) fn session_get(
    c: &mut impl GenericClient,
    token_hash: [u8; 32],
    now: i64,
) -> Result<Option<WebSession>> {
    Ok(c
        .query_opt(
            "SELECT account_id, csrf, expires FROM web_sessions
             WHERE token_hash = $1 AND expires > $2",
            &[&&token_hash[..], &now],
        )?
        .map(|r| WebSession {
            account_id: r.get(0),
            csrf: r.get(1),
            expires: r.get(2),
        }))
}

pub(crate) fn session_delete(c: &mut impl GenericClient, token_hash: [u8; 32]) -> Result<()> {
    c.execute(
        "DELETE FROM web_sessions WHERE token_hash = $1",
        &[&&token_hash[..]],
    )?;
    Ok(())
}

pub(crate) fn sessions_end_account(c: &mut impl GenericClient, account: AccountId) -> Result<u64> {
    Ok(c.execute("DELETE FROM web_sessions WHERE account_id = $1", &[&account])?)
}

pub(crate) fn sessions_purge(c: &mut impl GenericClient, now: i64) -> Result<u64> {
    Ok(c.execute("DELETE FROM web_sessions WHERE expires <= $1", &[&now])?)
}

pub(crate) fn admin_add(c: &mut impl GenericClient, address: &str, domain: Option<&str>) -> Result<()> {
    let a = normalize_address(address);
    let d = match domain {
        Some(d) => validate_domain(d)?,
        None => String::new(),
    };
    let mut tx = c.transaction()?;
    account_id(&mut tx, &a)?;
    if !d.is_empty()
        && tx
            .query_opt("SELECT id FROM domains WHERE name = $1", &[&d])?
            .is_none()
    {
        return Err(Error::NotFound(format!("domain {d}")));
    }
    let n = tx.execute(
        "INSERT INTO web_admins (address, domain) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&a, &d],
    )?;
    if n == 0 {
        let what = if d.is_empty() {
            format!("operator {a}")
        } else {
            format!("domain admin {a} for {d}")
        };
        return Err(Error::Exists(what));
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn admin_remove(
    c: &mut impl GenericClient,
    address: &str,
    domain: Option<&str>,
) -> Result<u64> {
    let a = normalize_address(address);
    let n = match domain.map(|d| d.trim().to_ascii_lowercase()) {
        Some(d) => c.execute(
            "DELETE FROM web_admins WHERE address = $1 AND domain = $2",
            &[&a, &d],
        )?,
        None => c.execute("DELETE FROM web_admins WHERE address = $1", &[&a])?,
    };
    if n == 0 {
        return Err(Error::NotFound(format!("operator {a}")));
    }
    Ok(n)
}

pub(crate) fn admin_list(c: &mut impl GenericClient) -> Result<Vec<AdminGrant>> {
    Ok(c
        .query(
            "SELECT address, domain FROM web_admins ORDER BY address, domain",
            &[],
        )?
        .iter()
        .map(|r| {
            let d: String = r.get(1);
            AdminGrant {
                address: r.get(0),
                domain: (!d.is_empty()).then_some(d),
            }
        })
        .collect())
}

/// Opens a request; `Exists` while another is pending (the partial unique index makes
/// this hold between nodes too: the second insert conflicts).
pub(crate) fn quota_request_open(
    c: &mut impl GenericClient,
    account: AccountId,
    size: u64,
    reason: &str,
) -> Result<QuotaRequest> {
    let mut tx = c.transaction()?;
    let address = account_address(&mut tx, account)?;
    let row = tx.query_opt(
        &format!(
            "INSERT INTO quota_requests (account_id, address, size, reason, created, status)
             VALUES ($1, $2, $3, $4, $5, 'pending')
             ON CONFLICT (account_id) WHERE status = 'pending' DO NOTHING
             RETURNING {REQUEST_COLS}"
        ),
        &[&account, &address, &clamp(size), &reason, &now()],
    )?;
    let Some(row) = row else {
        let id: i64 = tx
            .query_one(
                "SELECT id FROM quota_requests WHERE account_id = $1 AND status = 'pending'",
                &[&account],
            )?
            .get(0);
        return Err(Error::Exists(format!("an open request (#{id})")));
    };
    tx.commit()?;
    Ok(request_from_row(&row))
}

fn get_request(c: &mut impl GenericClient, id: i64, lock: bool) -> Result<QuotaRequest> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(request_from_row(
        &c.query_opt(
            &format!("SELECT {REQUEST_COLS} FROM quota_requests WHERE id = $1{lock}"),
            &[&id],
        )?
        .ok_or_else(|| Error::NotFound(format!("quota request #{id}")))?,
    ))
}

pub(crate) fn quota_request(c: &mut impl GenericClient, id: i64) -> Result<QuotaRequest> {
    get_request(c, id, false)
}

pub(crate) fn quota_requests(c: &mut impl GenericClient, all: bool) -> Result<Vec<QuotaRequest>> {
    let filter = if all { "" } else { "WHERE status = 'pending'" };
    Ok(c
        .query(
            &format!("SELECT {REQUEST_COLS} FROM quota_requests {filter} ORDER BY id DESC"),
            &[],
        )?
        .iter()
        .map(request_from_row)
        .collect())
}

pub(crate) fn quota_requests_of(
    c: &mut impl GenericClient,
    account: AccountId,
) -> Result<Vec<QuotaRequest>> {
    Ok(c
        .query(
            &format!(
                "SELECT {REQUEST_COLS} FROM quota_requests WHERE account_id = $1 ORDER BY id DESC"
            ),
            &[&account],
        )?
        .iter()
        .map(request_from_row)
        .collect())
}

/// Records the decision on a pending request inside the caller's transaction, the
/// request row locked first (two operators deciding at once on two nodes: the second
/// finds it decided). Returns the account and, for an approval, the limit the caller
/// sets in the same transaction (the quota rule, `rules::set_quota_limit`), so that the
/// new quota holds the moment the decision commits.
pub(crate) fn quota_request_record(
    tx: &mut impl GenericClient,
    id: i64,
    by: &str,
    decision: &Decision,
) -> Result<(AccountId, Option<u64>)> {
    let req = get_request(tx, id, true)?;
    if req.status != RequestStatus::Pending {
        return Err(Error::Refused(format!(
            "quota request #{id} was already {} by {}",
            req.status.as_str(),
            req.decided_by.as_deref().unwrap_or("?")
        )));
    }
    // The account must still exist to be granted anything.
    account_address(tx, req.account_id)?;
    match decision {
        Decision::Approve(size) => {
            tx.execute(
                "UPDATE quota_requests SET status = 'approved', decided_by = $2,
                     decided_at = $3, granted_size = $4 WHERE id = $1",
                &[&id, &by, &now(), &clamp(*size)],
            )?;
            Ok((req.account_id, Some(*size)))
        }
        Decision::Deny(reason) => {
            tx.execute(
                "UPDATE quota_requests SET status = 'denied', decided_by = $2,
                     decided_at = $3, note = $4 WHERE id = $1",
                &[&id, &by, &now(), reason],
            )?;
            Ok((req.account_id, None))
        }
    }
}

/// Today's sample of every account (refreshed if taken already), and the history
/// trimmed to [`USAGE_HISTORY_DAYS`]. `default_quota`: `[quota] default`.
pub(crate) fn usage_sample_all(
    c: &mut impl GenericClient,
    day: i64,
    default_quota: u64,
) -> Result<u64> {
    let mut tx = c.transaction()?;
    let n = tx.execute(
        "INSERT INTO usage_samples (account_id, day, used, lim)
         SELECT id, $1, quota_used,
                CASE WHEN quota_limit IS NULL THEN $2
                     WHEN quota_limit < 0 THEN NULL ELSE quota_limit END
         FROM accounts
         ON CONFLICT (account_id, day) DO UPDATE SET used = excluded.used, lim = excluded.lim",
        &[&day, &clamp(default_quota)],
    )?;
    tx.execute(
        "DELETE FROM usage_samples WHERE day < $1
            OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = usage_samples.account_id)",
        &[&(day - USAGE_HISTORY_DAYS)],
    )?;
    tx.commit()?;
    Ok(n)
}

fn sample_from_row(r: &postgres::Row) -> UsageSample {
    UsageSample {
        day: r.get(0),
        used: r.get::<_, i64>(1).max(0) as u64,
        limit: r.get::<_, Option<i64>>(2).map(|n| n.max(0) as u64),
    }
}

pub(crate) fn usage_samples(
    c: &mut impl GenericClient,
    account: AccountId,
    since_day: i64,
) -> Result<Vec<UsageSample>> {
    Ok(c
        .query(
            "SELECT day, used, lim FROM usage_samples WHERE account_id = $1 AND day >= $2 ORDER BY day",
            &[&account, &since_day],
        )?
        .iter()
        .map(sample_from_row)
        .collect())
}

pub(crate) fn domain_usage_samples(
    c: &mut impl GenericClient,
    domain: &str,
    since_day: i64,
) -> Result<Vec<UsageSample>> {
    let d = domain.trim().to_ascii_lowercase();
    Ok(c
        .query(
            "SELECT s.day, sum(s.used)::BIGINT, sum(s.lim)::BIGINT FROM usage_samples s
             JOIN accounts a ON a.id = s.account_id
             JOIN domains d ON d.id = a.domain_id
             WHERE d.name = $1 AND s.day >= $2 GROUP BY s.day ORDER BY s.day",
            &[&d, &since_day],
        )?
        .iter()
        .map(sample_from_row)
        .collect())
}

pub(crate) fn largest_messages(
    c: &mut impl GenericClient,
    account: AccountId,
    limit: u32,
) -> Result<Vec<LargeMessage>> {
    Ok(c
        .query(
            "SELECT b.id, b.name, m.uid, m.size, m.internal_date
             FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
             WHERE b.account_id = $1 ORDER BY m.size DESC, m.internal_date DESC LIMIT $2",
            &[&account, &i64::from(limit)],
        )?
        .iter()
        .map(|r| LargeMessage {
            mailbox: r.get(0),
            mailbox_name: r.get(1),
            uid: r.get::<_, i64>(2).clamp(0, u32::MAX as i64) as u32,
            size: r.get::<_, i64>(3).max(0) as u64,
            internal_date: r.get(4),
        })
        .collect())
}

pub(crate) fn count_delivery(
    c: &mut impl GenericClient,
    domain: &str,
    day: i64,
    outcome: DeliveryOutcome,
) -> Result<()> {
    let d = domain.trim().to_ascii_lowercase();
    let column = match outcome {
        DeliveryOutcome::Delivered => "delivered",
        DeliveryOutcome::Refused => "refused",
        DeliveryOutcome::Bounced => "bounced",
    };
    // Every delivery to a domain updates this one row, whose lock is held until commit:
    // a commit that waited for its WAL flush made all of a domain's deliveries wait for
    // one fsync each, one after the other (bench/run --targets pg, docs/BENCHMARKS.md).
    // A statistic need not be durable (the message itself is, in its own transaction): this
    // commit does not wait for the flush, and a crash may lose the last fraction of a
    // second of counts.
    let mut tx = c.transaction()?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")?;
    tx.execute(
        &format!(
            "INSERT INTO domain_counts (domain, day, {column}) VALUES ($1, $2, 1)
             ON CONFLICT (domain, day) DO UPDATE SET {column} = domain_counts.{column} + 1"
        ),
        &[&d, &day],
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn domain_counts(
    c: &mut impl GenericClient,
    domain: &str,
    since_day: i64,
) -> Result<Vec<DomainDay>> {
    let d = domain.trim().to_ascii_lowercase();
    Ok(c
        .query(
            "SELECT day, delivered, refused, bounced FROM domain_counts
             WHERE domain = $1 AND day >= $2 ORDER BY day",
            &[&d, &since_day],
        )?
        .iter()
        .map(|r| DomainDay {
            day: r.get(0),
            delivered: r.get::<_, i64>(1).max(0) as u64,
            refused: r.get::<_, i64>(2).max(0) as u64,
            bounced: r.get::<_, i64>(3).max(0) as u64,
        })
        .collect())
}

/// Disables an account (ending its web sessions in the same transaction) or enables it.
pub(crate) fn set_disabled(
    c: &mut impl GenericClient,
    address: &str,
    disabled: bool,
    by: &str,
) -> Result<()> {
    let mut tx = c.transaction()?;
    let id = account_id(&mut tx, address)?;
    if disabled {
        tx.execute(
            "INSERT INTO account_disabled (account_id, since, by_whom) VALUES ($1, $2, $3)
             ON CONFLICT (account_id) DO UPDATE SET since = excluded.since, by_whom = excluded.by_whom",
            &[&id, &now(), &by],
        )?;
        tx.execute("DELETE FROM web_sessions WHERE account_id = $1", &[&id])?;
    } else {
        tx.execute("DELETE FROM account_disabled WHERE account_id = $1", &[&id])?;
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn is_disabled(c: &mut impl GenericClient, account: AccountId) -> Result<bool> {
    Ok(c
        .query_opt(
            "SELECT 1 FROM account_disabled WHERE account_id = $1",
            &[&account],
        )?
        .is_some())
}

pub(crate) fn disabled_accounts(c: &mut impl GenericClient) -> Result<Vec<AccountId>> {
    Ok(c
        .query("SELECT account_id FROM account_disabled ORDER BY account_id", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

//! Moving a store to another backend (`transfer.rs`) on PostgreSQL: the stored forms of
//! secrets (hashes only), save dates (`messages.saved`), expunged UIDs, the maintenance
//! record.

use crate::apppass::Protocols;
use crate::pg::web::account_id;
use crate::transfer::{ApiTokenRecord, AppPasswordRecord};
use crate::*;
use postgres::GenericClient;

pub(crate) fn password_hash(c: &mut impl GenericClient, address: &str) -> Result<String> {
    let a = normalize_address(address);
    Ok(c
        .query_opt("SELECT password_hash FROM accounts WHERE address = $1", &[&a])?
        .ok_or_else(|| Error::NotFound(format!("user {a}")))?
        .get(0))
}

pub(crate) fn app_password_records(
    c: &mut impl GenericClient,
    address: &str,
) -> Result<Vec<AppPasswordRecord>> {
    let id = account_id(c, address)?;
    Ok(c
        .query(
            "SELECT name, selector, hash, protocols, created, last_used FROM app_passwords
             WHERE account_id = $1 ORDER BY name",
            &[&id],
        )?
        .iter()
        .map(|r| AppPasswordRecord {
            name: r.get(0),
            selector: r.get(1),
            hash: r.get(2),
            protocols: Protocols::from_bits(r.get::<_, i64>(3).clamp(0, 255) as u8),
            created: r.get(4),
            last_used: r.get(5),
        })
        .collect())
}

pub(crate) fn restore_app_password(
    c: &mut impl GenericClient,
    address: &str,
    r: &AppPasswordRecord,
) -> Result<()> {
    let id = account_id(c, address)?;
    let n = c.execute(
        "INSERT INTO app_passwords (account_id, name, selector, hash, protocols, created, last_used)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (account_id, name) DO NOTHING",
        &[
            &id,
            &r.name,
            &r.selector,
            &r.hash,
            &i64::from(r.protocols.bits()),
            &r.created,
            &r.last_used,
        ],
    )?;
    if n == 0 {
        return Err(Error::Exists(format!("application password '{}' of {address}", r.name)));
    }
    Ok(())
}

pub(crate) fn api_token_records(c: &mut impl GenericClient) -> Result<Vec<ApiTokenRecord>> {
    Ok(c
        .query(
            "SELECT name, selector, hash, created, last_used FROM api_tokens ORDER BY name",
            &[],
        )?
        .iter()
        .map(|r| ApiTokenRecord {
            name: r.get(0),
            selector: r.get(1),
            hash: r.get(2),
            created: r.get(3),
            last_used: r.get(4),
        })
        .collect())
}

pub(crate) fn restore_api_token(c: &mut impl GenericClient, r: &ApiTokenRecord) -> Result<()> {
    let n = c.execute(
        "INSERT INTO api_tokens (name, selector, hash, created, last_used)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
        &[&r.name, &r.selector, &r.hash, &r.created, &r.last_used],
    )?;
    if n == 0 {
        return Err(Error::Exists(format!("API token '{}'", r.name)));
    }
    Ok(())
}

pub(crate) fn save_dates(c: &mut impl GenericClient, mailbox: MailboxId) -> Result<Vec<(u32, i64)>> {
    Ok(c
        .query(
            "SELECT uid, saved FROM messages WHERE mailbox_id = $1 ORDER BY uid",
            &[&mailbox],
        )?
        .iter()
        .map(|r| (r.get::<_, i64>(0).clamp(0, u32::MAX as i64) as u32, r.get(1)))
        .collect())
}

pub(crate) fn set_save_dates(
    c: &mut impl GenericClient,
    mailbox: MailboxId,
    dates: &[(u32, i64)],
) -> Result<()> {
    let uids: Vec<i64> = dates.iter().map(|d| i64::from(d.0)).collect();
    let saved: Vec<i64> = dates.iter().map(|d| d.1).collect();
    c.execute(
        "UPDATE messages m SET saved = d.saved
         FROM unnest($2::BIGINT[], $3::BIGINT[]) AS d(uid, saved)
         WHERE m.mailbox_id = $1 AND m.uid = d.uid",
        &[&mailbox, &uids, &saved],
    )?;
    Ok(())
}

pub(crate) fn maintenance_last(c: &mut impl GenericClient, task: &str) -> Result<Option<i64>> {
    Ok(c
        .query_opt("SELECT at FROM maintenance_runs WHERE task = $1", &[&task])?
        .map(|r| r.get(0)))
}

pub(crate) fn expunged_uids(c: &mut impl GenericClient, mailbox: MailboxId) -> Result<Vec<(u32, u64)>> {
    Ok(c
        .query(
            "SELECT uid, modseq FROM expunged WHERE mailbox_id = $1 ORDER BY uid",
            &[&mailbox],
        )?
        .iter()
        .map(|r| {
            (
                r.get::<_, i64>(0).clamp(0, u32::MAX as i64) as u32,
                r.get::<_, i64>(1).max(0) as u64,
            )
        })
        .collect())
}

pub(crate) fn import_expunged(
    c: &mut impl GenericClient,
    mailbox: MailboxId,
    uids: &[(u32, u64)],
) -> Result<()> {
    let u: Vec<i64> = uids.iter().map(|d| i64::from(d.0)).collect();
    let m: Vec<i64> = uids.iter().map(|d| i64::try_from(d.1).unwrap_or(i64::MAX)).collect();
    c.execute(
        "INSERT INTO expunged (mailbox_id, uid, modseq)
         SELECT $1, d.uid, d.modseq FROM unnest($2::BIGINT[], $3::BIGINT[]) AS d(uid, modseq)
         WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailbox_id = $1 AND m.uid = d.uid)
         ON CONFLICT (mailbox_id, uid) DO NOTHING",
        &[&mailbox, &u, &m],
    )?;
    Ok(())
}

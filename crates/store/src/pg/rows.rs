//! Row mapping and the small queries every part of the PostgreSQL backend shares.

use crate::*;
use r2d2_postgres::postgres::{GenericClient, Row};

pub(crate) const ACCOUNT_COLS: &str = "id, address, quota_limit, quota_used, pop3_retention";
pub(crate) const MAILBOX_COLS: &str =
    "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use";
pub(crate) const MESSAGE_COLS: &str =
    "uid, modseq, flags, keywords, internal_date, size, blob, length(prefix)";

pub(crate) fn account_from_row(r: &Row, opts: &StoreOptions) -> Account {
    account_from_row_at(r, opts, 0)
}

/// The [`ACCOUNT_COLS`] of a row that has them from column `at` on.
pub(crate) fn account_from_row_at(r: &Row, opts: &StoreOptions, at: usize) -> Account {
    let limit: Option<i64> = r.get(at + 2);
    let quota_limit = match limit {
        None => QuotaLimit::Default,
        Some(n) if n < 0 => QuotaLimit::Unlimited,
        Some(n) => QuotaLimit::Bytes(n as u64),
    };
    let effective_limit = match quota_limit {
        QuotaLimit::Default => Some(opts.default_quota),
        QuotaLimit::Bytes(n) => Some(n),
        QuotaLimit::Unlimited => None,
    };
    let retention: Option<String> = r.get(at + 4);
    let pop3_retention = retention.and_then(|s| s.parse().ok());
    Account {
        id: r.get(at),
        address: r.get(at + 1),
        quota_limit,
        effective_limit,
        quota_used: r.get::<_, i64>(at + 3).max(0) as u64,
        pop3_retention,
        effective_retention: pop3_retention.unwrap_or(opts.default_retention),
    }
}

pub(crate) fn quota_to_sql(q: QuotaLimit) -> Option<i64> {
    match q {
        QuotaLimit::Default => None,
        QuotaLimit::Bytes(n) => Some(n.min(i64::MAX as u64) as i64),
        QuotaLimit::Unlimited => Some(-1),
    }
}

pub(crate) fn mailbox_from_row(r: &Row) -> Mailbox {
    let special: Option<String> = r.get(6);
    Mailbox {
        id: r.get(0),
        account_id: r.get(1),
        name: r.get(2),
        uidvalidity: r.get::<_, i64>(3) as u32,
        uidnext: r.get::<_, i64>(4).clamp(0, u32::MAX as i64) as u32,
        highestmodseq: r.get::<_, i64>(5) as u64,
        special_use: special.as_deref().and_then(SpecialUse::parse),
    }
}

pub(crate) fn meta_from_row(r: &Row) -> MessageMeta {
    let kw: String = r.get(3);
    let blob: Vec<u8> = r.get(6);
    let mut id = [0u8; 32];
    if blob.len() == 32 {
        id.copy_from_slice(&blob);
    }
    MessageMeta {
        uid: r.get::<_, i64>(0) as u32,
        modseq: r.get::<_, i64>(1) as u64,
        flags: Flags(r.get::<_, i32>(2) as u8),
        keywords: kw.split(' ').filter(|k| !k.is_empty()).map(String::from).collect(),
        internal_date: r.get(4),
        size: r.get::<_, i64>(5).max(0) as u64,
        blob: BlobId(id),
        prefix_len: r.get::<_, i32>(7).max(0) as u32,
        recent: false,
    }
}

pub(crate) fn account_by_address(
    c: &mut impl GenericClient,
    address: &str,
    opts: &StoreOptions,
) -> Result<Account> {
    let a = normalize_address(address);
    let r = c
        .query_opt(
            &format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE address = $1"),
            &[&a],
        )?
        .ok_or_else(|| Error::NotFound(format!("user {a}")))?;
    Ok(account_from_row(&r, opts))
}

pub(crate) fn account_by_id(
    c: &mut impl GenericClient,
    id: AccountId,
    opts: &StoreOptions,
) -> Result<Account> {
    let r = c
        .query_opt(
            &format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1"),
            &[&id],
        )?
        .ok_or_else(|| Error::NotFound(format!("account #{id}")))?;
    Ok(account_from_row(&r, opts))
}

pub(crate) fn mailbox_by_id(c: &mut impl GenericClient, id: MailboxId) -> Result<Mailbox> {
    let r = c
        .query_opt(
            &format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = $1"),
            &[&id],
        )?
        .ok_or_else(|| Error::NotFound(format!("mailbox #{id}")))?;
    Ok(mailbox_from_row(&r))
}

pub(crate) fn mailbox_named(
    c: &mut impl GenericClient,
    account: AccountId,
    name: &str,
) -> Result<Mailbox> {
    let name = normalize_mailbox_name(name)?;
    let r = c
        .query_opt(
            &format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 AND name = $2"),
            &[&account, &name],
        )?
        .ok_or_else(|| Error::NotFound(format!("mailbox {name}")))?;
    Ok(mailbox_from_row(&r))
}

/// A new UIDVALIDITY: above every one given before (a counter in `meta`), and at least
/// the current time, as the embedded store does.
fn next_uidvalidity(c: &mut impl GenericClient) -> Result<u32> {
    let next = (now()).min(u32::MAX as i64);
    let v: i64 = c
        .query_one(
            "INSERT INTO meta (key, value) VALUES ('uidvalidity', $1)
             ON CONFLICT (key) DO UPDATE
                 SET value = LEAST(GREATEST(meta.value + 1, EXCLUDED.value), 4294967295)
             RETURNING value",
            &[&next],
        )?
        .get(0);
    Ok(v as u32)
}

/// Inserts a mailbox (name already validated); the change to publish after commit.
pub(crate) fn insert_mailbox(
    c: &mut impl GenericClient,
    account: AccountId,
    name: &str,
    special: Option<SpecialUse>,
) -> Result<(Mailbox, Change)> {
    let uidvalidity = i64::from(next_uidvalidity(c)?);
    let r = c
        .query_opt(
            &format!(
                "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, name) DO NOTHING
                 RETURNING {MAILBOX_COLS}"
            ),
            &[&account, &name, &uidvalidity, &special.map(|s| s.as_str())],
        )?
        .ok_or_else(|| Error::Exists(format!("mailbox {name}")))?;
    let mb = mailbox_from_row(&r);
    let change = Change {
        account,
        mailbox: mb.id,
        modseq: mb.highestmodseq,
        kind: ChangeKind::MailboxCreated {
            name: name.to_string(),
        },
    };
    Ok((mb, change))
}

/// CREATE: validates the name, refuses one that exists.
pub(crate) fn create_mailbox(
    c: &mut impl GenericClient,
    account: AccountId,
    name: &str,
    special: Option<SpecialUse>,
) -> Result<(Mailbox, Change)> {
    let name = validate_new_mailbox_name(name)?;
    insert_mailbox(c, account, &name, special)
}

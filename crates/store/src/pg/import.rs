//! The bookkeeping of imports with identities kept (issue 16) on PostgreSQL (issue 17):
//! runs begun and finished, the keys already imported and the POP3 UIDLs kept, with the
//! meaning of the embedded store's (`import.rs`).

use crate::*;
use postgres::GenericClient;

/// [`Backend::import_begin`]. The account row is locked, so that two imports started at
/// once into one account see each other's run.
pub(crate) fn begin(
    c: &mut impl GenericClient,
    account: AccountId,
    source: &str,
    merge: bool,
) -> Result<ImportStart> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", &[&account])?;
    let unfinished = tx
        .query_opt(
            "SELECT 1 FROM import_runs WHERE account_id = $1 AND source = $2 AND finished IS NULL",
            &[&account, &source],
        )?
        .is_some();
    let has_mail = tx
        .query_opt(
            "SELECT 1 FROM messages WHERE mailbox_id IN
               (SELECT id FROM mailboxes WHERE account_id = $1) LIMIT 1",
            &[&account],
        )?
        .is_some();
    let start = if unfinished {
        ImportStart::Resumed
    } else if !has_mail {
        ImportStart::Fresh
    } else if merge {
        ImportStart::Merge
    } else {
        return Err(Error::Refused(
            "the account already has mail; use --merge to import into it anyway".into(),
        ));
    };
    tx.execute(
        "INSERT INTO import_runs (account_id, source, finished) VALUES ($1, $2, NULL)
         ON CONFLICT (account_id, source) DO UPDATE SET finished = NULL",
        &[&account, &source],
    )?;
    tx.commit()?;
    Ok(start)
}

pub(crate) fn finish(c: &mut impl GenericClient, account: AccountId, source: &str) -> Result<()> {
    c.execute(
        "UPDATE import_runs SET finished = $3 WHERE account_id = $1 AND source = $2",
        &[&account, &source, &now()],
    )?;
    Ok(())
}

/// Records an imported message's key and POP3 UIDL, in the transaction that stores it;
/// `false` when the key was imported already (the caller then stores nothing).
pub(crate) fn record(
    c: &mut impl GenericClient,
    account: AccountId,
    key: &str,
) -> Result<bool> {
    Ok(c.execute(
        "INSERT INTO imported (account_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&account, &key],
    )? > 0)
}

pub(crate) fn record_uidl(
    c: &mut impl GenericClient,
    mailbox: MailboxId,
    uid: u32,
    uidl: &str,
) -> Result<()> {
    c.execute(
        "INSERT INTO pop3_uidl (mailbox_id, uid, uidl) VALUES ($1, $2, $3)
         ON CONFLICT (mailbox_id, uid) DO UPDATE SET uidl = excluded.uidl",
        &[&mailbox, &i64::from(uid), &uidl],
    )?;
    Ok(())
}

pub(crate) fn pop3_uidls(c: &mut impl GenericClient, mailbox: MailboxId) -> Result<Vec<(u32, String)>> {
    Ok(c
        .query(
            "SELECT p.uid, p.uidl FROM pop3_uidl p
             JOIN messages m ON m.mailbox_id = p.mailbox_id AND m.uid = p.uid
             WHERE p.mailbox_id = $1 ORDER BY p.uid",
            &[&mailbox],
        )?
        .iter()
        .map(|r| (r.get::<_, i64>(0).clamp(0, u32::MAX as i64) as u32, r.get(1)))
        .collect())
}

pub(crate) fn imported_keys(
    c: &mut impl GenericClient,
    account: AccountId,
    prefix: &str,
) -> Result<Vec<String>> {
    // starts_with rather than LIKE, whose wildcards a key may hold.
    Ok(c
        .query(
            "SELECT key FROM imported WHERE account_id = $1 AND starts_with(key, $2) ORDER BY key",
            &[&account, &prefix],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

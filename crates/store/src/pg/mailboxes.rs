//! RENAME on PostgreSQL (RFC 9051 6.3.6): the mailbox and its children, or INBOX's
//! messages into a new mailbox.

use super::messages::all_uids;
use super::rows;
use super::tx::PgTx;
use crate::rules::StoreTx;
use crate::*;

pub(crate) fn rename(t: &mut PgTx, account: AccountId, from: &str, to: &str) -> Result<()> {
    t.lock_account(account)?;
    let prefix = format!("{from}/");
    let src = match rows::mailbox_named(&mut *t.tx, account, from) {
        Err(Error::NotFound(e)) => {
            // No mailbox of that name, but mailboxes below it: those are renamed.
            let children: i64 = t
                .tx
                .query_one(
                    "SELECT count(*) FROM mailboxes WHERE account_id = $1 AND starts_with(name, $2)",
                    &[&account, &prefix],
                )?
                .get(0);
            if children == 0 || from == "INBOX" {
                return Err(Error::NotFound(e));
            }
            None
        }
        other => Some(other?),
    };
    if rows::mailbox_named(&mut *t.tx, account, to).is_ok() {
        return Err(Error::Exists(format!("mailbox {to}")));
    }
    if to.starts_with(&prefix) {
        return Err(Error::Invalid("cannot rename a mailbox into itself".into()));
    }
    if let (Some(src), "INBOX") = (&src, from) {
        let dst = t.create_mailbox(account, to)?;
        let uids = all_uids(&mut *t.tx, src.id)?;
        crate::rules::copy(t, src, &uids, &dst, false)?;
        crate::rules::expunge(t, src, &uids)?;
        return Ok(());
    }
    let moved = t.tx.query(
        "SELECT id, name FROM mailboxes WHERE account_id = $1 AND (name = $2 OR starts_with(name, $3))
         ORDER BY name FOR UPDATE",
        &[&account, &from, &prefix],
    )?;
    for r in moved {
        let (id, old): (i64, String) = (r.get(0), r.get(1));
        let new = format!("{to}{}", &old[from.len()..]);
        t.tx.execute("UPDATE mailboxes SET name = $2 WHERE id = $1", &[&id, &new])?;
        t.changes.push(Change {
            account,
            mailbox: id,
            modseq: 0,
            kind: ChangeKind::MailboxRenamed { from: old, to: new },
        });
    }
    // Subscriptions follow; one already there under the new name is kept.
    t.tx.execute(
        "UPDATE subscriptions s SET name = $3 || substr(s.name, length($2) + 1)
         WHERE s.account_id = $1 AND (s.name = $2 OR starts_with(s.name, $4))
           AND NOT EXISTS (SELECT 1 FROM subscriptions o WHERE o.account_id = $1
                           AND o.name = $3 || substr(s.name, length($2) + 1))",
        &[&account, &from, &to, &prefix],
    )?;
    Ok(())
}

//! STATUS (RFC 9051 6.3.11): MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE (RFC 8438
//! STATUS=SIZE for IMAP4rev1), RECENT (IMAP4rev1), HIGHESTMODSEQ (RFC 7162),
//! DELETED-STORAGE (RFC 9208 4.2: what an EXPUNGE would free, in units of 1024 octets
//! like the STORAGE resource, rounded up), APPENDLIMIT (RFC 7889: the same limit for
//! every mailbox) and MAILBOXID (RFC 8474).
//!
//! A mailbox some session has opened is counted from the shared index
//! (`crate::session::index`, issue 18), without a scan of its messages.

use crate::parser::{MailboxArg, StatusItem};
use crate::session::index::{self, Indexes};
use crate::session::{store_error, Fatal, Reply, Session};
use letterbox_store::{Backend, Mailbox, MailboxCounts};

/// `(MESSAGES 3 UIDNEXT 4 ...)` for a mailbox.
pub fn status_list(
    mb: &Mailbox,
    c: &MailboxCounts,
    items: &[StatusItem],
    append_limit: u64,
) -> String {
    let mut parts = Vec::new();
    for it in items {
        parts.push(match it {
            StatusItem::Messages => format!("MESSAGES {}", c.messages),
            StatusItem::UidNext => format!("UIDNEXT {}", mb.uidnext),
            StatusItem::UidValidity => format!("UIDVALIDITY {}", mb.uidvalidity),
            StatusItem::Unseen => format!("UNSEEN {}", c.unseen),
            StatusItem::Recent => format!("RECENT {}", c.recent),
            StatusItem::Size => format!("SIZE {}", c.size),
            StatusItem::Deleted => format!("DELETED {}", c.deleted),
            StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", mb.highestmodseq),
            StatusItem::MailboxId => format!(
                "MAILBOXID ({})",
                crate::objectid::mailbox_id(mb.id, mb.uidvalidity)
            ),
            StatusItem::DeletedStorage => {
                format!("DELETED-STORAGE {}", c.deleted_size.div_ceil(1024))
            }
            StatusItem::AppendLimit => format!("APPENDLIMIT {append_limit}"),
        });
    }
    format!("({})", parts.join(" "))
}

/// The mailbox and its counts: from the shared index when the mailbox has one (brought
/// up to date, `session::index`), else counted by the store. A STATUS alone does not
/// load an index (LIST-STATUS over a hundred folders would load them all).
pub fn lookup(
    st: &dyn Backend,
    indexes: &Indexes,
    account: i64,
    name: &str,
) -> letterbox_store::Result<(Mailbox, MailboxCounts)> {
    let mb = st.mailbox(account, name)?;
    if let Some(base) = indexes.get(mb.id).filter(|b| b.uidvalidity == mb.uidvalidity) {
        let snap = index::current(st, &mb, Some(base))?;
        // The first UID no session has claimed as \Recent.
        let (first_recent, _) = st.claim_recent(mb.id, false)?;
        let c = snap.counts(first_recent);
        indexes.put(&snap);
        return Ok((mb, c));
    }
    let c = st.mailbox_counts(mb.id)?;
    Ok((mb, c))
}

pub async fn run(s: &mut Session, arg: &MailboxArg, items: &[StatusItem]) -> Result<Reply, Fatal> {
    let (account, name) = match crate::alias::target(s, arg).await {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    // An alias is answered under the name the client asked for, which it matches on.
    let shown = s
        .mailbox_name(arg)
        .ok()
        .filter(|asked| crate::alias::split(s, asked).is_some());
    // RFC 7162 3.1: STATUS (HIGHESTMODSEQ) is a CONDSTORE-enabling command.
    if items.contains(&StatusItem::HighestModSeq) {
        s.enable_condstore(true);
    }
    let indexes = s.indexes.clone();
    let r = s
        .ctx
        .store
        .run(move |st| lookup(st, &indexes, account, &name))
        .await;
    match r {
        Ok((mb, c)) => {
            let mut out = b"* STATUS ".to_vec();
            s.write_mailbox(&mut out, shown.as_deref().unwrap_or(&mb.name));
            out.push(b' ');
            out.extend_from_slice(status_list(&mb, &c, items, s.append_limit()).as_bytes());
            out.extend_from_slice(b"\r\n");
            s.conn.push(&out);
            Ok(Reply::ok("STATUS completed"))
        }
        Err(e) => Ok(store_error(&e)),
    }
}

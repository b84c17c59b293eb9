//! STATUS (RFC 9051 6.3.11): MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE, RECENT
//! (IMAP4rev1) and HIGHESTMODSEQ (RFC 7162).

use crate::parser::{MailboxArg, StatusItem};
use crate::session::{store_error, Fatal, Reply, Session};
use letterbox_store::{Backend, Mailbox, MailboxCounts};

/// `(MESSAGES 3 UIDNEXT 4 ...)` for a mailbox.
pub fn status_list(mb: &Mailbox, c: &MailboxCounts, items: &[StatusItem]) -> String {
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
        });
    }
    format!("({})", parts.join(" "))
}

pub fn lookup(
    st: &dyn Backend,
    account: i64,
    name: &str,
) -> letterbox_store::Result<(Mailbox, MailboxCounts)> {
    let mb = st.mailbox(account, name)?;
    let c = st.mailbox_counts(mb.id)?;
    Ok((mb, c))
}

pub async fn run(s: &mut Session, arg: &MailboxArg, items: &[StatusItem]) -> Result<Reply, Fatal> {
    let (account, name) = match s.account_mailbox(arg) {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    // RFC 7162 3.1: STATUS (HIGHESTMODSEQ) is a CONDSTORE-enabling command.
    if items.contains(&StatusItem::HighestModSeq) {
        s.enable_condstore(true);
    }
    let r = s.ctx.store.run(move |st| lookup(st, account, &name)).await;
    match r {
        Ok((mb, c)) => {
            let mut out = b"* STATUS ".to_vec();
            s.write_mailbox(&mut out, &mb.name);
            out.push(b' ');
            out.extend_from_slice(status_list(&mb, &c, items).as_bytes());
            out.extend_from_slice(b"\r\n");
            s.conn.push(&out);
            Ok(Reply::ok("STATUS completed"))
        }
        Err(e) => Ok(store_error(&e)),
    }
}

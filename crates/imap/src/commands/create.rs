//! CREATE (RFC 9051 6.3.4). Superior names are created as needed (by the store); a
//! trailing delimiter is dropped. The answer carries `[MAILBOXID (...)]` (RFC 8474).

use crate::parser::MailboxArg;
use crate::session::{store_error, Fatal, Reply, Session};

pub async fn run(s: &mut Session, arg: &MailboxArg) -> Result<Reply, Fatal> {
    let (account, name) = match s.account_mailbox(arg) {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    if name == "INBOX" {
        return Ok(Reply::no("INBOX always exists").code("ALREADYEXISTS"));
    }
    if name.contains(['*', '%']) {
        // RFC 9051 5.1: names with list wildcards cannot be listed reliably.
        return Ok(Reply::no("Mailbox names cannot contain * or %").code("CANNOT"));
    }
    match s
        .ctx
        .store
        .run(move |st| st.create_mailbox(account, &name, None))
        .await
    {
        // RFC 8474 4.1: the new mailbox's MAILBOXID.
        Ok(mb) => Ok(Reply::ok("CREATE completed").code(format!(
            "MAILBOXID ({})",
            crate::objectid::mailbox_id(mb.id, mb.uidvalidity)
        ))),
        Err(e) => Ok(store_error(&e)),
    }
}

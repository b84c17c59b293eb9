//! DELETE (RFC 9051 6.3.5). The mailbox and its messages go; its children stay (their
//! parent then lists as `\NonExistent`/`\Noselect`). INBOX cannot be deleted.

use crate::parser::MailboxArg;
use crate::session::{store_error, Fatal, Reply, Session};

pub async fn run(s: &mut Session, arg: &MailboxArg) -> Result<Reply, Fatal> {
    // A name below an alias is below its folder; the alias itself is never deleted.
    let (account, name) = match crate::alias::target_scoped(s, arg, false).await {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    if name == "INBOX" {
        return Ok(Reply::no("INBOX cannot be deleted").code("CANNOT"));
    }
    // Deleting the selected mailbox deselects it first (as Dovecot does).
    if s.selected().is_some_and(|sel| sel.name == name) {
        s.deselect();
    }
    match s
        .ctx
        .store
        .run(move |st| st.delete_mailbox(account, &name))
        .await
    {
        Ok(()) => Ok(Reply::ok("DELETE completed")),
        Err(e) => Ok(store_error(&e)),
    }
}

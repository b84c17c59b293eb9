//! RENAME (RFC 9051 6.3.6): the mailbox and its whole hierarchy; renaming INBOX moves
//! its messages to the new mailbox and leaves INBOX empty (the store implements both).

use crate::parser::MailboxArg;
use crate::session::{store_error, Fatal, Reply, Session};

pub async fn run(s: &mut Session, from: &MailboxArg, to: &MailboxArg) -> Result<Reply, Fatal> {
    // Names below an alias are below its folder; an alias itself is taken literally.
    let (from, to) = match (
        crate::alias::target_scoped(s, from, false).await,
        crate::alias::target_scoped(s, to, false).await,
    ) {
        (Ok((_, f)), Ok((_, t))) => (f, t),
        (Err(r), _) | (_, Err(r)) => return Ok(r),
    };
    let Some(account) = s.account_id() else {
        return Ok(Reply::bad("Log in first"));
    };
    if to == "INBOX" {
        return Ok(Reply::no("INBOX already exists").code("ALREADYEXISTS"));
    }
    if to.contains(['*', '%']) {
        return Ok(Reply::no("Mailbox names cannot contain * or %").code("CANNOT"));
    }
    let r = s
        .ctx
        .store
        .run(move |st| st.rename_mailbox(account, &from, &to))
        .await;
    match r {
        Ok(()) => {
            // The view follows its mailbox by id; keep the name it is known by in step.
            if let Some(sel) = s.selected_mut() {
                let id = sel.id;
                if let Ok(mb) = s.ctx.store.run(move |st| st.mailbox_by_id(id)).await {
                    if let Some(sel) = s.selected_mut() {
                        sel.name = mb.name;
                    }
                }
            }
            Ok(Reply::ok("RENAME completed"))
        }
        Err(e) => Ok(store_error(&e)),
    }
}

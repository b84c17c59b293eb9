//! SUBSCRIBE and UNSUBSCRIBE (RFC 9051 6.3.7, 6.3.8). A name may be subscribed whether
//! or not the mailbox exists (RFC 9051 allows either; Dovecot allows it).

use crate::parser::MailboxArg;
use crate::session::{store_error, Fatal, Reply, Session};

pub async fn run(s: &mut Session, arg: &MailboxArg, subscribe: bool) -> Result<Reply, Fatal> {
    let (account, name) = match crate::alias::target(s, arg).await {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let r = s
        .ctx
        .store
        .run(move |st| {
            if subscribe {
                st.subscribe(account, &name)
            } else {
                st.unsubscribe(account, &name)
            }
        })
        .await;
    match r {
        Ok(()) if subscribe => Ok(Reply::ok("SUBSCRIBE completed")),
        Ok(()) => Ok(Reply::ok("UNSUBSCRIBE completed")),
        Err(letterbox_store::Error::NotFound(_)) => {
            Ok(Reply::no("Not subscribed").code("NONEXISTENT"))
        }
        Err(e) => Ok(store_error(&e)),
    }
}

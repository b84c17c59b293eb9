//! APPEND (RFC 9051 6.3.12) with flags, internal date, LITERAL+ and literal8, answering
//! `[APPENDUID uidvalidity uid]` (RFC 4315). A missing mailbox gets `NO [TRYCREATE]`, a
//! full account `NO [OVERQUOTA]` (nothing stored in either case).
//!
//! The message arrives whole (the connection layer read the literal, bounded by
//! `imap.max_literal_size`); a client that vanishes mid-literal never reaches here.

use crate::parser::{Flag, MailboxArg};
use crate::session::{store_error, Fatal, Reply, Session, SyncMode};
use letterbox_store::{Flags, NewMessage};
use std::sync::Arc;

/// Splits a flag list into system flags and keywords; `\Recent` and unknown `\X` flags
/// are refused.
pub fn split_flags(flags: &[Flag]) -> Result<(Flags, Vec<String>), Reply> {
    let mut f = Flags::default();
    let mut kw = Vec::new();
    for fl in flags {
        match fl {
            Flag::System(s) => f = f.union(*s),
            Flag::Keyword(k) => {
                if !kw.iter().any(|x: &String| x.eq_ignore_ascii_case(k)) {
                    kw.push(k.clone());
                }
            }
            Flag::Extension(e) if e.eq_ignore_ascii_case("\\Recent") => {
                return Err(Reply::bad("\\Recent cannot be set"))
            }
            Flag::Extension(e) => return Err(Reply::bad(format!("Unknown flag {e}"))),
        }
    }
    Ok((f, kw))
}

pub async fn run(
    s: &mut Session,
    arg: &MailboxArg,
    flags: &[Flag],
    date: Option<i64>,
    message: Vec<u8>,
) -> Result<Reply, Fatal> {
    let (account, name) = match s.account_mailbox(arg) {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let (flags, keywords) = match split_flags(flags) {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    if message.is_empty() {
        return Ok(Reply::no("Empty message").code("CANNOT"));
    }
    let msg = NewMessage {
        prefix: Vec::new(),
        body: Arc::new(message),
        flags,
        keywords,
        internal_date: date.unwrap_or_else(letterbox_store::now),
    };
    let r = s
        .ctx
        .store
        .run(move |st| {
            let mb = st.mailbox(account, &name)?;
            st.append(mb.id, msg, true)
        })
        .await;
    match r {
        Ok(a) => {
            if s.selected().is_some_and(|sel| sel.id == a.mailbox) {
                s.sync(SyncMode::Full).await?;
            }
            Ok(
                Reply::ok("APPEND completed")
                    .code(format!("APPENDUID {} {}", a.uidvalidity, a.uid)),
            )
        }
        Err(letterbox_store::Error::NotFound(_)) => {
            Ok(Reply::no("No such mailbox").code("TRYCREATE"))
        }
        Err(e) => Ok(store_error(&e)),
    }
}

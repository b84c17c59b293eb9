//! APPEND (RFC 9051 6.3.12) with flags, internal date, LITERAL+ and literal8, answering
//! `[APPENDUID uidvalidity uid]` (RFC 4315). A missing mailbox gets `NO [TRYCREATE]`, a
//! full account `NO [OVERQUOTA]` (nothing stored in either case). MULTIAPPEND
//! (RFC 3502): several messages in one command are stored all or none (quota counts
//! them together), answering `[APPENDUID uidvalidity uid-set]`.
//!
//! The message arrives whole (the connection layer read the literal, bounded by
//! `imap.max_literal_size`, the APPENDLIMIT of RFC 7889, and by the server-wide
//! `[limits] max_buffered_content`); a client that vanishes mid-literal never reaches
//! here. A zero-length message refuses the whole command (RFC 3502 lets a client cancel
//! a MULTIAPPEND that way).
//!
//! A message sent as a literal8 (`~{n}`, RFC 3516 4.4) has its binary parts stored in
//! base64, as Dovecot does ([`super::append_binary`]): a plain `BODY[]` literal cannot
//! carry their NULs, and `BINARY[...]` decodes them back to the octets sent.

use crate::parser::{AppendMessage, Flag, MailboxArg};
use crate::response::sequence_set;
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
    binary: bool,
) -> Result<Reply, Fatal> {
    let one = AppendMessage {
        flags: flags.to_vec(),
        date,
        message,
        binary,
    };
    run_many(s, arg, vec![one]).await
}

/// APPEND of one message or more (MULTIAPPEND): every message into one mailbox in one
/// transaction; the APPENDUID's UID set is a single UID for one message.
pub async fn run_many(
    s: &mut Session,
    arg: &MailboxArg,
    messages: Vec<AppendMessage>,
) -> Result<Reply, Fatal> {
    let (account, name) = match crate::alias::target(s, arg).await {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let mut msgs = Vec::with_capacity(messages.len());
    for m in messages {
        let (flags, keywords) = match split_flags(&m.flags) {
            Ok(v) => v,
            Err(r) => return Ok(r),
        };
        if m.message.is_empty() {
            return Ok(Reply::no("Empty message").code("CANNOT"));
        }
        let body = if m.binary {
            super::append_binary::to_base64(&m.message).unwrap_or(m.message)
        } else {
            m.message
        };
        msgs.push(NewMessage {
            prefix: Vec::new(),
            body: Arc::new(body),
            flags,
            keywords,
            internal_date: m.date.unwrap_or_else(letterbox_store::now),
        });
    }
    let r = s
        .ctx
        .store
        .run(move |st| {
            let mb = st.mailbox(account, &name)?;
            st.append_many(mb.id, msgs, true)
        })
        .await;
    match r {
        Ok(done) => {
            let Some(first) = done.first().copied() else {
                return Ok(Reply::ok("APPEND completed"));
            };
            if s.selected().is_some_and(|sel| sel.id == first.mailbox) {
                s.sync(SyncMode::Full).await?;
            }
            let uids: Vec<u32> = done.iter().map(|a| a.uid).collect();
            Ok(Reply::ok("APPEND completed").code(format!(
                "APPENDUID {} {}",
                first.uidvalidity,
                sequence_set(&uids)
            )))
        }
        Err(letterbox_store::Error::NotFound(_)) => {
            Ok(Reply::no("No such mailbox").code("TRYCREATE"))
        }
        Err(e) => Ok(store_error(&e)),
    }
}

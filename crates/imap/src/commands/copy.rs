//! COPY, MOVE (RFC 6851) and their UID forms, answering `[COPYUID uidvalidity src dst]`
//! (RFC 4315). A missing destination gets `NO [TRYCREATE]`; COPY over quota
//! `NO [OVERQUOTA]`; MOVE is never refused for quota (the store's rule). MOVE sends the
//! COPYUID as an untagged `OK`, then the EXPUNGEs of the moved messages.

use crate::parser::{MailboxArg, SequenceSet};
use crate::response::sequence_set;
use crate::session::{store_error, Fatal, Reply, Session, SyncMode};

pub async fn run(
    s: &mut Session,
    uid: bool,
    set: &SequenceSet,
    arg: &MailboxArg,
    is_move: bool,
) -> Result<Reply, Fatal> {
    let (account, name) = match crate::alias::target(s, arg).await {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let Some(sel) = s.selected() else {
        return Ok(Reply::bad("No mailbox selected"));
    };
    if is_move && sel.read_only {
        return Ok(Reply::no("Mailbox is read-only").code("READ-ONLY"));
    }
    let indices = match sel.resolve(set, uid) {
        Ok(v) => v,
        Err(_) => return Ok(Reply::bad("Invalid message sequence number")),
    };
    let uids: Vec<u32> = indices
        .iter()
        .filter(|&&i| !sel.msgs[i].expunged)
        .map(|&i| sel.msgs[i].uid)
        .collect();
    let src = sel.id;
    let r = s
        .ctx
        .store
        .run(move |st| {
            let dst = st.mailbox(account, &name)?;
            let pairs = if is_move {
                st.move_messages(src, &uids, dst.id)?
            } else {
                st.copy(src, &uids, dst.id)?
            };
            Ok((dst, pairs))
        })
        .await;
    let (dst, mut pairs) = match r {
        Ok(v) => v,
        Err(letterbox_store::Error::NotFound(_)) => {
            return Ok(Reply::no("No such mailbox").code("TRYCREATE"))
        }
        Err(e) => return Ok(store_error(&e)),
    };
    pairs.sort_unstable();
    // Junk learning (issue 13), in the background: the reply does not wait for rspamd.
    letterbox_filter::rspamd::learn_moved(&s.ctx.store, &s.ctx.config, src, &dst, &pairs);
    let code = (!pairs.is_empty()).then(|| {
        let src: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let dst_uids: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        format!(
            "COPYUID {} {} {}",
            dst.uidvalidity,
            sequence_set(&src),
            sequence_set(&dst_uids)
        )
    });
    if is_move {
        if let Some(code) = &code {
            s.conn.push(format!("* OK [{code}] Moved\r\n").as_bytes());
        }
        s.sync(SyncMode::Full).await?;
        return Ok(Reply::ok("MOVE completed"));
    }
    if s.selected().is_some_and(|sel| sel.id == dst.id) {
        s.sync(SyncMode::Full).await?;
    }
    let reply = Reply::ok("COPY completed");
    Ok(match code {
        Some(c) => reply.code(c),
        None => reply,
    })
}

//! STORE and UID STORE (RFC 9051 6.4.6): `FLAGS`, `+FLAGS`, `-FLAGS`, with `.SILENT`.
//! Each changed message is answered `* n FETCH (FLAGS (...))` (with `UID` for UID STORE)
//! unless silent; the view takes the new flags so the next sync does not repeat them.

use super::append::split_flags;
use crate::parser::{Flag, SequenceSet, StoreOp};
use crate::session::{store_error, Fatal, Reply, Session};
use letterbox_store::FlagOp;

pub async fn run(
    s: &mut Session,
    uid: bool,
    set: &SequenceSet,
    op: StoreOp,
    silent: bool,
    flags: &[Flag],
) -> Result<Reply, Fatal> {
    let (flags, keywords) = match split_flags(flags) {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    let rev1 = s.rev1();
    let Some(sel) = s.selected() else {
        return Ok(Reply::bad("No mailbox selected"));
    };
    if sel.read_only {
        return Ok(Reply::no("Mailbox is read-only").code("READ-ONLY"));
    }
    let indices = match sel.resolve(set, uid) {
        Ok(v) => v,
        Err(_) => return Ok(Reply::bad("Invalid message sequence number")),
    };
    let mut expunged = false;
    let uids: Vec<u32> = indices
        .iter()
        .filter(|&&i| {
            expunged |= sel.msgs[i].expunged;
            !sel.msgs[i].expunged
        })
        .map(|&i| sel.msgs[i].uid)
        .collect();
    let id = sel.id;
    let op = match op {
        StoreOp::Add => FlagOp::Add,
        StoreOp::Remove => FlagOp::Remove,
        StoreOp::Replace => FlagOp::Replace,
    };
    let r = s
        .ctx
        .store
        .run(move |st| st.store_flags(id, &uids, op, flags, &keywords, None))
        .await;
    let result = match r {
        Ok(r) => r,
        Err(e) => return Ok(store_error(&e)),
    };
    let Some(sel) = s.selected_mut() else {
        return Ok(Reply::bad("No mailbox selected"));
    };
    let mut out = Vec::new();
    let touched: Vec<usize> = result
        .updated
        .iter()
        .filter_map(|u| sel.index_of_uid(u.uid))
        .collect();
    for u in &result.updated {
        if let Some(i) = sel.index_of_uid(u.uid) {
            sel.set_flags(i, u.flags, &u.keywords);
        }
    }
    sel.announce_keywords(&touched, &mut out);
    for u in result.updated {
        let Some(i) = sel.index_of_uid(u.uid) else {
            continue;
        };
        if !silent {
            sel.write_flags(i, uid, rev1, &mut out);
        }
    }
    s.conn.push(&out);
    Ok(if expunged {
        Reply::ok("Some messages were expunged").code("EXPUNGEISSUED")
    } else {
        Reply::ok("STORE completed")
    })
}

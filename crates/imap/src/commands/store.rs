//! STORE and UID STORE (RFC 9051 6.4.6): `FLAGS`, `+FLAGS`, `-FLAGS`, with `.SILENT`.
//! Each changed message is answered `* n FETCH (FLAGS (...))` (with `UID` for UID STORE)
//! unless silent; the view takes the new flags so the next sync does not repeat them.
//!
//! CONDSTORE (RFC 7162 3.1.3): `(UNCHANGEDSINCE n)` turns CONDSTORE on and changes only
//! the messages whose MODSEQ is at most `n` (so 0 changes none); the others are named in
//! `OK [MODIFIED set]` (sequence numbers, or UIDs for UID STORE). Once CONDSTORE is on,
//! the FETCH responses carry `MODSEQ (m)`, and even `.SILENT` answers
//! `* n FETCH ([UID u ]MODSEQ (m))` for each message it changed (as Dovecot), so the
//! client's cache learns the new MODSEQ. QRESYNC sessions get the UID in each.

use super::append::split_flags;
use crate::parser::{Flag, SequenceSet, StoreOp};
use crate::response::sequence_set;
use crate::session::{store_error, Fatal, Reply, Session};
use letterbox_store::FlagOp;

pub async fn run(
    s: &mut Session,
    uid: bool,
    set: &SequenceSet,
    op: StoreOp,
    silent: bool,
    flags: &[Flag],
    unchanged_since: Option<u64>,
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
    if unchanged_since.is_some() {
        s.enable_condstore(true);
    }
    let condstore = s.enabled.condstore;
    // QRESYNC clients key their cache by UID: every FETCH this answers names it (as
    // Dovecot).
    let with_uid = uid || s.enabled.qresync;
    let Some(sel) = s.selected() else {
        return Ok(Reply::bad("No mailbox selected"));
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
        .run(move |st| st.store_flags(id, &uids, op, flags, &keywords, unchanged_since))
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
    // Which messages this STORE changed (the store reports unchanged ones too).
    let mut changed = Vec::with_capacity(result.updated.len());
    for u in &result.updated {
        if let Some(i) = sel.index_of_uid(u.uid) {
            changed.push(sel.msgs[i].flags != u.flags || sel.keywords(i) != &u.keywords[..]);
            sel.set_flags(i, u.flags, &u.keywords);
        } else {
            changed.push(false);
        }
    }
    sel.announce_keywords(&touched, &mut out);
    for (u, changed) in result.updated.iter().zip(changed) {
        let Some(i) = sel.index_of_uid(u.uid) else {
            continue;
        };
        let modseq = condstore.then_some(u.modseq);
        if !silent {
            sel.write_flags_modseq(i, with_uid, rev1, modseq, &mut out);
        } else if condstore && changed {
            let uid_part = if with_uid {
                format!("UID {} ", u.uid)
            } else {
                String::new()
            };
            out.extend_from_slice(
                format!("* {} FETCH ({uid_part}MODSEQ ({}))\r\n", i + 1, u.modseq).as_bytes(),
            );
        }
    }
    s.conn.push(&out);
    if !result.modified.is_empty() {
        let Some(sel) = s.selected() else {
            return Ok(Reply::bad("No mailbox selected"));
        };
        let mut nums: Vec<u32> = if uid {
            result.modified.clone()
        } else {
            result
                .modified
                .iter()
                .filter_map(|&u| sel.index_of_uid(u).map(|i| i as u32 + 1))
                .collect()
        };
        nums.sort_unstable();
        return Ok(
            Reply::ok("Conditional STORE failed").code(format!("MODIFIED {}", sequence_set(&nums)))
        );
    }
    Ok(if expunged {
        Reply::ok("Some messages were expunged").code("EXPUNGEISSUED")
    } else {
        Reply::ok("STORE completed")
    })
}

//! EXPUNGE (RFC 9051 6.4.3) and UID EXPUNGE (RFC 4315): removes the `\Deleted` messages
//! (of the set, for UID EXPUNGE), then announces every removal, this session's and
//! others', as `* n EXPUNGE` in ascending order, each number counted after the previous
//! removals. QRESYNC sessions get one `* VANISHED uid-set` instead (RFC 7162 3.2.10),
//! and the tagged OK names the new `[HIGHESTMODSEQ n]`.

use crate::parser::SequenceSet;
use crate::session::{store_error, Fatal, Reply, Session, SyncMode};
use letterbox_store::Flags;

pub async fn run(s: &mut Session, set: Option<&SequenceSet>) -> Result<Reply, Fatal> {
    // Current flags first: another session may have set or cleared \Deleted.
    s.sync(SyncMode::Full).await?;
    let Some(sel) = s.selected() else {
        return Ok(Reply::bad("No mailbox selected"));
    };
    if sel.read_only {
        return Ok(Reply::no("Mailbox is read-only").code("READ-ONLY"));
    }
    let indices: Vec<usize> = match set {
        Some(set) => match sel.resolve(set, true) {
            Ok(v) => v,
            Err(_) => return Ok(Reply::bad("Invalid UID set")),
        },
        None => (0..sel.msgs.len()).collect(),
    };
    let uids: Vec<u32> = indices
        .into_iter()
        .filter(|&i| sel.msgs[i].flags.contains(Flags::DELETED))
        .map(|i| sel.msgs[i].uid)
        .collect();
    let id = sel.id;
    if !uids.is_empty() {
        if let Err(e) = s.ctx.store.run(move |st| st.expunge(id, &uids)).await {
            return Ok(store_error(&e));
        }
    }
    s.sync(SyncMode::Full).await?;
    Ok(Reply::ok("EXPUNGE completed"))
}

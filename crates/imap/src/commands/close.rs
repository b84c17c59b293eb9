//! CLOSE (RFC 9051 6.4.1: expunge `\Deleted` silently when read-write, then leave) and
//! UNSELECT (RFC 3691: leave without expunging).

use crate::session::{Fatal, Reply, Session};

pub async fn run(s: &mut Session, expunge: bool) -> Result<Reply, Fatal> {
    let Some(sel) = s.deselect() else {
        return Ok(Reply::bad("No mailbox selected"));
    };
    if expunge && !sel.read_only {
        let id = sel.id;
        let r = s
            .ctx
            .store
            .run(move |st| {
                let uids: Vec<u32> = st
                    .list_messages(id, false)?
                    .into_iter()
                    .filter(|m| m.flags.contains(letterbox_store::Flags::DELETED))
                    .map(|m| m.uid)
                    .collect();
                st.expunge(id, &uids)
            })
            .await;
        if let Err(e) = r {
            tracing::warn!("imap: CLOSE could not expunge: {e}");
        }
    }
    Ok(Reply::ok(if expunge {
        "CLOSE completed"
    } else {
        "UNSELECT completed"
    }))
}

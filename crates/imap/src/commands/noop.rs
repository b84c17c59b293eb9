//! NOOP (RFC 9051 6.1.2) and CHECK (RFC 3501 6.4.1, gone from IMAP4rev2 but harmless):
//! both a chance to hear of changes, which they always look for, feed or not.

use crate::session::{Fatal, Reply, Session, SyncMode};

pub async fn run(s: &mut Session, check: bool) -> Result<Reply, Fatal> {
    s.sync(SyncMode::Full).await?;
    Ok(Reply::ok(if check {
        "CHECK completed"
    } else {
        "NOOP completed"
    }))
}

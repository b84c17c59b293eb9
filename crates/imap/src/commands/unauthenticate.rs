//! UNAUTHENTICATE (RFC 8437): back to the not-authenticated state on the same
//! connection. The selected mailbox is left as UNSELECT leaves it (nothing expunged),
//! the account's change feed is dropped, and what ENABLE turned on is reset, so the
//! next login starts as on a new connection (TLS stays).

use crate::session::{Enabled, Fatal, Reply, Session, State};

pub fn run(s: &mut Session) -> Result<Reply, Fatal> {
    s.state = State::NotAuthenticated;
    s.enabled = Enabled::default();
    s.quota_alerted = None;
    s.quota_alerted_select = false;
    Ok(Reply::ok("UNAUTHENTICATE completed"))
}

//! RSET (RFC 5321 4.1.1.5): the transaction is dropped; the greeting and the
//! authentication stay.

use super::{Flow, Session};

impl Session {
    pub(super) fn rset(&mut self) -> Flow {
        self.tx = None;
        self.ok(250, "2.0.0", "OK")
    }
}

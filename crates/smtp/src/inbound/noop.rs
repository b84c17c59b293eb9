//! NOOP (RFC 5321 4.1.1.9).

use super::{Flow, Session};

impl Session {
    pub(super) fn noop(&mut self) -> Flow {
        self.ok(250, "2.0.0", "OK")
    }
}

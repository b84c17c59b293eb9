//! VRFY and EXPN (RFC 5321 3.5, 4.1.1.6-7): VRFY answers `252` without saying whether
//! the user exists (3.5.3); EXPN is not offered.

use super::{Flow, Session};

impl Session {
    pub(super) fn vrfy(&mut self) -> Flow {
        self.ok(
            252,
            "2.5.0",
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }

    pub(super) fn expn(&mut self) -> Flow {
        self.bad(502, "5.5.1", "EXPN not available")
    }
}

//! QUIT (RFC 5321 4.1.1.10): `221`, then the connection is closed.

use super::{Flow, Session};

impl Session {
    pub(super) fn quit(&mut self) -> Flow {
        let msg = format!("{} closing connection", self.hostname());
        self.reply(221, "2.0.0", &msg);
        Flow::Close
    }
}

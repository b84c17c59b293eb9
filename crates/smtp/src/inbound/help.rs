//! HELP (RFC 5321 4.1.1.8): the commands this service knows.

use super::{Flow, Session};
use crate::Mode;

impl Session {
    pub(super) fn help(&mut self) -> Flow {
        let hello = if self.lmtp() { "LHLO" } else { "EHLO HELO" };
        let auth = if self.submission() { " AUTH" } else { "" };
        let msg = format!(
            "Commands: {hello} STARTTLS{auth} MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP. See RFC 5321{}",
            match self.mode {
                Mode::Lmtp => " and RFC 2033",
                Mode::Submission => " and RFC 6409",
                Mode::Smtp => "",
            }
        );
        self.ok(214, "2.0.0", &msg)
    }
}

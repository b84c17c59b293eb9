//! LOGOUT (RFC 9051 6.1.3).

use crate::session::{Fatal, Reply, Session, State};

pub fn run(s: &mut Session) -> Result<Reply, Fatal> {
    s.conn.push(b"* BYE Logging out\r\n");
    s.state = State::Logout;
    Ok(Reply::ok("LOGOUT completed"))
}

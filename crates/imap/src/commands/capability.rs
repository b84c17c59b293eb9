//! CAPABILITY (RFC 9051 6.1.1).

use crate::session::{Fatal, Reply, Session};

pub fn run(s: &mut Session) -> Result<Reply, Fatal> {
    let caps = s.capabilities();
    s.conn.push(format!("* CAPABILITY {caps}\r\n").as_bytes());
    Ok(Reply::ok("CAPABILITY completed"))
}

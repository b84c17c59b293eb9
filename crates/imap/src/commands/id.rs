//! ID (RFC 2971). What the client says about itself is not kept.

use crate::session::{Fatal, Reply, Session};

pub fn run(s: &mut Session) -> Result<Reply, Fatal> {
    s.conn.push(
        format!(
            "* ID (\"name\" \"Letterbox\" \"version\" \"{}\")\r\n",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    Ok(Reply::ok("ID completed"))
}

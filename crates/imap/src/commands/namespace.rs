//! NAMESPACE (RFC 2342, RFC 9051 6.3.10): one personal namespace, `""` with `/`.

use crate::session::{Fatal, Reply, Session};

pub fn run(s: &mut Session) -> Result<Reply, Fatal> {
    s.conn.push(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
    Ok(Reply::ok("NAMESPACE completed"))
}

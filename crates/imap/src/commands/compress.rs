//! COMPRESS (RFC 4978 section 3), valid in the authenticated and selected states
//! (`command-auth =/ compress`).
//!
//! `COMPRESS DEFLATE` answers `OK` uncompressed, then both directions of the connection
//! are raw DEFLATE from the octet after that line's CRLF: the connection is taken back
//! from [`Conn`] (as STARTTLS does) and wrapped by [`crate::deflate::Deflate`], keeping
//! whatever the client already sent after the command (it is compressed). TLS, if any,
//! stays below. A second COMPRESS is `NO [COMPRESSIONACTIVE]`, an unknown algorithm
//! `BAD` ("invalid or unknown argument"); neither turns anything on.

use crate::conn::Conn;
use crate::deflate::{Deflate, LEVEL};
use crate::session::{Fatal, Reply, Session, Status};

pub async fn run(s: &mut Session, tag: &str, algorithm: &str) -> Result<Reply, Fatal> {
    if s.compressed {
        return Ok(Reply::no("DEFLATE is already active").code("COMPRESSIONACTIVE"));
    }
    if algorithm != "DEFLATE" {
        return Ok(Reply::bad(format!(
            "Unknown compression algorithm {algorithm}"
        )));
    }
    s.conn
        .push(format!("{tag} OK DEFLATE active\r\n").as_bytes());
    s.conn.flush().await?;
    let placeholder = Conn::for_config(Box::new(tokio::io::empty()), &s.ctx.config);
    let (stream, pending) = std::mem::replace(&mut s.conn, placeholder).into_parts();
    s.conn = Conn::for_config(
        Box::new(Deflate::new(stream, &pending, LEVEL)),
        &s.ctx.config,
    );
    s.compressed = true;
    Ok(Reply {
        status: Status::Sent,
        code: None,
        text: String::new(),
    })
}

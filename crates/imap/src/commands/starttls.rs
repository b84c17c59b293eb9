//! STARTTLS (RFC 9051 6.2.1): the seam for TLS (issue 7).
//!
//! When TLS lands: answer `OK Begin TLS negotiation now`, flush, take the stream back with
//! [`crate::conn::Conn::into_inner`] (which drops anything the client pipelined, as RFC
//! 9051 requires), wrap it, rebuild the `Conn`, set `peer.tls = true` and forget
//! everything learned before (capabilities change). Until then the capability is not
//! advertised and the command is refused.

use crate::session::{Fatal, Reply, Session};

pub fn run(_s: &mut Session) -> Result<Reply, Fatal> {
    Ok(Reply::no("TLS is not available on this listener").code("UNAVAILABLE"))
}

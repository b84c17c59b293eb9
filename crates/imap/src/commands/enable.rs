//! ENABLE (RFC 5161): `IMAP4rev2` switches to RFC 9051 behaviour (UTF-8 mailbox names,
//! ESEARCH, no `\Recent`); `UTF8=ACCEPT` (RFC 6855) switches UTF-8 names alone;
//! `CONDSTORE` and `QRESYNC` (RFC 7162 3.1, 3.2.3; QRESYNC implies CONDSTORE, and only
//! what was asked for is listed in `* ENABLED`).

use crate::session::{Fatal, Reply, Session};

pub fn run(s: &mut Session, caps: &[String]) -> Result<Reply, Fatal> {
    let mut enabled = Vec::new();
    let condstore_before = s.enabled.condstore;
    for c in caps {
        match c.to_ascii_uppercase().as_str() {
            "IMAP4REV2" if !s.enabled.rev2 => {
                s.enabled.rev2 = true;
                enabled.push("IMAP4rev2");
            }
            "UTF8=ACCEPT" if !s.enabled.utf8 => {
                s.enabled.utf8 = true;
                enabled.push("UTF8=ACCEPT");
            }
            "CONDSTORE" if !condstore_before && !enabled.contains(&"CONDSTORE") => {
                s.enable_condstore(true);
                enabled.push("CONDSTORE");
            }
            "QRESYNC" if !s.enabled.qresync => {
                s.enable_qresync();
                enabled.push("QRESYNC");
            }
            _ => {}
        }
    }
    let mut line = String::from("* ENABLED");
    for e in enabled {
        line.push(' ');
        line.push_str(e);
    }
    line.push_str("\r\n");
    s.conn.push(line.as_bytes());
    Ok(Reply::ok("ENABLE completed"))
}

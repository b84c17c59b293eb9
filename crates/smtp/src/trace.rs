//! The trace headers Letterbox prepends to each delivered message, per recipient:
//! `Return-Path:` (RFC 5321 4.4: the reverse-path, added at final delivery),
//! `Delivered-To:` (the recipient as given in RCPT, as Postfix and Dovecot write it; used
//! by clients and loop detection) and `Received:` (RFC 5321 4.4, with the `with` protocol
//! names of RFC 3848 and RFC 6531).
//!
//! These octets are the store's per-recipient `prefix`; the body after them is shared.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

/// What the `Received:` header tells about the transaction.
#[derive(Debug, Clone)]
pub struct Trace<'a> {
    /// Our host name (`config.hostname`).
    pub hostname: &'a str,
    /// The name the client gave in EHLO/HELO/LHLO.
    pub helo: &'a str,
    pub peer: SocketAddr,
    /// `ESMTP`, `LMTP`, `ESMTPS`... see [`protocol`].
    pub protocol: &'static str,
    /// The transaction id (also in the logs and the final reply).
    pub id: &'a str,
    /// The reverse-path, without angle brackets (empty for the null sender).
    pub sender: &'a str,
    /// Seconds since the epoch.
    pub date: i64,
}

/// The `with` protocol name (RFC 3848; the `UTF8` forms are RFC 6531's).
pub fn protocol(lmtp: bool, esmtp: bool, tls: bool, smtputf8: bool) -> &'static str {
    match (lmtp, esmtp, tls, smtputf8) {
        (true, _, false, false) => "LMTP",
        (true, _, true, false) => "LMTPS",
        (true, _, false, true) => "UTF8LMTP",
        (true, _, true, true) => "UTF8LMTPS",
        (false, false, false, _) => "SMTP",
        (false, false, true, _) => "SMTPS",
        (false, true, false, false) => "ESMTP",
        (false, true, true, false) => "ESMTPS",
        (false, true, false, true) => "UTF8SMTP",
        (false, true, true, true) => "UTF8SMTPS",
    }
}

/// The `with` name once the client has authenticated (RFC 3848 `ESMTPA`, `ESMTPSA`;
/// RFC 6531 `UTF8SMTPA`, `UTF8SMTPSA`). Other names have no authenticated form.
pub fn authenticated(protocol: &'static str) -> &'static str {
    match protocol {
        "ESMTP" => "ESMTPA",
        "ESMTPS" => "ESMTPSA",
        "UTF8SMTP" => "UTF8SMTPA",
        "UTF8SMTPS" => "UTF8SMTPSA",
        other => other,
    }
}

/// Text from the client made safe for a header: no controls, no white space, bounded.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .map(|c| {
            if matches!(c, '(' | ')' | '<' | '>' | ';') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// An address from the client as a reply shows it, faithfully (RFC 5321 4.1.2 `Mailbox`,
/// RFC 6531 for non-ASCII): the local part as a dot-string when it is one, else as the
/// quoted string it was sent as (`"al ice"@example.com`, `"` and `\` escaped), so that a
/// reply never names another, real address. Control characters (which no address may
/// hold) are shown as `?` inside the quotes; bounded to `max` octets.
pub fn address(s: &str, max: usize) -> String {
    let safe = |c: char| if c.is_control() { '?' } else { c };
    let (local, domain) = match s.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (s, None),
    };
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~".contains(c)
            || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
    };
    let dot_string = !local.is_empty()
        && local
            .split('.')
            .all(|w| !w.is_empty() && w.chars().all(atext));
    let mut out = String::with_capacity(s.len() + 2);
    if dot_string {
        out.push_str(local);
    } else {
        out.push('"');
        for c in local.chars() {
            if matches!(c, '"' | '\\') {
                out.push('\\');
            }
            out.push(safe(c));
        }
        out.push('"');
    }
    if let Some(d) = domain {
        out.push('@');
        out.extend(d.chars().map(safe));
    }
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// An RFC 5321 address literal: `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
pub fn address_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("[{v4}]"),
            None => format!("[IPv6:{v6}]"),
        },
    }
}

/// An RFC 5322 date (`Thu, 26 Nov 2026 11:55:41 +0000`).
pub fn rfc5322_date(secs: i64) -> String {
    mail_builder::headers::date::Date::new(secs).to_rfc822()
}

/// A new transaction id, unique within this process and unlikely to repeat across
/// restarts: start time and a counter, in base 36.
pub fn new_id() -> String {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}{}", base36(start), base36_padded(n, 4))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn base36_padded(n: u64, width: usize) -> String {
    format!("{:0>width$}", base36(n), width = width)
}

/// The per-recipient prefix: `Return-Path`, `Delivered-To`, `Received`, each CRLF-ended.
pub fn prefix(t: &Trace<'_>, rcpt: &str) -> Vec<u8> {
    let helo = sanitize(t.helo, 255);
    let helo = if helo.is_empty() {
        "unknown".to_string()
    } else {
        helo
    };
    let sender = sanitize(t.sender, 512);
    let rcpt = sanitize(rcpt, 512);
    format!(
        "Return-Path: <{sender}>\r\n\
         Delivered-To: {rcpt}\r\n\
         Received: from {helo} ({literal})\r\n\
         \tby {host} (Letterbox) with {proto} id {id}\r\n\
         \tfor <{rcpt}>; {date}\r\n",
        literal = address_literal(t.peer.ip()),
        host = t.hostname,
        proto = t.protocol,
        id = t.id,
        date = rfc5322_date(t.date),
    )
    .into_bytes()
}

/// The `Received:` field alone (RFC 5321 4.4), for mail that leaves through the outbound
/// queue: the final server adds the Return-Path.
pub fn received(t: &Trace<'_>) -> Vec<u8> {
    let helo = sanitize(t.helo, 255);
    let helo = if helo.is_empty() {
        "unknown".to_string()
    } else {
        helo
    };
    format!(
        "Received: from {helo} ({literal})\r\n\
         \tby {host} (Letterbox) with {proto} id {id};\r\n\
         \t{date}\r\n",
        literal = address_literal(t.peer.ip()),
        host = t.hostname,
        proto = t.protocol,
        id = t.id,
        date = rfc5322_date(t.date),
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_header() {
        let t = Trace {
            hostname: "mx.example.com",
            helo: "client.example.org",
            peer: "192.0.2.7:4567".parse().unwrap(),
            protocol: protocol(false, true, false, false),
            id: "ABC123",
            sender: "bob@example.org",
            date: 1_700_000_000,
        };
        let p = String::from_utf8(prefix(&t, "alice@example.com")).unwrap();
        assert_eq!(
            p,
            "Return-Path: <bob@example.org>\r\n\
             Delivered-To: alice@example.com\r\n\
             Received: from client.example.org ([192.0.2.7])\r\n\
             \tby mx.example.com (Letterbox) with ESMTP id ABC123\r\n\
             \tfor <alice@example.com>; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        );
        let p = String::from_utf8(prefix(
            &Trace {
                helo: "evil\r\nX-Injected: 1 (x)",
                sender: "",
                peer: "[::1]:25".parse().unwrap(),
                ..t
            },
            "a@b",
        ))
        .unwrap();
        assert!(p.starts_with("Return-Path: <>\r\n"), "{p}");
        assert!(p.contains("from evilX-Injected:1_x_ ([IPv6:::1])"), "{p}");
        assert_eq!(p.matches("\r\n").count(), 5);
    }

    #[test]
    fn addresses_as_replies_show_them() {
        assert_eq!(address("alice@example.com", 256), "alice@example.com");
        assert_eq!(address("a.b+c@example.com", 256), "a.b+c@example.com");
        assert_eq!(address("üser@exämple.com", 256), "üser@exämple.com");
        assert_eq!(address("al ice@example.com", 256), "\"al ice\"@example.com");
        assert_eq!(
            address("al\"ice@example.com", 256),
            "\"al\\\"ice\"@example.com"
        );
        assert_eq!(address("a\\b@example.com", 256), "\"a\\\\b\"@example.com");
        assert_eq!(address("a>b@example.com", 256), "\"a>b\"@example.com");
        assert_eq!(address(".a@example.com", 256), "\".a\"@example.com");
        assert_eq!(address("a\r\nb@x\ty", 256), "\"a??b\"@x?y");
        assert_eq!(address("abcdef@x", 4), "abcd");
    }

    #[test]
    fn ids_and_protocols() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(protocol(true, true, false, false), "LMTP");
        assert_eq!(protocol(false, false, false, false), "SMTP");
        assert_eq!(protocol(false, true, true, false), "ESMTPS");
        assert_eq!(authenticated(protocol(false, true, true, false)), "ESMTPSA");
        assert_eq!(
            authenticated(protocol(false, true, false, true)),
            "UTF8SMTPA"
        );
    }
}

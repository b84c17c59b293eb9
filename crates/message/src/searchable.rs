//! A message's *searchable head* (issue 18): exactly what SEARCH's header keys (RFC 9051
//! 6.4.4 FROM, TO, CC, BCC, SUBJECT, HEADER, SENTBEFORE/ON/SINCE) compare, flattened
//! into one octet string that a search scans in place: no envelope, address list or
//! sort field is decoded, nothing is allocated per message. Dovecot's
//! `dovecot.index.cache` keeps the header fields clients searched the same way, per
//! mailbox, across restarts; this record is made at delivery from the one parse and kept
//! with the blob (the store's `searchables.rs`), and IMAP keeps it in the process's
//! message cache and in the store's copy of it (imap `session::cache`), so the first header search
//! after a start reads the mailbox's records in a few sequential chunks instead of every
//! message's head through a join, and decodes none of them.
//!
//! The record holds, per message, the fields the comparison of a decoded head
//! (imap `commands::search`, `header_has`) looks at, each as (name, value):
//! - the envelope's unstructured fields as stored (`subject`, `message-id`,
//!   `in-reply-to`, `date`);
//! - per address of `from`, `to`, `cc` and `bcc` (group markers included) its display
//!   name, mailbox and host, and its `mailbox@host` marked as compared only with a
//!   needle that holds an `@` (a needle without one is in `mailbox@host` only if it is
//!   in one of the two);
//! - every `name: value` line of the decoded top-level header, the name trimmed and the
//!   value without its leading white space;
//!
//! and the day of the sent date (the `Date:` field as written, else its UTC day). A
//! header key matches when one field of its name (ASCII case-insensitive) contains the
//! needle: the same answer as from the decoded head, field by field.
//!
//! Layout: a CRC-32 of the rest (little-endian), a flag octet (1: a sent day follows as
//! 8 octets little-endian), then per field: the name's length (LEB128) and octets, a
//! kind octet (0: always compared, 1: only with an `@` in the needle), the value's
//! length (LEB128) and octets. [`valid`] checks the CRC (a record read from the store
//! that fails it is derived anew); reading never trusts a length (a field that does not
//! read ends the record) and a value that is not UTF-8 matches no non-ASCII needle.

use crate::date::header_date_day;
use crate::ParsedMessage;

/// The version of the record's layout and content: the first octets of the store's
/// copies (IMAP's chunks, `session::cache`; the record kept with each blob at delivery,
/// `crates/store/src/searchables.rs`). Change the digit whenever the layout or what a
/// record holds changes: copies of an earlier version are then ignored and made again.
pub const VERSION: &[u8; 4] = b"LBH1";

const AT_ONLY: u8 = 1;

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_field(out: &mut Vec<u8>, name: &str, kind: u8, value: &str) {
    put_len(out, name.len());
    out.extend_from_slice(name.as_bytes());
    out.push(kind);
    put_len(out, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// The record of a decoded head (its envelope, sent date and header search text).
pub fn encode(p: &ParsedMessage) -> Vec<u8> {
    let env = &p.envelope;
    let mut buf = Vec::with_capacity(256 + p.search_headers.len() * 2);
    let out = &mut buf;
    out.extend_from_slice(&[0; 4]);
    let sent = env
        .date
        .as_deref()
        .and_then(header_date_day)
        .or(p.sent_date.map(|t| t.div_euclid(86_400)));
    match sent {
        Some(d) => {
            out.push(1);
            out.extend_from_slice(&d.to_le_bytes());
        }
        None => out.push(0),
    }
    for (name, v) in [
        ("subject", &env.subject),
        ("message-id", &env.message_id),
        ("in-reply-to", &env.in_reply_to),
        ("date", &env.date),
    ] {
        if let Some(v) = v {
            put_field(out, name, 0, v);
        }
    }
    for (name, list) in [
        ("from", &env.from),
        ("to", &env.to),
        ("cc", &env.cc),
        ("bcc", &env.bcc),
    ] {
        for a in list {
            for v in [&a.name, &a.mailbox, &a.host].into_iter().flatten() {
                put_field(out, name, 0, v);
            }
            // `Address::email` (`mailbox@host`), written without a copy.
            if let (Some(m), Some(h)) = (&a.mailbox, &a.host) {
                put_len(out, name.len());
                out.extend_from_slice(name.as_bytes());
                out.push(AT_ONLY);
                put_len(out, m.len() + 1 + h.len());
                out.extend_from_slice(m.as_bytes());
                out.push(b'@');
                out.extend_from_slice(h.as_bytes());
            }
        }
    }
    for l in p.search_headers.lines() {
        if let Some((n, v)) = l.split_once(':') {
            put_field(out, n.trim(), 0, v.trim_start());
        }
    }
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// A record read in place.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    sent: Option<i64>,
    fields: &'a [u8],
}

/// One field: its name, whether it is compared only with a needle holding `@`, its
/// value.
pub type Field<'a> = (&'a [u8], bool, &'a [u8]);

fn get_len(data: &[u8], at: &mut usize) -> Option<usize> {
    let mut n: usize = 0;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*at)?;
        *at += 1;
        n |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn get_bytes<'a>(data: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let n = get_len(data, at)?;
    let end = at.checked_add(n).filter(|&e| e <= data.len())?;
    let b = &data[*at..end];
    *at = end;
    Some(b)
}

impl<'a> Record<'a> {
    /// The record's parts (its CRC is not checked: see [`valid`]); `None` when it is
    /// too short to be one.
    pub fn read(data: &'a [u8]) -> Option<Record<'a>> {
        let rest = data.get(4..)?;
        match rest.first()? {
            0 => Some(Record {
                sent: None,
                fields: &rest[1..],
            }),
            1 => {
                let d = rest.get(1..9)?;
                Some(Record {
                    sent: Some(i64::from_le_bytes(d.try_into().ok()?)),
                    fields: &rest[9..],
                })
            }
            _ => None,
        }
    }

    /// The day (days since the epoch) SENT* compare, when the message has one.
    pub fn sent_day(&self) -> Option<i64> {
        self.sent
    }

    /// The fields, in stored order; stops at the first that does not read.
    pub fn fields(&self) -> impl Iterator<Item = Field<'a>> + 'a {
        let data = self.fields;
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= data.len() {
                return None;
            }
            let name = get_bytes(data, &mut at)?;
            let kind = *data.get(at)?;
            at += 1;
            let value = get_bytes(data, &mut at)?;
            Some((name, kind == AT_ONLY, value))
        })
    }
}

/// Whether `data` is an intact record: its CRC matches and its start reads.
pub fn valid(data: &[u8]) -> bool {
    data.len() >= 5
        && crc32fast::hash(&data[4..]).to_le_bytes() == data[..4]
        && Record::read(data).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let raw = "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nFrom: \"A B\" <a@x.example>, g: c@d;\r\n\
                   To: undisclosed-recipients:;\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
                   X-Long: "
            .to_string()
            + &"y".repeat(300) + "\r\n\r\nbody\r\n";
        let p = crate::parse(raw.as_bytes());
        let rec = encode(&p);
        assert!(valid(&rec));
        let r = Record::read(&rec).unwrap();
        assert_eq!(r.sent_day(), Some(20_781));
        let fields: Vec<(String, bool, String)> = r
            .fields()
            .map(|(n, a, v)| {
                (
                    String::from_utf8(n.to_vec()).unwrap(),
                    a,
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect();
        assert!(
            fields.contains(&("Subject".into(), false, "Grüße".into())),
            "{fields:?}"
        );
        assert!(fields.contains(&("from".into(), false, "A B".into())));
        assert!(fields.contains(&("from".into(), true, "a@x.example".into())));
        assert!(fields.contains(&("X-Long".into(), false, "y".repeat(300))));
        // Every damaged octet and every cut is refused.
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x5a;
            assert!(!valid(&bad), "octet {i}");
            assert!(!valid(&rec[..i]), "cut at {i}");
        }
        // No sent day without a date.
        let p = crate::parse(b"Subject: x\r\n\r\n");
        let rec = encode(&p);
        assert!(valid(&rec));
        assert_eq!(Record::read(&rec).unwrap().sent_day(), None);
    }
}

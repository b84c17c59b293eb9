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
//! The fields are in two parts, each with its own CRC-32: the first holds every field
//! named `subject`, `from`, `to`, `cc` or `bcc` ([`in_first_part`]: the envelope's
//! subject and addresses, and the header lines of those names), the second every other
//! field. A SUBJECT/FROM/TO/CC/BCC key (or HEADER on one of those names) and SENT* check
//! and walk only the first part; HEADER on any other name walks only the second, whose
//! CRC is checked then ([`Record::rest_intact`]).
//!
//! Within the first part the fields are grouped by name (subject, from, to, cc, bcc:
//! the envelope's, then the header lines of that name), each group with its length,
//! so that SUBJECT walks the subjects only, not the addresses
//! ([`Record::first_fields_named`]).
//!
//! Layout: a CRC-32 of the first part (little-endian; it covers everything from the
//! flag octet to the end of the first part's fields), a flag octet (bit 0: a sent day
//! follows as 8 octets little-endian; bit 1: the first part is grouped), the first
//! part's length (LEB128) and its five groups, each its length (LEB128) and fields (in
//! a record without bit 1, written by builds before the groups, the first part's
//! fields follow one another ungrouped, and are read so: [`ungrouped`]), a CRC-32 of
//! the second part (little-endian), then the second part's fields to the end. Per
//! field: the name's length (LEB128) and octets, a kind octet (0: always compared, 1:
//! only with an `@` in the needle), the value's length (LEB128) and octets. The
//! version ([`VERSION`]) stays `LBH2`: this build reads both shapes; a build before
//! the groups refuses a grouped record (its flag octet) as damaged and answers that
//! message from its decoded head.
//! [`valid`] checks the first CRC and that the record's frame reads (a record read from
//! the store that fails it is derived anew); reading never trusts a length (a field
//! that does not read ends its part) and a value that is not UTF-8 matches no non-ASCII
//! needle.

use crate::date::header_date_day;
use crate::ParsedMessage;

/// The version of the record's layout and content: the first octets of the store's
/// copies (IMAP's chunks, `session::cache`; the record kept with each blob at delivery,
/// `crates/store/src/searchables.rs`). Change the digit whenever the layout or what a
/// record holds changes: copies of an earlier version are then ignored and made again.
pub const VERSION: &[u8; 4] = b"LBH2";

const AT_ONLY: u8 = 1;

/// The names whose fields are in the record's first part (compared by the SUBJECT,
/// FROM, TO, CC and BCC keys), in the order of its groups.
const FIRST_NAMES: [&str; 5] = ["subject", "from", "to", "cc", "bcc"];

/// The flag octet's bits: a sent day follows; the first part is grouped by name.
const SENT: u8 = 1;
const GROUPED: u8 = 2;

/// Which group of the first part holds the fields of `name` (ASCII case-insensitive).
fn group_of(name: &[u8]) -> Option<usize> {
    FIRST_NAMES
        .iter()
        .position(|n| n.as_bytes().eq_ignore_ascii_case(name))
}

/// The names whose fields are in the record's first part (compared by the SUBJECT,
/// FROM, TO, CC and BCC keys): whether `name` (ASCII case-insensitive) is one of them.
pub fn in_first_part(name: &[u8]) -> bool {
    group_of(name).is_some()
}

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
    let lines = || {
        p.search_headers
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim(), v.trim_start()))
    };
    // The first part's fields, one group per name of `FIRST_NAMES`.
    let mut groups: [Vec<u8>; 5] = Default::default();
    if let Some(v) = &env.subject {
        put_field(&mut groups[0], "subject", 0, v);
    }
    for (out, name, list) in [
        (1, "from", &env.from),
        (2, "to", &env.to),
        (3, "cc", &env.cc),
        (4, "bcc", &env.bcc),
    ] {
        let out = &mut groups[out];
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
    for (n, v) in lines() {
        if let Some(g) = group_of(n.as_bytes()) {
            put_field(&mut groups[g], n, 0, v);
        }
    }
    let mut first = Vec::with_capacity(groups.iter().map(|g| g.len() + 2).sum());
    for g in &groups {
        put_len(&mut first, g.len());
        first.extend_from_slice(g);
    }
    let mut buf = Vec::with_capacity(32 + first.len() + p.search_headers.len() * 2);
    let out = &mut buf;
    out.extend_from_slice(&[0; 4]);
    let sent = env
        .date
        .as_deref()
        .and_then(header_date_day)
        .or(p.sent_date.map(|t| t.div_euclid(86_400)));
    match sent {
        Some(d) => {
            out.push(GROUPED | SENT);
            out.extend_from_slice(&d.to_le_bytes());
        }
        None => out.push(GROUPED),
    }
    put_len(out, first.len());
    out.extend_from_slice(&first);
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    // The second part.
    let rest_at = out.len();
    out.extend_from_slice(&[0; 4]);
    for (name, v) in [
        ("message-id", &env.message_id),
        ("in-reply-to", &env.in_reply_to),
        ("date", &env.date),
    ] {
        if let Some(v) = v {
            put_field(out, name, 0, v);
        }
    }
    for (n, v) in lines().filter(|(n, _)| !in_first_part(n.as_bytes())) {
        put_field(out, n, 0, v);
    }
    let crc = crc32fast::hash(&out[rest_at + 4..]);
    out[rest_at..rest_at + 4].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// A record read in place.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    sent: Option<i64>,
    /// Whether the first part is in groups by name (else its fields in any order).
    grouped: bool,
    first: &'a [u8],
    /// Where the first part ends in the record (its CRC covers octets 4 to there).
    first_end: usize,
    rest_crc: [u8; 4],
    rest: &'a [u8],
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

fn part_fields(data: &[u8]) -> impl Iterator<Item = Field<'_>> + '_ {
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

impl<'a> Record<'a> {
    /// The record's parts (no CRC is checked: see [`valid`] and
    /// [`rest_intact`](Self::rest_intact)); `None` when its frame does not read.
    pub fn read(data: &'a [u8]) -> Option<Record<'a>> {
        let rest = data.get(4..)?;
        let flags = *rest.first()?;
        if flags & !(SENT | GROUPED) != 0 {
            return None;
        }
        let (sent, mut at) = match flags & SENT {
            0 => (None, 1),
            _ => {
                let d = rest.get(1..9)?;
                (Some(i64::from_le_bytes(d.try_into().ok()?)), 9)
            }
        };
        let first = get_bytes(rest, &mut at)?;
        let rest_crc = rest.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(Record {
            sent,
            grouped: flags & GROUPED != 0,
            first,
            first_end: 4 + at,
            rest_crc,
            rest: &rest[at + 4..],
        })
    }

    /// The day (days since the epoch) SENT* compare, when the message has one.
    pub fn sent_day(&self) -> Option<i64> {
        self.sent
    }

    /// Whether the second part's CRC matches (the first's is checked by [`valid`]).
    pub fn rest_intact(&self) -> bool {
        crc32fast::hash(self.rest).to_le_bytes() == self.rest_crc
    }

    /// The fields of the first part ([`in_first_part`] names), in stored order; stops
    /// at the first that does not read.
    pub fn first_fields(&self) -> impl Iterator<Item = Field<'a>> + 'a {
        let (grouped, first) = (self.grouped, self.first);
        let mut at = 0;
        let mut whole = Some(first).filter(|_| !grouped);
        std::iter::from_fn(move || match whole.take() {
            Some(w) => Some(w),
            None if grouped => get_bytes(first, &mut at),
            None => None,
        })
        .flat_map(part_fields)
    }

    /// The fields of the first part that may be named `name` (one of
    /// [`in_first_part`]'s, ASCII case-insensitive): those of its group in a grouped
    /// record (none when the group does not read), else every field of the first part
    /// (the caller compares the names).
    pub fn first_fields_named(&self, name: &[u8]) -> impl Iterator<Item = Field<'a>> + 'a {
        let fields = match (self.grouped, group_of(name)) {
            (true, Some(g)) => {
                let mut at = 0;
                let mut group = None;
                for _ in 0..=g {
                    group = get_bytes(self.first, &mut at);
                    if group.is_none() {
                        break;
                    }
                }
                group.unwrap_or_default()
            }
            (true, None) => &[],
            (false, _) => self.first,
        };
        part_fields(fields)
    }

    /// The fields of the second part (every other name), in stored order, its CRC not
    /// checked ([`rest_intact`](Self::rest_intact)); stops at the first that does not
    /// read.
    pub fn rest_fields(&self) -> impl Iterator<Item = Field<'a>> + 'a {
        part_fields(self.rest)
    }

    /// Every field: the first part's, then the second's.
    pub fn fields(&self) -> impl Iterator<Item = Field<'a>> + 'a {
        self.first_fields().chain(self.rest_fields())
    }
}

/// `data` (a record of [`encode`]) in the layout written before the first part was
/// grouped by name (the flag octet without its grouped bit, the first part's fields
/// one after the other): records kept by earlier builds are in it, and are read as
/// they were. `None` when `data` does not read.
#[doc(hidden)]
pub fn ungrouped(data: &[u8]) -> Option<Vec<u8>> {
    let r = Record::read(data)?;
    let mut first = Vec::with_capacity(r.first.len());
    let mut at = 0;
    while let Some(g) = get_bytes(r.first, &mut at) {
        first.extend_from_slice(g);
    }
    let mut out = vec![0; 4];
    out.push(data[4] & SENT);
    if let Some(d) = r.sent {
        out.extend_from_slice(&d.to_le_bytes());
    }
    put_len(&mut out, first.len());
    out.extend_from_slice(&first);
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&data[r.first_end..]);
    Some(out)
}

/// Whether `data` is a record whose first part is intact: its CRC matches and its
/// frame reads (the second part's CRC: [`Record::rest_intact`]).
pub fn valid(data: &[u8]) -> bool {
    let Some(r) = Record::read(data) else {
        return false;
    };
    crc32fast::hash(&data[4..r.first_end]).to_le_bytes() == data[..4]
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
        // SUBJECT/FROM/TO/CC/BCC fields are in the first part, the others in the second.
        assert!(r.first_fields().all(|(n, _, _)| in_first_part(n)));
        assert!(r.rest_fields().all(|(n, _, _)| !in_first_part(n)));
        assert!(r.first_fields().any(|(n, _, v)| n == b"Subject" && v == "Grüße".as_bytes()));
        assert!(r.rest_fields().any(|(n, _, _)| n == b"X-Long"));
        assert!(r.rest_intact());
        // Every damaged octet and every cut is refused: by the first part's check, or
        // by the second's.
        let refused = |d: &[u8]| !valid(d) || !Record::read(d).unwrap().rest_intact();
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x5a;
            assert!(refused(&bad), "octet {i}");
            assert!(refused(&rec[..i]), "cut at {i}");
        }
        // Damage in the second part leaves the first usable.
        let mut bad = rec.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(valid(&bad) && !Record::read(&bad).unwrap().rest_intact());
        // The layout without groups (records kept before them) reads the same fields.
        let flat = ungrouped(&rec).unwrap();
        assert!(valid(&flat) && flat.len() < rec.len() && flat[4] == SENT);
        let flat = Record::read(&flat).unwrap();
        assert!(flat.rest_intact());
        let all = |r: Record| r.fields().map(|(n, a, v)| (n.to_vec(), a, v.to_vec())).collect::<Vec<_>>();
        assert_eq!(all(flat), all(r));
        for name in ["subject", "FROM", "to", "cc", "bcc"] {
            let named = |r: Record| {
                let mut v: Vec<_> = r
                    .first_fields_named(name.as_bytes())
                    .filter(|(n, _, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                    .map(|(n, a, v)| (n.to_vec(), a, v.to_vec()))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(named(flat), named(r), "{name}");
            // In a grouped record, exactly the fields of that name are walked.
            assert!(r.first_fields_named(name.as_bytes()).all(|(n, _, _)| n.eq_ignore_ascii_case(name.as_bytes())));
        }
        assert_eq!(r.first_fields_named(b"subject").count(), 2);
        // No sent day without a date.
        let p = crate::parse(b"Subject: x\r\n\r\n");
        let rec = encode(&p);
        assert!(valid(&rec));
        assert_eq!(Record::read(&rec).unwrap().sent_day(), None);
    }
}

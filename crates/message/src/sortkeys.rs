//! A message's *sort keys* (issue 18): what `SORT (DATE)` and `THREAD REFERENCES`
//! (RFC 5256 sections 2.1, 2.2 and 4) read of a message, and nothing else: the sent
//! date, the decoded subject (whose base subject IMAP derives), the first Message-ID and
//! the parent IDs (the last [`MAX_REFS`] of `References:`, else the first `In-Reply-To:`
//! ID). Made at delivery from the one parse and kept with the blob and in every message
//! row (the store's `sortkeys.rs`), so the first SORT or THREAD of a big mailbox reads
//! these few octets per message in one range scan instead of every message's head.
//! IMAP derives its keys from a [`SortKeys`] in both cases, made at delivery or from a
//! head decoded later ([`SortKeys::of`]), so the answers are the same either way.
//!
//! Layout after the [`VERSION`] the store puts in front: a CRC-32 of the rest
//! (little-endian), a flag octet (1: a sent date follows, 2: a subject follows, 4: a
//! Message-ID follows, 8: a base subject follows, 16: the subject was a reply or
//! forward), the sent date (8 octets little-endian), the subject, the base subject and
//! the Message-ID (each a LEB128 length then UTF-8 octets), the count of parent IDs
//! (LEB128) and each (LEB128 length, octets). Version `LBS2` (this one) writes the base
//! subject of RFC 5256 2.1 ([`crate::subject::base_subject`]) instead of the decoded
//! subject, so the first THREAD neither case-maps nor cuts subjects; `LBS1` records
//! (the decoded subject, flag 2) are still read ([`LBS1`]), and IMAP derives their base
//! subjects. [`SortKeys::decode`] checks the CRC and every
//! length: a record that does not read is none (IMAP then decodes the head).

use crate::{message_ids, ParsedMessage};

/// The version of the record's layout and content (the first octets of the store's
/// copies). Change the digit whenever the layout or what a record holds changes: copies
/// of an earlier version are then ignored and IMAP decodes the heads.
pub const VERSION: &[u8; 4] = b"LBS2";

/// The version before [`VERSION`]: the same layout with the decoded subject instead of
/// the base subject (flags 8 and 16 never set); still read.
pub const LBS1: &[u8; 4] = b"LBS1";

/// How many `References:` IDs are kept, the last ones (RFC 5256 4 step 1 links them
/// in order; a longer chain only repeats ancestors already linked by its parents).
pub const MAX_REFS: usize = 128;

const HAS_DATE: u8 = 1;
const HAS_SUBJECT: u8 = 2;
const HAS_ID: u8 = 4;
const HAS_BASE: u8 = 8;
const REFWD: u8 = 16;

/// What SORT (DATE) and THREAD read of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortKeys {
    /// `Date:` in seconds since the epoch (UTC), when present and valid.
    pub sent_date: Option<i64>,
    /// `Subject:` decoded (`SortFields::subject`), in records of version [`LBS1`]
    /// (whose base subject was not made).
    pub subject: Option<String>,
    /// The base subject (RFC 5256 2.1, case-mapped) and whether the subject marked a
    /// reply or forward ([`crate::subject::base_subject`]).
    pub base_subject: Option<(String, bool)>,
    /// The first ID of `Message-ID:`.
    pub message_id: Option<String>,
    /// The parent IDs: the last [`MAX_REFS`] of `References:`, else the first ID of
    /// `In-Reply-To:`.
    pub refs: Vec<String>,
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

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn len(&mut self) -> Option<usize> {
        let mut n: usize = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            n |= usize::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// [`SortKeys`] read in place from a record ([`SortKeys::decode_ref`]) or borrowed from
/// one ([`SortKeys::as_ref`]): THREAD derives its keys from these without a copy of
/// every string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortKeysRef<'a> {
    pub sent_date: Option<i64>,
    pub subject: Option<&'a str>,
    pub base_subject: Option<(&'a str, bool)>,
    pub message_id: Option<&'a str>,
    pub refs: Vec<&'a str>,
}

impl SortKeys {
    /// The keys of a parsed (or decoded) message.
    pub fn of(p: &ParsedMessage) -> SortKeys {
        let first_id = |v: Option<&str>| v.and_then(|v| message_ids(v).into_iter().next());
        let refs = &p.sort.references;
        SortKeys {
            sent_date: p.sent_date,
            subject: None,
            base_subject: Some(crate::subject::base_subject(
                p.sort.subject.as_deref().unwrap_or(""),
            )),
            message_id: first_id(p.envelope.message_id.as_deref()),
            refs: if refs.is_empty() {
                first_id(p.envelope.in_reply_to.as_deref())
                    .into_iter()
                    .collect()
            } else {
                refs[refs.len().saturating_sub(MAX_REFS)..].to_vec()
            },
        }
    }

    /// The record (without the [`VERSION`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0; 4];
        let flags = if self.sent_date.is_some() {
            HAS_DATE
        } else {
            0
        } | if self.subject.is_some() {
            HAS_SUBJECT
        } else {
            0
        } | if self.message_id.is_some() { HAS_ID } else { 0 }
            | match self.base_subject {
                Some((_, true)) => HAS_BASE | REFWD,
                Some((_, false)) => HAS_BASE,
                None => 0,
            };
        out.push(flags);
        if let Some(d) = self.sent_date {
            out.extend_from_slice(&d.to_le_bytes());
        }
        if let Some(s) = &self.subject {
            put_str(&mut out, s);
        }
        if let Some((s, _)) = &self.base_subject {
            put_str(&mut out, s);
        }
        if let Some(s) = &self.message_id {
            put_str(&mut out, s);
        }
        put_len(&mut out, self.refs.len());
        for r in &self.refs {
            put_str(&mut out, r);
        }
        let crc = crc32fast::hash(&out[4..]);
        out[..4].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// The sent date of a record made by [`encode`](Self::encode), read in place
    /// (`SORT (DATE)` needs nothing else, RFC 5256 2.2): `Some(None)` when it has none,
    /// `None` when the record does not read (its CRC does not hold). Nothing is
    /// allocated and the strings after the date are not decoded; a record whose CRC
    /// holds was written by `encode`, so its date is the one [`decode`](Self::decode)
    /// reads.
    pub fn sent_date_of(data: &[u8]) -> Option<Option<i64>> {
        if data.len() < 5 || crc32fast::hash(&data[4..]).to_le_bytes() != data[..4] {
            return None;
        }
        if data[4] & HAS_DATE == 0 {
            return Some(None);
        }
        let d: [u8; 8] = data.get(5..13)?.try_into().ok()?;
        Some(Some(i64::from_le_bytes(d)))
    }

    /// Reads a record made by [`encode`](Self::encode): none when its CRC or any length
    /// does not hold, or octets are left over.
    pub fn decode(data: &[u8]) -> Option<SortKeys> {
        Self::decode_ref(data).map(|k| SortKeys {
            sent_date: k.sent_date,
            subject: k.subject.map(str::to_string),
            base_subject: k.base_subject.map(|(s, r)| (s.to_string(), r)),
            message_id: k.message_id.map(str::to_string),
            refs: k.refs.into_iter().map(str::to_string).collect(),
        })
    }

    /// [`decode`](Self::decode) in place: the strings are the record's octets.
    pub fn decode_ref(data: &[u8]) -> Option<SortKeysRef<'_>> {
        if data.len() < 5 || crc32fast::hash(&data[4..]).to_le_bytes() != data[..4] {
            return None;
        }
        let mut r = Reader(&data[4..]);
        let flags = r.take(1)?[0];
        let sent_date = if flags & HAS_DATE != 0 {
            Some(i64::from_le_bytes(r.take(8)?.try_into().ok()?))
        } else {
            None
        };
        let subject = if flags & HAS_SUBJECT != 0 {
            Some(r.str()?)
        } else {
            None
        };
        let base_subject = if flags & HAS_BASE != 0 {
            Some((r.str()?, flags & REFWD != 0))
        } else {
            None
        };
        let message_id = if flags & HAS_ID != 0 {
            Some(r.str()?)
        } else {
            None
        };
        let n = r.len()?;
        // Each ID takes at least one octet: a count beyond what is left does not read.
        if n > r.0.len() {
            return None;
        }
        let mut refs = Vec::with_capacity(n);
        for _ in 0..n {
            refs.push(r.str()?);
        }
        r.0.is_empty().then_some(SortKeysRef {
            sent_date,
            subject,
            base_subject,
            message_id,
            refs,
        })
    }

    /// The keys borrowed, as [`decode_ref`](Self::decode_ref) reads them.
    pub fn as_ref(&self) -> SortKeysRef<'_> {
        SortKeysRef {
            sent_date: self.sent_date,
            subject: self.subject.as_deref(),
            base_subject: self.base_subject.as_ref().map(|(s, r)| (s.as_str(), *r)),
            message_id: self.message_id.as_deref(),
            refs: self.refs.iter().map(String::as_str).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let p = crate::parse(
            b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= again\r\nMessage-ID: <a@b> <c@d>\r\n\
              References: <x@y>\r\n <z@w>\r\nIn-Reply-To: <q@r>\r\n\
              Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nhi\r\n",
        );
        let k = SortKeys::of(&p);
        // The base subject (RFC 5256 2.1) is made here, the decoded subject not kept.
        assert_eq!(k.subject, None);
        assert_eq!(k.base_subject, Some(crate::subject::base_subject("Grüße again")));
        assert_eq!(k.message_id.as_deref(), Some("a@b"));
        assert_eq!(k.refs, ["x@y", "z@w"]);
        assert_eq!(k.sent_date, Some(1_795_514_400));
        let e = k.encode();
        assert_eq!(SortKeys::decode_ref(&e), Some(k.as_ref()));
        assert_eq!(SortKeys::decode(&e), Some(k));
        for i in 0..e.len() {
            let mut d = e.clone();
            d[i] ^= 0x40;
            assert_eq!(SortKeys::decode(&d), None, "octet {i}");
            assert_eq!(SortKeys::decode(&e[..i]), None);
            assert_eq!(SortKeys::decode_ref(&d), None, "octet {i}");
        }
        // In-Reply-To when there are no References; nothing at all.
        let p = crate::parse(b"In-Reply-To: <q@r> <s@t>\r\n\r\nx");
        let k = SortKeys::of(&p);
        assert_eq!(k.refs, ["q@r"]);
        assert_eq!(SortKeys::decode(&k.encode()), Some(k));
        let k = SortKeys::of(&crate::parse(b"no header"));
        let empty = SortKeys {
            base_subject: Some((String::new(), false)),
            ..SortKeys::default()
        };
        assert_eq!(k, empty);
        assert_eq!(SortKeys::decode(&k.encode()), Some(k));
        // A record of version LBS1 (the decoded subject, flags 8 and 16 never set) still
        // reads, its subject as it was.
        let old = SortKeys {
            sent_date: Some(7),
            subject: Some("Re: Grüße".into()),
            message_id: Some("a@b".into()),
            refs: vec!["x@y".into()],
            base_subject: None,
        };
        let e = old.encode();
        assert_eq!(e[4] & (HAS_BASE | REFWD), 0);
        assert_eq!(SortKeys::decode(&e), Some(old));
        let k = SortKeys::of(&crate::parse(b"Subject: Re: [fwd: Hello]\r\n\r\nx"));
        assert_eq!(k.base_subject, Some(("HELLO".to_string(), true)));
        assert_eq!(SortKeys::decode(&k.encode()), Some(k));
        // The sent date alone, read in place, is the decoded record's; a damaged record
        // has none.
        let dated = SortKeys {
            sent_date: Some(1_795_514_400),
            subject: Some("Grüße".into()),
            refs: vec!["x@y".into()],
            ..SortKeys::default()
        };
        let early = SortKeys { sent_date: Some(-5), ..SortKeys::default() };
        for k in [dated, SortKeys::of(&p), SortKeys::default(), early] {
            let e = k.encode();
            assert_eq!(SortKeys::sent_date_of(&e), Some(k.sent_date));
            for i in 0..e.len() {
                let mut d = e.clone();
                d[i] ^= 0x40;
                assert_eq!(SortKeys::sent_date_of(&d), None, "octet {i}");
                assert_eq!(SortKeys::sent_date_of(&e[..i]), None);
            }
        }
    }
}

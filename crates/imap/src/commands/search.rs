//! SEARCH and UID SEARCH (RFC 9051 6.4.4), every search key, with `CHARSET` UTF-8 or
//! US-ASCII (others: `NO [BADCHARSET]`), and the RETURN options MIN MAX ALL COUNT SAVE
//! (RFC 4731 ESEARCH, RFC 5182 SEARCHRES). IMAP4rev2 sessions always get `ESEARCH`;
//! IMAP4rev1 sessions get `SEARCH` unless they asked for RETURN.
//!
//! `MODSEQ n` (RFC 7162 3.1.5) matches MODSEQ >= n (a `"/flags/..."` entry is accepted
//! and means the same: one MODSEQ per message), turns CONDSTORE on, and adds the highest
//! MODSEQ of the messages found: `* SEARCH 2 5 (MODSEQ 917)`, or `MODSEQ 917` at the end
//! of ESEARCH (of the MIN/MAX messages when those are all that is returned); nothing
//! when none is found.
//!
//! Text keys match case-insensitively (Unicode lower case) as substrings of the decoded
//! header values and bodies stored at delivery (`ParsedMessage.search_headers` and
//! `search_body`); TEXT looks at both. Nothing is parsed here. The body is everything
//! after the top-level header (RFC 9051 6.4.4 "in the body of the message"), so BODY
//! and TEXT also find what MIME part headers say (an attachment's file name) and the
//! header of a forwarded message; Dovecot's TEXT agrees, its BODY skips part headers.
//! The store's trigram filter ([`Backend::text_candidates`]) only narrows: the answer is
//! the exact comparison's over the same text (tests/imap/test_imap_search_text.py checks
//! it against a brute-force scan).
//!
//! Also WITHIN's OLDER and YOUNGER (RFC 5032: seconds before now, against INTERNALDATE;
//! `OLDER n` is exactly `NOT YOUNGER n`) and OBJECTID's EMAILID and THREADID (RFC 8474).
//! SORT and THREAD select their messages through `scan`.

use crate::datetime::header_date_day;
use crate::objectid;
use crate::parser::{SearchKey, SearchReturn, SeqNum, SequenceSet};
use crate::response::sequence_set;
use crate::session::index::{self, Indexes};
use crate::session::cache::{KeptRecord, Searchable};
use crate::session::searchable::{in_first_part, Field, Record};
use crate::session::{store_error, Fatal, Reply, Session};
use letterbox_message::ParsedMessage;
use letterbox_store::{Backend, Flags, MailboxId, MessageMeta};
use std::sync::Arc;

/// Messages whose search text one store query reads.
const SEARCH_CHUNK: usize = 512;

/// What a key's header and body keys are evaluated against: the decoded head (or the
/// whole parse, for BODY and TEXT), or the searchable head read in place
/// (`session::searchable`: header keys and SENT* only).
#[derive(Clone, Copy)]
enum Head<'a> {
    Parsed(&'a ParsedMessage),
    Record(Record<'a>),
}

impl<'a> Head<'a> {
    fn parsed(self) -> Option<&'a ParsedMessage> {
        match self {
            Head::Parsed(p) => Some(p),
            Head::Record(_) => None,
        }
    }
}

/// A message's head as read for a chunk of the scan.
enum Read {
    Parsed(Arc<ParsedMessage>),
    Record(KeptRecord),
}

/// What the evaluator knows of one message of the view.
#[derive(Clone)]
pub(crate) struct Cand {
    pub seq: u32,
    pub uid: u32,
    recent: bool,
}

struct Ctx<'a> {
    st: &'a dyn Backend,
    mb: MailboxId,
    /// Highest sequence number and UID, for `*`.
    max_seq: u32,
    max_uid: u32,
    saved: &'a [u32],
    /// Seconds since the epoch, for OLDER and YOUNGER.
    now: i64,
}

/// What a search of the selected mailbox starts from: its messages, and what `*`, `$`
/// and the mailbox are.
pub(crate) struct Selection {
    pub cands: Vec<Cand>,
    pub mb: MailboxId,
    pub uidvalidity: u32,
    /// The process's indexes: their message cache holds the heads already decoded.
    pub indexes: Arc<Indexes>,
    pub max_seq: u32,
    pub max_uid: u32,
    pub saved: Vec<u32>,
}

pub(crate) fn selection(sel: &crate::session::view::Selected, indexes: &Arc<Indexes>) -> Selection {
    Selection {
        cands: sel
            .msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.expunged)
            .map(|(i, m)| Cand {
                seq: i as u32 + 1,
                uid: m.uid,
                recent: sel.is_recent(m.uid),
            })
            .collect(),
        mb: sel.id,
        uidvalidity: sel.uidvalidity,
        indexes: indexes.clone(),
        max_seq: sel.exists(),
        max_uid: sel.max_uid(),
        saved: sel.saved.clone(),
    }
}

/// Calls `f` for each message matching `key`, in sequence order, with its metadata and,
/// when `want_head` asks for it (SORT), its decoded head. What the key is evaluated
/// against: for header keys and SENT* alone, the searchable heads
/// (`session::searchable`, scanned in place; from the process's message cache, else
/// the store's records; a message without one yet is evaluated on its decoded head,
/// its record made after the answer, `MsgCache::write_stored`); when
/// the caller wants the head or the key needs it decoded (THREADID), the heads
/// ([`Backend::heads_many`]: envelope, sent date, header search text, sort fields; no
/// MIME tree; kept decoded in the message cache); when the key looks at the body's
/// text (BODY, TEXT), the whole search text. Reads a chunk of messages at a time.
pub(crate) fn scan(
    st: &dyn Backend,
    sel: &Selection,
    key: &SearchKey,
    want_head: bool,
    mut f: impl FnMut(&Cand, &MessageMeta, Option<&ParsedMessage>),
) -> letterbox_store::Result<()> {
    let metas = metas(st, sel, key)?;
    let c = Ctx {
        st,
        mb: sel.mb,
        max_seq: sel.max_seq,
        max_uid: sel.max_uid,
        saved: &sel.saved,
        now: letterbox_store::now(),
    };
    let want_text = needs_text(key);
    let want_parsed = needs_parsed(key) || want_head;
    let records = want_parsed && !want_text && !want_head && !uses_thread_id(key);
    // TEXT/BODY words every match must hold: the store's trigram filter drops the
    // messages that cannot hold them, whose text is then not read at all.
    let mut needles = Vec::new();
    required_text(key, &mut needles);
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let maybe = match needles.is_empty() {
        true => None,
        false => st.text_candidates(sel.mb, &needles)?,
    };
    let narrowed: Vec<Cand>;
    let cands = match maybe {
        Some(maybe) => {
            let maybe: std::collections::HashSet<u32> = maybe.into_iter().collect();
            narrowed = sel
                .cands
                .iter()
                .filter(|c| maybe.contains(&c.uid))
                .cloned()
                .collect();
            &narrowed
        }
        None => &sel.cands,
    };
    let rest = walks_rest(key);
    let mut j = 0;
    for chunk in cands.chunks(SEARCH_CHUNK) {
        // Ascending UIDs, as the chunk: walked alongside it.
        let uids = || chunk.iter().map(|c| c.uid).collect::<Vec<u32>>();
        let mut texts: Vec<(u32, Read)> = if want_text {
            c.st.parsed_many(c.mb, &uids(), true)?
                .into_iter()
                .map(|(u, p)| (u, Read::Parsed(Arc::new(p))))
                .collect()
        } else if records {
            sel.indexes
                .cache
                .searchable(c.st, c.mb, sel.uidvalidity, &uids())?
                .into_iter()
                .map(|(u, r)| match r {
                    Searchable::Record(r) => (u, Read::Record(r)),
                    Searchable::Head(h) => (u, Read::Parsed(h)),
                })
                .collect()
        } else if want_parsed {
            sel.indexes
                .cache
                .heads(c.st, c.mb, sel.uidvalidity, &uids())?
                .into_iter()
                .map(|(u, p)| (u, Read::Parsed(p)))
                .collect()
        } else {
            Vec::new()
        };
        texts.sort_unstable_by_key(|e| e.0);
        let mut k = 0;
        for cand in chunk {
            while j < metas.len() && metas[j].uid < cand.uid {
                j += 1;
            }
            let Some(m) = metas.get(j).filter(|m| m.uid == cand.uid) else {
                continue;
            };
            let fallback;
            let parsed = if want_parsed {
                while k < texts.len() && texts[k].0 < m.uid {
                    k += 1;
                }
                match texts.get(k).filter(|e| e.0 == m.uid).map(|e| &e.1) {
                    Some(Read::Parsed(p)) => Some(Head::Parsed(p)),
                    // Checked when kept (`searchable::valid`): always reads. A damaged
                    // second part, when the key reads it, is answered from the head.
                    Some(Read::Record(r)) => match Record::read(r.octets()) {
                        Some(r) if !rest || r.rest_intact() => Some(Head::Record(r)),
                        _ => {
                            fallback = sel.indexes.cache.heads(
                                c.st,
                                c.mb,
                                sel.uidvalidity,
                                &[m.uid],
                            )?;
                            match fallback.first() {
                                Some((_, p)) => Some(Head::Parsed(p)),
                                None => continue, // expunged meanwhile
                            }
                        }
                    },
                    None => continue, // expunged meanwhile
                }
            } else {
                None
            };
            if eval(key, &c, cand, m, parsed) {
                f(cand, m, parsed.and_then(Head::parsed));
            }
        }
    }
    Ok(())
}

/// The metadata of the mailbox's messages now, ascending UIDs: from the process's
/// index of the mailbox (`session::index`, brought up to the mailbox's HIGHESTMODSEQ by
/// what changed since, and kept for the next command), not a listing of the whole
/// mailbox per command; listed from the store when the key needs what the index does
/// not keep (the blob, for EMAILID and THREADID) or the mailbox is gone.
fn metas(
    st: &dyn Backend,
    sel: &Selection,
    key: &SearchKey,
) -> letterbox_store::Result<Vec<MessageMeta>> {
    if !uses_blob(key) {
        if let Ok(mb) = st.mailbox_by_id(sel.mb) {
            if mb.uidvalidity == sel.uidvalidity {
                let snap = index::current(st, &mb, sel.indexes.get(mb.id))?;
                sel.indexes.put(&snap);
                return Ok(snap.metas());
            }
        }
    }
    st.list_messages(sel.mb, false)
}

fn uses_blob(k: &SearchKey) -> bool {
    use SearchKey::*;
    match k {
        EmailId(_) | ThreadId(_) => true,
        Not(k) => uses_blob(k),
        Or(a, b) => uses_blob(a) || uses_blob(b),
        And(v) => v.iter().any(uses_blob),
        _ => false,
    }
}

/// Lower-cased TEXT/BODY strings every match must contain (those of the top-level
/// conjunction): the store's trigram filter narrows the messages whose text is read.
fn required_text(k: &SearchKey, out: &mut Vec<String>) {
    match k {
        SearchKey::Text(s) | SearchKey::Body(s) => out.push(s.to_lowercase()),
        SearchKey::And(v) => v.iter().for_each(|k| required_text(k, out)),
        _ => {}
    }
}

/// Keys that look at the stored text of the body (BODY, TEXT); the others that need the
/// parse ([`needs_parsed`]) read only the head (header keys included: the head holds the
/// top-level header's search text).
fn needs_text(k: &SearchKey) -> bool {
    use SearchKey::*;
    match k {
        Body(_) | Text(_) => true,
        Not(k) => needs_text(k),
        Or(a, b) => needs_text(a) || needs_text(b),
        And(v) => v.iter().any(needs_text),
        _ => false,
    }
}

/// Keys that read a searchable head's second part: HEADER on a name outside its first
/// (`session::searchable::in_first_part`).
fn walks_rest(k: &SearchKey) -> bool {
    use SearchKey::*;
    match k {
        Header(name, _) => !in_first_part(name.as_bytes()),
        Not(k) => walks_rest(k),
        Or(a, b) => walks_rest(a) || walks_rest(b),
        And(v) => v.iter().any(walks_rest),
        _ => false,
    }
}

/// THREADID's key is derived from the decoded head (`objectid::thread_id`).
fn uses_thread_id(k: &SearchKey) -> bool {
    use SearchKey::*;
    match k {
        ThreadId(_) => true,
        Not(k) => uses_thread_id(k),
        Or(a, b) => uses_thread_id(a) || uses_thread_id(b),
        And(v) => v.iter().any(uses_thread_id),
        _ => false,
    }
}

fn needs_parsed(k: &SearchKey) -> bool {
    use SearchKey::*;
    match k {
        Bcc(_) | Body(_) | Cc(_) | From(_) | Header(..) | Subject(_) | Text(_) | To(_)
        | SentBefore(_) | SentOn(_) | SentSince(_) | ThreadId(_) => true,
        Not(k) => needs_parsed(k),
        Or(a, b) => needs_parsed(a) || needs_parsed(b),
        And(v) => v.iter().any(needs_parsed),
        _ => false,
    }
}

pub(crate) fn uses_modseq(k: &SearchKey) -> bool {
    use SearchKey::*;
    match k {
        ModSeq(_) => true,
        Not(k) => uses_modseq(k),
        Or(a, b) => uses_modseq(a) || uses_modseq(b),
        And(v) => v.iter().any(uses_modseq),
        _ => false,
    }
}

fn in_set(set: &SequenceSet, n: u32, max: u32, saved: Option<&[u32]>) -> bool {
    match set {
        SequenceSet::Saved => saved.is_some_and(|s| s.contains(&n)),
        SequenceSet::Ranges(r) => r.iter().any(|&(a, b)| {
            let v = |x: SeqNum| match x {
                SeqNum::Value(v) => v,
                SeqNum::Star => max,
            };
            let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
            (lo..=hi).contains(&n)
        }),
    }
}

/// Case-insensitive substring test; `needle_lower` is already lower-cased. An ASCII
/// needle is matched octet by octet without copying the haystack (UTF-8 sequences never
/// contain ASCII octets, so this is exact for it); others compare Unicode lower case.
fn contains_ci(hay: &str, needle_lower: &str) -> bool {
    if needle_lower.is_empty() {
        return true;
    }
    if needle_lower.is_ascii() {
        return contains_ascii_ci(hay.as_bytes(), needle_lower.as_bytes());
    }
    hay.to_lowercase().contains(needle_lower)
}

/// [`contains_ci`] for an ASCII needle, already lower-cased.
fn contains_ascii_ci(h: &[u8], n: &[u8]) -> bool {
    if n.is_empty() {
        return true;
    }
    if h.len() < n.len() {
        return false;
    }
    let (lo, up) = (n[0], n[0].to_ascii_uppercase());
    (0..=h.len() - n.len())
        .any(|i| (h[i] == lo || h[i] == up) && h[i..i + n.len()].eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::contains_ci;

    #[test]
    fn case_insensitive_contains() {
        assert!(contains_ci("Hello World", "world"));
        assert!(contains_ci("HELLO", "hello"));
        assert!(!contains_ci("Hell", "hello"));
        assert!(contains_ci("Grüße aus Köln", "köln"));
        assert!(contains_ci("GRÜSSE", "grüsse"));
        assert!(contains_ci("x", ""));
        assert!(contains_ci("Übung macht", "macht"));
    }

    /// A searchable head answers every header key as the decoded head does: brute force
    /// over messages, field names and needles (substrings of the fields, tricky ones).
    #[test]
    fn records_answer_as_heads() {
        use super::{header_has, record_has, sent_day, Head};
        use crate::session::searchable::{encode, Record};
        let msgs = [
            "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus K\u{212a}öln\r\nFrom: \"Ann B\" <ann.b@Example.COM>, grp: c@d.example, <e@f>;\r\n\
             To: undisclosed-recipients:;\r\nCc: x@y\r\nBcc: =?iso-8859-1?q?J=F6rg?= <j@z>\r\n\
             Message-ID: <m1@host>\r\nIn-Reply-To: <p@host>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
             X-Spam: YES\r\nx-spam :  no\r\nReply-To: r@s\r\n\r\nbody\r\n",
            "From: plain@host\r\nSubject: Re: two words\r\nDate: not a date\r\n\r\n",
            "Subject: STRASSE \u{00df}\r\n\r\n",
            // Repeated lines of a first-part name, and of a second-part one.
            "Subject: first one\r\nX-Spam: a\r\nSUBJECT : second LINE\r\nfrom : c@d\r\n             From: Ann <ann@b>\r\nx-spam: second\r\nReply-To: r@s\r\n\r\n",
            "no header at all",
        ];
        let names = [
            "from", "FROM", "to", "cc", "bcc", "subject", "message-id", "in-reply-to", "date",
            "x-spam", "reply-to", "sender", "nothing", " from",
        ];
        let meta = letterbox_store::MessageMeta {
            uid: 1,
            modseq: 1,
            flags: letterbox_store::Flags::default(),
            keywords: vec![],
            internal_date: 1_700_000_000,
            size: 1,
            blob: letterbox_store::BlobId([0; 32]),
            prefix_len: 0,
            recent: false,
        };
        for raw in msgs {
            let p = letterbox_message::parse(raw.as_bytes());
            let rec = encode(&p);
            let r = Record::read(&rec).unwrap();
            assert_eq!(sent_day(Head::Parsed(&p), &meta), sent_day(Head::Record(r), &meta));
            // Records kept before the first part was grouped by name answer the same.
            let flat = letterbox_message::searchable::ungrouped(&rec).unwrap();
            let flat = Record::read(&flat).unwrap();
            assert_eq!(sent_day(Head::Parsed(&p), &meta), sent_day(Head::Record(flat), &meta));
            let mut needles: Vec<String> = vec![
                "".into(), "@".into(), "b@ex".into(), "ANN.B@EXAMPLE.COM".into(), "k".into(),
                "köln".into(), "KÖLN".into(), "ß".into(), "ss".into(), "grp".into(),
                "<m1@host>".into(), "m1@host".into(), "jörg".into(), "2026".into(), "no".into(),
                "yes".into(), " ".into(), "d.example".into(), "c@d".into(), "e@f".into(),
                "second line".into(), "first".into(), "ann".into(), "r@s".into(),
            ];
            for l in p.search_headers.lines() {
                let v: Vec<char> = l.chars().collect();
                for i in (0..v.len()).step_by(3) {
                    needles.push(v[i..(i + 4).min(v.len())].iter().collect());
                }
            }
            for name in names {
                for n in &needles {
                    assert_eq!(
                        header_has(&p, name, n),
                        record_has(&r, name, n),
                        "{name} {n:?} in {raw:?}"
                    );
                    assert_eq!(
                        record_has(&flat, name, n),
                        record_has(&r, name, n),
                        "{name} {n:?} in {raw:?}, ungrouped"
                    );
                }
            }
        }
    }
}

/// The needle lower-cased, without a copy when it is already.
fn lowered(needle: &str) -> std::borrow::Cow<'_, str> {
    match needle.is_ascii() && !needle.bytes().any(|b| b.is_ascii_uppercase()) {
        true => needle.into(),
        false => needle.to_lowercase().into(),
    }
}

/// [`header_has`] over a searchable head: a field of that name holds the needle (an
/// address's `mailbox@host` only for a needle with `@`). The record holds exactly the
/// fields `header_has` compares (`session::searchable`), so the answers are the same.
/// A name outside the record's first part reads its second, whose CRC the caller has
/// checked ([`walks_rest`]).
fn record_has(r: &Record, name: &str, needle: &str) -> bool {
    let needle = lowered(needle);
    let needle = &*needle;
    let across = needle.contains('@');
    let name = name.as_bytes();
    let hit = |(n, at_only, v): Field| {
        n.eq_ignore_ascii_case(name)
            && (!at_only || across)
            && if needle.is_ascii() {
                contains_ascii_ci(v, needle.as_bytes())
            } else {
                std::str::from_utf8(v).is_ok_and(|v| contains_ci(v, needle))
            }
    };
    // Every field of the name is in one part (in the first, in one group): only that
    // part (group) is walked.
    match in_first_part(name) {
        true => r.first_fields_named(name).any(hit),
        false => r.rest_fields().any(hit),
    }
}

fn head_has(h: Head, name: &str, needle: &str) -> bool {
    match h {
        Head::Parsed(p) => header_has(p, name, needle),
        Head::Record(r) => record_has(&r, name, needle),
    }
}

/// Does any `name: value` line of the decoded headers match? Address fields also
/// match on the envelope's addresses, group names included (as Dovecot does).
fn header_has(p: &ParsedMessage, name: &str, needle: &str) -> bool {
    // Called once per message of a pass: nothing is allocated unless it must be.
    let needle = lowered(needle);
    let needle = &*needle;
    let env = &p.envelope;
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    let list = if is("from") {
        Some(&env.from)
    } else if is("to") {
        Some(&env.to)
    } else if is("cc") {
        Some(&env.cc)
    } else if is("bcc") {
        Some(&env.bcc)
    } else {
        None
    };
    // Unstructured fields also match their raw text (Message-ID with its brackets...).
    let raw = if is("subject") {
        env.subject.as_deref()
    } else if is("message-id") {
        env.message_id.as_deref()
    } else if is("in-reply-to") {
        env.in_reply_to.as_deref()
    } else if is("date") {
        env.date.as_deref()
    } else {
        None
    };
    if raw.is_some_and(|r| contains_ci(r, needle)) {
        return true;
    }
    if let Some(list) = list {
        // A needle without `@` is in `mailbox@host` only if it is in one of the two.
        let across = needle.contains('@');
        let hit = list.iter().any(|a| {
            [&a.name, &a.mailbox, &a.host]
                .iter()
                .any(|f| f.as_deref().is_some_and(|f| contains_ci(f, needle)))
                || (across && a.email().is_some_and(|e| contains_ci(&e, needle)))
        });
        if hit {
            return true;
        }
    }
    p.search_headers.lines().any(|l| {
        let Some((n, v)) = l.split_once(':') else {
            return false;
        };
        n.trim().eq_ignore_ascii_case(name) && contains_ci(v.trim_start(), needle)
    })
}

fn sent_day(h: Head, m: &MessageMeta) -> i64 {
    match h {
        Head::Parsed(p) => p
            .envelope
            .date
            .as_deref()
            .and_then(header_date_day)
            .or(p.sent_date.map(|t| t.div_euclid(86_400))),
        Head::Record(r) => r.sent_day(),
    }
    .unwrap_or(m.internal_date.div_euclid(86_400))
}

fn eval(k: &SearchKey, c: &Ctx, cand: &Cand, m: &MessageMeta, p: Option<Head>) -> bool {
    use SearchKey::*;
    let day = m.internal_date.div_euclid(86_400);
    let has = |f: Flags| m.flags.contains(f);
    let kw = |k: &str| m.keywords.iter().any(|x| x.eq_ignore_ascii_case(k));
    let hdr = |name: &str, s: &str| p.is_some_and(|p| head_has(p, name, s));
    // BODY, TEXT and THREADID are evaluated on the parse only (never on a record).
    let parsed = p.and_then(Head::parsed);
    match k {
        All => true,
        Answered => has(Flags::ANSWERED),
        Deleted => has(Flags::DELETED),
        Draft => has(Flags::DRAFT),
        Flagged => has(Flags::FLAGGED),
        Seen => has(Flags::SEEN),
        Unanswered => !has(Flags::ANSWERED),
        Undeleted => !has(Flags::DELETED),
        Undraft => !has(Flags::DRAFT),
        Unflagged => !has(Flags::FLAGGED),
        Unseen => !has(Flags::SEEN),
        Recent => cand.recent,
        New => cand.recent && !has(Flags::SEEN),
        Old => !cand.recent,
        Keyword(k) => kw(k),
        Unkeyword(k) => !kw(k),
        Before(d) => day < *d,
        On(d) => day == *d,
        Since(d) => day >= *d,
        SentBefore(d) => p.is_some_and(|p| sent_day(p, m) < *d),
        SentOn(d) => p.is_some_and(|p| sent_day(p, m) == *d),
        SentSince(d) => p.is_some_and(|p| sent_day(p, m) >= *d),
        Larger(n) => m.size > *n,
        Smaller(n) => m.size < *n,
        Bcc(s) => hdr("Bcc", s),
        Cc(s) => hdr("Cc", s),
        From(s) => hdr("From", s),
        To(s) => hdr("To", s),
        Subject(s) => hdr("Subject", s),
        Header(name, s) => hdr(name, s),
        Body(s) => parsed.is_some_and(|p| contains_ci(&p.search_body, &s.to_lowercase())),
        Text(s) => parsed.is_some_and(|p| {
            let n = s.to_lowercase();
            contains_ci(&p.search_headers, &n) || contains_ci(&p.search_body, &n)
        }),
        Uid(set) => in_set(set, cand.uid, c.max_uid, Some(c.saved)),
        Seq(SequenceSet::Saved) => c.saved.contains(&cand.uid),
        Seq(set) => in_set(set, cand.seq, c.max_seq, None),
        ModSeq(n) => m.modseq >= *n,
        Not(k) => !eval(k, c, cand, m, p),
        Or(a, b) => eval(a, c, cand, m, p) || eval(b, c, cand, m, p),
        And(v) => v.iter().all(|k| eval(k, c, cand, m, p)),
        Younger(n) => m.internal_date >= c.now.saturating_sub(*n as i64),
        Older(n) => m.internal_date < c.now.saturating_sub(*n as i64),
        EmailId(id) => objectid::email_id(m) == *id,
        ThreadId(id) => parsed.is_some_and(|p| objectid::thread_id(p, m) == *id),
    }
}

pub async fn run(
    s: &mut Session,
    tag: &str,
    uid: bool,
    charset: Option<&str>,
    returns: Option<Vec<SearchReturn>>,
    key: SearchKey,
) -> Result<Reply, Fatal> {
    if let Some(cs) = charset {
        if !cs.eq_ignore_ascii_case("UTF-8") && !cs.eq_ignore_ascii_case("US-ASCII") {
            return Ok(Reply::no("Unsupported charset").code("BADCHARSET (UTF-8 US-ASCII)"));
        }
    }
    let rev1 = s.rev1();
    let with_modseq = uses_modseq(&key);
    if with_modseq {
        s.enable_condstore(true);
    }
    let Some(sel) = s.selected() else {
        return Ok(Reply::bad("No mailbox selected"));
    };
    let sel = selection(sel, &s.indexes);
    let r = s
        .ctx
        .store
        .run(move |st| {
            let mut hits: Vec<(u32, u32, u64)> = Vec::new();
            scan(st, &sel, &key, false, |cand, m, _| {
                hits.push((cand.seq, cand.uid, m.modseq))
            })?;
            Ok(hits)
        })
        .await;
    // Searchable heads this scan derived: kept in the store after the answer.
    crate::commands::fetch::write_stored_later(s);
    let hits = match r {
        Ok(h) => h,
        Err(e) => return Ok(store_error(&e)),
    };
    let nums: Vec<u32> = hits
        .iter()
        .map(|&(seq, u, _)| if uid { u } else { seq })
        .collect();
    let esearch = returns.is_some() || !rev1;
    let returns = returns.unwrap_or_default();
    let returns: Vec<SearchReturn> = if returns.is_empty() {
        vec![SearchReturn::All]
    } else {
        returns
    };
    if returns.contains(&SearchReturn::Save) {
        if let Some(sel) = s.selected_mut() {
            sel.saved = hits.iter().map(|h| h.1).collect();
        }
    }
    // RFC 7162 3.1.5: the highest MODSEQ of what is returned.
    let min_max_only = returns
        .iter()
        .all(|r| matches!(r, SearchReturn::Min | SearchReturn::Max));
    let modseq = if !with_modseq || hits.is_empty() {
        None
    } else if esearch && min_max_only {
        let mut m = 0;
        if returns.contains(&SearchReturn::Min) {
            m = m.max(hits[0].2);
        }
        if returns.contains(&SearchReturn::Max) {
            m = m.max(hits[hits.len() - 1].2);
        }
        Some(m)
    } else {
        hits.iter().map(|h| h.2).max()
    };
    let mut out = String::new();
    if !esearch {
        out.push_str("* SEARCH");
        for n in &nums {
            out.push_str(&format!(" {n}"));
        }
        if let Some(m) = modseq {
            out.push_str(&format!(" (MODSEQ {m})"));
        }
        out.push_str("\r\n");
    } else if returns.iter().any(|r| *r != SearchReturn::Save) {
        let mut q = Vec::new();
        crate::response::quoted(&mut q, tag.as_bytes());
        out.push_str(&format!("* ESEARCH (TAG {})", String::from_utf8_lossy(&q)));
        if uid {
            out.push_str(" UID");
        }
        for r in &returns {
            match r {
                SearchReturn::Min if !nums.is_empty() => out.push_str(&format!(" MIN {}", nums[0])),
                SearchReturn::Max if !nums.is_empty() => {
                    out.push_str(&format!(" MAX {}", nums[nums.len() - 1]))
                }
                SearchReturn::All if !nums.is_empty() => {
                    out.push_str(&format!(" ALL {}", sequence_set(&nums)))
                }
                SearchReturn::Count => out.push_str(&format!(" COUNT {}", nums.len())),
                _ => {}
            }
        }
        if let Some(m) = modseq {
            out.push_str(&format!(" MODSEQ {m}"));
        }
        out.push_str("\r\n");
    }
    s.conn.push(out.as_bytes());
    Ok(Reply::ok("SEARCH completed"))
}

//! The per-mailbox message cache shared by the sessions of one serve process (issue 18):
//! what SEARCH of header keys (RFC 9051 6.4.4), SORT and THREAD (RFC 5256) and FETCH
//! BODY/BODYSTRUCTURE (RFC 9051 7.5.2) read of each message, decoded once and then kept
//! in memory, so that a second pass over a big mailbox scans memory and never the store.
//! Dovecot's `dovecot.index.cache` plays this part for it (the header fields and
//! BODYSTRUCTURE clients asked for before, per mailbox).
//!
//! - Per message, the *head* ([`Backend::heads_many`]: envelope, sent date, decoded
//!   top-level header fields, sort fields), the MIME tree ([`Backend::roots_many`]) and
//!   FETCH ENVELOPE's answer rendered ([`MsgCache::envelopes`], per UTF8=ACCEPT state:
//!   as rendered at delivery, [`Backend::envelopes_rendered_many`], else from
//!   [`Backend::envelopes_many`]), each filled the first time a command needs it
//!   (lazily: a mailbox nobody searches costs nothing), from the store's compact forms.
//! - Keyed by mailbox row id, UIDVALIDITY and UID. A UID names the same octets for as
//!   long as the UIDVALIDITY lasts (RFC 9051 2.3.1.1; a rewritten message gets a new UID,
//!   `crates/store/src/replace.rs`), so an entry never goes stale: nothing has to be
//!   invalidated when flags change or messages arrive, and an expunged message's entry
//!   is dropped when its mailbox's entries outnumber its messages ([`MsgCache::retain`]).
//!   A recreated mailbox has a new UIDVALIDITY and starts empty.
//! - Bounded by `[imap] index_cache_bytes` (an estimate of the heap the decoded entries
//!   take, all mailboxes together): past it, the mailboxes used least recently are
//!   dropped whole, and read from the store again when next needed. 0 keeps nothing
//!   (every command then reads the store, as without this cache).
//!
//! - Derived from the head, per message, what THREAD (RFC 5256) compares
//!   ([`MsgCache::thread_keys`]): the sent date, the base subject (section 2.1) and the
//!   Message-ID and parent IDs, each string interned to a number per mailbox (equal
//!   strings, equal numbers), so that a THREAD over a cached mailbox neither parses,
//!   case-maps nor hashes a string: Dovecot keeps the same per message in its
//!   `dovecot.index.thread`. The numbers are those of one mailbox entry: a set of keys
//!   handed out together always comes from one entry, and an entry dropped (or
//!   recreated) starts its numbering anew.
//!   Missing keys are derived from the sort keys made at delivery
//!   (`letterbox_message::sortkeys`, [`Backend::sortkeys_many`]: one range scan over
//!   the mailbox's rows), or from the heads for messages stored before those.
//! - SORT (DATE)'s sent dates ([`MsgCache::sent_dates`]): from THREAD's keys when they
//!   are made, else read alone from the same records ([`Backend::sent_dates_many`]: the
//!   date in place, no string decoded, numbered or case-mapped) and kept per message,
//!   so the first SORT (DATE) of a big mailbox does not pay for THREAD's keys.
//!
//! - Per message, FETCH BODYSTRUCTURE's answer rendered ([`MsgCache::bodystructures`]),
//!   as Dovecot's cache keeps the BODYSTRUCTURE string: a `FETCH 1:* (BODYSTRUCTURE)`
//!   over a cached mailbox copies octets. One rendering per UTF8=ACCEPT state (RFC 9051
//!   7.5.2, RFC 6855 3: strings are written differently once UTF-8 is enabled).
//! - The renderings are also kept in the store, in chunks of [`STORED_SPAN`] consecutive
//!   UIDs per mailbox ([`Backend::save_message_cache`]), queued by a read of at least
//!   [`STORED_MIN`] messages from the store and written after the command's answer,
//!   each chunk once ([`MsgCache::write_stored`]), and read back when such a read misses the
//!   memory (the first FETCH BODYSTRUCTURE after a start): one sequential read of
//!   rendered octets instead of every message's stored MIME tree through a join, its
//!   decoding and rendering. The rules that keep memory correct keep the store correct:
//!   a chunk is kept only for its mailbox's current UIDVALIDITY (the store checks it on
//!   write, this cache on read), a UID names the same octets for as long as it lasts, so
//!   a stored entry is never stale; a rewrite of a chunk keeps exactly the messages
//!   found in the UID range it read (expunged ones leave then), and a chunk that does
//!   not decode, or has another [`STORED_MAGIC`] (another rendering), is ignored and
//!   written again.
//! - A message has its BODYSTRUCTURE rendered at delivery, from the one parse, with the
//!   same functions (`letterbox_message::imap`), kept with its blob and copied per
//!   message row ([`Backend::bodystructures_many`]): the first FETCH BODYSTRUCTURE of a
//!   mailbox, ever or after a start, copies those octets (one range scan over the
//!   mailbox's copies) instead of decoding and rendering every MIME tree. They are read
//!   before the chunks above and never written to them (until 2026-12 they were, and a
//!   first read of a 100,000-message mailbox wrote some 14 MB of chunks repeating
//!   them); the chunks keep the renderings of messages stored before, and those a
//!   UTF8=ACCEPT session renders otherwise.
//! - Per message, the *searchable head* SEARCH's header keys scan in place
//!   ([`MsgCache::searchable`], `session::searchable`), kept in memory. A message's
//!   record is made at delivery from the one parse and kept by the store per message
//!   row ([`Backend::searchables_many`]: one range scan over the mailbox's copies), so
//!   the first header search, ever or after a start, reads records and decodes no head;
//!   the records of one read are kept together in one buffer, with their UIDs and
//!   places in a sorted list (`Records`), not one allocation and map entry each.
//!   One stored before those records (none kept) is searched on its decoded head, and
//!   its record made after the command's answer, from that head, and kept in the store
//!   the same way as the renderings (kind [`searchable::KIND`], chunks starting with
//!   [`searchable::MAGIC`]), read after the store's records for the messages they lack;
//!   each record carries a CRC and is checked when read from the store (a damaged one
//!   is derived from the head again, never written back as it was). (Until 2026-12 the
//!   chunks held every record searched, duplicating the store's copies: read first,
//!   they cost more than the range scan; the store drops those chunks once, see
//!   `letterbox_store` migrations.)
//!
//! The answers are those of the store's: an entry is exactly what the store returned
//! (or, for a rendering, what FETCH renders from it).

use letterbox_message::sortkeys::{SortKeys, SortKeysRef};
use letterbox_message::{Address, Envelope, ParsedMessage, Part, PartKind};
use super::searchable;
use letterbox_store::{Backend, MailboxId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Estimated heap kept for all mailboxes together, by default: 256 MiB holds the heads
/// and MIME trees of some 150,000-250,000 typical messages.
pub const DEFAULT_INDEX_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Heads read from the store at a time when THREAD's keys are derived (as SEARCH reads
/// a chunk of messages per query).
const HEAD_CHUNK: usize = 512;

/// Estimated heap of one kept sent date ([`MsgCache::sent_dates`]): a map entry of a UID
/// and a date, with the map's spare room.
const DATE_BYTES: u64 = 24;

/// The store's kinds of entries ([`Backend::save_message_cache`]): BODYSTRUCTURE
/// rendered without, then with UTF8=ACCEPT.
const KIND_BODYSTRUCTURE: [u8; 2] = [1, 2];

/// UIDs per chunk of the store's copy: a chunk holds some 100 KB of renderings, read
/// whole when one of its messages is missed.
pub const STORED_SPAN: u32 = 256;

/// Fewest messages a read takes from the store before the store's copy is read and
/// written: below it (a message or two just arrived) their own rows are cheaper than
/// reading and rewriting a chunk.
pub const STORED_MIN: usize = 32;

/// The first octets of the store's chunks of `kind`.
fn magic(kind: u8) -> &'static [u8; 4] {
    if kind == searchable::KIND {
        searchable::MAGIC
    } else {
        STORED_MAGIC
    }
}

/// What a header key is evaluated on ([`MsgCache::searchable`]).
pub enum Searchable {
    /// The searchable head (`session::searchable`).
    Record(KeptRecord),
    /// The decoded head, while the record is not made yet.
    Head(Arc<ParsedMessage>),
}

/// Reads what the store keeps per message of some UIDs ([`MsgCache::stored_or_derive`]).
type KeptRead<'a> = dyn Fn(&[u32]) -> letterbox_store::Result<Vec<(u32, Vec<u8>)>> + 'a;

/// One searchable head kept in memory: its place in a block of records
/// ([`Records`]), or a record of its own (made from the head, or read from IMAP's
/// chunks, for a message stored before the store kept records).
#[derive(Clone)]
pub struct KeptRecord {
    block: Arc<Vec<u8>>,
    start: u32,
    end: u32,
}

impl KeptRecord {
    fn whole(block: Arc<Vec<u8>>) -> KeptRecord {
        let end = block.len() as u32;
        KeptRecord { block, start: 0, end }
    }

    /// The record's octets.
    pub fn octets(&self) -> &[u8] {
        &self.block[self.start as usize..self.end as usize]
    }
}

/// Estimated heap of one entry of [`Records::at`] (the octets counted apart).
const RECORD_ENTRY_BYTES: u64 = 16;

/// Estimated heap of one block of [`Records`] besides its octets.
const RECORD_BLOCK_BYTES: u64 = 64;

/// The searchable heads of one mailbox read from the store's records
/// ([`Backend::searchables_many`]), kept as read: the records of one read in one buffer
/// (a block), and per UID where its record is, by ascending UID. A first search of a
/// big mailbox so keeps a block per chunk of the scan, not a buffer, a shared pointer
/// and a map entry per message (which cost a fifth of the first search at 10,000).
#[derive(Default)]
struct Records {
    blocks: Vec<Arc<Vec<u8>>>,
    /// (UID, block, start, end), by ascending UID, each UID once.
    at: Vec<(u32, u32, u32, u32)>,
}

impl Records {
    fn len(&self) -> usize {
        self.at.len()
    }

    fn get(&self, uid: u32) -> Option<KeptRecord> {
        let i = self.at.binary_search_by_key(&uid, |e| e.0).ok()?;
        let (_, b, start, end) = self.at[i];
        Some(KeptRecord {
            block: self.blocks[b as usize].clone(),
            start,
            end,
        })
    }

    /// Adds a block and its records ((UID, start, end), ascending UIDs); the heap added.
    fn add(&mut self, block: Arc<Vec<u8>>, at: &[(u32, u32, u32)]) -> u64 {
        let b = self.blocks.len() as u32;
        let mut added = RECORD_BLOCK_BYTES + block.len() as u64;
        self.blocks.push(block);
        let sorted = match (self.at.last(), at.first()) {
            (Some(last), Some(first)) => last.0 < first.0,
            _ => true,
        };
        self.at.extend(at.iter().map(|&(u, s, e)| (u, b, s, e)));
        added += RECORD_ENTRY_BYTES * at.len() as u64;
        if !sorted {
            // Read again meanwhile (another session): the first copy stays.
            let before = self.at.len();
            self.at.sort_by_key(|e| e.0);
            self.at.dedup_by_key(|e| e.0);
            added -= RECORD_ENTRY_BYTES * (before - self.at.len()) as u64;
        }
        added
    }

    /// Drops the records of the UIDs `alive` refuses, and the blocks left without
    /// records; the heap freed (a block's octets only with its last record).
    fn retain(&mut self, alive: impl Fn(u32) -> bool) -> u64 {
        let before = self.at.len();
        self.at.retain(|e| alive(e.0));
        let mut freed = RECORD_ENTRY_BYTES * (before - self.at.len()) as u64;
        let mut used = vec![false; self.blocks.len()];
        for e in &self.at {
            used[e.1 as usize] = true;
        }
        if used.iter().any(|u| !u) {
            let mut renumber = vec![0u32; self.blocks.len()];
            let mut kept = Vec::new();
            for (i, b) in std::mem::take(&mut self.blocks).into_iter().enumerate() {
                if used[i] {
                    renumber[i] = kept.len() as u32;
                    kept.push(b);
                } else {
                    freed += RECORD_BLOCK_BYTES + b.len() as u64;
                }
            }
            self.blocks = kept;
            for e in &mut self.at {
                e.1 = renumber[e.1 as usize];
            }
        }
        freed
    }

    /// The heap counted for these records.
    fn bytes(&self) -> u64 {
        self.blocks
            .iter()
            .map(|b| RECORD_BLOCK_BYTES + b.len() as u64)
            .sum::<u64>()
            + RECORD_ENTRY_BYTES * self.at.len() as u64
    }
}

/// A chunk read from the store: its octets and each entry's UID and place in them.
type StoredChunk = (Vec<u8>, Vec<(u32, Range<usize>)>);

/// The first octets of a stored chunk: the format and the version of the rendering
/// (`letterbox_message::imap::RENDERING`, changed whenever `body_structure` writes
/// other octets): chunks of an earlier rendering are then ignored and written again.
pub const STORED_MAGIC: &[u8; 4] = letterbox_message::imap::RENDERING;

/// Hashes a UID with one multiplication (Fibonacci hashing): the keys are small
/// integers chosen by the server, not by clients, so SipHash's protection against
/// chosen keys buys nothing here and costs most of a pass over a cached mailbox.
#[derive(Default, Clone, Copy)]
struct UidHasher(u64);

impl std::hash::Hasher for UidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type UidMap<T> = HashMap<u32, Arc<T>, std::hash::BuildHasherDefault<UidHasher>>;

/// A map by UID of what one call gathers (not kept): [`UidHasher`] as for [`UidMap`].
type UidKeyed<T> = HashMap<u32, T, std::hash::BuildHasherDefault<UidHasher>>;
type UidSet = std::collections::HashSet<u32, std::hash::BuildHasherDefault<UidHasher>>;

/// [`Names`]'s maps: the strings come from messages (chosen by senders), so the hash
/// is keyed (ahash, random keys per process) but much cheaper than SipHash on short
/// strings, which took a third of the first SORT (DATE) of a big mailbox.
type NameMap = HashMap<Box<str>, u32, ahash::RandomState>;

/// What THREAD compares of one message (RFC 5256 sections 2.1, 2.2 and 4), strings as
/// the numbers of their mailbox entry ([`MsgCache::thread_keys`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadKeys {
    /// The sent date (section 2.2).
    pub date: i64,
    /// The base subject, case-mapped; `None` when it is empty (never merged).
    pub subject: Option<u32>,
    /// The subject marked a reply or forward.
    pub refwd: bool,
    /// The first Message-ID.
    pub message_id: Option<u32>,
    /// The parent IDs: References (the last ones), else the first In-Reply-To ID.
    pub refs: Box<[u32]>,
}

/// THREAD's keys of some messages (UID, keys) and the count of names they number.
pub type Keyed = (Vec<(u32, Arc<ThreadKeys>)>, usize);

/// [`ThreadKeys`] with its strings, as derived from sort keys (before interning): the
/// IDs borrowed from the records read (or owned), so that only new names are copied.
#[derive(Debug, Clone, Default)]
pub struct ThreadText<'a> {
    pub date: i64,
    pub subject: Cow<'a, str>,
    pub refwd: bool,
    pub message_id: Option<Cow<'a, str>>,
    pub refs: Vec<Cow<'a, str>>,
}

/// The [`ThreadText`]s of one read ([`MsgCache::with_texts`]) by ascending UID, each
/// taken once ([`take`](Texts::take)): in the order the UIDs were asked a walk
/// forward, else a binary search; no map by UID.
struct Texts<'a> {
    texts: Vec<(u32, Option<ThreadText<'a>>)>,
    /// Where the next UID asked is looked for first.
    at: usize,
}

impl<'a> Texts<'a> {
    /// The text of `uid`, taken (`None` when it has none, or was taken before).
    fn take(&mut self, uid: u32) -> Option<ThreadText<'a>> {
        let i = match self.texts.get(self.at) {
            Some(t) if t.0 == uid => self.at,
            _ => self.texts.binary_search_by_key(&uid, |t| t.0).ok()?,
        };
        self.at = i + 1;
        self.texts[i].1.take()
    }
}

/// Numbers for the strings of [`ThreadKeys`]: subjects and IDs apart (a subject never
/// equals an ID), numbered from 0 in one sequence, so `len` bounds them all.
#[derive(Default)]
pub struct Names {
    subjects: NameMap,
    ids: NameMap,
    len: u32,
}

impl Names {
    /// How many numbers were given: every number is below it.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room for `n` more IDs (about one per message: its Message-ID, its parents mostly
    /// being other messages' IDs), so numbering a mailbox's first keys does not grow and
    /// rehash the map step by step. Subjects repeat, so their map grows as it goes.
    pub fn reserve(&mut self, n: usize) {
        self.ids.reserve(n);
    }

    /// The number of `s`; a new name keeps `s` itself (copied only when borrowed).
    fn number(map: &mut NameMap, len: &mut u32, s: Cow<'_, str>, bytes: &mut u64) -> u32 {
        if let Some(&n) = map.get(&*s) {
            return n;
        }
        let n = *len;
        *len += 1;
        *bytes += 48 + s.len() as u64;
        map.insert(s.into_owned().into_boxed_str(), n);
        n
    }

    /// Interns one message's strings (taking them); `bytes` grows by what was added.
    pub fn intern(&mut self, t: ThreadText<'_>, bytes: &mut u64) -> ThreadKeys {
        let subject = (!t.subject.is_empty()).then(|| {
            Self::number(&mut self.subjects, &mut self.len, t.subject, bytes)
        });
        let message_id = t
            .message_id
            .map(|id| Self::number(&mut self.ids, &mut self.len, id, bytes));
        let refs: Box<[u32]> = t
            .refs
            .into_iter()
            .map(|r| Self::number(&mut self.ids, &mut self.len, r, bytes))
            .collect();
        *bytes += 64 + 4 * refs.len() as u64;
        ThreadKeys {
            date: t.date,
            subject,
            refwd: t.refwd,
            message_id,
            refs,
        }
    }
}

/// What is kept of one mailbox.
#[derive(Default)]
struct Mailbox {
    uidvalidity: u32,
    heads: UidMap<ParsedMessage>,
    roots: UidMap<Part>,
    /// FETCH ENVELOPE's answers, rendered without and with UTF8=ACCEPT.
    envelopes: [UidMap<Vec<u8>>; 2],
    /// FETCH BODYSTRUCTURE's answers, rendered without and with UTF8=ACCEPT.
    rendered: [UidMap<Vec<u8>>; 2],
    /// What SEARCH's header keys compare (`session::searchable`), as the store kept
    /// it per message.
    records: Records,
    /// The same, for the messages stored before the store kept those (made from their
    /// heads, or read from IMAP's chunks).
    searchable: UidMap<Vec<u8>>,
    /// THREAD's keys and the names their numbers stand for.
    threads: UidMap<ThreadKeys>,
    /// SORT (DATE)'s sent dates (INTERNALDATE when there is none) of messages without
    /// THREAD's keys ([`MsgCache::sent_dates`]).
    dates: UidKeyed<i64>,
    names: Names,
    bytes: u64,
    used: u64,
}

#[derive(Default)]
struct Inner {
    boxes: HashMap<MailboxId, Mailbox>,
    bytes: u64,
    tick: u64,
}

/// A chunk of the store's copy waiting to be written ([`MsgCache::write_stored`]).
#[derive(Default)]
struct Pending {
    uidvalidity: u32,
    /// The UID ranges read (inclusive): in them, exactly the messages of `found`.
    read: Vec<(u32, u32)>,
    /// The messages found by those reads.
    found: std::collections::BTreeMap<u32, Arc<Vec<u8>>>,
    /// The chunk's entries as stored before, kept where no read covered them.
    before: std::collections::BTreeMap<u32, Vec<u8>>,
}

/// The cache of the process (one per IMAP service).
pub struct MsgCache {
    limit: u64,
    inner: Mutex<Inner>,
    /// Chunks of the store's copy to write, by mailbox, kind and chunk number.
    pending: Mutex<std::collections::BTreeMap<(MailboxId, u8, u32), Pending>>,
    /// Searchable heads to make after the command (mailbox, UIDVALIDITY, UIDs asked):
    /// [`searchable`](Self::searchable) answered those messages from their heads.
    deferred: Mutex<Vec<(MailboxId, u32, Vec<u32>)>>,
}

impl std::fmt::Debug for MsgCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgCache")
            .field("limit", &self.limit)
            .finish()
    }
}

impl Default for MsgCache {
    fn default() -> Self {
        MsgCache::new(DEFAULT_INDEX_CACHE_BYTES)
    }
}

fn opt(s: &Option<String>) -> u64 {
    s.as_ref().map_or(0, |s| s.len() as u64)
}

fn addrs(v: &[Address]) -> u64 {
    v.iter()
        .map(|a| 64 + opt(&a.name) + opt(&a.adl) + opt(&a.mailbox) + opt(&a.host))
        .sum()
}

fn envelope_bytes(e: &Envelope) -> u64 {
    opt(&e.date)
        + opt(&e.subject)
        + opt(&e.in_reply_to)
        + opt(&e.message_id)
        + [&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc]
            .iter()
            .map(|l| addrs(l))
            .sum::<u64>()
}

/// Estimated heap of a decoded head (strings, vectors, allocator overhead).
fn head_bytes(p: &ParsedMessage) -> u64 {
    let s = &p.sort;
    256 + envelope_bytes(&p.envelope)
        + p.search_headers.len() as u64
        + opt(&s.subject)
        + opt(&s.from_display)
        + opt(&s.to_display)
        + s.references
            .iter()
            .map(|r| 24 + r.len() as u64)
            .sum::<u64>()
}

/// Estimated heap of a decoded MIME tree.
fn part_bytes(p: &Part) -> u64 {
    let mut n = 200
        + (p.mime_type.len() + p.mime_subtype.len()) as u64
        + p.params
            .iter()
            .map(|(a, b)| 48 + (a.len() + b.len()) as u64)
            .sum::<u64>()
        + opt(&p.content_id)
        + opt(&p.description)
        + opt(&p.encoding)
        + opt(&p.md5)
        + opt(&p.location);
    if let Some(d) = &p.disposition {
        n += 64
            + d.0.len() as u64
            + d.1
                .iter()
                .map(|(a, b)| 48 + (a.len() + b.len()) as u64)
                .sum::<u64>();
    }
    n += p.language.iter().map(|x| 24 + x.len() as u64).sum::<u64>();
    match &p.kind {
        PartKind::Leaf => n,
        PartKind::Multipart(v) => n + v.iter().map(part_bytes).sum::<u64>(),
        PartKind::Message(e, inner) => n + envelope_bytes(e) + part_bytes(inner),
    }
}

impl MsgCache {
    pub fn new(limit: u64) -> MsgCache {
        MsgCache {
            limit,
            inner: Mutex::new(Inner::default()),
            pending: Mutex::default(),
            deferred: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The heads of `uids` (ascending or not) of a mailbox: from memory, the missing
    /// ones from the store (then kept). UIDs that do not exist are left out; the order
    /// is that of `uids`.
    pub fn heads(
        &self,
        st: &dyn Backend,
        mailbox: MailboxId,
        uidvalidity: u32,
        uids: &[u32],
    ) -> letterbox_store::Result<Vec<(u32, Arc<ParsedMessage>)>> {
        self.get_or_load(
            mailbox,
            uidvalidity,
            uids,
            |m| &mut m.heads,
            |missing| st.heads_many(mailbox, missing),
            head_bytes,
        )
    }

    /// The MIME trees of `uids`, as [`heads`](Self::heads) (offsets count from the start
    /// of the stored message, per-recipient prefix included, as the store gives them).
    pub fn roots(
        &self,
        st: &dyn Backend,
        mailbox: MailboxId,
        uidvalidity: u32,
        uids: &[u32],
    ) -> letterbox_store::Result<Vec<(u32, Arc<Part>)>> {
        self.get_or_load(
            mailbox,
            uidvalidity,
            uids,
            |m| &mut m.roots,
            |missing| st.roots_many(mailbox, missing),
            part_bytes,
        )
    }

    /// FETCH ENVELOPE's answers of `uids` (the octets after `ENVELOPE `), as
    /// [`heads`](Self::heads): from memory, else as rendered at delivery
    /// ([`Backend::envelopes_rendered_many`]: without UTF8=ACCEPT, and with it when no
    /// string needed a literal), else rendered here from the decoded envelopes
    /// ([`Backend::envelopes_many`]) with `letterbox_message::imap::envelope`, the same
    /// function the store renders with. Kept rendered (a few hundred octets a message,
    /// less than the decoded `Envelope` with its strings), so that a second FETCH
    /// ENVELOPE copies octets.
    pub fn envelopes(
        &self,
        st: &dyn Backend,
        mailbox: MailboxId,
        uidvalidity: u32,
        uids: &[u32],
        utf8: bool,
    ) -> letterbox_store::Result<Vec<(u32, Arc<Vec<u8>>)>> {
        self.get_or_load(
            mailbox,
            uidvalidity,
            uids,
            move |m| &mut m.envelopes[usize::from(utf8)],
            |missing| {
                let mut got = st.envelopes_rendered_many(mailbox, missing)?;
                if utf8 {
                    got.retain(|(_, r)| letterbox_message::imap::same_with_utf8(r));
                }
                if got.len() < missing.len() {
                    let have: UidSet = got.iter().map(|(u, _)| *u).collect();
                    let left: Vec<u32> =
                        missing.iter().copied().filter(|u| !have.contains(u)).collect();
                    got.extend(
                        st.envelopes_many(mailbox, &left)?
                            .into_iter()
                            .map(|(u, e)| (u, letterbox_message::imap::rendered_envelope(&e, utf8))),
                    );
                }
                Ok(got)
            },
            |r| 32 + r.len() as u64,
        )
    }

    /// FETCH BODYSTRUCTURE's answers of `uids` (the octets after `BODYSTRUCTURE `), as
    /// [`heads`](Self::heads): from memory, else as rendered at delivery
    /// ([`Backend::bodystructures_many`]), else from the store's chunks, else rendered
    /// by `render` from the MIME trees ([`Backend::roots_many`]); kept in memory, and
    /// those rendered here in the store's chunks. `render` must write what
    /// `letterbox_message::imap::bodystructure` writes (for `utf8`).
    pub fn bodystructures(
        &self,
        st: &dyn Backend,
        mailbox: MailboxId,
        uidvalidity: u32,
        uids: &[u32],
        utf8: bool,
        render: impl Fn(&Part) -> Vec<u8>,
    ) -> letterbox_store::Result<Vec<(u32, Arc<Vec<u8>>)>> {
        let kind = KIND_BODYSTRUCTURE[usize::from(utf8)];
        // Rendered at delivery (the same octets; without UTF8=ACCEPT, and with it when
        // no string needed a literal): read first, one range scan, never written to the
        // chunks, which would only repeat them.
        let delivered = |missing: &[u32]| -> letterbox_store::Result<Vec<(u32, Vec<u8>)>> {
            let mut got = st.bodystructures_many(mailbox, missing)?;
            if utf8 {
                got.retain(|(_, r)| letterbox_message::imap::same_with_utf8(r));
            }
            Ok(got)
        };
        self.stored_or_derive(
            st,
            mailbox,
            uidvalidity,
            uids,
            kind,
            move |m| &mut m.rendered[usize::from(utf8)],
            |_| true,
            Some(&delivered),
            |rest| {
                Ok(st
                    .roots_many(mailbox, rest)?
                    .into_iter()
                    .map(|(u, root)| (u, render(&root)))
                    .collect())
            },
        )
    }

    /// What SEARCH's header keys are evaluated on for `uids`, in no particular order,
    /// without the UIDs that do not exist: the searchable heads (`session::searchable`)
    /// from memory, else as made at delivery ([`Backend::searchables_many`]), else (for
    /// messages stored before those) from IMAP's chunks; the messages that have none yet are
    /// given as their decoded heads ([`heads`](Self::heads), kept in memory as they
    /// are), and their records are made after the command, from those heads, by
    /// [`write_stored`](Self::write_stored) (so the first search ever of a mailbox costs
    /// what reading its heads costs, not that plus the records' making).
    pub fn searchable(
        &self,
        st: &dyn Backend,
        mailbox: MailboxId,
        uidvalidity: u32,
        uids: &[u32],
    ) -> letterbox_store::Result<Vec<(u32, Searchable)>> {
        let mut out = Vec::with_capacity(uids.len());
        let mut missing = Vec::new();
        {
            let mut inner = self.lock();
            match Self::kept_entry(&mut inner, mailbox, uidvalidity) {
                Some(m) => {
                    for &u in uids {
                        if let Some(r) = m.records.get(u) {
                            out.push((u, Searchable::Record(r)));
                        } else if let Some(v) = m.searchable.get(&u) {
                            out.push((u, Searchable::Record(KeptRecord::whole(v.clone()))));
                        } else {
                            missing.push(u);
                        }
                    }
                }
                None => missing.extend_from_slice(uids),
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        // Made at delivery: the store's records, in one block.
        let got = st.searchables_many(mailbox, &missing)?;
        let mut block = Vec::with_capacity(got.iter().map(|(_, v)| v.len()).sum());
        let mut at = Vec::with_capacity(got.len());
        for (u, v) in &got {
            let start = block.len() as u32;
            block.extend_from_slice(v);
            at.push((*u, start, block.len() as u32));
        }
        drop(got);
        let block = Arc::new(block);
        if self.limit > 0 && !at.is_empty() {
            self.keep_records(mailbox, uidvalidity, &block, &at);
        }
        let rest: Vec<u32> = if at.len() < missing.len() {
            let have: UidSet = at.iter().map(|e| e.0).collect();
            missing.into_iter().filter(|u| !have.contains(u)).collect()
        } else {
            Vec::new()
        };
        out.extend(at.iter().map(|&(u, start, end)| {
            let block = block.clone();
            (u, Searchable::Record(KeptRecord { block, start, end }))
        }));
        if rest.is_empty() {
            return Ok(out);
        }
        // Stored before the records: from memory or IMAP's chunks, else the decoded
        // heads, their records made after the answer.
        let mut heads = Vec::new();
        let records = self.stored_or_derive(
            st,
            mailbox,
            uidvalidity,
            &rest,
            searchable::KIND,
            |m| &mut m.searchable,
            searchable::valid,
            None,
            |rest| {
                heads = self.heads(st, mailbox, uidvalidity, rest)?;
                Ok(Vec::new())
            },
        )?;
        if !heads.is_empty() && self.limit > 0 {
            self.deferred
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((mailbox, uidvalidity, rest));
        }
        out.extend(
            records
                .into_iter()
                .map(|(u, r)| (u, Searchable::Record(KeptRecord::whole(r)))),
        );
        out.extend(heads.into_iter().map(|(u, h)| (u, Searchable::Head(h))));
        Ok(out)
    }

    /// Keeps a block of the store's records ([`Records`]) of a mailbox, within the
    /// budget, as [`get_or_load`](Self::get_or_load) keeps entries.
    fn keep_records(
        &self,
        mailbox: MailboxId,
        uidvalidity: u32,
        block: &Arc<Vec<u8>>,
        at: &[(u32, u32, u32)],
    ) {
        let weight = RECORD_BLOCK_BYTES
            + block.len() as u64
            + RECORD_ENTRY_BYTES * at.len() as u64;
        if weight > self.limit {
            return;
        }
        let mut inner = self.lock();
        let dropped = Self::use_entry(&mut inner, mailbox, uidvalidity);
        let m = inner.boxes.entry(mailbox).or_default();
        let grown = m.records.add(block.clone(), at);
        m.bytes += grown;
        inner.bytes = inner.bytes.saturating_sub(dropped) + grown;
        Self::shrink(&mut inner, self.limit, mailbox);
    }

    /// Makes the searchable heads [`searchable`](Self::searchable) left for later, from
    /// the heads (in memory then), keeps them in memory and queues the store's chunks.
    fn make_deferred(&self, st: &dyn Backend) {
        let deferred = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|e| e.into_inner()));
        for (mailbox, uidvalidity, uids) in deferred {
            let made = self.stored_or_derive(
                st,
                mailbox,
                uidvalidity,
                &uids,
                searchable::KIND,
                |m| &mut m.searchable,
                searchable::valid,
                None,
                |rest| {
                    Ok(self
                        .heads(st, mailbox, uidvalidity, rest)?
                        .iter()
                        .map(|(u, h)| (*u, searchable::encode(h)))
                        .collect())
                },
            );
            if let Err(e) = made {
                tracing::debug!("imap: making searchable heads: {e}");
            }
        }
    }

    /// Per-message octets kept in memory and in the store's chunks of `kind`: from
    /// memory, else as the store keeps them per message (`kept`, when given: never
    /// written to the chunks), else from the store's chunks (the entries `usable`
    /// accepts), else made by `derive` and then queued for the store
    /// ([`write_stored`](Self::write_stored)).
    #[allow(clippy::too_many_arguments)]
    fn stored_or_derive(
        &self,
        st: &dyn Backend,
        mailbox: MailboxId,
        uidvalidity: u32,
        uids: &[u32],
        kind: u8,
        map: impl Fn(&mut Mailbox) -> &mut UidMap<Vec<u8>>,
        usable: impl Fn(&[u8]) -> bool,
        kept: Option<&KeptRead>,
        derive: impl FnOnce(&[u32]) -> letterbox_store::Result<Vec<(u32, Vec<u8>)>>,
    ) -> letterbox_store::Result<Vec<(u32, Arc<Vec<u8>>)>> {
        let magic = magic(kind);
        // The store's chunks read (octets, where each entry is) and the UIDs made anew.
        let mut stored: Vec<StoredChunk> = Vec::new();
        let mut fresh: Vec<u32> = Vec::new();
        let keep = self.limit > 0;
        let out = self.get_or_load(
            mailbox,
            uidvalidity,
            uids,
            map,
            |missing| {
                let (mut got, mut rest) = match kept {
                    Some(kept) => {
                        let got = kept(missing)?;
                        let mut rest = Vec::new();
                        if got.len() < missing.len() {
                            let have: UidSet = got.iter().map(|e| e.0).collect();
                            rest.extend(missing.iter().copied().filter(|u| !have.contains(u)));
                        }
                        (got, rest)
                    }
                    None => (Vec::with_capacity(missing.len()), missing.to_vec()),
                };
                let mut rest: std::collections::BTreeSet<u32> = rest.drain(..).collect();
                if keep && rest.len() >= STORED_MIN {
                    let (lo, hi) = (rest.first().copied(), rest.last().copied());
                    let (lo, hi) = (lo.unwrap_or(0) / STORED_SPAN, hi.unwrap_or(0) / STORED_SPAN);
                    match st.load_message_cache(mailbox, kind, lo, hi) {
                        Ok(chunks) => {
                            for (n, v, data) in chunks {
                                match decode_chunk(magic, &data) {
                                    Some(mut entries) if v == uidvalidity => {
                                        // Damaged entries are made anew (and not kept).
                                        entries.retain(|(_, at)| usable(&data[at.clone()]));
                                        stored.push((data, entries))
                                    }
                                    Some(_) => {}
                                    None => tracing::debug!(
                                        "imap: stored cache chunk {n} of mailbox #{mailbox} does not decode (ignored)"
                                    ),
                                }
                            }
                        }
                        Err(e) => tracing::debug!("imap: reading the stored cache: {e}"),
                    }
                    for (data, entries) in &stored {
                        for (u, at) in entries {
                            if rest.remove(u) {
                                got.push((*u, data[at.clone()].to_vec()));
                            }
                        }
                    }
                }
                if !rest.is_empty() {
                    let rest: Vec<u32> = rest.into_iter().collect();
                    for (u, v) in derive(&rest)? {
                        fresh.push(u);
                        got.push((u, v));
                    }
                }
                Ok(got)
            },
            |v| 32 + v.len() as u64,
        )?;
        if keep && fresh.len() >= STORED_MIN {
            self.queue_chunks(mailbox, uidvalidity, kind, uids, &out, stored, &fresh);
        }
        Ok(out)
    }

    /// Queues the store's chunks that hold a UID of `fresh`, and merges this read into
    /// those already queued for the UIDs asked: the entries of `out` (all the messages
    /// of the UIDs asked that exist) and, outside the range of UIDs asked, those of the
    /// chunks read before (`stored`). Written by [`write_stored`](Self::write_stored)
    /// after the command, each chunk once however many batches touched it.
    #[allow(clippy::too_many_arguments)]
    fn queue_chunks(
        &self,
        mailbox: MailboxId,
        uidvalidity: u32,
        kind: u8,
        uids: &[u32],
        out: &[(u32, Arc<Vec<u8>>)],
        stored: Vec<StoredChunk>,
        fresh: &[u32],
    ) {
        let lo = uids.iter().copied().min().unwrap_or(0);
        let hi = uids.iter().copied().max().unwrap_or(0);
        let mut queue = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut touched: std::collections::BTreeSet<u32> =
            fresh.iter().map(|u| u / STORED_SPAN).collect();
        touched.extend(
            queue
                .range((mailbox, kind, lo / STORED_SPAN)..=(mailbox, kind, hi / STORED_SPAN))
                .filter(|(_, p)| p.uidvalidity == uidvalidity)
                .map(|(k, _)| k.2),
        );
        for &n in &touched {
            let p = queue.entry((mailbox, kind, n)).or_default();
            if p.uidvalidity != uidvalidity {
                *p = Pending {
                    uidvalidity,
                    ..Pending::default()
                };
            }
            let (first, last) = (n * STORED_SPAN, n.saturating_mul(STORED_SPAN) + (STORED_SPAN - 1));
            p.read.push((lo.max(first), hi.min(last)));
        }
        for (data, entries) in &stored {
            for (u, at) in entries {
                if *u < lo || *u > hi {
                    if let Some(p) = queue.get_mut(&(mailbox, kind, u / STORED_SPAN)) {
                        if touched.contains(&(u / STORED_SPAN)) {
                            p.before.entry(*u).or_insert_with(|| data[at.clone()].to_vec());
                        }
                    }
                }
            }
        }
        for (u, b) in out {
            if touched.contains(&(u / STORED_SPAN)) {
                if let Some(p) = queue.get_mut(&(mailbox, kind, u / STORED_SPAN)) {
                    p.found.insert(*u, b.clone());
                }
            }
        }
    }

    /// Whether chunks wait to be written ([`write_stored`](Self::write_stored)).
    pub fn has_stored_pending(&self) -> bool {
        !self.pending.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
            || !self.deferred.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Makes the searchable heads left for later ([`searchable`](Self::searchable)), then
    /// writes the queued chunks of the store's copy, each once: the messages found by
    /// the reads that queued it and, outside the UID ranges those reads covered, the
    /// entries of the chunk as it was read (an expunged message, absent from a range
    /// read, is not written back). Called after the command's answer, off its path.
    /// Best effort: a failure costs speed; the store refuses a chunk of a UIDVALIDITY
    /// that is no longer the mailbox's.
    pub fn write_stored(&self, st: &dyn Backend) {
        self.make_deferred(st);
        let queue = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for ((mailbox, kind, n), p) in queue {
            let mut entries: std::collections::BTreeMap<u32, &[u8]> = p
                .before
                .iter()
                .filter(|(u, _)| !p.read.iter().any(|&(a, b)| a <= **u && **u <= b))
                .map(|(u, b)| (*u, b.as_slice()))
                .collect();
            entries.extend(p.found.iter().map(|(u, b)| (*u, b.as_slice())));
            let data = encode_chunk(magic(kind), entries.into_iter());
            if let Err(e) = st.save_message_cache(mailbox, kind, n, p.uidvalidity, data) {
                tracing::debug!("imap: keeping the stored cache: {e}");
            }
        }
    }

    /// THREAD's texts of the messages `(uid, INTERNALDATE)` handed to `f` (not kept
    /// here) as [`Texts`], derived by `derive` from their sort keys
    /// (`letterbox_message::sortkeys`): those made at delivery, read in one call
    /// ([`Backend::sortkeys_many`]: one range scan over the rows, by ascending UID) and
    /// decoded in place (the IDs borrowed from the records, so only new names are ever
    /// copied), the others (stored before, or a record that does not read) made from
    /// their heads ([`heads`](Self::heads)), a chunk of [`HEAD_CHUNK`] at a time. UIDs
    /// that do not exist are left out. The messages are walked in UID order beside the
    /// records: no map by UID is built (three such maps of 100,000 entries were a
    /// fifth of a first THREAD of a big mailbox).
    fn with_texts<R>(
        &self,
        st: &dyn Backend,
        mailbox: MailboxId,
        uidvalidity: u32,
        msgs: &[(u32, i64)],
        derive: &impl for<'a> Fn(SortKeysRef<'a>, i64) -> ThreadText<'a>,
        f: impl FnOnce(Texts<'_>) -> R,
    ) -> letterbox_store::Result<R> {
        // The messages by ascending UID (as asked, mostly: sequence order is UID order).
        let sorted: Cow<'_, [(u32, i64)]> = if msgs.windows(2).all(|w| w[0].0 < w[1].0) {
            Cow::Borrowed(msgs)
        } else {
            let mut v = msgs.to_vec();
            v.sort_unstable_by_key(|m| m.0);
            v.dedup_by_key(|m| m.0);
            Cow::Owned(v)
        };
        let uids: Vec<u32> = sorted.iter().map(|m| m.0).collect();
        let records = st.sortkeys_many(mailbox, &uids)?;
        // The INTERNALDATE of `u`, walking `sorted` forward as the UIDs asked ascend.
        let date_at = |at: &mut usize, u: u32| -> i64 {
            while *at < sorted.len() && sorted[*at].0 < u {
                *at += 1;
            }
            match sorted.get(*at) {
                Some(&(v, d)) if v == u => d,
                _ => sorted.binary_search_by_key(&u, |m| m.0).map_or(0, |i| sorted[i].1),
            }
        };
        let mut texts: Vec<(u32, Option<ThreadText<'_>>)> = Vec::with_capacity(sorted.len());
        let mut at = 0;
        for (u, r) in records.iter() {
            if let Some(k) = SortKeys::decode_ref(r) {
                let d = date_at(&mut at, u);
                texts.push((u, Some(derive(k, d))));
            }
        }
        let mut owned = Vec::new();
        if texts.len() < sorted.len() {
            if !texts.windows(2).all(|w| w[0].0 < w[1].0) {
                texts.sort_unstable_by_key(|t| t.0);
            }
            let left: Vec<u32> = uids
                .iter()
                .copied()
                .filter(|u| texts.binary_search_by_key(u, |t| t.0).is_err())
                .collect();
            for chunk in left.chunks(HEAD_CHUNK) {
                for (u, head) in self.heads(st, mailbox, uidvalidity, chunk)? {
                    owned.push((u, SortKeys::of(&head)));
                }
            }
        }
        let mut at = 0;
        for (u, k) in &owned {
            let d = date_at(&mut at, *u);
            texts.push((*u, Some(derive(k.as_ref(), d))));
        }
        if !texts.windows(2).all(|w| w[0].0 < w[1].0) {
            texts.sort_unstable_by_key(|t| t.0);
            texts.dedup_by_key(|t| t.0);
        }
        Ok(f(Texts { texts, at: 0 }))
    }

    /// SORT (DATE)'s key of the messages `(uid, INTERNALDATE)` (RFC 5256 2.2: the sent
    /// date, INTERNALDATE when there is none), in the order asked, without the UIDs
    /// that do not exist: from memory (THREAD's keys, or dates kept by an earlier
    /// call), the missing ones read in place from the sort keys made at delivery
    /// ([`Backend::sent_dates_many`]: one range scan, no strings decoded), the others
    /// (stored before) from their heads, and kept. THREAD's keys are left to THREAD:
    /// SORT reads only the dates.
    pub fn sent_dates(
        &self,
        st: &dyn Backend,
        mailbox: MailboxId,
        uidvalidity: u32,
        msgs: &[(u32, i64)],
    ) -> letterbox_store::Result<Vec<(u32, i64)>> {
        let mut out: Vec<(u32, Option<i64>)> = Vec::with_capacity(msgs.len());
        let mut missing = Vec::new();
        {
            let mut inner = self.lock();
            match Self::kept_entry(&mut inner, mailbox, uidvalidity) {
                Some(m) => {
                    for &(u, _) in msgs {
                        let known = match m.threads.get(&u) {
                            Some(k) => Some(k.date),
                            None => m.dates.get(&u).copied(),
                        };
                        if known.is_none() {
                            missing.push(u);
                        }
                        out.push((u, known));
                    }
                }
                None => {
                    out.extend(msgs.iter().map(|&(u, _)| (u, None)));
                    missing.extend(msgs.iter().map(|m| m.0));
                }
            }
        }
        if missing.is_empty() {
            return Ok(out.into_iter().map(|(u, d)| (u, d.unwrap_or(0))).collect());
        }
        // The sent dates found (`None`: the message has none), by UID.
        let mut found: UidKeyed<Option<i64>> =
            UidKeyed::with_capacity_and_hasher(missing.len(), Default::default());
        found.extend(st.sent_dates_many(mailbox, &missing)?);
        if found.len() < missing.len() {
            let left: Vec<u32> = missing.iter().copied().filter(|u| !found.contains_key(u)).collect();
            for chunk in left.chunks(HEAD_CHUNK) {
                for (u, head) in self.heads(st, mailbox, uidvalidity, chunk)? {
                    found.insert(u, head.sent_date);
                }
            }
        }
        let mut kept: Vec<(u32, i64)> = Vec::with_capacity(found.len());
        let mut dated = Vec::with_capacity(msgs.len());
        for (&(u, known), &(_, internal)) in out.iter().zip(msgs) {
            let date = match known {
                Some(d) => d,
                None => match found.get(&u) {
                    Some(sent) => {
                        let d = sent.unwrap_or(internal);
                        kept.push((u, d));
                        d
                    }
                    // Expunged meanwhile: left out, as from a scan of heads.
                    None => continue,
                },
            };
            dated.push((u, date));
        }
        if self.limit > 0 && !kept.is_empty() {
            let mut inner = self.lock();
            let dropped = Self::use_entry(&mut inner, mailbox, uidvalidity);
            let m = inner.boxes.entry(mailbox).or_default();
            m.dates.reserve(kept.len());
            let before = m.dates.len();
            m.dates.extend(kept);
            let grown = DATE_BYTES * (m.dates.len() - before) as u64;
            m.bytes += grown;
            inner.bytes = inner.bytes.saturating_sub(dropped) + grown;
            Self::shrink(&mut inner, self.limit, mailbox);
        }
        Ok(dated)
    }

    /// THREAD's keys of the messages `(uid, INTERNALDATE)` (ascending UIDs or not):
    /// from memory, the missing ones derived by `derive` from their sort keys
    /// ([`sort_keys`](Self::sort_keys): made at delivery, else from their heads) and
    /// kept. Returns, in the order asked and without the
    /// UIDs that do not exist, each message's keys, and how many numbers their
    /// mailbox entry has given (every number in them is below it). All come from one
    /// mailbox entry, so equal numbers are equal strings.
    pub fn thread_keys(
        &self,
        st: &dyn Backend,
        mailbox: MailboxId,
        uidvalidity: u32,
        msgs: &[(u32, i64)],
        derive: impl for<'a> Fn(SortKeysRef<'a>, i64) -> ThreadText<'a>,
    ) -> letterbox_store::Result<Keyed> {
        // Twice at most: keys found first may belong to an entry dropped meanwhile (the
        // cache is full), and are then derived again.
        for _ in 0..2 {
            let missing: Vec<(u32, i64)> = {
                let mut inner = self.lock();
                inner.tick += 1;
                let tick = inner.tick;
                match inner.boxes.get_mut(&mailbox) {
                    Some(m) if m.uidvalidity == uidvalidity => {
                        m.used = tick;
                        msgs.iter()
                            .filter(|(u, _)| !m.threads.contains_key(u))
                            .copied()
                            .collect()
                    }
                    _ => msgs.to_vec(),
                }
            };
            // Whether a UID was asked of the store (found in memory otherwise): only
            // when some were found, by ascending UID.
            let asked: Option<Vec<u32>> = (missing.len() < msgs.len()).then(|| {
                let mut v: Vec<u32> = missing.iter().map(|m| m.0).collect();
                v.sort_unstable();
                v
            });
            let done = self.with_texts(st, mailbox, uidvalidity, &missing, &derive, |texts| {
                if self.limit == 0 {
                    return Some(Self::intern_apart(msgs, texts));
                }
                self.intern_kept(mailbox, uidvalidity, msgs, asked.as_deref(), texts)
            })?;
            if let Some(k) = done {
                return Ok(k);
            }
        }
        // The cache keeps dropping this mailbox: number the strings for this call alone.
        self.with_texts(st, mailbox, uidvalidity, msgs, &derive, |texts| {
            Self::intern_apart(msgs, texts)
        })
    }

    /// Numbers `texts` in the mailbox's entry and keeps them: the keys of `msgs` (in
    /// that order, without the UIDs that do not exist), or none when keys found before
    /// (not in `asked`, ascending; `None`: every UID was asked) were dropped meanwhile
    /// (the cache is full).
    fn intern_kept(
        &self,
        mailbox: MailboxId,
        uidvalidity: u32,
        msgs: &[(u32, i64)],
        asked: Option<&[u32]>,
        mut texts: Texts<'_>,
    ) -> Option<Keyed> {
        let mut inner = self.lock();
        let dropped = Self::use_entry(&mut inner, mailbox, uidvalidity);
        let m = inner.boxes.entry(mailbox).or_default();
        let mut grown = 0;
        let mut out = Vec::with_capacity(msgs.len());
        let mut lost = false;
        m.names.reserve(texts.texts.len());
        m.threads.reserve(texts.texts.len());
        for (u, _) in msgs {
            if let Some(k) = m.threads.get(u) {
                out.push((*u, k.clone()));
            } else if let Some(t) = texts.take(*u) {
                let k = Arc::new(m.names.intern(t, &mut grown));
                grown += 48;
                m.threads.insert(*u, k.clone());
                out.push((*u, k));
            } else if asked.is_some_and(|a| a.binary_search(u).is_err()) {
                // Found before, gone now: the entry was dropped in between.
                lost = true;
                break;
            }
        }
        let names = m.names.len();
        m.bytes += grown;
        inner.bytes = inner.bytes.saturating_sub(dropped) + grown;
        Self::shrink(&mut inner, self.limit, mailbox);
        (!lost).then_some((out, names))
    }

    /// The mailbox's entry, marked used, when there is one of this UIDVALIDITY.
    fn kept_entry(inner: &mut Inner, mailbox: MailboxId, uidvalidity: u32) -> Option<&mut Mailbox> {
        inner.tick += 1;
        let tick = inner.tick;
        let m = inner.boxes.get_mut(&mailbox).filter(|m| m.uidvalidity == uidvalidity)?;
        m.used = tick;
        Some(m)
    }

    /// Marks the mailbox's entry used, making it (empty) when it is missing or of
    /// another UIDVALIDITY; returns the bytes an entry so replaced held.
    fn use_entry(inner: &mut Inner, mailbox: MailboxId, uidvalidity: u32) -> u64 {
        inner.tick += 1;
        let tick = inner.tick;
        let m = inner.boxes.entry(mailbox).or_default();
        let mut dropped = 0;
        if m.uidvalidity != uidvalidity {
            dropped = m.bytes;
            *m = Mailbox {
                uidvalidity,
                ..Mailbox::default()
            };
        }
        m.used = tick;
        dropped
    }

    /// The keys of `msgs` numbered by names of their own (nothing kept).
    fn intern_apart(msgs: &[(u32, i64)], mut texts: Texts<'_>) -> Keyed {
        let mut names = Names::default();
        names.reserve(texts.texts.len());
        let mut bytes = 0;
        let out = msgs
            .iter()
            .filter_map(|(u, _)| texts.take(*u).map(|t| (*u, Arc::new(names.intern(t, &mut bytes)))))
            .collect();
        (out, names.len())
    }

    fn get_or_load<T>(
        &self,
        mailbox: MailboxId,
        uidvalidity: u32,
        uids: &[u32],
        map: impl Fn(&mut Mailbox) -> &mut UidMap<T>,
        load: impl FnOnce(&[u32]) -> letterbox_store::Result<Vec<(u32, T)>>,
        weigh: impl Fn(&T) -> u64,
    ) -> letterbox_store::Result<Vec<(u32, Arc<T>)>> {
        let mut found: Vec<Option<Arc<T>>> = Vec::with_capacity(uids.len());
        let mut missing = Vec::new();
        {
            let mut inner = self.lock();
            inner.tick += 1;
            let tick = inner.tick;
            match inner.boxes.get_mut(&mailbox) {
                Some(m) if m.uidvalidity == uidvalidity => {
                    m.used = tick;
                    let map = map(m);
                    for &u in uids {
                        let e = map.get(&u).cloned();
                        if e.is_none() {
                            missing.push(u);
                        }
                        found.push(e);
                    }
                }
                _ => {
                    missing.extend_from_slice(uids);
                    found.resize(uids.len(), None);
                }
            }
        }
        if missing.is_empty() {
            return Ok(uids
                .iter()
                .copied()
                .zip(found.into_iter().flatten())
                .collect());
        }
        let loaded: Vec<(u32, Arc<T>)> = load(&missing)?
            .into_iter()
            .map(|(u, v)| (u, Arc::new(v)))
            .collect();
        if self.limit > 0 {
            let added: u64 = loaded.iter().map(|(_, v)| 48 + weigh(v)).sum();
            if added <= self.limit {
                let mut inner = self.lock();
                inner.tick += 1;
                let tick = inner.tick;
                let mut dropped = 0;
                let m = inner.boxes.entry(mailbox).or_default();
                if m.uidvalidity != uidvalidity {
                    dropped = m.bytes;
                    *m = Mailbox {
                        uidvalidity,
                        ..Mailbox::default()
                    };
                }
                m.used = tick;
                let mut grown = 0;
                {
                    let map = map(m);
                    for (u, v) in &loaded {
                        if map.insert(*u, v.clone()).is_none() {
                            grown += 48 + weigh(v);
                        }
                    }
                }
                m.bytes += grown;
                inner.bytes = inner.bytes.saturating_sub(dropped) + grown;
                Self::shrink(&mut inner, self.limit, mailbox);
            }
        }
        // Merge, in the order of `uids`.
        let mut loaded: UidKeyed<Arc<T>> = loaded.into_iter().collect();
        Ok(uids
            .iter()
            .zip(found)
            .filter_map(|(&u, f)| f.or_else(|| loaded.remove(&u)).map(|v| (u, v)))
            .collect())
    }

    /// Drops the least recently used mailboxes (other than `keep`, unless it alone is
    /// over the limit) until the total is within `limit`.
    fn shrink(inner: &mut Inner, limit: u64, keep: MailboxId) {
        while inner.bytes > limit {
            let victim = inner
                .boxes
                .iter()
                .filter(|(&id, _)| id != keep)
                .min_by_key(|(_, m)| m.used)
                .map(|(&id, _)| id)
                .unwrap_or(keep);
            match inner.boxes.remove(&victim) {
                Some(m) => inner.bytes -= m.bytes,
                None => break,
            }
        }
    }

    /// Called with a new state of a mailbox (`live` messages, `alive` says which UIDs
    /// exist): when more entries are kept than it has messages, those of expunged
    /// messages are dropped. So entries of expunged messages never outnumber the live
    /// ones, at no cost while nothing is expunged.
    pub fn retain(
        &self,
        mailbox: MailboxId,
        uidvalidity: u32,
        live: usize,
        alive: impl Fn(u32) -> bool,
    ) {
        let mut inner = self.lock();
        let Some(m) = inner.boxes.get_mut(&mailbox) else {
            return;
        };
        if m.uidvalidity == uidvalidity
            && m.heads.len() <= live
            && m.roots.len() <= live
            && m.envelopes.iter().all(|r| r.len() <= live)
            && m.rendered.iter().all(|r| r.len() <= live)
            && m.searchable.len() <= live
            && m.records.len() <= live
            && m.threads.len() <= live
            && m.dates.len() <= live
        {
            return;
        }
        if m.uidvalidity != uidvalidity {
            let b = m.bytes;
            inner.boxes.remove(&mailbox);
            inner.bytes -= b;
            return;
        }
        let mut freed = 0;
        m.heads.retain(|&u, v| {
            let keep = alive(u);
            if !keep {
                freed += 48 + head_bytes(v);
            }
            keep
        });
        m.roots.retain(|&u, v| {
            let keep = alive(u);
            if !keep {
                freed += 48 + part_bytes(v);
            }
            keep
        });
        for r in m
            .rendered
            .iter_mut()
            .chain(m.envelopes.iter_mut())
            .chain(std::iter::once(&mut m.searchable))
        {
            r.retain(|&u, v| {
                let keep = alive(u);
                if !keep {
                    freed += 48 + 32 + v.len() as u64;
                }
                keep
            });
        }
        m.dates.retain(|&u, _| {
            let keep = alive(u);
            if !keep {
                freed += DATE_BYTES;
            }
            keep
        });
        freed += m.records.retain(&alive);
        // THREAD's keys go all together with their names (the names of expunged
        // messages are not counted per message): derived again when next needed.
        if !m.threads.is_empty() {
            let kept: u64 = m.heads.values().map(|v| 48 + head_bytes(v)).sum::<u64>()
                + m.roots.values().map(|v| 48 + part_bytes(v)).sum::<u64>()
                + m.rendered
                    .iter()
                    .chain(m.envelopes.iter())
                    .chain(std::iter::once(&m.searchable))
                    .flat_map(|r| r.values())
                    .map(|v| 48 + 32 + v.len() as u64)
                    .sum::<u64>()
                + DATE_BYTES * m.dates.len() as u64
                + m.records.bytes();
            freed = m.bytes.saturating_sub(kept);
            m.threads = UidMap::default();
            m.names = Names::default();
        }
        m.bytes -= freed;
        inner.bytes -= freed;
    }

    /// Forgets a mailbox (deleted).
    pub fn forget(&self, mailbox: MailboxId) {
        let mut inner = self.lock();
        if let Some(m) = inner.boxes.remove(&mailbox) {
            inner.bytes -= m.bytes;
        }
    }

    /// Estimated heap held now (tests, diagnostics).
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }
}

/// A stored chunk: its kind's magic ([`STORED_MAGIC`], [`searchable::MAGIC`]), then per message its UID and length (4 octets
/// each, little-endian) and its octets, by ascending UID.
fn encode_chunk<'a>(magic: &[u8; 4], entries: impl Iterator<Item = (u32, &'a [u8])>) -> Vec<u8> {
    let mut out = magic.to_vec();
    for (u, b) in entries {
        out.extend_from_slice(&u.to_le_bytes());
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// The entries of a stored chunk (each UID and where its octets are in `data`), or
/// `None` when it is not one of this version (`magic`).
fn decode_chunk(magic: &[u8; 4], data: &[u8]) -> Option<Vec<(u32, Range<usize>)>> {
    if !data.starts_with(magic) {
        return None;
    }
    let mut at = magic.len();
    let mut out = Vec::new();
    while at < data.len() {
        let head = data.get(at..at.checked_add(8)?)?;
        let uid = u32::from_le_bytes(head[..4].try_into().ok()?);
        let len = u32::from_le_bytes(head[4..].try_into().ok()?) as usize;
        let end = (at + 8).checked_add(len).filter(|&e| e <= data.len())?;
        out.push((uid, at + 8..end));
        at = end;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use letterbox_store::{Flags, NewMessage, QuotaLimit, Store, StoreOptions};

    fn store() -> (tempfile::TempDir, Store, MailboxId) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        s.add_domain("example.com").unwrap();
        let hash = format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap());
        let a = s.add_account("a@example.com", &hash, QuotaLimit::Unlimited).unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap().id;
        for i in 0..5 {
            let body = format!(
                "Subject: message {i}\r\nFrom: A <a{i}@x>\r\nMessage-ID: <{i}@x>\r\n\
                 Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b--\r\n"
            );
            s.append(
                inbox,
                NewMessage {
                    prefix: Vec::new(),
                    body: Arc::new(body.into_bytes()),
                    flags: Flags::default(),
                    keywords: vec![],
                    internal_date: 1_700_000_000,
                },
                false,
            )
            .unwrap();
        }
        (dir, s, inbox)
    }

    /// What the cache gives is what the store gives, in the order asked, without the
    /// UIDs that do not exist, from memory the second time.
    #[test]
    fn same_answers_as_the_store() {
        let (_d, s, mb) = store();
        let c = MsgCache::new(DEFAULT_INDEX_CACHE_BYTES);
        let uids = [4, 2, 99, 1];
        for _ in 0..2 {
            let heads = c.heads(&*s, mb, 7, &uids).unwrap();
            let want = s.heads_many(mb, &uids).unwrap();
            assert_eq!(heads.iter().map(|e| e.0).collect::<Vec<_>>(), [4, 2, 1]);
            for (u, h) in &heads {
                let w = &want.iter().find(|e| e.0 == *u).unwrap().1;
                assert_eq!(h.envelope, w.envelope);
                assert_eq!(h.search_headers, w.search_headers);
                assert_eq!(h.sort, w.sort);
            }
            let roots = c.roots(&*s, mb, 7, &[1, 3]).unwrap();
            let want = s.roots_many(mb, &[1, 3]).unwrap();
            assert_eq!(roots.len(), 2);
            for ((u, r), (wu, w)) in roots.iter().zip(&want) {
                assert_eq!((u, &**r), (wu, w));
            }
            for utf8 in [false, true] {
                let envs = c.envelopes(&*s, mb, 7, &[5, 3], utf8).unwrap();
                let want: Vec<Vec<u8>> = s
                    .envelopes_many(mb, &[3, 5])
                    .unwrap()
                    .iter()
                    .map(|(_, e)| letterbox_message::imap::rendered_envelope(e, utf8))
                    .collect();
                assert_eq!((envs[0].0, &*envs[0].1), (5, &want[1]));
                assert_eq!((envs[1].0, &*envs[1].1), (3, &want[0]));
            }
        }
        let held = c.bytes();
        assert!(held > 0);
        // Served from memory: the same Arc the second time.
        let a = c.heads(&*s, mb, 7, &[1]).unwrap();
        let b = c.heads(&*s, mb, 7, &[1]).unwrap();
        assert!(Arc::ptr_eq(&a[0].1, &b[0].1));
        assert_eq!(c.bytes(), held);
        // Another UIDVALIDITY: read again, the old entries gone.
        let d = c.heads(&*s, mb, 8, &[1]).unwrap();
        assert!(!Arc::ptr_eq(&a[0].1, &d[0].1));
        assert!(c.bytes() < held);
        c.forget(mb);
        assert_eq!(c.bytes(), 0);
    }

    /// FETCH BODYSTRUCTURE's renderings: those of the trees, from memory the second
    /// time, and from the store's copy in a new process (a new cache: nothing rendered);
    /// after an expunge and arrivals only the new messages are rendered; a chunk that
    /// does not decode is ignored and written again, without the expunged messages;
    /// another UIDVALIDITY reads nothing stored and writes nothing. Messages whose
    /// rendering was kept at delivery are not rendered here, nor written to the chunks.
    #[test]
    fn renderings_kept_in_the_store() {
        let (_d, s, mb) = store();
        let uv = s.mailbox_by_id(mb).unwrap().uidvalidity;
        let add = |n: usize| {
            for i in 0..n {
                let body = format!(
                    "Subject: {i}\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                     --b\r\nContent-Type: text/plain; name=\"{i}\"\r\n\r\n{}\r\n--b--\r\n",
                    "x".repeat(i)
                );
                let m = NewMessage {
                    prefix: Vec::new(),
                    body: Arc::new(body.into_bytes()),
                    flags: Flags::default(),
                    keywords: vec![],
                    internal_date: 1_700_000_000,
                };
                s.append(mb, m, false).unwrap();
            }
        };
        add(295); // UIDs 1..=300: chunks 0 and 1
        let renders = std::cell::Cell::new(0);
        let render = |p: &Part| {
            renders.set(renders.get() + 1);
            format!("{p:?}").into_bytes()
        };
        let want = |uids: &[u32]| -> Vec<(u32, Vec<u8>)> {
            let r = s.roots_many(mb, uids).unwrap();
            r.iter().map(|(u, p)| (*u, format!("{p:?}").into_bytes())).collect()
        };
        let got = |c: &MsgCache, uids: &[u32], uv: u32| -> Vec<(u32, Vec<u8>)> {
            let r = c.bodystructures(&*s, mb, uv, uids, false, render).unwrap();
            r.into_iter().map(|(u, b)| (u, b.to_vec())).collect()
        };
        let stored = |kind: u8| -> Vec<(u32, Vec<u32>)> {
            let chunks = s.load_message_cache(mb, kind, 0, u32::MAX).unwrap();
            chunks
                .into_iter()
                .map(|(n, v, d)| {
                    assert_eq!(v, uv);
                    (n, decode_chunk(STORED_MAGIC, &d).unwrap().into_iter().map(|e| e.0).collect())
                })
                .collect()
        };
        let all: Vec<u32> = (1..=300).collect();
        // Rendered at delivery: the store's renderings, nothing rendered here.
        let real: Vec<(u32, Vec<u8>)> = s
            .roots_many(mb, &all)
            .unwrap()
            .iter()
            .map(|(u, p)| (*u, letterbox_message::imap::bodystructure(p)))
            .collect();
        let c = MsgCache::new(DEFAULT_INDEX_CACHE_BYTES);
        assert_eq!(got(&c, &all, uv), real);
        assert_eq!(renders.get(), 0);
        // ... and not repeated in the chunks.
        c.write_stored(&*s);
        assert_eq!(stored(1), []);
        // The rest as for messages stored before that: rendered here, by `render`.
        let forget = || {
            rusqlite::Connection::open(_d.path().join("store.db"))
                .unwrap()
                .execute_batch(
                    "DELETE FROM blob_bodystructure; DELETE FROM message_bodystructure;",
                )
                .unwrap()
        };
        forget();
        let c = MsgCache::new(DEFAULT_INDEX_CACHE_BYTES);
        // In batches, as FETCH asks (128 messages at a time).
        for b in all.chunks(128) {
            assert_eq!(got(&c, b, uv), want(b));
        }
        assert_eq!(renders.get(), 300);
        // Queued, written once after the command.
        assert_eq!(stored(1), []);
        assert!(c.has_stored_pending());
        c.write_stored(&*s);
        assert!(!c.has_stored_pending());
        assert_eq!(got(&c, &all, uv), want(&all));
        assert_eq!(renders.get(), 300, "from memory");
        assert_eq!(
            stored(1),
            [(0, (1..=255).collect::<Vec<_>>()), (1, (256..=300).collect())]
        );
        assert_eq!(stored(2), []);
        // A new process: from the store's copy.
        let c = MsgCache::new(DEFAULT_INDEX_CACHE_BYTES);
        assert_eq!(got(&c, &all, uv), want(&all));
        assert_eq!(renders.get(), 300, "nothing rendered");
        // Expunged 10..=20 and 2 (in chunk 0), 40 arrivals (301..=340, chunk 1).
        let gone: Vec<u32> = std::iter::once(2).chain(10..=20).collect();
        s.expunge(mb, &gone).unwrap();
        add(40);
        forget();
        let live: Vec<u32> = (1..=340).filter(|u| !gone.contains(u)).collect();
        // In batches whose edges are not the chunks': chunk 1 is queued by the last
        // batch only and keeps the stored entries of the UIDs before that batch's.
        let c = MsgCache::new(DEFAULT_INDEX_CACHE_BYTES);
        for b in live.chunks(128) {
            assert_eq!(got(&c, b, uv), want(b));
        }
        assert_eq!(renders.get(), 340, "only the arrivals rendered");
        c.write_stored(&*s);
        let st = stored(1);
        assert_eq!(st[1], (1, (256..=340).collect::<Vec<_>>()));
        assert_eq!(st[0].1.len(), 255, "chunk 0 had nothing new: not rewritten");
        // A chunk that does not decode: rendered again, written without the expunged.
        s.save_message_cache(mb, 1, 0, uv, b"LBB1junk".to_vec()).unwrap();
        // Two batches render chunk 0's messages: merged, written once.
        let c = MsgCache::new(DEFAULT_INDEX_CACHE_BYTES);
        for b in live.chunks(128) {
            assert_eq!(got(&c, b, uv), want(b));
        }
        assert_eq!(renders.get(), 340 + 243);
        c.write_stored(&*s);
        let chunk0: Vec<u32> = live.iter().copied().filter(|&u| u < 256).collect();
        assert_eq!(stored(1)[0], (0, chunk0));
        // Another UIDVALIDITY: nothing stored is read, nothing written.
        let before = s.load_message_cache(mb, 1, 0, u32::MAX).unwrap();
        let c = MsgCache::new(DEFAULT_INDEX_CACHE_BYTES);
        assert_eq!(got(&c, &live, uv + 1), want(&live));
        assert_eq!(renders.get(), 340 + 243 + live.len());
        c.write_stored(&*s);
        assert_eq!(s.load_message_cache(mb, 1, 0, u32::MAX).unwrap(), before);
        // With UTF-8 on, a rendering of its own; a cache of 0 keeps nothing, stored either.
        let c = MsgCache::new(0);
        c.bodystructures(&*s, mb, uv, &live, true, render).unwrap();
        assert_eq!(stored(2), []);
        assert_eq!(decode_chunk(STORED_MAGIC, b"LBB0"), None);
        assert_eq!(decode_chunk(STORED_MAGIC, b"LBB1\x01\0\0\0\x05\0\0\0abc"), None);
        let data = encode_chunk(STORED_MAGIC, [(7, &b"ab"[..]), (9, &b""[..])].into_iter());
        let entries = decode_chunk(STORED_MAGIC, &data).unwrap();
        let entries: Vec<(u32, &[u8])> = entries.into_iter().map(|(u, r)| (u, &data[r])).collect();
        assert_eq!(entries, [(7, &b"ab"[..]), (9, &b""[..])]);
    }

    /// The estimate stays within the limit; 0 keeps nothing; expunged entries go once
    /// they outnumber the live messages.
    #[test]
    fn bounded_and_pruned() {
        let (_d, s, mb) = store();
        let none = MsgCache::new(0);
        assert_eq!(none.heads(&*s, mb, 1, &[1, 2]).unwrap().len(), 2);
        assert_eq!(none.bytes(), 0);
        let one = MsgCache::new(u64::MAX).heads(&*s, mb, 1, &[1]).unwrap();
        let per = 48 + head_bytes(&one[0].1);
        // Room for two messages' heads: the mailbox that would pass it is dropped.
        let c = MsgCache::new(per * 2 + per / 2);
        c.heads(&*s, mb, 1, &[1, 2]).unwrap();
        assert!(c.bytes() <= per * 2 + per / 2);
        c.heads(&*s, mb + 1000, 1, &[]).unwrap();
        c.heads(&*s, mb, 1, &[3]).unwrap();
        assert!(c.bytes() <= per * 2 + per / 2, "{}", c.bytes());
        // Pruning: 5 cached, 3 live.
        let c = MsgCache::new(u64::MAX);
        c.heads(&*s, mb, 1, &[1, 2, 3, 4, 5]).unwrap();
        let all = c.bytes();
        c.retain(mb, 1, 5, |_| true);
        assert_eq!(c.bytes(), all);
        c.retain(mb, 1, 3, |u| u > 2);
        assert!(c.bytes() < all);
        let a = c.heads(&*s, mb, 1, &[3, 4, 5]).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(c.bytes() * 5, all * 3);
    }

    /// The store's records are kept a block per read: the answers are the store's, the
    /// heap counted is the blocks' octets and an entry per record, a record expunged
    /// frees its entry and a block its octets with its last record.
    #[test]
    fn searchable_records_in_blocks() {
        let (_d, s, mb) = store();
        let stored: Vec<(u32, Vec<u8>)> = s.searchables_many(mb, &[1, 2, 3, 4, 5]).unwrap();
        assert_eq!(stored.len(), 5);
        let octets = |uids: &[u32]| -> u64 {
            stored.iter().filter(|(u, _)| uids.contains(u)).map(|(_, r)| r.len() as u64).sum()
        };
        let answers = |got: Vec<(u32, Searchable)>| -> Vec<(u32, Vec<u8>)> {
            let mut v: Vec<(u32, Vec<u8>)> = got
                .into_iter()
                .map(|(u, r)| match r {
                    Searchable::Record(r) => (u, r.octets().to_vec()),
                    Searchable::Head(_) => panic!("a head for {u}"),
                })
                .collect();
            v.sort();
            v
        };
        let none = MsgCache::new(0);
        assert_eq!(answers(none.searchable(&*s, mb, 1, &[1, 2, 3, 4, 5]).unwrap()), stored);
        assert_eq!(none.bytes(), 0);
        let c = MsgCache::new(u64::MAX);
        // Two blocks, the second read out of order; then everything from memory.
        assert_eq!(answers(c.searchable(&*s, mb, 1, &[4, 5, 99]).unwrap()), stored[3..]);
        assert_eq!(answers(c.searchable(&*s, mb, 1, &[1, 2, 3, 4]).unwrap()), stored[..4]);
        let block = |uids: &[u32]| RECORD_BLOCK_BYTES + octets(uids) + RECORD_ENTRY_BYTES * uids.len() as u64;
        let all = block(&[4, 5]) + block(&[1, 2, 3]);
        assert_eq!(c.bytes(), all);
        assert_eq!(answers(c.searchable(&*s, mb, 1, &[5, 3, 1, 2, 4]).unwrap()), stored);
        assert_eq!(c.bytes(), all);
        // 4 expunged: its entry goes, its block stays (5 is in it).
        c.retain(mb, 1, 4, |u| u != 4);
        assert_eq!(c.bytes(), all - RECORD_ENTRY_BYTES);
        // 5 expunged too: the block goes.
        c.retain(mb, 1, 3, |u| u < 4);
        assert_eq!(c.bytes(), block(&[1, 2, 3]));
        assert_eq!(answers(c.searchable(&*s, mb, 1, &[1, 2, 3]).unwrap()), stored[..3]);
        assert_eq!(c.bytes(), block(&[1, 2, 3]));
        // A block over the budget is not kept.
        let small = MsgCache::new(block(&[1]));
        small.searchable(&*s, mb, 1, &[1, 2]).unwrap();
        assert_eq!(small.bytes(), 0);
        small.searchable(&*s, mb, 1, &[1]).unwrap();
        assert_eq!(small.bytes(), block(&[1]));
    }
}

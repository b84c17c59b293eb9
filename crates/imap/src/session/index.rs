//! The per-mailbox index shared by the sessions of one serve process (issue 18).
//!
//! Opening a mailbox used to read every message's metadata from the store (UID, flags,
//! keywords, but also the blob id, date and size), at every SELECT of every session:
//! 5 ms at 10,000 messages, 37 ms at 100,000. Dovecot answers from its
//! `dovecot.index` (a record of UID + flags + keywords per message), kept current by
//! its log. This module is that index for Letterbox, in memory:
//!
//! - A [`Snapshot`] of a mailbox is its messages as [`Msg`] (12 octets each: UID, an
//!   interned keyword set, the system flags), in one `Arc<Vec<Msg>>` that the sessions
//!   showing that state share (copy on write: a session that must differ, e.g. to hold
//!   an expunge it may not announce yet, copies; its `\Recent` UIDs are ranges kept
//!   beside the list, [`super::view::Selected::recent`], so a claim copies nothing), and
//!   the counters SELECT and STATUS answer with (messages, unseen, first unseen,
//!   deleted, sizes, keywords in use), computed once per state, not per command.
//!   Beside it, each message's size, INTERNALDATE and MODSEQ: SEARCH, SORT and THREAD
//!   take the metadata from the current snapshot ([`Snapshot::metas`]) instead of
//!   listing the mailbox, and their heads from the message cache ([`super::cache`]).
//! - The snapshot is tied to the mailbox's `HIGHESTMODSEQ` (RFC 7162 3.1.1): every
//!   change to a message or the message set raises it. A SELECT reads the mailbox row;
//!   if the cached snapshot is at that MODSEQ it is current and nothing else is read;
//!   otherwise only what changed since (`changes_since`, on the `(mailbox_id, modseq)`
//!   indexes) is applied to it, and the new state replaces the cached one. So the store
//!   (and its transactions) stays the single source of truth; the cache only saves
//!   re-reading what has not changed. Only a mailbox never opened since the process
//!   started is read whole.
//! - Keyed by mailbox row id and UIDVALIDITY: a deleted and recreated mailbox that gets
//!   the same row id has a new UIDVALIDITY, and is read whole.
//! - Bounded by `[imap] index_cache_messages` (messages in all cached snapshots): past
//!   it, the least recently used snapshots are dropped (a session that has one selected
//!   keeps its own reference).
//! - Kept by the store too, compactly ([`Snapshot::encode`], 29 octets a message;
//!   [`Backend::save_mailbox_index`]), as Dovecot keeps `dovecot.index` on disk: a
//!   mailbox that is in no cached snapshot (the first SELECT after a start, or dropped
//!   from the cache) is read from that copy and what changed since its MODSEQ
//!   (`changes_since`) instead of every message row. The copy is written after a whole
//!   read of a mailbox of at least [`SAVE_MIN_MESSAGES`] messages, and again when the
//!   changes applied to a copy just read outnumber a quarter of the mailbox (so the
//!   next start applies few); it is a cache (written without fsync, checked when read:
//!   a copy that does not decode or is of another UIDVALIDITY is ignored).
//! - Preloaded after a start ([`preload`], called by `serve` once the listeners are up),
//!   as Dovecot's `dovecot.index` is warm on disk: the stored copies, largest first, up
//!   to `[imap] preload_index_messages` messages (never past `index_cache_messages`),
//!   each brought to its mailbox's HIGHESTMODSEQ exactly as a first SELECT would
//!   ([`current`]). A SELECT meanwhile does not wait: it reads as it would have, and of
//!   two snapshots of a mailbox the cache keeps the newer ([`Indexes::put`]); one that
//!   a change makes stale before its SELECT is advanced there as always. Nothing of a
//!   session (`\Recent`) is touched.

use super::cache::{MsgCache, DEFAULT_INDEX_CACHE_BYTES};
use super::view::{KeywordSets, Msg};
use letterbox_store::{
    Backend, ChangesSince, Flags, Mailbox, MailboxCounts, MailboxId, MessageMeta,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Messages kept in all cached snapshots together, by default (about 32 octets each:
/// 12 for the entry, 4 for the size, 8 each for INTERNALDATE and MODSEQ): 2,000,000 is
/// some 64 MiB.
pub const DEFAULT_INDEX_CACHE_MESSAGES: u64 = 2_000_000;

/// Mailboxes with fewer messages are not worth a stored copy of their index: reading
/// them whole takes about as long as reading the copy.
pub const SAVE_MIN_MESSAGES: usize = 1_000;

/// Stored copies looked at by [`preload`] at most (the largest first).
const PRELOAD_MAX_MAILBOXES: usize = 10_000;

/// The first four octets of [`Snapshot::encode`]'s form (its version).
const MAGIC: &[u8; 4] = b"LBI3";

/// Reads the compact form of [`Snapshot::encode`], refusing (None) anything short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// One state of a mailbox: its messages and counters at `modseq`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub mailbox: MailboxId,
    pub uidvalidity: u32,
    /// The mailbox's HIGHESTMODSEQ when it was read; every change at or below it is in.
    pub modseq: u64,
    /// Ascending UIDs; `expunged` is always false here.
    pub msgs: Arc<Vec<Msg>>,
    /// RFC822.SIZE of each message (saturated at u32::MAX), for STATUS SIZE.
    sizes: Arc<Vec<u32>>,
    /// INTERNALDATE and MODSEQ of each message: with the above, what SEARCH, SORT and
    /// THREAD read of the metadata ([`Snapshot::metas`]), without a listing per command.
    dates: Arc<Vec<i64>>,
    modseqs: Arc<Vec<u64>>,
    pub kwsets: KeywordSets,
    /// Keywords set on at least one message, sorted.
    pub keywords: Vec<String>,
    /// Index of the first message without `\Seen`.
    pub first_unseen: Option<usize>,
    pub unseen: u32,
    pub deleted: u32,
    pub size: u64,
    pub deleted_size: u64,
}

impl Snapshot {
    /// The whole mailbox, from a full listing.
    pub fn from_list(mb: &Mailbox, modseq: u64, list: Vec<MessageMeta>) -> Snapshot {
        let mut kwsets = KeywordSets::default();
        let mut msgs = Vec::with_capacity(list.len());
        let mut sizes = Vec::with_capacity(list.len());
        let mut dates = Vec::with_capacity(list.len());
        let mut modseqs = Vec::with_capacity(list.len());
        for m in &list {
            msgs.push(msg(&mut kwsets, m));
            sizes.push(m.size.min(u32::MAX as u64) as u32);
            dates.push(m.internal_date);
            modseqs.push(m.modseq);
        }
        let mut s = Snapshot {
            mailbox: mb.id,
            uidvalidity: mb.uidvalidity,
            modseq,
            msgs: Arc::new(msgs),
            sizes: Arc::new(sizes),
            dates: Arc::new(dates),
            modseqs: Arc::new(modseqs),
            kwsets,
            keywords: Vec::new(),
            first_unseen: None,
            unseen: 0,
            deleted: 0,
            size: 0,
            deleted_size: 0,
        };
        s.count();
        s
    }

    /// This state with `ch` (everything changed above `self.modseq`) applied; `modseq`
    /// is the mailbox's HIGHESTMODSEQ read before `ch` was.
    pub fn advance(&self, modseq: u64, ch: &ChangesSince) -> Snapshot {
        let mut msgs: Vec<Msg> = (*self.msgs).clone();
        let mut sizes: Vec<u32> = (*self.sizes).clone();
        let mut dates: Vec<i64> = (*self.dates).clone();
        let mut modseqs: Vec<u64> = (*self.modseqs).clone();
        let mut kwsets = self.kwsets.clone();
        let mut vanished = ch.vanished.clone();
        vanished.sort_unstable();
        if !vanished.is_empty() {
            let keep: Vec<bool> = msgs
                .iter()
                .map(|m| vanished.binary_search(&m.uid).is_err())
                .collect();
            let mut k = keep.iter();
            msgs.retain(|_| *k.next().unwrap_or(&true));
            let mut k = keep.iter();
            sizes.retain(|_| *k.next().unwrap_or(&true));
            let mut k = keep.iter();
            dates.retain(|_| *k.next().unwrap_or(&true));
            let mut k = keep.iter();
            modseqs.retain(|_| *k.next().unwrap_or(&true));
        }
        for m in &ch.changed {
            if vanished.binary_search(&m.uid).is_ok() {
                continue;
            }
            let size = m.size.min(u32::MAX as u64) as u32;
            let entry = msg(&mut kwsets, m);
            let at = match msgs.last() {
                Some(last) if last.uid < m.uid => Err(msgs.len()),
                None => Err(0),
                _ => msgs.binary_search_by_key(&m.uid, |x| x.uid),
            };
            match at {
                Ok(i) => {
                    msgs[i] = entry;
                    sizes[i] = size;
                    dates[i] = m.internal_date;
                    modseqs[i] = m.modseq;
                }
                Err(i) => {
                    msgs.insert(i, entry);
                    sizes.insert(i, size);
                    dates.insert(i, m.internal_date);
                    modseqs.insert(i, m.modseq);
                }
            }
        }
        let mut s = Snapshot {
            mailbox: self.mailbox,
            uidvalidity: self.uidvalidity,
            modseq: modseq.max(self.modseq),
            msgs: Arc::new(msgs),
            sizes: Arc::new(sizes),
            dates: Arc::new(dates),
            modseqs: Arc::new(modseqs),
            kwsets,
            keywords: Vec::new(),
            first_unseen: None,
            unseen: 0,
            deleted: 0,
            size: 0,
            deleted_size: 0,
        };
        s.count();
        s
    }

    /// The compact form the store keeps ([`Backend::save_mailbox_index`]): `LBI3`, the
    /// keyword sets (count, then each: count, then each keyword: length, octets), the
    /// message count, the counters SELECT and STATUS answer with (unseen, deleted, first
    /// unseen as index + 1 or 0, size, deleted size: 4, 4, 4, 8, 8 octets) and the keyword
    /// sets in use (count, then each set's number), then the messages' columns one after
    /// the other: UIDs (4 octets each), keyword sets (4), flags (1), sizes (4),
    /// INTERNALDATEs (8), MODSEQs (8); 29 octets a message, integers little-endian.
    /// UIDVALIDITY and MODSEQ are kept beside it. The counters are kept so that the first
    /// SELECT after a start does not count them again (Dovecot keeps its in the index
    /// header too), columns rather than records so that decoding is a few straight
    /// copies. A copy of an older form (`LBI1`: records; `LBI2`: no counters) does not
    /// decode: the mailbox is read whole once and its copy written anew.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.msgs.len() * 29);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.kwsets.len() as u32).to_le_bytes());
        for i in 0..self.kwsets.len() {
            let set = self.kwsets.get(i as u32);
            out.extend_from_slice(&(set.len() as u32).to_le_bytes());
            for k in set {
                out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                out.extend_from_slice(k.as_bytes());
            }
        }
        out.extend_from_slice(&(self.msgs.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.unseen.to_le_bytes());
        out.extend_from_slice(&self.deleted.to_le_bytes());
        let first = self.first_unseen.map_or(0, |i| i as u32 + 1);
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.deleted_size.to_le_bytes());
        let mut used = vec![false; self.kwsets.len()];
        for m in self.msgs.iter() {
            if let Some(u) = used.get_mut(m.kw as usize) {
                *u = true;
            }
        }
        let used: Vec<u32> = (0..used.len() as u32).filter(|&i| used[i as usize]).collect();
        out.extend_from_slice(&(used.len() as u32).to_le_bytes());
        out.extend(used.iter().flat_map(|k| k.to_le_bytes()));
        out.extend(self.msgs.iter().flat_map(|m| m.uid.to_le_bytes()));
        out.extend(self.msgs.iter().flat_map(|m| m.kw.to_le_bytes()));
        out.extend(self.msgs.iter().map(|m| m.flags.0));
        out.extend(self.sizes.iter().flat_map(|v| v.to_le_bytes()));
        out.extend(self.dates.iter().flat_map(|v| v.to_le_bytes()));
        out.extend(self.modseqs.iter().flat_map(|v| v.to_le_bytes()));
        out
    }

    /// The snapshot of `mb` at `modseq` from [`encode`](Self::encode)'s form; `None`
    /// when `data` is not such a form (truncated, UIDs out of order, unknown keyword
    /// sets, another version).
    pub fn decode(mb: &Mailbox, modseq: u64, data: &[u8]) -> Option<Snapshot> {
        let mut r = Reader(data);
        if r.take(4)? != MAGIC {
            return None;
        }
        let mut kwsets = KeywordSets::default();
        let nsets = r.u32()? as usize;
        // Each set takes 4 octets at least: no allocation beyond what `data` can hold.
        let mut renumber = Vec::with_capacity(nsets.min(r.0.len() / 4));
        for _ in 0..nsets {
            let n = r.u32()? as usize;
            let mut set = Vec::with_capacity(n.min(r.0.len() / 4));
            for _ in 0..n {
                let len = r.u32()? as usize;
                set.push(String::from_utf8(r.take(len)?.to_vec()).ok()?);
            }
            renumber.push(kwsets.intern(&set));
        }
        let n = r.u32()? as usize;
        let (unseen, deleted, first) = (r.u32()?, r.u32()?, r.u32()?);
        let (size, deleted_size) = (r.u64()?, r.u64()?);
        if [unseen, deleted, first].iter().any(|&c| c as usize > n) || (first == 0) != (unseen == 0)
        {
            return None;
        }
        let nused = r.u32()? as usize;
        let mut used = Vec::with_capacity(nused.min(r.0.len() / 4));
        for _ in 0..nused {
            used.push(*renumber.get(r.u32()? as usize)?);
        }
        if r.0.len() != n.checked_mul(29)? {
            return None;
        }
        let uids = r.take(4 * n)?.as_chunks::<4>().0;
        let kws = r.take(4 * n)?.as_chunks::<4>().0;
        let flags = r.take(n)?;
        let sizes = r.take(4 * n)?.as_chunks::<4>().0;
        let dates = r.take(8 * n)?.as_chunks::<8>().0;
        let modseqs = r.take(8 * n)?.as_chunks::<8>().0;
        // One pass builds the entries and checks them: UIDs ascending, every keyword set
        // listed.
        let mut prev: i64 = -1;
        let mut valid = true;
        let mut msgs: Vec<Msg> = uids
            .iter()
            .zip(kws)
            .zip(flags)
            .map(|((u, k), &f)| {
                let (uid, kw) = (u32::from_le_bytes(*u), u32::from_le_bytes(*k));
                valid &= i64::from(uid) > prev && (kw as usize) < renumber.len();
                prev = i64::from(uid);
                Msg {
                    uid,
                    kw,
                    flags: Flags(f),
                    expunged: false,
                }
            })
            .collect();
        if !valid {
            return None;
        }
        // The sets were interned in their stored order, so their numbers normally stay
        // as stored; otherwise (a set listed twice) each is renumbered.
        if renumber.iter().enumerate().any(|(i, &k)| k as usize != i) {
            for m in msgs.iter_mut() {
                m.kw = renumber[m.kw as usize];
            }
        }
        let keywords = keywords_of(&kwsets, used.into_iter());
        let sizes: Vec<u32> = sizes.iter().map(|b| u32::from_le_bytes(*b)).collect();
        let dates: Vec<i64> = dates.iter().map(|b| i64::from_le_bytes(*b)).collect();
        let modseqs: Vec<u64> = modseqs.iter().map(|b| u64::from_le_bytes(*b)).collect();
        Some(Snapshot {
            mailbox: mb.id,
            uidvalidity: mb.uidvalidity,
            modseq,
            msgs: Arc::new(msgs),
            sizes: Arc::new(sizes),
            dates: Arc::new(dates),
            modseqs: Arc::new(modseqs),
            kwsets,
            keywords,
            first_unseen: first.checked_sub(1).map(|i| i as usize),
            unseen,
            deleted,
            size,
            deleted_size,
        })
    }

    /// The counters, in one pass over the entries and sizes without branches on the
    /// flags, and the keywords in use ([`Snapshot::decode`] counts as it decodes).
    fn count(&mut self) {
        let (seen, del) = (Flags::SEEN.0, Flags::DELETED.0);
        self.first_unseen = self.msgs.iter().position(|m| m.flags.0 & seen == 0);
        let (mut unseen, mut deleted, mut size, mut deleted_size) = (0u32, 0u32, 0u64, 0u64);
        for (m, &z) in self.msgs.iter().zip(self.sizes.iter()) {
            let d = u32::from(m.flags.0 & del != 0);
            unseen += u32::from(m.flags.0 & seen == 0);
            deleted += d;
            size += u64::from(z);
            deleted_size += u64::from(z) * u64::from(d);
        }
        // Set 0 is the empty set: marking only matters when there are others.
        let mut used = vec![false; self.kwsets.len()];
        if used.len() > 1 {
            for m in self.msgs.iter() {
                if let Some(u) = used.get_mut(m.kw as usize) {
                    *u = true;
                }
            }
        }
        let sets = used.iter().enumerate().filter(|(_, &u)| u).map(|(i, _)| i as u32);
        self.keywords = keywords_of(&self.kwsets, sets);
        (self.unseen, self.deleted, self.size, self.deleted_size) =
            (unseen, deleted, size, deleted_size);
    }

    /// STATUS counts; `first_recent` is the first UID no session has claimed.
    pub fn counts(&self, first_recent: u32) -> MailboxCounts {
        let from = self.msgs.partition_point(|m| m.uid < first_recent);
        MailboxCounts {
            messages: self.msgs.len() as u32,
            unseen: self.unseen,
            recent: (self.msgs.len() - from) as u32,
            deleted: self.deleted,
            size: self.size,
            deleted_size: self.deleted_size,
        }
    }

    fn len(&self) -> u64 {
        self.msgs.len() as u64
    }

    /// The metadata of every message, ascending UIDs, as the store lists them
    /// ([`Backend::list_messages`]) except `blob` and `prefix_len`, which are not kept
    /// here and left zero (callers that need them, EMAILID and THREADID, list the store),
    /// and `recent`, false.
    pub fn metas(&self) -> Vec<MessageMeta> {
        self.msgs
            .iter()
            .enumerate()
            .map(|(i, m)| MessageMeta {
                uid: m.uid,
                modseq: self.modseqs[i],
                flags: m.flags,
                keywords: self.kwsets.get(m.kw).to_vec(),
                internal_date: self.dates[i],
                size: u64::from(self.sizes[i]),
                blob: letterbox_store::BlobId([0; 32]),
                prefix_len: 0,
                recent: false,
            })
            .collect()
    }

    /// What FETCH INTERNALDATE, RFC822.SIZE and MODSEQ answer for `uid` in this state,
    /// as [`Snapshot::metas`] has it (no keywords, no blob: FETCH FLAGS answers from the
    /// session's view, EMAILID and THREADID read the store's row). `at` is where to
    /// look first, moved past the UID found: a batch asking in ascending UID order finds
    /// each in a step, anything else by a binary search. None when the UID is not in
    /// this state (expunged, or not yet in it) or its size did not fit in 32 bits: the
    /// caller reads the store's row.
    pub fn meta_of(&self, uid: u32, at: &mut usize) -> Option<MessageMeta> {
        let i = match self.msgs.get(*at) {
            Some(m) if m.uid == uid => *at,
            _ => self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()?,
        };
        *at = i + 1;
        let size = self.sizes[i];
        if size == u32::MAX {
            return None;
        }
        let m = &self.msgs[i];
        Some(MessageMeta {
            uid: m.uid,
            modseq: self.modseqs[i],
            flags: m.flags,
            keywords: Vec::new(),
            internal_date: self.dates[i],
            size: u64::from(size),
            blob: letterbox_store::BlobId([0; 32]),
            prefix_len: 0,
            recent: false,
        })
    }
}

/// The keywords of these sets, sorted, each once (FLAGS and PERMANENTFLAGS).
fn keywords_of(kwsets: &KeywordSets, sets: impl Iterator<Item = u32>) -> Vec<String> {
    let mut k: Vec<String> = sets.flat_map(|i| kwsets.get(i).iter().cloned()).collect();
    k.sort();
    k.dedup();
    k
}

fn msg(kwsets: &mut KeywordSets, m: &MessageMeta) -> Msg {
    Msg {
        uid: m.uid,
        kw: kwsets.intern(&m.keywords),
        flags: m.flags,
        expunged: false,
    }
}

/// The snapshots of the process's mailboxes, least recently used dropped first.
#[derive(Debug)]
pub struct Indexes {
    limit: u64,
    tick: AtomicU64,
    map: Mutex<HashMap<MailboxId, (Arc<Snapshot>, u64)>>,
    /// The decoded heads and MIME trees of the messages ([`super::cache`]).
    pub cache: MsgCache,
}

impl Default for Indexes {
    fn default() -> Self {
        Indexes::new(DEFAULT_INDEX_CACHE_MESSAGES, DEFAULT_INDEX_CACHE_BYTES)
    }
}

impl Indexes {
    pub fn new(limit: u64, cache_bytes: u64) -> Indexes {
        Indexes {
            limit,
            tick: AtomicU64::new(0),
            map: Mutex::new(HashMap::new()),
            cache: MsgCache::new(cache_bytes),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MailboxId, (Arc<Snapshot>, u64)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached snapshot of a mailbox, if any (not necessarily current).
    pub fn get(&self, mailbox: MailboxId) -> Option<Arc<Snapshot>> {
        let t = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut map = self.lock();
        let e = map.get_mut(&mailbox)?;
        e.1 = t;
        Some(e.0.clone())
    }

    /// Keeps `snap` unless a newer state of the same mailbox is already cached.
    pub fn put(&self, snap: &Arc<Snapshot>) {
        if self.limit == 0 {
            return;
        }
        let t = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut map = self.lock();
        match map.get_mut(&snap.mailbox) {
            Some(e) if e.0.uidvalidity == snap.uidvalidity && e.0.modseq >= snap.modseq => {
                e.1 = t;
                return;
            }
            _ => {
                map.insert(snap.mailbox, (snap.clone(), t));
            }
        }
        let msgs = &snap.msgs;
        self.cache
            .retain(snap.mailbox, snap.uidvalidity, msgs.len(), |u| {
                msgs.binary_search_by_key(&u, |m| m.uid).is_ok()
            });
        let mut total: u64 = map.values().map(|e| e.0.len()).sum();
        while total > self.limit {
            let Some((&id, _)) = map.iter().min_by_key(|(_, e)| e.1) else {
                break;
            };
            if let Some(e) = map.remove(&id) {
                total -= e.0.len();
            }
        }
    }

    /// Whether a snapshot of the mailbox is cached (without making it recently used).
    fn has(&self, mailbox: MailboxId) -> bool {
        self.lock().contains_key(&mailbox)
    }

    /// Messages in all cached snapshots together.
    pub fn messages(&self) -> u64 {
        self.lock().values().map(|e| e.0.len()).sum()
    }

    /// Forgets a mailbox (deleted).
    pub fn forget(&self, mailbox: MailboxId) {
        self.lock().remove(&mailbox);
        self.cache.forget(mailbox);
    }
}

/// The current snapshot of `mb` (read just now): `base` if it is still current, `base`
/// advanced by what changed since, or the whole mailbox read anew.
pub fn current(
    st: &dyn Backend,
    mb: &Mailbox,
    base: Option<Arc<Snapshot>>,
) -> letterbox_store::Result<Arc<Snapshot>> {
    match base {
        Some(b) if b.uidvalidity == mb.uidvalidity && b.mailbox == mb.id => {
            if b.modseq >= mb.highestmodseq {
                return Ok(b);
            }
            let ch = st.changes_since(mb.id, b.modseq)?;
            Ok(Arc::new(b.advance(mb.highestmodseq, &ch)))
        }
        _ => {
            if let Some(s) = stored(st, mb) {
                return Ok(s);
            }
            let list = st.list_messages(mb.id, false)?;
            let s = Arc::new(Snapshot::from_list(mb, mb.highestmodseq, list));
            if s.msgs.len() >= SAVE_MIN_MESSAGES {
                save(st, &s);
            }
            Ok(s)
        }
    }
}

/// Loads into `indexes` the mailboxes whose index the store keeps, largest first, up to
/// `budget` messages (and the cache's own bound), each current as a first SELECT would
/// make it; one store call per mailbox, so that sessions are served in between. A
/// mailbox already cached (a SELECT was first) is left as it is. Returns the mailboxes
/// and messages loaded.
pub async fn preload(
    store: &letterbox_store::Store,
    indexes: &Arc<Indexes>,
    budget: u64,
) -> (usize, u64) {
    let budget = budget.min(indexes.limit);
    if budget == 0 {
        return (0, 0);
    }
    let list = match store.run(|s| s.list_mailbox_indexes(PRELOAD_MAX_MAILBOXES)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("imap: stored indexes not listed, none preloaded: {e}");
            return (0, 0);
        }
    };
    let (mut mailboxes, mut messages) = (0usize, 0u64);
    for (id, octets) in list {
        // 29 octets a message and a header: an upper bound of the copy's messages.
        if messages + octets / 29 > budget || indexes.has(id) {
            continue;
        }
        let ix = indexes.clone();
        let r = store
            .run(move |s| {
                if ix.has(id) {
                    return Ok(None);
                }
                let mb = s.mailbox_by_id(id)?;
                Ok(stored(s, &mb))
            })
            .await;
        match r {
            Ok(Some(snap)) => {
                messages += snap.len();
                mailboxes += 1;
                indexes.put(&snap);
            }
            Ok(None) | Err(letterbox_store::Error::NotFound(_)) => {}
            Err(e) => tracing::warn!("imap: index of mailbox #{id} not preloaded: {e}"),
        }
    }
    (mailboxes, messages)
}

/// The snapshot of `mb` from the copy the store keeps, brought up to the mailbox's
/// HIGHESTMODSEQ; `None` when there is no usable copy (then the mailbox is read whole).
fn stored(st: &dyn Backend, mb: &Mailbox) -> Option<Arc<Snapshot>> {
    // Decoded from the octets the store lends (no copy of them). None: no copy, or one
    // of another UIDVALIDITY or newer than the mailbox row; Some(None): one that does
    // not decode.
    let mut got: Option<Option<(u64, Snapshot)>> = None;
    let mut older = false;
    let read = st.read_mailbox_index(mb.id, &mut |uidvalidity, modseq, data| {
        if uidvalidity == mb.uidvalidity && modseq <= mb.highestmodseq {
            older = data.starts_with(b"LBI1") || data.starts_with(b"LBI2");
            got = Some(Snapshot::decode(mb, modseq, data).map(|s| (modseq, s)));
        }
    });
    if let Err(e) = read {
        tracing::warn!("imap: stored index of mailbox #{} not read: {e}", mb.id);
        return None;
    }
    let Some((modseq, base)) = got? else {
        if older {
            // Written by an older build (records, or no counters): read whole once,
            // stored anew.
            tracing::info!("imap: stored index of mailbox #{} is of an older form", mb.id);
            return None;
        }
        tracing::warn!("imap: stored index of mailbox #{} does not decode", mb.id);
        return None;
    };
    if modseq == mb.highestmodseq {
        tracing::debug!("imap: mailbox #{} opened from its stored index", mb.id);
        return Some(Arc::new(base));
    }
    let ch = match st.changes_since(mb.id, modseq) {
        Ok(ch) => ch,
        Err(e) => {
            tracing::warn!("imap: changes of mailbox #{} not read: {e}", mb.id);
            return None;
        }
    };
    tracing::debug!(
        "imap: mailbox #{} opened from its stored index and {} changes since",
        mb.id,
        ch.changed.len() + ch.vanished.len()
    );
    let s = Arc::new(base.advance(mb.highestmodseq, &ch));
    // Many changes since the copy: a new one, so that the next start applies few.
    if ch.changed.len() + ch.vanished.len() > (s.msgs.len() / 4).max(SAVE_MIN_MESSAGES) {
        save(st, &s);
    }
    Some(s)
}

/// Has the store keep `s`; a failure (a full disk) is logged and changes nothing else.
fn save(st: &dyn Backend, s: &Snapshot) {
    if let Err(e) = st.save_mailbox_index(s.mailbox, s.uidvalidity, s.modseq, s.encode()) {
        tracing::warn!("imap: index of mailbox #{} not stored: {e}", s.mailbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: u32, flags: Flags, kw: &[&str], size: u64) -> MessageMeta {
        MessageMeta {
            uid,
            modseq: uid as u64,
            flags,
            keywords: kw.iter().map(|s| s.to_string()).collect(),
            internal_date: 0,
            size,
            blob: letterbox_store::BlobId([0; 32]),
            prefix_len: 0,
            recent: false,
        }
    }

    fn mb() -> Mailbox {
        Mailbox {
            id: 7,
            account_id: 1,
            name: "INBOX".into(),
            uidvalidity: 99,
            uidnext: 10,
            highestmodseq: 9,
            special_use: None,
        }
    }

    #[test]
    fn counters_and_changes() {
        let s = Snapshot::from_list(
            &mb(),
            9,
            vec![
                meta(1, Flags::SEEN, &[], 10),
                meta(2, Flags::DELETED, &["$x"], 20),
                meta(5, Flags::SEEN, &["b", "$x"], 30),
            ],
        );
        assert_eq!(s.first_unseen, Some(1));
        assert_eq!(
            (s.unseen, s.deleted, s.size, s.deleted_size),
            (1, 1, 60, 20)
        );
        assert_eq!(s.keywords, ["$x", "b"]);
        assert_eq!(s.counts(5).recent, 1);
        let ch = ChangesSince {
            changed: vec![
                meta(2, Flags::SEEN, &[], 20),
                meta(3, Flags::default(), &[], 5),
                meta(8, Flags::default(), &["c"], 1),
            ],
            vanished: vec![1, 8],
        };
        let t = s.advance(12, &ch);
        let uids: Vec<u32> = t.msgs.iter().map(|m| m.uid).collect();
        assert_eq!(uids, [2, 3, 5]);
        assert_eq!(t.modseq, 12);
        assert_eq!(t.first_unseen, Some(1));
        assert_eq!((t.unseen, t.deleted, t.size, t.deleted_size), (1, 0, 55, 0));
        assert_eq!(t.keywords, ["$x", "b"]);
        // The metadata SEARCH reads: as listed, in the new state.
        let m: Vec<(u32, u64, u64, Vec<String>)> = t
            .metas()
            .into_iter()
            .map(|m| (m.uid, m.modseq, m.size, m.keywords))
            .collect();
        assert_eq!(
            m,
            [(2, 2, 20, vec![]), (3, 3, 5, vec![]), (5, 5, 30, vec!["b".to_string(), "$x".to_string()])]
        );
        // The old state is untouched.
        assert_eq!(s.msgs.len(), 3);
        assert_eq!(s.metas().len(), 3);
    }

    /// FETCH's metadata of a UID: as listed, in ascending order or not; none for a UID
    /// not in the state or a size past 32 bits (the store's row answers those).
    #[test]
    fn meta_of_a_uid() {
        let mut big = meta(7, Flags::default(), &[], 1 << 33);
        big.internal_date = 70;
        let mut list = vec![meta(2, Flags::SEEN, &["k"], 20), meta(5, Flags::default(), &[], 30)];
        list[1].internal_date = 50;
        list.push(big);
        let s = Snapshot::from_list(&mb(), 9, list);
        let got = |uids: &[u32]| -> Vec<Option<(u32, u64, i64, u64)>> {
            let mut at = 0;
            uids.iter()
                .map(|&u| s.meta_of(u, &mut at).map(|m| (m.uid, m.size, m.internal_date, m.modseq)))
                .collect()
        };
        let two = Some((2, 20, 0, 2));
        let five = Some((5, 30, 50, 5));
        assert_eq!(got(&[2, 5, 7]), [two, five, None]);
        assert_eq!(got(&[5, 2, 3, 5, 9]), [five, two, None, five, None]);
    }

    /// The compact form gives back the same snapshot; anything else is refused.
    #[test]
    fn compact_form_round_trip() {
        let s = Snapshot::from_list(
            &mb(),
            9,
            vec![
                meta(1, Flags::SEEN, &[], 10),
                meta(2, Flags::DELETED, &["$x"], 20),
                meta(5, Flags::SEEN, &["b", "$x"], 30),
                meta(6, Flags::default(), &["$x"], u64::from(u32::MAX) + 5),
            ],
        );
        let data = s.encode();
        // Magic, the three keyword sets, the count, the counters, the three sets in use,
        // the columns.
        assert_eq!(
            data.len(),
            4 + 4 + (4) + (4 + 4 + 2) + (4 + 4 + 1 + 4 + 2) + 4 + 28 + (4 + 3 * 4) + 4 * 29
        );
        let d = Snapshot::decode(&mb(), 9, &data).unwrap();
        assert_eq!(d.metas(), s.metas());
        assert_eq!((d.modseq, d.uidvalidity, d.mailbox), (9, 99, 7));
        assert_eq!(d.keywords, s.keywords);
        assert_eq!(
            (d.first_unseen, d.unseen, d.deleted, d.size, d.deleted_size),
            (s.first_unseen, s.unseen, s.deleted, s.size, s.deleted_size)
        );
        for cut in 0..data.len() {
            assert!(Snapshot::decode(&mb(), 9, &data[..cut]).is_none(), "{cut}");
        }
        let mut bad = data.clone();
        bad[0] = b'X';
        assert!(Snapshot::decode(&mb(), 9, &bad).is_none());
        // The older form without counters (LBI2) is not taken for this one.
        let mut old = data.clone();
        old[3] = b'2';
        assert!(Snapshot::decode(&mb(), 9, &old).is_none());
        // Counters that cannot be: more unseen than messages, a first unseen without
        // any unseen (the counters follow the count, after the sets).
        let counters = data.len() - 4 * 29 - (4 + 3 * 4) - 28;
        let mut bad = data.clone();
        bad[counters] = 9;
        assert!(Snapshot::decode(&mb(), 9, &bad).is_none());
        let mut bad = data.clone();
        bad[counters..counters + 4].copy_from_slice(&0u32.to_le_bytes());
        assert!(Snapshot::decode(&mb(), 9, &bad).is_none());
        // UIDs out of order.
        let mut bad = data.clone();
        let first = data.len() - 4 * 29;
        bad[first] = 7;
        assert!(Snapshot::decode(&mb(), 9, &bad).is_none());
        // A keyword set the copy does not list.
        let mut bad = data.clone();
        bad[first + 4 * 4 + 4] = 99;
        assert!(Snapshot::decode(&mb(), 9, &bad).is_none());
        // A set listed twice: its messages take the number the set was interned under.
        let mut dup = MAGIC.to_vec();
        dup.extend_from_slice(&3u32.to_le_bytes()); // sets
        dup.extend_from_slice(&0u32.to_le_bytes()); // set 0: empty
        for _ in 0..2 {
            dup.extend_from_slice(&1u32.to_le_bytes()); // sets 1 and 2: {a}
            dup.extend_from_slice(&1u32.to_le_bytes());
            dup.push(b'a');
        }
        dup.extend_from_slice(&1u32.to_le_bytes()); // one message
        dup.extend_from_slice(&0u32.to_le_bytes()); // unseen
        dup.extend_from_slice(&0u32.to_le_bytes()); // deleted
        dup.extend_from_slice(&0u32.to_le_bytes()); // no first unseen
        dup.extend_from_slice(&7u64.to_le_bytes()); // size
        dup.extend_from_slice(&0u64.to_le_bytes()); // deleted size
        dup.extend_from_slice(&1u32.to_le_bytes()); // one set in use: 2
        dup.extend_from_slice(&2u32.to_le_bytes());
        dup.extend_from_slice(&5u32.to_le_bytes()); // UID
        dup.extend_from_slice(&2u32.to_le_bytes()); // keyword set 2
        dup.push(Flags::SEEN.0);
        dup.extend_from_slice(&7u32.to_le_bytes()); // size
        dup.extend_from_slice(&3i64.to_le_bytes()); // INTERNALDATE
        dup.extend_from_slice(&4u64.to_le_bytes()); // MODSEQ
        let d = Snapshot::decode(&mb(), 9, &dup).unwrap();
        assert_eq!(d.msgs[0].kw, 1);
        assert_eq!(d.keywords, ["a"]);
        let m = &d.metas()[0];
        assert_eq!((m.uid, m.size, m.internal_date, m.modseq), (5, 7, 3, 4));
        assert_eq!((d.unseen, d.first_unseen, d.size), (0, None, 7));
        let empty = Snapshot::from_list(&mb(), 1, vec![]);
        assert_eq!(Snapshot::decode(&mb(), 1, &empty.encode()).unwrap().msgs.len(), 0);
    }

    #[test]
    fn cache_keeps_newest_and_stays_bounded() {
        let idx = Indexes::new(4, 0);
        let a = Arc::new(Snapshot::from_list(
            &mb(),
            9,
            vec![meta(1, Flags::SEEN, &[], 1), meta(2, Flags::SEEN, &[], 1)],
        ));
        let newer = Arc::new(a.advance(
            11,
            &ChangesSince {
                changed: vec![meta(3, Flags::SEEN, &[], 1)],
                vanished: vec![],
            },
        ));
        idx.put(&newer);
        idx.put(&a);
        assert_eq!(idx.get(7).unwrap().modseq, 11);
        let mut other = mb();
        other.id = 8;
        let b = Arc::new(Snapshot::from_list(
            &other,
            3,
            vec![meta(1, Flags::SEEN, &[], 1), meta(2, Flags::SEEN, &[], 1)],
        ));
        idx.put(&b);
        // 3 + 2 > 4: the least recently used (mailbox 7) goes.
        assert!(idx.get(7).is_none());
        assert!(idx.get(8).is_some());
    }
}

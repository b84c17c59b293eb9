//! The per-mailbox message cache shared by the sessions of one serve process (issue 18):
//! what SEARCH of header keys (RFC 9051 6.4.4), SORT and THREAD (RFC 5256) and FETCH
//! BODY/BODYSTRUCTURE (RFC 9051 7.5.2) read of each message, decoded once and then kept
//! in memory, so that a second pass over a big mailbox scans memory and never the store.
//! Dovecot's `dovecot.index.cache` plays this part for it (the header fields and
//! BODYSTRUCTURE clients asked for before, per mailbox).
//!
//! - Per message, the *head* ([`Backend::heads_many`]: envelope, sent date, decoded
//!   top-level header fields, sort fields), the MIME tree ([`Backend::roots_many`]) and
//!   the envelope alone ([`Backend::envelopes_many`], FETCH ENVELOPE), each filled the first time a command needs it (lazily: a mailbox nobody searches
//!   costs nothing), from the store's compact forms.
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
//! The answers are those of the store's: an entry is exactly what the store returned.

use letterbox_message::{Address, Envelope, ParsedMessage, Part, PartKind};
use letterbox_store::{Backend, MailboxId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Estimated heap kept for all mailboxes together, by default: 256 MiB holds the heads
/// and MIME trees of some 150,000-250,000 typical messages.
pub const DEFAULT_INDEX_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// What is kept of one mailbox.
#[derive(Default)]
struct Mailbox {
    uidvalidity: u32,
    heads: HashMap<u32, Arc<ParsedMessage>>,
    roots: HashMap<u32, Arc<Part>>,
    envelopes: HashMap<u32, Arc<Envelope>>,
    bytes: u64,
    used: u64,
}

#[derive(Default)]
struct Inner {
    boxes: HashMap<MailboxId, Mailbox>,
    bytes: u64,
    tick: u64,
}

/// The cache of the process (one per IMAP service).
pub struct MsgCache {
    limit: u64,
    inner: Mutex<Inner>,
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

    /// The envelopes of `uids` (FETCH ENVELOPE), as [`heads`](Self::heads).
    pub fn envelopes(
        &self,
        st: &dyn Backend,
        mailbox: MailboxId,
        uidvalidity: u32,
        uids: &[u32],
    ) -> letterbox_store::Result<Vec<(u32, Arc<Envelope>)>> {
        self.get_or_load(
            mailbox,
            uidvalidity,
            uids,
            |m| &mut m.envelopes,
            |missing| st.envelopes_many(mailbox, missing),
            |e| 128 + envelope_bytes(e),
        )
    }

    fn get_or_load<T>(
        &self,
        mailbox: MailboxId,
        uidvalidity: u32,
        uids: &[u32],
        map: impl Fn(&mut Mailbox) -> &mut HashMap<u32, Arc<T>>,
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
                inner.bytes = inner.bytes - dropped + grown;
                Self::shrink(&mut inner, self.limit, mailbox);
            }
        }
        // Merge, in the order of `uids`.
        let mut loaded: HashMap<u32, Arc<T>> = loaded.into_iter().collect();
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
            && m.envelopes.len() <= live
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
        m.envelopes.retain(|&u, v| {
            let keep = alive(u);
            if !keep {
                freed += 48 + 128 + envelope_bytes(v);
            }
            keep
        });
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

//! A session's view of its selected mailbox: message sequence numbers mapped to UIDs,
//! with the flags the client was last told, kept in step with the store.
//!
//! The view changes only when the session tells the client: new messages become visible
//! with `EXISTS`, flag changes with `FETCH`, and removals with `EXPUNGE` — which RFC 9051
//! section 7.5.1 forbids while a FETCH, STORE or SEARCH (non-UID forms) is answered. So a
//! message expunged by another session stays in the view, marked `expunged`, until the
//! next command that may announce it ([`SyncMode::Full`]).
//!
//! Once CONDSTORE is on (RFC 7162 3.1), unsolicited flag updates carry `MODSEQ`; once
//! QRESYNC is on (RFC 7162 3.2.10), removals are announced as one `* VANISHED uid-set`
//! instead of `* n EXPUNGE` lines (under the same RFC 9051 7.5.1 rules).
//!
//! Sync asks the store for everything above the MODSEQ it last saw
//! (`changes_since`), after reading the mailbox's HIGHESTMODSEQ; anything committed in
//! between is reported again next time, which the comparisons here make harmless.

use crate::parser::{SeqNum, SequenceSet};
use crate::response;
use letterbox_store::{ChangesSince, Flags, MailboxId, MessageMeta};
use std::collections::HashMap;
use std::sync::Arc;

/// One message as the client knows it: 12 octets, so that many sessions on big
/// mailboxes stay small. Keywords are a reference to an interned set ([`KeywordSets`]).
/// `\Recent` is not kept here but as UID ranges beside the list ([`Selected::recent`]),
/// so that marking a session's claim does not copy a list it shares.
#[derive(Debug, Clone, Copy)]
pub struct Msg {
    pub uid: u32,
    /// Index of the message's keyword set in [`Selected::kwsets`] (0: none).
    pub kw: u32,
    pub flags: Flags,
    /// Expunged in the store; not yet announced to the client.
    pub expunged: bool,
}

/// The distinct keyword sets of a mailbox, each stored once.
#[derive(Debug, Clone)]
pub struct KeywordSets {
    sets: Vec<Arc<[String]>>,
    index: HashMap<Arc<[String]>, u32>,
}

impl Default for KeywordSets {
    fn default() -> Self {
        let empty: Arc<[String]> = Arc::from(Vec::new());
        KeywordSets {
            sets: vec![empty.clone()],
            index: HashMap::from([(empty, 0)]),
        }
    }
}

impl KeywordSets {
    pub fn intern(&mut self, kws: &[String]) -> u32 {
        if let Some(&i) = self.index.get(kws) {
            return i;
        }
        let set: Arc<[String]> = Arc::from(kws.to_vec());
        let i = self.sets.len() as u32;
        self.sets.push(set.clone());
        self.index.insert(set, i);
        i
    }
    pub fn get(&self, i: u32) -> &[String] {
        self.sets.get(i as usize).map(|s| &s[..]).unwrap_or(&[])
    }
    pub fn len(&self) -> usize {
        self.sets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// EXPUNGE may be sent.
    Full,
    /// During FETCH, STORE and SEARCH: new messages and flag changes only.
    NoExpunge,
}

pub struct Selected {
    pub id: MailboxId,
    /// The UTF-8 name, as selected.
    pub name: String,
    pub uidvalidity: u32,
    pub read_only: bool,
    /// Shared with the mailbox's [`super::index::Snapshot`] (and the other sessions
    /// showing the same state) until this view must differ: then copied on write.
    pub msgs: Arc<Vec<Msg>>,
    /// The MODSEQ up to which the view is known to be current.
    pub known_modseq: u64,
    /// The UIDs `\Recent` to this session (IMAP4rev1; RFC 3501 2.3.2), as ascending,
    /// disjoint half-open ranges `[from, to)`, each clipped to the messages the view had
    /// when it was added ([`Selected::add_recent`]). A claim is always "the UIDs from
    /// the mailbox's mark up to its UIDNEXT" (`letterbox_store::open_mailbox`, sync),
    /// so a session's recent messages are a few ranges, not a mark per message: the
    /// view keeps sharing the mailbox's snapshot after its claim.
    pub recent: Vec<(u32, u32)>,
    /// RFC 5182 `$`: the UIDs the last `SEARCH RETURN (SAVE)` found.
    pub saved: Vec<u32>,
    /// Keywords announced in FLAGS; a new one is announced again (RFC 9051 7.3.5).
    pub keywords: Vec<String>,
    pub kwsets: KeywordSets,
    /// CONDSTORE is enabled: unsolicited FETCH responses carry MODSEQ.
    pub modseqs: bool,
    /// QRESYNC is enabled: removals are announced with VANISHED.
    pub vanished: bool,
    /// Some messages are marked `expunged` and not yet announced.
    pub unannounced: bool,
}

/// A sequence set that names messages that do not exist (RFC 9051: BAD).
#[derive(Debug)]
pub struct BadSequence;

/// A UID set as sorted, merged ranges: membership in O(log ranges), so a client's
/// set of 100,000 ranges against a mailbox of 100,000 messages stays cheap.
#[derive(Debug, Clone, Default)]
pub struct UidSet(Vec<(u32, u32)>);

impl UidSet {
    /// `*` stands for `star`; `$` names nothing here.
    pub fn new(set: &SequenceSet, star: u32) -> UidSet {
        let SequenceSet::Ranges(r) = set else {
            return UidSet::default();
        };
        let v = |n: SeqNum| match n {
            SeqNum::Value(v) => v,
            SeqNum::Star => star,
        };
        let mut ranges: Vec<(u32, u32)> = r
            .iter()
            .map(|&(a, b)| (v(a).min(v(b)), v(a).max(v(b))))
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        UidSet(merged)
    }

    pub fn contains(&self, uid: u32) -> bool {
        let i = self.0.partition_point(|&(_, b)| b < uid);
        self.0.get(i).is_some_and(|&(a, _)| a <= uid)
    }
}

impl Selected {
    pub fn msg_from_meta(&mut self, m: &MessageMeta) -> Msg {
        Msg {
            uid: m.uid,
            kw: self.kwsets.intern(&m.keywords),
            flags: m.flags,
            expunged: false,
        }
    }

    /// Adds the claimed (or, read-only, unclaimed) UIDs `[from, to)` to the session's
    /// `\Recent` ones, for the messages the view holds above `above`: the range is
    /// clipped to `(above, max_uid]`, so that a later claim is never covered by an
    /// earlier range.
    pub fn add_recent(&mut self, (from, to): (u32, u32), above: u32) {
        let from = from.max(above.saturating_add(1));
        let to = to.min(self.max_uid().saturating_add(1));
        if from < to {
            self.recent.push((from, to));
        }
    }

    /// Whether the message with this UID is `\Recent` to this session.
    pub fn is_recent(&self, uid: u32) -> bool {
        if self.recent.is_empty() {
            return false;
        }
        let i = self.recent.partition_point(|&(_, to)| to <= uid);
        self.recent.get(i).is_some_and(|&(from, _)| from <= uid)
    }

    /// The number of messages in the view that are `\Recent` to this session.
    pub fn recent_count(&self) -> usize {
        self.recent
            .iter()
            .map(|&(from, to)| {
                self.msgs.partition_point(|m| m.uid < to)
                    - self.msgs.partition_point(|m| m.uid < from)
            })
            .sum()
    }

    /// The keywords of the message at `i`.
    pub fn keywords(&self, i: usize) -> &[String] {
        self.msgs
            .get(i)
            .map(|m| self.kwsets.get(m.kw))
            .unwrap_or(&[])
    }

    pub fn set_flags(&mut self, i: usize, flags: Flags, keywords: &[String]) {
        let kw = self.kwsets.intern(keywords);
        if let Some(m) = Arc::make_mut(&mut self.msgs).get_mut(i) {
            m.flags = flags;
            m.kw = kw;
        }
    }

    pub fn exists(&self) -> u32 {
        self.msgs.len() as u32
    }

    pub fn max_uid(&self) -> u32 {
        self.msgs.last().map(|m| m.uid).unwrap_or(0)
    }

    pub fn index_of_uid(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    /// Indices (ascending, deduplicated) of the messages a set names.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, BadSequence> {
        let mut out: Vec<usize> = Vec::new();
        match set {
            SequenceSet::Saved => {
                for &u in &self.saved {
                    if let Some(i) = self.index_of_uid(u) {
                        out.push(i);
                    }
                }
            }
            SequenceSet::Ranges(ranges) if uid => {
                let star = self.max_uid();
                for &(a, b) in ranges {
                    let v = |n: SeqNum| match n {
                        SeqNum::Value(v) => v,
                        SeqNum::Star => star,
                    };
                    let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
                    let start = self.msgs.partition_point(|m| m.uid < lo);
                    let end = self.msgs.partition_point(|m| m.uid <= hi);
                    out.extend(start..end);
                }
            }
            SequenceSet::Ranges(ranges) => {
                let n = self.msgs.len() as u32;
                for &(a, b) in ranges {
                    let v = |x: SeqNum| match x {
                        SeqNum::Value(v) => v,
                        SeqNum::Star => n,
                    };
                    let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
                    if lo == 0 || hi > n {
                        return Err(BadSequence);
                    }
                    out.extend((lo - 1) as usize..hi as usize);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Applies what the store reports and writes the untagged responses that tell the
    /// client. `rev1` adds `\Recent` and `RECENT`.
    pub fn apply(
        &mut self,
        changes: ChangesSince,
        highest: u64,
        mode: SyncMode,
        rev1: bool,
        recent: (u32, u32),
        out: &mut Vec<u8>,
    ) -> bool {
        self.known_modseq = self.known_modseq.max(highest);
        for uid in &changes.vanished {
            if let Some(i) = self.index_of_uid(*uid) {
                Arc::make_mut(&mut self.msgs)[i].expunged = true;
                self.unannounced = true;
            }
        }
        let mut removed = false;
        if mode == SyncMode::Full {
            removed = !self.flush_expunges(out).is_empty();
        }
        let mut flag_changes = Vec::new();
        let mut modseq_of = HashMap::new();
        let mut added = 0u32;
        let mut added_recent = false;
        let above = self.max_uid();
        for m in changes.changed {
            if changes.vanished.contains(&m.uid) {
                continue;
            }
            if m.uid > self.max_uid() {
                let msg = self.msg_from_meta(&m);
                // Recent to this session if it claimed it (IMAP4rev1, see
                // `Session::sync`), or, read-only, if no session has claimed it.
                added_recent |= m.uid >= recent.0 && m.uid < recent.1;
                Arc::make_mut(&mut self.msgs).push(msg);
                added += 1;
            } else if let Some(i) = self.index_of_uid(m.uid) {
                if self.msgs[i].expunged {
                    continue;
                }
                if self.msgs[i].flags != m.flags || self.keywords(i) != &m.keywords[..] {
                    self.set_flags(i, m.flags, &m.keywords);
                    flag_changes.push(i);
                    modseq_of.insert(i, m.modseq);
                }
            }
        }
        if added > 0 {
            self.add_recent(recent, above);
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.exists()).as_bytes());
            if rev1 {
                // RFC 3501 7.3.2: told when the number changes (as Dovecot).
                let recent = self.recent_count();
                if added_recent {
                    out.extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
                }
            }
        }
        let touched: Vec<usize> = flag_changes
            .iter()
            .copied()
            .chain(self.msgs.len() - added as usize..self.msgs.len())
            .collect();
        self.announce_keywords(&touched, out);
        for i in flag_changes {
            let modseq = modseq_of.get(&i).copied().filter(|_| self.modseqs);
            self.write_flags_modseq(i, true, rev1, modseq, out);
        }
        removed
    }

    /// Shares the snapshot's messages again when this view holds exactly the same state
    /// (nothing of its own: no expunge to announce; `\Recent` is kept apart), so that a
    /// session that has synced does not keep a private copy of a big mailbox. True if
    /// shared.
    pub fn adopt(&mut self, snap: &super::index::Snapshot) -> bool {
        if Arc::ptr_eq(&self.msgs, &snap.msgs) {
            return true;
        }
        if self.unannounced
            || snap.mailbox != self.id
            || snap.uidvalidity != self.uidvalidity
            || snap.modseq != self.known_modseq
            || snap.msgs.len() != self.msgs.len()
        {
            return false;
        }
        let same = self.msgs.iter().zip(snap.msgs.iter()).all(|(a, b)| {
            a.uid == b.uid
                && a.flags == b.flags
                && !a.expunged
                && (a.kw == 0 && b.kw == 0 || self.kwsets.get(a.kw) == snap.kwsets.get(b.kw))
        });
        if same {
            self.msgs = snap.msgs.clone();
            self.kwsets = snap.kwsets.clone();
        }
        same
    }

    /// `* FLAGS` and `* OK [PERMANENTFLAGS]` again when these messages carry a keyword
    /// the client has not been told of.
    pub fn announce_keywords(&mut self, indices: &[usize], out: &mut Vec<u8>) {
        let mut new = false;
        for &i in indices {
            let Some(m) = self.msgs.get(i) else { continue };
            for k in self.kwsets.get(m.kw) {
                if !self.keywords.iter().any(|x| x == k) {
                    self.keywords.push(k.clone());
                    new = true;
                }
            }
        }
        if new {
            self.keywords.sort();
            out.extend_from_slice(self.flags_responses().as_bytes());
        }
    }

    /// The FLAGS and PERMANENTFLAGS responses.
    pub fn flags_responses(&self) -> String {
        let mut flags = String::from("\\Answered \\Flagged \\Deleted \\Seen \\Draft");
        for k in &self.keywords {
            flags.push(' ');
            flags.push_str(k);
        }
        let mut s = format!("* FLAGS ({flags})\r\n");
        if self.read_only {
            s.push_str("* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
        } else {
            s.push_str(&format!(
                "* OK [PERMANENTFLAGS ({flags} \\*)] Flags permitted\r\n"
            ));
        }
        s
    }

    /// Announces (and forgets) the messages expunged elsewhere, in ascending order with
    /// each number counted after the previous removals, as RFC 9051 6.4.3 shows.
    pub fn flush_expunges(&mut self, out: &mut Vec<u8>) -> Vec<u32> {
        let mut removed = Vec::new();
        // Every expunge mark comes with `unannounced` ([`Selected::apply`]): without it
        // there is nothing to look for (no walk of a big list after every command).
        if !std::mem::take(&mut self.unannounced) {
            return removed;
        }
        let mut kept = Vec::with_capacity(self.msgs.len());
        for (i, &m) in std::mem::take(&mut self.msgs).iter().enumerate() {
            if m.expunged {
                let seq = i + 1 - removed.len();
                if !self.vanished {
                    out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes());
                }
                removed.push(m.uid);
            } else {
                kept.push(m);
            }
        }
        self.msgs = Arc::new(kept);
        if self.vanished {
            // RFC 7162 3.2.10: UIDs, ascending, as one sequence set.
            out.extend_from_slice(
                format!("* VANISHED {}\r\n", response::sequence_set(&removed)).as_bytes(),
            );
        }
        let set: std::collections::HashSet<u32> = removed.iter().copied().collect();
        self.saved.retain(|u| !set.contains(u));
        removed
    }

    /// `* n FETCH (UID u FLAGS (...))`.
    pub fn write_flags(&self, i: usize, with_uid: bool, rev1: bool, out: &mut Vec<u8>) {
        self.write_flags_modseq(i, with_uid, rev1, None, out)
    }

    /// `* n FETCH (UID u MODSEQ (m) FLAGS (...))` (RFC 7162 3.1.4's order, as Dovecot).
    pub fn write_flags_modseq(
        &self,
        i: usize,
        with_uid: bool,
        rev1: bool,
        modseq: Option<u64>,
        out: &mut Vec<u8>,
    ) {
        let m = &self.msgs[i];
        out.extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
        if with_uid {
            out.extend_from_slice(format!("UID {} ", m.uid).as_bytes());
        }
        if let Some(ms) = modseq {
            out.extend_from_slice(format!("MODSEQ ({ms}) ").as_bytes());
        }
        out.extend_from_slice(b"FLAGS ");
        response::flags(out, m.flags, self.kwsets.get(m.kw), rev1 && self.is_recent(m.uid));
        out.extend_from_slice(b")\r\n");
    }

    /// Keywords in use in the mailbox, for FLAGS and PERMANENTFLAGS.
    pub fn keywords_in_use(&self) -> Vec<String> {
        let mut used = vec![false; self.kwsets.sets.len()];
        for m in self.msgs.iter() {
            if let Some(u) = used.get_mut(m.kw as usize) {
                *u = true;
            }
        }
        let mut k: Vec<String> = used
            .iter()
            .enumerate()
            .filter(|(_, &u)| u)
            .flat_map(|(i, _)| self.kwsets.get(i as u32).iter().cloned())
            .collect();
        k.sort();
        k.dedup();
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(uids: &[u32]) -> Selected {
        Selected {
            id: 1,
            name: "INBOX".into(),
            uidvalidity: 1,
            read_only: false,
            msgs: Arc::new(uids
                .iter()
                .map(|&uid| Msg {
                    uid,
                    kw: 0,
                    flags: Flags::default(),
                    expunged: false,
                })
                .collect()),
            known_modseq: 1,
            recent: vec![],
            saved: vec![],
            keywords: vec![],
            kwsets: KeywordSets::default(),
            modseqs: false,
            vanished: false,
            unannounced: false,
        }
    }

    #[test]
    fn resolve_sets() {
        let s = sel(&[3, 5, 9, 10]);
        let r = |set: SequenceSet, uid| s.resolve(&set, uid).ok();
        use SeqNum::*;
        assert_eq!(
            r(SequenceSet::Ranges(vec![(Value(1), Star)]), false),
            Some(vec![0, 1, 2, 3])
        );
        assert_eq!(
            r(SequenceSet::Ranges(vec![(Value(5), Value(5))]), false),
            None
        );
        assert_eq!(
            r(SequenceSet::Ranges(vec![(Value(4), Value(9))]), true),
            Some(vec![1, 2])
        );
        assert_eq!(
            r(SequenceSet::Ranges(vec![(Star, Value(6))]), true),
            Some(vec![2, 3])
        );
        assert_eq!(
            r(SequenceSet::Ranges(vec![(Value(11), Star)]), true),
            Some(vec![3])
        );
        assert_eq!(
            r(
                SequenceSet::Ranges(vec![(Value(2), Value(1)), (Value(2), Value(2))]),
                false
            ),
            Some(vec![0, 1])
        );
    }

    #[test]
    fn uid_sets() {
        use SeqNum::*;
        let set = UidSet::new(
            &SequenceSet::Ranges(vec![
                (Value(9), Value(7)),
                (Value(1), Value(2)),
                (Value(3), Value(3)),
                (Value(20), Star),
            ]),
            25,
        );
        let hits: Vec<u32> = (0..30).filter(|&u| set.contains(u)).collect();
        assert_eq!(hits, [1, 2, 3, 7, 8, 9, 20, 21, 22, 23, 24, 25]);
        assert!(!UidSet::new(&SequenceSet::Saved, 5).contains(1));
    }

    #[test]
    fn keyword_sets_are_shared() {
        let mut s = sel(&[1, 2, 3]);
        s.set_flags(0, Flags::SEEN, &["$a".into(), "b".into()]);
        s.set_flags(1, Flags::default(), &["$a".into(), "b".into()]);
        s.set_flags(2, Flags::default(), &["c".into()]);
        assert_eq!(s.msgs[0].kw, s.msgs[1].kw);
        assert_eq!(s.keywords(1), ["$a".to_string(), "b".to_string()]);
        assert_eq!(s.keywords_in_use(), ["$a", "b", "c"]);
        s.set_flags(2, Flags::default(), &[]);
        assert_eq!(s.msgs[2].kw, 0);
        assert_eq!(s.keywords_in_use(), ["$a", "b"]);
        assert_eq!(std::mem::size_of::<Msg>(), 12);
    }

    /// `\Recent` as UID ranges: clipped to the view, counted and tested per UID, and
    /// extended by a sync's claim for the arrivals only.
    #[test]
    fn recent_ranges() {
        let mut s = sel(&[1, 2, 5, 6, 9]);
        s.add_recent((2, 7), 0);
        assert_eq!(s.recent_count(), 3);
        let marks: Vec<bool> = [1, 2, 5, 6, 9].iter().map(|&u| s.is_recent(u)).collect();
        assert_eq!(marks, [false, true, true, true, false]);
        // EXAMINE's unclaimed UIDs `[first_recent, u32::MAX)`: clipped to the messages
        // held, so a later claim by another session is not covered.
        let mut r = sel(&[1, 2, 3]);
        r.add_recent((2, u32::MAX), 0);
        assert_eq!(r.recent, [(2, 4)]);
        let meta = |uid: u32| MessageMeta {
            uid,
            modseq: 2,
            flags: Flags::default(),
            keywords: vec![],
            internal_date: 0,
            size: 1,
            blob: letterbox_store::BlobId([0; 32]),
            prefix_len: 0,
            recent: false,
        };
        let changes = ChangesSince {
            changed: vec![meta(4), meta(5)],
            vanished: vec![],
        };
        // The sync's claim names 3 (already held, not recent again) and 4, not 5.
        let mut out = Vec::new();
        r.apply(changes, 2, SyncMode::Full, true, (3, 5), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* 5 EXISTS\r\n* 3 RECENT\r\n"
        );
        assert_eq!(r.recent, [(2, 4), (4, 5)]);
        let marks: Vec<bool> = (1..=5).map(|u| r.is_recent(u)).collect();
        assert_eq!(marks, [false, true, true, true, false]);
        let mut out = Vec::new();
        r.write_flags(3, true, true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* 4 FETCH (UID 4 FLAGS (\\Recent))\r\n"
        );
    }

    #[test]
    fn expunge_order() {
        let mut s = sel(&(1..=12).collect::<Vec<_>>());
        for uid in [3, 4, 7, 11] {
            Arc::make_mut(&mut s.msgs)[uid as usize - 1].expunged = true;
        }
        s.unannounced = true;
        let mut out = Vec::new();
        s.flush_expunges(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* 3 EXPUNGE\r\n* 3 EXPUNGE\r\n* 5 EXPUNGE\r\n* 8 EXPUNGE\r\n"
        );
        assert_eq!(s.exists(), 8);
    }

    #[test]
    fn vanished_and_modseq_once_enabled() {
        let mut s = sel(&(1..=6).collect::<Vec<_>>());
        s.modseqs = true;
        s.vanished = true;
        let changed = |uid: u32, modseq: u64| MessageMeta {
            uid,
            modseq,
            flags: Flags::SEEN,
            keywords: vec![],
            internal_date: 0,
            size: 1,
            blob: letterbox_store::BlobId([0; 32]),
            prefix_len: 0,
            recent: false,
        };
        let changes = ChangesSince {
            changed: vec![changed(4, 8), changed(5, 9)],
            vanished: vec![2, 3, 6],
        };
        let mut out = Vec::new();
        assert!(s.apply(changes, 9, SyncMode::Full, false, (0, 0), &mut out));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* VANISHED 2:3,6\r\n* 2 FETCH (UID 4 MODSEQ (8) FLAGS (\\Seen))\r\n\
             * 3 FETCH (UID 5 MODSEQ (9) FLAGS (\\Seen))\r\n"
        );
        assert_eq!(s.known_modseq, 9);
    }
}

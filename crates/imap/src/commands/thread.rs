//! THREAD and UID THREAD (RFC 5256 sections 3, 4 and 5): ORDEREDSUBJECT and REFERENCES.
//!
//! The messages are those the search criteria select ([`search::scan`]); what threading
//! needs comes from the sort keys made at delivery (`letterbox_message::sortkeys`: the
//! first `Message-ID`, the parent IDs of `References` or `In-Reply-To`, the decoded
//! subject and the sent date, RFC 5256 2.2), read from the message rows in one range
//! scan, or, for messages stored before those existed, from their decoded heads.
//! Those are derived once per message ([`keys`]) and kept in the process's message
//! cache with every string numbered
//! ([`crate::session::cache::MsgCache::thread_keys`]), so threading compares numbers:
//! no parsing, case mapping or string hashing per command. The answer is `* THREAD` with one parenthesised list per thread,
//! e.g. `(2)(3 6 (4 23)(44 7 96))`: a message followed by its one child, or by a list
//! per child when it has several; a dummy (a message referred to but not present)
//! writes no number.
//!
//! ORDEREDSUBJECT: messages sorted by base subject, then sent date; each run with the
//! same base subject is a thread whose first message is the parent of all the others;
//! threads ordered by their first message's sent date.
//!
//! REFERENCES follows section 4 step by step ([`references`]): links from References
//! (or the first In-Reply-To ID), refusing links that would make loops; the first
//! message with a given Message-ID keeps it, later duplicates (and messages without one)
//! are unique; dummies pruned; the root set sorted, merged by base subject, and every
//! set of siblings sorted by sent date. Ties in sent date go by sequence number.

use super::search;
use super::sort::{base_subject, charset_ok, push_num};
use crate::parser::{SearchKey, ThreadAlgorithm};
use crate::session::cache::{ThreadKeys, ThreadText};
use crate::session::{store_error, Fatal, Reply, Session};
use letterbox_message::sortkeys::SortKeysRef;
use std::borrow::Cow;
use std::sync::Arc;

/// What threading knows of one selected message.
#[derive(Debug, Clone)]
pub struct Msg {
    /// What the message is called in the answer (sequence number or UID).
    pub num: u32,
    /// Sequence number (ties).
    pub seq: u32,
    /// Sent date, base subject, Message-ID and parent IDs (numbered strings).
    pub keys: Arc<ThreadKeys>,
}

/// What threading compares of a message, from its sort keys (made at delivery, or from
/// its head: `letterbox_message::sortkeys::SortKeys::of`) and INTERNALDATE (the sent
/// date's fallback, RFC 5256 2.2): the base subject and whether it marked a reply or
/// forward, the first Message-ID, and the parent IDs (the last
/// [`MAX_REFS`](letterbox_message::sortkeys::MAX_REFS) References, else the first
/// In-Reply-To ID).
pub fn keys(k: SortKeysRef<'_>, internal_date: i64) -> ThreadText<'_> {
    // Made at delivery (records of version LBS2), else from the decoded subject.
    let (subject, refwd) = match k.base_subject {
        Some((s, refwd)) => (Cow::Borrowed(s), refwd),
        None => {
            let (s, refwd) = base_subject(k.subject.unwrap_or(""));
            (Cow::Owned(s), refwd)
        }
    };
    ThreadText {
        date: k.sent_date.unwrap_or(internal_date),
        subject,
        refwd,
        message_id: k.message_id.map(Cow::Borrowed),
        refs: k.refs.into_iter().map(Cow::Borrowed).collect(),
    }
}

/// No node / no entry, in the tables indexed by name number.
const NONE: u32 = u32::MAX;

/// A node of the thread tree: a message or a dummy.
#[derive(Debug, Clone, Default)]
struct Node {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Tree<'a> {
    msgs: &'a [Msg],
    nodes: Vec<Node>,
}

impl Tree<'_> {
    fn new_node(&mut self, msg: Option<usize>) -> usize {
        self.nodes.push(Node {
            msg,
            ..Node::default()
        });
        self.nodes.len() - 1
    }
    fn unlink(&mut self, n: usize) {
        if let Some(p) = self.nodes[n].parent.take() {
            self.nodes[p].children.retain(|&c| c != n);
        }
    }
    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }
    /// Is `a` an ancestor of `n` (or `n` itself)? A node without children is nobody's
    /// ancestor (the common case: no walk). Past [`MAX_DEPTH`] ancestors the answer is
    /// yes, so that a hostile set of References costs at most that many steps a link.
    fn reaches(&self, a: usize, mut n: usize) -> bool {
        if a != n && self.nodes[a].children.is_empty() {
            return false;
        }
        for _ in 0..MAX_DEPTH {
            if n == a {
                return true;
            }
            match self.nodes[n].parent {
                Some(p) => n = p,
                None => return false,
            }
        }
        true
    }
    /// The message whose date and subject stand for a node: itself, or for a dummy its
    /// first child's (children are sorted before their parent is).
    fn rep(&self, n: usize) -> Option<&Msg> {
        let mut n = n;
        loop {
            if let Some(m) = self.nodes[n].msg {
                return Some(&self.msgs[m]);
            }
            n = *self.nodes[n].children.first()?;
        }
    }
    fn key(&self, n: usize) -> (i64, u32) {
        self.rep(n).map(|m| (m.keys.date, m.seq)).unwrap_or_default()
    }
    fn sort_children(&mut self, n: usize) {
        let mut kids = std::mem::take(&mut self.nodes[n].children);
        kids.sort_by_key(|&k| self.key(k));
        self.nodes[n].children = kids;
    }
    /// The nodes below `roots`, each after its descendants (no recursion: a thread can
    /// be as deep as the mailbox is long).
    fn post_order(&self, roots: &[usize]) -> Vec<usize> {
        let mut pre = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<usize> = roots.to_vec();
        while let Some(n) = stack.pop() {
            pre.push(n);
            stack.extend(&self.nodes[n].children);
        }
        pre.reverse();
        pre
    }
    /// Step 3: removes empty dummies and promotes the children of the others, except a
    /// dummy with several children at the top level.
    fn prune(&mut self, roots: Vec<usize>) -> Vec<usize> {
        let promote = |t: &mut Tree, list: Vec<usize>, parent: Option<usize>, top: bool| {
            // Most lists hold no dummy: kept as they are, without a new list.
            if list.iter().all(|&k| t.nodes[k].msg.is_some()) {
                return list;
            }
            let mut out = Vec::with_capacity(list.len());
            for k in list {
                let many = t.nodes[k].children.len() > 1;
                if t.nodes[k].msg.is_none() && !(top && many) {
                    let kids = std::mem::take(&mut t.nodes[k].children);
                    for &g in &kids {
                        t.nodes[g].parent = parent;
                    }
                    out.extend(kids);
                } else {
                    out.push(k);
                }
            }
            out
        };
        // Children before parents: a promoted child's own dummies are already gone.
        for n in self.post_order(&roots) {
            let kids = std::mem::take(&mut self.nodes[n].children);
            self.nodes[n].children = promote(self, kids, Some(n), false);
        }
        promote(self, roots, None, true)
    }
    /// Step 6: sorts every set of siblings, the deepest first.
    fn sort_all(&mut self, roots: &[usize]) {
        for n in self.post_order(roots) {
            self.sort_children(n);
        }
    }
    /// Writes one thread: a message, then its one child, or a list per child. `stack`
    /// is scratch space, empty before and after (one for all the threads).
    fn write(&self, out: &mut String, stack: &mut Vec<Step>, root: usize) {
        stack.push(Step::Node(root));
        while let Some(step) = stack.pop() {
            let n = match step {
                Step::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Step::Node(n) => n,
            };
            let node = &self.nodes[n];
            let kids = &node.children;
            if let Some(m) = node.msg {
                push_num(out, self.msgs[m].num);
                if !kids.is_empty() {
                    out.push(' ');
                }
            }
            if kids.len() == 1 {
                stack.push(Step::Node(kids[0]));
            } else {
                for &k in kids.iter().rev() {
                    stack.push(Step::Text(")"));
                    stack.push(Step::Node(k));
                    stack.push(Step::Text("("));
                }
            }
        }
    }
}

/// What is left to write of a thread ([`Tree::write`]).
enum Step {
    Node(usize),
    Text(&'static str),
}

/// How many ancestors a link looks through for loops (see [`Tree::reaches`]).
const MAX_DEPTH: usize = 4096;

/// THREAD=REFERENCES (RFC 5256 section 4) over messages in sequence order, whose keys
/// number their strings below `names`; returns the threads as written in the
/// `* THREAD` response, without the prefix.
pub fn references(msgs: &[Msg], names: usize) -> String {
    let mut t = Tree {
        msgs,
        nodes: Vec::with_capacity(msgs.len() * 2),
    };
    // The node of each ID (by its number).
    let mut ids: Vec<u32> = vec![NONE; names];
    let node_of = |ids: &[u32], id: u32| ids.get(id as usize).copied().filter(|&n| n != NONE);
    // (1) Links.
    for (i, m) in msgs.iter().enumerate() {
        // (A) The message's own container: its Message-ID's, unless an earlier message
        // has that ID (then it is unique, as a message without one).
        let me = match m.keys.message_id {
            Some(id) => match node_of(&ids, id) {
                Some(n) if t.nodes[n as usize].msg.is_none() => {
                    t.nodes[n as usize].msg = Some(i);
                    n as usize
                }
                Some(_) => t.new_node(Some(i)),
                None => {
                    let n = t.new_node(Some(i));
                    if let Some(e) = ids.get_mut(id as usize) {
                        *e = n as u32;
                    }
                    n
                }
            },
            None => t.new_node(Some(i)),
        };
        let mut prev: Option<usize> = None;
        for &r in m.keys.refs.iter() {
            let n = match node_of(&ids, r) {
                Some(n) => n as usize,
                None => {
                    let n = t.new_node(None);
                    if let Some(e) = ids.get_mut(r as usize) {
                        *e = n as u32;
                    }
                    n
                }
            };
            if let Some(p) = prev {
                // Linked only when not linked already and without making a loop.
                if t.nodes[n].parent.is_none() && !t.reaches(n, p) {
                    t.link(p, n);
                }
            }
            prev = Some(n);
        }
        // (B) The last reference is the parent; a message without references has none.
        t.unlink(me);
        if let Some(p) = prev {
            if !t.reaches(me, p) {
                t.link(p, me);
            }
        }
    }
    // (2) The root set; (3) the id table is no longer needed; prune dummies.
    drop(ids);
    let roots: Vec<usize> = (0..t.nodes.len())
        .filter(|&n| t.nodes[n].parent.is_none())
        .collect();
    let mut roots = t.prune(roots);
    // (4) Sort the root set (a dummy by its first child, its children sorted first).
    for &r in &roots {
        if t.nodes[r].msg.is_none() {
            t.sort_children(r);
        }
    }
    roots.sort_by_key(|&r| t.key(r));
    // (5) Gather the roots with the same base subject (by its number; an empty one is
    // never gathered).
    let subject_of = |t: &Tree, n: usize| {
        t.rep(n)
            .and_then(|m| m.keys.subject.map(|s| (s as usize, m.keys.refwd)))
    };
    let mut table: Vec<u32> = vec![NONE; names];
    for &r in &roots {
        let Some((subj, refwd)) = subject_of(&t, r) else {
            continue;
        };
        let Some(slot) = table.get(subj).copied() else {
            continue;
        };
        let dummy = t.nodes[r].msg.is_none();
        if slot == NONE {
            table[subj] = r as u32;
        } else {
            let old = slot as usize;
            let old_dummy = t.nodes[old].msg.is_none();
            let old_refwd = subject_of(&t, old).is_some_and(|s| s.1);
            // A dummy replaces a message; a message replaces a reply or forward.
            if !old_dummy && (dummy || (old_refwd && !refwd)) {
                table[subj] = r as u32;
            }
        }
    }
    let mut merged = vec![false; t.nodes.len()];
    for idx in 0..roots.len() {
        let r = roots[idx];
        let Some((subj, refwd)) = subject_of(&t, r) else {
            continue;
        };
        let Some(top) = table.get(subj).copied().filter(|&x| x != NONE) else {
            continue;
        };
        let top = top as usize;
        if top == r {
            continue;
        }
        let (dummy, top_dummy) = (t.nodes[r].msg.is_none(), t.nodes[top].msg.is_none());
        let top_refwd = subject_of(&t, top).is_some_and(|s| s.1);
        if dummy && top_dummy {
            for k in std::mem::take(&mut t.nodes[r].children) {
                t.nodes[k].parent = None;
                t.link(top, k);
            }
        } else if top_dummy || (refwd && !top_refwd && !dummy) {
            t.link(top, r);
        } else {
            // A new dummy takes the place of the message in the table.
            let d = t.new_node(None);
            merged.push(false);
            if let Some(pos) = roots.iter().position(|&x| x == top) {
                roots[pos] = d;
            }
            t.link(d, top);
            t.link(d, r);
            table[subj] = d as u32;
        }
        merged[r] = true;
    }
    // (6) Sort every level, the root set last.
    let mut roots: Vec<usize> = roots.into_iter().filter(|&r| !merged[r]).collect();
    t.sort_all(&roots);
    roots.sort_by_key(|&r| t.key(r));
    // About a number and a separator per message: one allocation for most answers.
    let mut out = String::with_capacity(msgs.len() * 8);
    let mut stack = Vec::new();
    for r in roots {
        out.push('(');
        t.write(&mut out, &mut stack, r);
        out.push(')');
    }
    out
}

/// THREAD=ORDEREDSUBJECT (RFC 5256 section 3). Messages with the same base subject
/// (the same number) make one thread; the order of the subjects themselves never
/// shows, since threads are ordered by their first message's date.
pub fn ordered_subject(msgs: &[Msg]) -> String {
    let mut order: Vec<&Msg> = msgs.iter().collect();
    let key = |m: &Msg| (m.keys.subject, m.keys.date, m.seq);
    order.sort_by_key(|m| key(m));
    let mut threads: Vec<Vec<&Msg>> = Vec::new();
    for m in order {
        match threads.last_mut() {
            Some(t) if t[0].keys.subject == m.keys.subject => t.push(m),
            _ => threads.push(vec![m]),
        }
    }
    threads.sort_by_key(|t| (t[0].keys.date, t[0].seq));
    let mut out = String::with_capacity(msgs.len() * 8);
    for t in threads {
        out.push('(');
        push_num(&mut out, t[0].num);
        match t.len() {
            1 => {}
            2 => {
                out.push(' ');
                push_num(&mut out, t[1].num);
            }
            _ => {
                out.push(' ');
                for m in &t[1..] {
                    out.push('(');
                    push_num(&mut out, m.num);
                    out.push(')');
                }
            }
        }
        out.push(')');
    }
    out
}

pub async fn run(
    s: &mut Session,
    uid: bool,
    algorithm: ThreadAlgorithm,
    charset: &str,
    key: SearchKey,
) -> Result<Reply, Fatal> {
    if !charset_ok(charset) {
        return Ok(Reply::no("Unsupported charset").code("BADCHARSET (UTF-8 US-ASCII)"));
    }
    let Some(sel) = s.selected() else {
        return Ok(Reply::bad("No mailbox selected"));
    };
    let sel = search::selection(sel, &s.indexes);
    let refs = algorithm == ThreadAlgorithm::References;
    let r = s
        .ctx
        .store
        .run(move |st| {
            // The matching messages (their heads are read only if the search key needs
            // them), then their keys from the cache, in the same (sequence) order.
            let mut found = Vec::new();
            search::scan(st, &sel, &key, false, |cand, m, _| {
                found.push((cand.uid, cand.seq, m.internal_date));
            })?;
            let asked: Vec<(u32, i64)> = found.iter().map(|f| (f.0, f.2)).collect();
            let (keyed, names) =
                sel.indexes
                    .cache
                    .thread_keys(st, sel.mb, sel.uidvalidity, &asked, keys)?;
            // `keyed` follows `found`, without messages expunged meanwhile.
            let mut msgs = Vec::with_capacity(keyed.len());
            let mut k = keyed.into_iter().peekable();
            for (u, seq, _) in found {
                if k.peek().is_some_and(|e| e.0 == u) {
                    if let Some((_, keys)) = k.next() {
                        msgs.push(Msg {
                            num: if uid { u } else { seq },
                            seq,
                            keys,
                        });
                    }
                }
            }
            Ok(if refs {
                references(&msgs, names)
            } else {
                ordered_subject(&msgs)
            })
        })
        .await;
    // Searchable heads this scan derived: kept in the store after the answer.
    crate::commands::fetch::write_stored_later(s);
    let threads = match r {
        Ok(t) => t,
        Err(e) => return Ok(store_error(&e)),
    };
    // `thread-data = "THREAD" [SP 1*thread-list]`: no space before nothing (Dovecot
    // sends one).
    let sp: &[u8] = if threads.is_empty() { b"" } else { b" " };
    for part in [b"* THREAD", sp, threads.as_bytes(), b"\r\n"] {
        s.conn.push(part);
    }
    Ok(Reply::ok("THREAD completed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use letterbox_message::sortkeys::MAX_REFS;

    use crate::session::cache::Names;

    /// A message numbered `seq`, dated `date`, with a subject, an ID and references.
    fn m(
        seq: u32,
        date: i64,
        subject: &str,
        id: Option<&str>,
        refs: &[&str],
    ) -> (u32, ThreadText<'static>) {
        let (subject, refwd) = base_subject(subject);
        let t = ThreadText {
            date,
            subject: Cow::Owned(subject),
            refwd,
            message_id: id.map(|s| Cow::Owned(s.to_string())),
            refs: refs.iter().map(|s| Cow::Owned(s.to_string())).collect(),
        };
        (seq, t)
    }

    /// The messages with their strings numbered, as the cache numbers them.
    fn ms(list: Vec<(u32, ThreadText<'_>)>) -> (Vec<Msg>, usize) {
        let mut names = Names::default();
        let mut bytes = 0;
        let msgs = list
            .into_iter()
            .map(|(seq, t)| Msg {
                num: seq,
                seq,
                keys: Arc::new(names.intern(t, &mut bytes)),
            })
            .collect();
        (msgs, names.len())
    }

    fn refs(x: &(Vec<Msg>, usize)) -> String {
        references(&x.0, x.1)
    }

    fn ordered(x: &(Vec<Msg>, usize)) -> String {
        ordered_subject(&x.0)
    }

    #[test]
    fn references_example_shapes() {
        // 1 <- 2 <- 3, 2 <- 4; 5 alone.
        let msgs = ms(vec![
            m(1, 10, "a", Some("1"), &[]),
            m(2, 20, "Re: a", Some("2"), &["1"]),
            m(3, 30, "Re: a", Some("3"), &["1", "2"]),
            m(4, 40, "Re: a", Some("4"), &["1", "2"]),
            m(5, 15, "b", Some("5"), &[]),
        ]);
        assert_eq!(refs(&msgs), "(1 2 (3)(4))(5)");
    }

    #[test]
    fn references_missing_parent_makes_a_dummy() {
        // Two replies to a message that is not there: a dummy root with two children.
        let msgs = ms(vec![
            m(1, 20, "Re: x", Some("1"), &["gone"]),
            m(2, 10, "Re: x", Some("2"), &["gone"]),
            m(3, 5, "y", Some("3"), &[]),
        ]);
        assert_eq!(refs(&msgs), "(3)((2)(1))");
        // One reply to a missing parent: the dummy is pruned.
        let msgs = ms(vec![m(1, 20, "Re: x", Some("1"), &["gone"])]);
        assert_eq!(refs(&msgs), "(1)");
        // A missing parent in the middle of the chain is pruned, its child promoted.
        let msgs = ms(vec![
            m(1, 10, "x", Some("1"), &[]),
            m(2, 20, "Re: x", Some("2"), &["1", "gone"]),
            m(3, 30, "Re: x", Some("3"), &["1", "gone2"]),
        ]);
        assert_eq!(refs(&msgs), "(1 (2)(3))");
    }

    #[test]
    fn references_subject_merging() {
        // Same base subject, no references: the non-reply becomes the parent.
        let msgs = ms(vec![
            m(1, 10, "Re: hello", Some("1"), &[]),
            m(2, 20, "hello", Some("2"), &[]),
            m(3, 30, "Fwd: hello", Some("3"), &[]),
            m(4, 40, "other", Some("4"), &[]),
        ]);
        assert_eq!(refs(&msgs), "(2 (1)(3))(4)");
        let msgs = ms(vec![
            m(1, 10, "hello", Some("1"), &[]),
            m(2, 20, "hello", Some("2"), &[]),
        ]);
        // Two non-replies: a dummy holds both.
        assert_eq!(refs(&msgs), "((1)(2))");
        let msgs = ms(vec![
            m(1, 10, "hello", Some("1"), &[]),
            m(2, 20, "Re: hello", Some("2"), &[]),
            m(3, 30, "Re: hello", Some("3"), &[]),
        ]);
        assert_eq!(refs(&msgs), "(1 (2)(3))");
        // Empty subjects are never merged.
        let msgs = ms(vec![
            m(1, 10, "", Some("1"), &[]),
            m(2, 20, "Re:", Some("2"), &[]),
        ]);
        assert_eq!(refs(&msgs), "(1)(2)");
    }

    #[test]
    fn references_loops_and_duplicates() {
        // References that loop: 1 names 2 as parent and 2 names 1.
        let msgs = ms(vec![
            m(1, 10, "a", Some("1"), &["2"]),
            m(2, 20, "b", Some("2"), &["1"]),
        ]);
        let out = refs(&msgs);
        assert!(out == "(2 1)" || out == "(1 2)", "{out}");
        // A message naming itself.
        let msgs = ms(vec![m(1, 10, "a", Some("1"), &["1"])]);
        assert_eq!(refs(&msgs), "(1)");
        // A References chain that repeats itself.
        let msgs = ms(vec![
            m(1, 10, "a", Some("1"), &[]),
            m(2, 20, "b", Some("2"), &["1", "x", "1", "x"]),
        ]);
        assert_eq!(refs(&msgs), "(1 2)");
        // Duplicate Message-IDs: the second is a message of its own.
        let msgs = ms(vec![
            m(1, 10, "a", Some("d"), &[]),
            m(2, 20, "b", Some("d"), &[]),
            m(3, 30, "c", Some("3"), &["d"]),
        ]);
        assert_eq!(refs(&msgs), "(1 3)(2)");
        // No Message-ID at all.
        let msgs = ms(vec![m(1, 10, "a", None, &[]), m(2, 20, "b", None, &[])]);
        assert_eq!(refs(&msgs), "(1)(2)");
    }

    #[test]
    fn references_ties_go_by_sequence() {
        let msgs = ms(vec![
            m(1, 10, "a", Some("1"), &[]),
            m(2, 10, "b", Some("2"), &[]),
            m(3, 5, "Re: a", Some("3"), &["1"]),
            m(4, 5, "Re: a", Some("4"), &["1"]),
        ]);
        assert_eq!(refs(&msgs), "(1 (3)(4))(2)");
    }

    #[test]
    fn deep_chains_neither_recurse_nor_take_quadratic_time() {
        // 50,000 messages, each answering the one before: far deeper than any stack.
        let n = 50_000u32;
        let msgs: Vec<(u32, ThreadText)> = (1..=n)
            .map(|i| {
                let id = i.to_string();
                let prev = (i - 1).to_string();
                let refs: &[&str] = if i == 1 { &[] } else { &[prev.as_str()] };
                m(i, i64::from(i), "Re: chain", Some(&id), refs)
            })
            .collect();
        let want: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        assert_eq!(refs(&ms(msgs)), format!("({})", want.join(" ")));
        // The same chain named in References by each message (all its ancestors), in
        // reverse arrival: the walk for loops stops after MAX_DEPTH ancestors.
        let n = 6_000u32;
        let ids: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        let msgs: Vec<(u32, ThreadText)> = (1..=n)
            .rev()
            .map(|i| {
                let refs: Vec<&str> = ids[..i as usize - 1].iter().map(String::as_str).collect();
                let refs = &refs[refs.len().saturating_sub(MAX_REFS)..];
                m(
                    n + 1 - i,
                    i64::from(i),
                    "x",
                    Some(&ids[i as usize - 1]),
                    refs,
                )
            })
            .collect();
        let out = refs(&ms(msgs));
        let mut nums: Vec<u32> = out
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        nums.sort_unstable();
        assert_eq!(nums, (1..=n).collect::<Vec<_>>());
        assert!(
            out.starts_with(&format!("({} {} ", n, n - 1)),
            "{}",
            &out[..30]
        );
    }

    #[test]
    fn ordered_subject_threads() {
        let msgs = ms(vec![
            m(1, 30, "b", None, &[]),
            m(2, 10, "Re: a", None, &[]),
            m(3, 20, "a", None, &[]),
            m(4, 5, "Re: b", None, &[]),
            m(5, 40, "c", None, &[]),
            m(6, 50, "[fwd: a]", None, &[]),
        ]);
        assert_eq!(ordered(&msgs), "(4 1)(2 (3)(6))(5)");
        assert_eq!(ordered_subject(&[]), "");
    }
}

//! FETCH and UID FETCH (RFC 9051 6.4.5): FLAGS, UID, INTERNALDATE, RFC822.SIZE, ENVELOPE,
//! BODYSTRUCTURE, BODY, `BODY[section]<partial>`, BODY.PEEK, RFC822, RFC822.HEADER,
//! RFC822.TEXT, `BINARY[part]<partial>`, BINARY.PEEK, BINARY.SIZE (RFC 3516), MODSEQ, and
//! the macros ALL, FAST, FULL; EMAILID and THREADID (RFC 8474, see [`crate::objectid`])
//! and PREVIEW (RFC 8970: the text the message crate kept at delivery, at most 200
//! characters, white space collapsed; `(LAZY)` gets the same answer, as it is always at
//! hand).
//!
//! Structure comes from `store.parsed` (parsed once, at delivery) and octets from
//! `store.open_message(..).read_range`, which decompresses only up to the section's end;
//! only HEADER.FIELDS looks inside octets, to select header fields. Messages are rendered
//! in chunks on the blocking pool and flushed as they are ready; a chunk ends once its
//! output passes 256 KiB, so a `1:*` fetch of big messages holds about one message in
//! memory, not the whole answer.
//!
//! Fetching a body section without PEEK sets `\Seen` (read-write sessions only) and adds
//! the new FLAGS to that message's response when FLAGS was not asked for (and its
//! MODSEQ, once CONDSTORE is on).
//!
//! CONDSTORE/QRESYNC (RFC 7162 3.1.4, 3.2.6): `MODSEQ` and the `CHANGEDSINCE n` modifier
//! turn CONDSTORE on; CHANGEDSINCE keeps the messages whose MODSEQ is above `n` and adds
//! MODSEQ to the items (last, as Dovecot). `UID FETCH set items (CHANGEDSINCE n
//! VANISHED)`, QRESYNC clients only (BAD otherwise), first answers
//! `* VANISHED (EARLIER) uids`: the UIDs of the set expunged above `n`.

mod section;
mod structure;

pub use structure::{body_structure, envelope};

use crate::datetime::write_date_time;
use crate::parser::{FetchAtt, FetchModifiers, SequenceSet};
use crate::response;
use crate::session::view::UidSet;
use crate::session::{store_error, Fatal, Reply, Session};
use letterbox_store::{Backend, Error as StoreError, FlagOp, Flags, MailboxId, MessageMeta};
use section::Extract;
use std::sync::Arc;

/// Messages rendered per trip to the blocking pool.
const CHUNK: usize = 128;
/// Messages per trip when nothing but metadata and structure is asked for (a few hundred
/// octets of output each: FETCH 1:* ENVELOPE makes fewer trips).
const CHUNK_LIGHT: usize = 1024;
/// Flush the output buffer beyond this many octets.
const FLUSH_AT: usize = 256 * 1024;

struct Item {
    seq: u32,
    uid: u32,
    flags: Flags,
    keywords: Vec<String>,
    recent: bool,
    /// \Seen was just set: report FLAGS even if not asked.
    force_flags: bool,
    /// With those forced FLAGS, MODSEQ too (CONDSTORE on, MODSEQ not asked).
    force_modseq: bool,
}

enum FetchError {
    UnknownCte,
    Store(StoreError),
}

impl From<StoreError> for FetchError {
    fn from(e: StoreError) -> Self {
        FetchError::Store(e)
    }
}

fn sets_seen(items: &[FetchAtt]) -> bool {
    items.iter().any(|a| {
        matches!(
            a,
            FetchAtt::Rfc822
                | FetchAtt::Rfc822Text
                | FetchAtt::BodySection { peek: false, .. }
                | FetchAtt::Binary { peek: false, .. }
        )
    })
}

pub async fn run(
    s: &mut Session,
    uid: bool,
    set: &SequenceSet,
    mut items: Vec<FetchAtt>,
    modifiers: FetchModifiers,
) -> Result<Reply, Fatal> {
    let utf8 = s.utf8();
    let rev1 = s.rev1();
    if modifiers.vanished && !s.enabled.qresync {
        return Ok(Reply::bad("QRESYNC not enabled"));
    }
    if uid && !items.contains(&FetchAtt::Uid) {
        items.insert(0, FetchAtt::Uid);
    }
    if modifiers.changed_since.is_some() && !items.contains(&FetchAtt::ModSeq) {
        items.push(FetchAtt::ModSeq);
    }
    if items.contains(&FetchAtt::ModSeq) {
        s.enable_condstore(true);
    }
    let Some(sel) = s.selected() else {
        return Ok(Reply::bad("No mailbox selected"));
    };
    let mut indices = match sel.resolve(set, uid) {
        Ok(v) => v,
        Err(_) => return Ok(Reply::bad("Invalid message sequence number")),
    };
    let mb = sel.id;
    let uidvalidity = sel.uidvalidity;
    if let Some(since) = modifiers.changed_since {
        let r = s.ctx.store.run(move |st| st.changes_since(mb, since)).await;
        let changes = match r {
            Ok(c) => c,
            Err(e) => return Ok(store_error(&e)),
        };
        let Some(sel) = s.selected() else {
            return Ok(Reply::bad("No mailbox selected"));
        };
        let changed: std::collections::HashSet<u32> =
            changes.changed.iter().map(|m| m.uid).collect();
        indices.retain(|&i| changed.contains(&sel.msgs[i].uid));
        if modifiers.vanished {
            // `*` is the largest UID in use: at least any expunged one above the view's.
            let star = sel
                .max_uid()
                .max(changes.vanished.last().copied().unwrap_or(0));
            let wanted = UidSet::new(set, star);
            let gone: Vec<u32> = changes
                .vanished
                .into_iter()
                .filter(|&u| wanted.contains(u))
                .collect();
            if !gone.is_empty() {
                let line = format!("* VANISHED (EARLIER) {}\r\n", response::sequence_set(&gone));
                s.conn.push(line.as_bytes());
            }
        }
    }
    let condstore = s.enabled.condstore && !items.contains(&FetchAtt::ModSeq);
    let Some(sel) = s.selected() else {
        return Ok(Reply::bad("No mailbox selected"));
    };
    let mut forced = std::collections::HashSet::new();
    if !sel.read_only && sets_seen(&items) {
        let unseen: Vec<u32> = indices
            .iter()
            .map(|&i| &sel.msgs[i])
            .filter(|m| !m.expunged && !m.flags.contains(Flags::SEEN))
            .map(|m| m.uid)
            .collect();
        if !unseen.is_empty() {
            let r = s
                .ctx
                .store
                .run(move |st| st.store_flags(mb, &unseen, FlagOp::Add, Flags::SEEN, &[], None))
                .await;
            match r {
                Ok(res) => {
                    if let Some(sel) = s.selected_mut() {
                        for u in res.updated {
                            if let Some(i) = sel.index_of_uid(u.uid) {
                                sel.set_flags(i, u.flags, &u.keywords);
                                forced.insert(i);
                            }
                        }
                    }
                }
                Err(e) => return Ok(store_error(&e)),
            }
        }
    }
    if items
        .iter()
        .all(|a| matches!(a, FetchAtt::Uid | FetchAtt::Flags))
    {
        return session_only(s, mb, &indices, &items, rev1, utf8).await;
    }
    let chunk_len = if items.iter().all(is_light) {
        CHUNK_LIGHT
    } else {
        CHUNK
    };
    let items = Arc::new(items);
    let mut expunged = false;
    let mut pos = 0;
    while pos < indices.len() {
        let Some(sel) = s.selected() else {
            break;
        };
        let chunk = &indices[pos..(pos + chunk_len).min(indices.len())];
        let batch: Vec<Option<Item>> = chunk
            .iter()
            .map(|&i| {
                let m = &sel.msgs[i];
                if m.expunged {
                    return None;
                }
                Some(Item {
                    seq: i as u32 + 1,
                    uid: m.uid,
                    flags: m.flags,
                    keywords: sel.keywords(i).to_vec(),
                    recent: rev1 && sel.is_recent(m.uid),
                    force_flags: forced.contains(&i),
                    force_modseq: condstore && forced.contains(&i),
                })
            })
            .collect();
        let items = items.clone();
        let indexes = s.indexes.clone();
        // Renders until the output passes FLUSH_AT (big bodies: one message at a time),
        // and says how many of the batch it got through.
        let r = s
            .ctx
            .store
            .run(move |st| {
                // Some 300 octets a message for the light items (ENVELOPE, BODYSTRUCTURE):
                // grown once or twice, not a dozen times.
                let mut out = Vec::with_capacity(batch.len() * 256);
                let mut gone = false;
                let mut done = 0;
                // One query each for the batch's metadata and structures, instead of
                // one per message (FETCH 1:* ENVELOPE over a big mailbox).
                let uids: Vec<u32> = batch.iter().flatten().map(|it| it.uid).collect();
                let mut metas: ByUid<MessageMeta> = if items.iter().any(needs_meta) {
                    metas(st, &indexes, mb, uidvalidity, &items, &uids)?
                } else {
                    ByUid::default()
                };
                // ENVELOPE alone (FETCH 1:* ENVELOPE) decodes only the envelopes.
                let only_envelope = items
                    .iter()
                    .filter(|a| needs_structure(a))
                    .all(|a| *a == FetchAtt::Envelope);
                // BODY/BODYSTRUCTURE alone (FETCH 1:* BODYSTRUCTURE) only the MIME trees.
                let only_tree = items
                    .iter()
                    .filter(|a| needs_structure(a))
                    .all(|a| matches!(a, FetchAtt::Body | FetchAtt::BodyStructure));
                // BODYSTRUCTURE alone (FETCH 1:* BODYSTRUCTURE): its answers are kept
                // rendered in the message cache (and the store's copy of it).
                let only_bodystructure = only_tree
                    && !only_envelope
                    && items.iter().any(needs_structure)
                    && items
                        .iter()
                        .filter(|a| needs_structure(a))
                        .all(|a| *a == FetchAtt::BodyStructure);
                let mut rendered: ByUid<Arc<Vec<u8>>> = match only_bodystructure {
                    true => indexes
                        .cache
                        .bodystructures(st, mb, uidvalidity, &uids, utf8, |p| {
                            let mut v = Vec::with_capacity(256);
                            body_structure(&mut v, p, true, utf8, 0);
                            v
                        })?
                        .into_iter()
                        .collect(),
                    false => ByUid::default(),
                };
                // Otherwise the trees are kept decoded in the process's message cache.
                let mut roots: ByUid<Arc<letterbox_message::Part>> = match items
                    .iter()
                    .any(needs_structure)
                    && only_tree
                    && !only_envelope
                    && !only_bodystructure
                {
                        true => indexes
                            .cache
                            .roots(st, mb, uidvalidity, &uids)?
                            .into_iter()
                            .collect(),
                        false => ByUid::default(),
                    };
                // ENVELOPE alone: its answers kept rendered in the message cache (made
                // at delivery: `Backend::envelopes_rendered_many`).
                let (mut structures, mut envelopes) = match items.iter().any(needs_structure) {
                    true if only_envelope => (
                        ByUid::default(),
                        indexes
                            .cache
                            .envelopes(st, mb, uidvalidity, &uids, utf8)?
                            .into_iter()
                            .collect(),
                    ),
                    true if only_tree => (ByUid::default(), ByUid::default()),
                    true => (
                        st.parsed_many(mb, &uids, false)?.into_iter().collect(),
                        ByUid::default(),
                    ),
                    false => (ByUid::default(), ByUid::default()),
                };
                let mut headers: ByUid<Vec<u8>> = if items.iter().any(needs_header) {
                    st.headers_many(mb, &uids)?.into_iter().collect()
                } else {
                    ByUid::default()
                };
                for it in &batch {
                    done += 1;
                    let Some(it) = it else {
                        gone = true;
                        continue;
                    };
                    let start = out.len();
                    let pre = Pre {
                        meta: metas.take(it.uid),
                        parsed: structures.take(it.uid),
                        header: headers.take(it.uid),
                        envelope: envelopes.take(it.uid),
                        root: roots.take(it.uid),
                        bodystructure: rendered.take(it.uid),
                    };
                    match render(st, mb, it, &items, utf8, &mut out, pre) {
                        Ok(()) => {}
                        Err(FetchError::Store(StoreError::NotFound(_))) => {
                            out.truncate(start);
                            gone = true;
                        }
                        Err(FetchError::Store(e)) => return Err(e),
                        Err(FetchError::UnknownCte) => {
                            out.truncate(start);
                            return Ok((out, done, gone, true));
                        }
                    }
                    if out.len() > FLUSH_AT {
                        break;
                    }
                }
                Ok((out, done, gone, false))
            })
            .await;
        match r {
            Ok((out, done, gone, unknown_cte)) => {
                s.conn.push_vec(out);
                expunged |= gone;
                pos += done.max(1);
                if unknown_cte {
                    write_stored_later(s);
                    return Ok(Reply::no("Unknown content-transfer-encoding").code("UNKNOWN-CTE"));
                }
            }
            Err(e) => {
                write_stored_later(s);
                return Ok(store_error(&e));
            }
        }
        if s.conn.out.len() > FLUSH_AT {
            let flushed = s.conn.flush().await;
            if flushed.is_err() {
                write_stored_later(s);
            }
            flushed?;
        }
    }
    write_stored_later(s);
    Ok(if expunged {
        Reply::ok("Some messages were expunged").code("EXPUNGEISSUED")
    } else {
        Reply::ok("FETCH completed")
    })
}

/// Writes the store's copy of what this command queued (BODYSTRUCTURE renderings, searchable
/// heads: SEARCH, SORT and THREAD call it too), off the
/// command's path, each chunk once (`MsgCache::write_stored`), in a task of its own on
/// the store's blocking pool; a failure only costs speed. Called on every way out of
/// the batches, so that nothing queued waits for a later command.
pub(crate) fn write_stored_later(s: &Session) {
    if s.indexes.cache.has_stored_pending() {
        let store = s.ctx.store.clone();
        let indexes = s.indexes.clone();
        tokio::spawn(async move {
            let _ = store
                .run(move |st| {
                    indexes.cache.write_stored(st);
                    Ok(())
                })
                .await;
        });
    }
}

/// FETCH of what the session knows (UID, FLAGS): rendered in place, without a trip to
/// the store's thread pool per chunk (`FETCH 1:* (FLAGS)` over a big mailbox).
async fn session_only(
    s: &mut Session,
    mb: MailboxId,
    indices: &[usize],
    items: &[FetchAtt],
    rev1: bool,
    utf8: bool,
) -> Result<Reply, Fatal> {
    let mut expunged = false;
    for chunk in indices.chunks(4096) {
        let Some(sel) = s.selected() else {
            break;
        };
        let mut out = Vec::with_capacity(chunk.len() * 32);
        for &i in chunk {
            let m = &sel.msgs[i];
            if m.expunged {
                expunged = true;
                continue;
            }
            let it = Item {
                seq: i as u32 + 1,
                uid: m.uid,
                flags: m.flags,
                keywords: sel.keywords(i).to_vec(),
                recent: rev1 && sel.is_recent(m.uid),
                // \Seen is never set by UID/FLAGS: nothing forced.
                force_flags: false,
                force_modseq: false,
            };
            // Reads nothing from the store for these attributes, so it cannot fail.
            let _ = render(
                &*s.ctx.store,
                mb,
                &it,
                items,
                utf8,
                &mut out,
                Default::default(),
            );
        }
        s.conn.push(&out);
        if s.conn.out.len() > FLUSH_AT {
            s.conn.flush().await?;
        }
    }
    Ok(if expunged {
        Reply::ok("Some messages were expunged").code("EXPUNGEISSUED")
    } else {
        Reply::ok("FETCH completed")
    })
}

/// Partial `<start.len>` of a range: (offset, length) inside it.
fn clip(len: u64, partial: Option<(u32, u32)>) -> (u64, u64) {
    match partial {
        None => (0, len),
        Some((s, l)) => {
            let s = u64::from(s).min(len);
            (s, u64::from(l).min(len - s))
        }
    }
}

fn clip_vec(v: Vec<u8>, partial: Option<(u32, u32)>) -> Vec<u8> {
    let (s, l) = clip(v.len() as u64, partial);
    v[s as usize..(s + l) as usize].to_vec()
}

fn partial_label(partial: Option<(u32, u32)>) -> String {
    partial.map(|(s, _)| format!("<{s}>")).unwrap_or_default()
}

/// The batch's metadata: from the process's index of the mailbox
/// ([`crate::session::index`], 32 octets a message: INTERNALDATE, RFC822.SIZE, MODSEQ)
/// when every attribute that needs it is answered from there and the index is cached
/// (a SELECT put it there), brought to the mailbox's HIGHESTMODSEQ first (RFC 7162
/// 3.1.1: a change by another session or node raised it, `changes_since` reads what
/// changed), so that `FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)` reads the
/// mailbox row and no message row; the store's rows ([`Backend::messages`]) for the
/// messages it does not have (expunged meanwhile: the store says they are gone) and
/// for EMAILID, THREADID and the sections (the blob).
fn metas(
    st: &dyn Backend,
    indexes: &crate::session::index::Indexes,
    mb: MailboxId,
    uidvalidity: u32,
    items: &[FetchAtt],
    uids: &[u32],
) -> letterbox_store::Result<ByUid<MessageMeta>> {
    let snap = match items
        .iter()
        .filter(|a| needs_meta(a))
        .all(|a| matches!(a, FetchAtt::InternalDate | FetchAtt::Rfc822Size | FetchAtt::ModSeq))
    {
        true => indexes.get(mb).and_then(|base| {
            let row = st.mailbox_by_id(mb).ok()?;
            if row.uidvalidity != uidvalidity || base.uidvalidity != uidvalidity {
                return None;
            }
            Some(crate::session::index::current(st, &row, Some(base)))
        }),
        false => None,
    };
    let Some(snap) = snap.transpose()? else {
        return Ok(st
            .messages(mb, uids)?
            .into_iter()
            .map(|m| (m.uid, m))
            .collect());
    };
    indexes.put(&snap);
    let mut at = 0;
    let mut v = Vec::with_capacity(uids.len());
    let mut missing = Vec::new();
    for &u in uids {
        match snap.meta_of(u, &mut at) {
            Some(m) => v.push((u, m)),
            None => missing.push(u),
        }
    }
    if !missing.is_empty() {
        v.extend(st.messages(mb, &missing)?.into_iter().map(|m| (m.uid, m)));
    }
    Ok(v.into_iter().collect())
}

/// Attributes that need the message's metadata row.
fn needs_meta(att: &FetchAtt) -> bool {
    !matches!(
        att,
        FetchAtt::Uid
            | FetchAtt::Flags
            | FetchAtt::Envelope
            | FetchAtt::Body
            | FetchAtt::BodyStructure
            | FetchAtt::Preview { .. }
    )
}

/// Attributes that need the stored structure.
fn needs_structure(att: &FetchAtt) -> bool {
    !matches!(
        att,
        FetchAtt::Uid
            | FetchAtt::Flags
            | FetchAtt::InternalDate
            | FetchAtt::Rfc822Size
            | FetchAtt::ModSeq
            | FetchAtt::EmailId
    )
}

/// What a batch read for its messages, by UID, each taken once as the messages are
/// rendered ([`take`](Self::take)). Both the batch's UIDs and what the store and the
/// message cache return come in ascending UID order, so a cursor finds each entry
/// without hashing the UID (a hash map per item asked cost a quarter of a warm
/// FETCH 1:* BODYSTRUCTURE); anything else is found by a binary search. An item not
/// asked for holds nothing and costs a comparison.
struct ByUid<T> {
    v: Vec<(u32, Option<T>)>,
    at: usize,
}

impl<T> Default for ByUid<T> {
    fn default() -> Self {
        ByUid { v: Vec::new(), at: 0 }
    }
}

impl<T> FromIterator<(u32, T)> for ByUid<T> {
    fn from_iter<I: IntoIterator<Item = (u32, T)>>(it: I) -> Self {
        let mut v: Vec<(u32, Option<T>)> = it.into_iter().map(|(u, x)| (u, Some(x))).collect();
        if !v.windows(2).all(|w| w[0].0 <= w[1].0) {
            v.sort_by_key(|e| e.0);
        }
        ByUid { v, at: 0 }
    }
}

impl<T> ByUid<T> {
    /// The entry of `uid`, if there is one (and it was not taken before).
    fn take(&mut self, uid: u32) -> Option<T> {
        let i = match self.v.get(self.at) {
            Some(e) if e.0 == uid => self.at,
            None if self.v.is_empty() => return None,
            _ => self.v.binary_search_by_key(&uid, |e| e.0).ok()?,
        };
        self.at = i + 1;
        self.v[i].1.take()
    }
}

/// What the batch read of one message before rendering it; the rest is read by
/// [`render`] itself.
#[derive(Default)]
struct Pre {
    meta: Option<MessageMeta>,
    parsed: Option<letterbox_message::ParsedMessage>,
    /// The top-level header octets.
    header: Option<Vec<u8>>,
    /// ENVELOPE's answer, rendered.
    envelope: Option<Arc<Vec<u8>>>,
    /// The MIME tree alone (BODY, BODYSTRUCTURE).
    root: Option<Arc<letterbox_message::Part>>,
    /// BODYSTRUCTURE's answer, rendered.
    bodystructure: Option<Arc<Vec<u8>>>,
}

/// Attributes with a small answer that read no message octets.
fn is_light(att: &FetchAtt) -> bool {
    matches!(
        att,
        FetchAtt::Uid
            | FetchAtt::Flags
            | FetchAtt::InternalDate
            | FetchAtt::Rfc822Size
            | FetchAtt::ModSeq
            | FetchAtt::Envelope
    )
}

/// Attributes served from the stored top-level header (no blob opened).
fn needs_header(att: &FetchAtt) -> bool {
    use crate::parser::SectionText;
    match att {
        FetchAtt::Rfc822Header => true,
        FetchAtt::BodySection { section, .. } => {
            section.part.is_empty()
                && matches!(
                    section.text,
                    Some(SectionText::Header | SectionText::HeaderFields { .. })
                )
        }
        _ => false,
    }
}

/// Renders one message's FETCH response. `pre` holds its metadata and structure when the
/// caller read them for the whole batch; what is missing is read here.
fn render(
    st: &dyn Backend,
    mb: MailboxId,
    it: &Item,
    items: &[FetchAtt],
    utf8: bool,
    out: &mut Vec<u8>,
    pre: Pre,
) -> Result<(), FetchError> {
    let Pre {
        mut meta,
        mut parsed,
        header,
        envelope: env,
        root,
        bodystructure,
    } = pre;
    macro_rules! meta {
        () => {{
            if meta.is_none() {
                meta = Some(st.message(mb, it.uid)?);
            }
            meta.as_ref().expect("just set")
        }};
    }
    macro_rules! parsed {
        () => {{
            if parsed.is_none() {
                parsed = Some(st.parsed(mb, it.uid)?);
            }
            parsed.as_ref().expect("just set")
        }};
    }
    let read = |off: u64, len: u64| -> Result<Vec<u8>, FetchError> {
        // Inside the top-level header: the copy read with the batch.
        if let Some(h) = header.as_deref() {
            if off.saturating_add(len) <= h.len() as u64 {
                return Ok(h[off as usize..(off + len) as usize].to_vec());
            }
        }
        Ok(st
            .open_message(mb, it.uid)?
            .read_range(off, len)
            .map_err(StoreError::from)?)
    };
    out.extend_from_slice(b"* ");
    response::number(out, u64::from(it.seq));
    out.extend_from_slice(b" FETCH (");
    let mut first = true;
    let mut flags_done = false;
    for att in items {
        if !first {
            out.push(b' ');
        }
        first = false;
        match att {
            FetchAtt::Uid => {
                out.extend_from_slice(b"UID ");
                response::number(out, u64::from(it.uid));
            }
            FetchAtt::Flags => {
                out.extend_from_slice(b"FLAGS ");
                response::flags(out, it.flags, &it.keywords, it.recent);
                flags_done = true;
            }
            FetchAtt::InternalDate => {
                let d = meta!().internal_date;
                out.extend_from_slice(b"INTERNALDATE \"");
                write_date_time(out, d);
                out.push(b'"');
            }
            FetchAtt::Rfc822Size => {
                let n = meta!().size;
                out.extend_from_slice(b"RFC822.SIZE ");
                response::number(out, n);
            }
            FetchAtt::ModSeq => {
                out.extend_from_slice(format!("MODSEQ ({})", meta!().modseq).as_bytes())
            }
            FetchAtt::Envelope => {
                out.extend_from_slice(b"ENVELOPE ");
                match &env {
                    Some(e) => out.extend_from_slice(e),
                    None => envelope(out, &parsed!().envelope, utf8),
                }
            }
            FetchAtt::Body | FetchAtt::BodyStructure => {
                let ext = *att == FetchAtt::BodyStructure;
                out.extend_from_slice(if ext { b"BODYSTRUCTURE " } else { b"BODY " });
                match (&bodystructure, &root) {
                    (Some(b), _) if ext => out.extend_from_slice(b),
                    (_, Some(r)) => body_structure(out, r, ext, utf8, 0),
                    _ => body_structure(out, &parsed!().root, ext, utf8, 0),
                }
            }
            FetchAtt::Rfc822 | FetchAtt::Rfc822Header | FetchAtt::Rfc822Text => {
                let p = parsed!().root.clone();
                let (name, off, len) = match att {
                    FetchAtt::Rfc822 => ("RFC822", 0, meta!().size),
                    FetchAtt::Rfc822Header => (
                        "RFC822.HEADER",
                        u64::from(p.offset_header),
                        u64::from(p.header_len()),
                    ),
                    _ => (
                        "RFC822.TEXT",
                        u64::from(p.offset_body),
                        u64::from(p.body_len()),
                    ),
                };
                let data = read(off, len)?;
                out.extend_from_slice(format!("{name} {{{}}}\r\n", data.len()).as_bytes());
                out.extend_from_slice(&data);
            }
            FetchAtt::BodySection {
                section, partial, ..
            } => {
                let size = meta!().size;
                let ex = section::locate(&parsed!().root, size, section);
                out.extend_from_slice(
                    format!(
                        "BODY[{}]{} ",
                        section::label(section),
                        partial_label(*partial)
                    )
                    .as_bytes(),
                );
                let data = match ex {
                    Extract::Nil => None,
                    Extract::Range(off, len) => {
                        let (s, l) = clip(len, *partial);
                        Some(read(off + s, l)?)
                    }
                    Extract::Fields {
                        offset,
                        len,
                        not,
                        fields,
                    } => {
                        let h = read(offset, len)?;
                        Some(clip_vec(section::filter_header(&h, &fields, not), *partial))
                    }
                };
                match data {
                    // A section that does not exist is empty (as Dovecot answers).
                    None => out.extend_from_slice(b"{0}\r\n"),
                    Some(d) => {
                        out.extend_from_slice(format!("{{{}}}\r\n", d.len()).as_bytes());
                        out.extend_from_slice(&d);
                    }
                }
            }
            FetchAtt::Binary { part, .. } | FetchAtt::BinarySize { part } => {
                let size_only = matches!(att, FetchAtt::BinarySize { .. });
                let partial = match att {
                    FetchAtt::Binary { partial, .. } => *partial,
                    _ => None,
                };
                let label = part
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(".");
                let root = parsed!().root.clone();
                let decoded = if part.is_empty() {
                    Some(read(0, meta!().size)?)
                } else {
                    match root.find(part) {
                        None => None,
                        Some(p) => {
                            let raw = read(u64::from(p.offset_body), u64::from(p.body_len()))?;
                            Some(
                                section::decode_cte(p.encoding.as_deref(), &raw)
                                    .map_err(|_| FetchError::UnknownCte)?,
                            )
                        }
                    }
                };
                if size_only {
                    out.extend_from_slice(
                        format!(
                            "BINARY.SIZE[{label}] {}",
                            decoded.map(|d| d.len()).unwrap_or(0)
                        )
                        .as_bytes(),
                    );
                } else {
                    out.extend_from_slice(
                        format!("BINARY[{label}]{} ", partial_label(partial)).as_bytes(),
                    );
                    match decoded {
                        None => out.extend_from_slice(b"NIL"),
                        Some(d) => response::literal(out, &clip_vec(d, partial)),
                    }
                }
            }
            FetchAtt::EmailId => {
                let id = crate::objectid::email_id(meta!());
                out.extend_from_slice(format!("EMAILID ({id})").as_bytes());
            }
            FetchAtt::ThreadId => {
                let m = meta!().clone();
                let id = crate::objectid::thread_id(parsed!(), &m);
                out.extend_from_slice(format!("THREADID ({id})").as_bytes());
            }
            FetchAtt::Preview { .. } => {
                out.extend_from_slice(b"PREVIEW ");
                response::string(out, parsed!().preview.as_bytes(), utf8);
            }
        }
    }
    if it.force_flags && !flags_done {
        out.extend_from_slice(b" FLAGS ");
        response::flags(out, it.flags, &it.keywords, it.recent);
    }
    if it.force_modseq {
        out.extend_from_slice(format!(" MODSEQ ({})", meta!().modseq).as_bytes());
    }
    out.extend_from_slice(b")\r\n");
    Ok(())
}

//! SORT and UID SORT (RFC 5256 sections 3 and 5), with DISPLAYFROM and DISPLAYTO
//! (RFC 5957, `SORT=DISPLAY`).
//!
//! The messages are those the search criteria select (the SEARCH evaluator, through
//! [`search::scan`]); the keys come from the structure stored at delivery
//! (`ParsedMessage.envelope`, `.sort`, `.sent_date`) and the metadata (INTERNALDATE,
//! size); when DATE is the only key read from the message, its sent dates come from
//! the message cache, read alone from the sort keys kept at delivery
//! (`letterbox_message::sortkeys`, one range scan the first time, the other keys left
//! to THREAD). Nothing is parsed here. Per RFC 5256:
//! - ARRIVAL is INTERNALDATE; DATE the sent date (section 2.2: `Date:` in UTC, or
//!   INTERNALDATE when it is missing or invalid); SIZE is RFC822.SIZE;
//! - FROM, TO, CC sort on the addr-mailbox (local part) of the first address, an empty
//!   string when there is none; DISPLAYFROM/DISPLAYTO on the decoded display name of the
//!   first address, or its addr-spec when it has none (RFC 5957 section 3). When the
//!   header starts with a group (`Cc: team: a@b, c@d;`), its first address is the
//!   group's start, whose addr-mailbox is the group name (RFC 9051 7.5.2 ENVELOPE):
//!   both kinds of key are then the group name, as Dovecot sorts (imaptest's
//!   `sort-addresses` and `sort-display-to`);
//! - SUBJECT sorts on the base subject of section 2.1 ([`base_subject`]);
//! - strings compare after i;unicode-casemap ([`crate::casemap`]: upper case, then
//!   canonical decomposition), octet by octet;
//! - REVERSE reverses the key that follows it; when every key ties, the message with the
//!   lower sequence number comes first (section 3, also under REVERSE).
//!
//! The charset must be UTF-8 or US-ASCII (`NO [BADCHARSET (UTF-8 US-ASCII)]`
//! otherwise, as SEARCH).
//!
//! ESORT (RFC 5267 section 3): `SORT RETURN (MIN MAX ALL COUNT SAVE)` answers `* ESEARCH`
//! with MIN and MAX the first and last message in sort order, ALL the messages in sort
//! order (a run of consecutive ascending numbers written `a:b`), COUNT; `RETURN ()` means
//! ALL. SAVE (RFC 5182 section 2.4) keeps the MIN and/or MAX message when those were
//! asked for, else every match. Items come in the order MIN MAX ALL COUNT, as Dovecot.
//!
//! A `MODSEQ` search key turns CONDSTORE on and adds the highest MODSEQ of what is
//! returned (RFC 7162 3.1.5, as SEARCH): `* SORT 2 5 (MODSEQ 917)`, or `MODSEQ 917` at
//! the end of ESORT's answer (of the MIN/MAX messages when only those are returned).

use super::search;
pub use letterbox_message::subject::base_subject;
use letterbox_message::casemap::casemap;
use crate::parser::{SearchKey, SearchReturn, SortCriterion, SortKey};
use crate::session::{store_error, Fatal, Reply, Session};
use letterbox_message::{Address, ParsedMessage};
use letterbox_store::MessageMeta;
use std::cmp::Ordering;

/// The first address of a list that is not a group marker.
fn first_address(list: &[Address]) -> Option<&Address> {
    list.iter().find(|a| a.host.is_some())
}

/// The name of the group the list starts with, if it starts with one.
fn leading_group(list: &[Address]) -> Option<&str> {
    list.first()
        .filter(|a| a.is_group_marker())
        .and_then(|a| a.mailbox.as_deref())
}

fn addr_mailbox(list: &[Address]) -> String {
    leading_group(list)
        .or_else(|| first_address(list).and_then(|a| a.mailbox.as_deref()))
        .map(casemap)
        .unwrap_or_default()
}

fn display(name: Option<&str>, list: &[Address]) -> String {
    if let Some(group) = leading_group(list) {
        return casemap(group);
    }
    match name {
        Some(n) if !n.is_empty() => casemap(n),
        _ => first_address(list)
            .and_then(|a| a.email())
            .map(|e| casemap(&e))
            .unwrap_or_default(),
    }
}

/// Appends `n` in decimal: the answers of SORT and THREAD are mostly numbers (100,000
/// of them for a big mailbox), written without `fmt`'s machinery or a string apiece.
pub(crate) fn push_num(out: &mut String, n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits only.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// The sent date of RFC 5256 section 2.2.
pub fn sent_date(p: &ParsedMessage, m: &MessageMeta) -> i64 {
    p.sent_date.unwrap_or(m.internal_date)
}

/// One message's sort keys (only those asked for are filled).
struct Row {
    seq: u32,
    uid: u32,
    modseq: u64,
    nums: [i64; 3],
    texts: Vec<String>,
}

/// Which keys need the stored structure (all but ARRIVAL and SIZE).
fn needs_structure(k: SortKey) -> bool {
    !matches!(k, SortKey::Arrival | SortKey::Size)
}

/// Whether DATE is the only key read from the message: its sent date then comes from
/// the message cache ([`MsgCache::sent_dates`]: THREAD's keys when made, else the date
/// alone of the sort keys made at delivery, read in place in one range scan the first
/// time, `letterbox_message::sortkeys`), not from every message's decoded head.
///
/// [`MsgCache::sent_dates`]: crate::session::cache::MsgCache::sent_dates
fn date_only(criteria: &[SortCriterion]) -> bool {
    criteria.iter().any(|c| c.key == SortKey::Date)
        && criteria
            .iter()
            .all(|c| matches!(c.key, SortKey::Date | SortKey::Arrival | SortKey::Size))
}

fn row(
    criteria: &[SortCriterion],
    seq: u32,
    uid: u32,
    m: &MessageMeta,
    p: Option<&ParsedMessage>,
) -> Row {
    let mut r = Row {
        seq,
        uid,
        modseq: m.modseq,
        nums: [m.internal_date, m.size as i64, 0],
        texts: Vec::new(),
    };
    let Some(p) = p else {
        return r;
    };
    for c in criteria {
        let env = &p.envelope;
        let text = match c.key {
            SortKey::Date => {
                r.nums[2] = sent_date(p, m);
                continue;
            }
            SortKey::Arrival | SortKey::Size => continue,
            SortKey::Cc => addr_mailbox(&env.cc),
            SortKey::From => addr_mailbox(&env.from),
            SortKey::To => addr_mailbox(&env.to),
            SortKey::Subject => base_subject(p.sort.subject.as_deref().unwrap_or_default()).0,
            SortKey::DisplayFrom => display(p.sort.from_display.as_deref(), &env.from),
            SortKey::DisplayTo => display(p.sort.to_display.as_deref(), &env.to),
        };
        r.texts.push(text);
    }
    r
}

fn compare(criteria: &[SortCriterion], a: &Row, b: &Row) -> Ordering {
    let mut t = 0;
    for c in criteria {
        let o = match c.key {
            SortKey::Arrival => a.nums[0].cmp(&b.nums[0]),
            SortKey::Size => a.nums[1].cmp(&b.nums[1]),
            SortKey::Date => a.nums[2].cmp(&b.nums[2]),
            _ => {
                t += 1;
                a.texts.get(t - 1).cmp(&b.texts.get(t - 1))
            }
        };
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.seq.cmp(&b.seq)
}

pub(crate) fn charset_ok(cs: &str) -> bool {
    cs.eq_ignore_ascii_case("UTF-8") || cs.eq_ignore_ascii_case("US-ASCII")
}

/// Numbers in the given order as a sequence set: runs of consecutive ascending numbers
/// become `a:b`, the order is kept (RFC 5267 ALL).
fn ordered_set(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nums.len() {
        let mut j = i;
        while j + 1 < nums.len() && Some(nums[j + 1]) == nums[j].checked_add(1) {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        push_num(&mut out, nums[i]);
        if j > i {
            out.push(':');
            push_num(&mut out, nums[j]);
        }
        i = j + 1;
    }
    out
}

/// The `* ESEARCH` answer of ESORT, and the UIDs SAVE keeps.
fn esort(
    tag: &str,
    uid: bool,
    returns: &[SearchReturn],
    rows: &[Row],
    with_modseq: bool,
) -> (String, Vec<u32>) {
    let all = [SearchReturn::All];
    let returns = if returns.is_empty() {
        &all[..]
    } else {
        returns
    };
    let has = |r: SearchReturn| returns.contains(&r);
    let num = |r: &Row| if uid { r.uid } else { r.seq };
    let mut q = Vec::new();
    crate::response::quoted(&mut q, tag.as_bytes());
    let mut out = format!("* ESEARCH (TAG {})", String::from_utf8_lossy(&q));
    if uid {
        out.push_str(" UID");
    }
    let (first, last) = (rows.first(), rows.last());
    if let (true, Some(r)) = (has(SearchReturn::Min), first) {
        out.push_str(&format!(" MIN {}", num(r)));
    }
    if let (true, Some(r)) = (has(SearchReturn::Max), last) {
        out.push_str(&format!(" MAX {}", num(r)));
    }
    if has(SearchReturn::All) && !rows.is_empty() {
        let nums: Vec<u32> = rows.iter().map(num).collect();
        out.push_str(&format!(" ALL {}", ordered_set(&nums)));
    }
    if has(SearchReturn::Count) {
        out.push_str(&format!(" COUNT {}", rows.len()));
    }
    if with_modseq && !rows.is_empty() {
        let min_max_only = returns.iter().all(|r| {
            matches!(
                r,
                SearchReturn::Min | SearchReturn::Max | SearchReturn::Save
            )
        });
        let m = if min_max_only {
            let ends = [
                first.filter(|_| has(SearchReturn::Min)),
                last.filter(|_| has(SearchReturn::Max)),
            ];
            ends.iter().flatten().map(|r| r.modseq).max()
        } else {
            rows.iter().map(|r| r.modseq).max()
        };
        if let Some(m) = m {
            out.push_str(&format!(" MODSEQ {m}"));
        }
    }
    out.push_str("\r\n");
    let saved = if has(SearchReturn::Min) || has(SearchReturn::Max) {
        let mut v: Vec<u32> = Vec::new();
        if let (true, Some(r)) = (has(SearchReturn::Min), first) {
            v.push(r.uid);
        }
        if let (true, Some(r)) = (has(SearchReturn::Max), last) {
            v.push(r.uid);
        }
        v.sort_unstable();
        v.dedup();
        v
    } else {
        let mut v: Vec<u32> = rows.iter().map(|r| r.uid).collect();
        v.sort_unstable();
        v
    };
    // RETURN (SAVE) alone answers nothing.
    if returns.iter().all(|r| *r == SearchReturn::Save) {
        out.clear();
    }
    (out, saved)
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    s: &mut Session,
    tag: &str,
    uid: bool,
    returns: Option<Vec<SearchReturn>>,
    criteria: Vec<SortCriterion>,
    charset: &str,
    key: SearchKey,
) -> Result<Reply, Fatal> {
    if !charset_ok(charset) {
        return Ok(Reply::no("Unsupported charset").code("BADCHARSET (UTF-8 US-ASCII)"));
    }
    let with_modseq = search::uses_modseq(&key);
    if with_modseq {
        s.enable_condstore(true);
    }
    let Some(sel) = s.selected() else {
        return Ok(Reply::bad("No mailbox selected"));
    };
    let sel = search::selection(sel, &s.indexes);
    let dates = date_only(&criteria);
    let structure = !dates && criteria.iter().any(|c| needs_structure(c.key));
    let r = s
        .ctx
        .store
        .run(move |st| {
            let mut rows = Vec::new();
            search::scan(st, &sel, &key, structure, |cand, m, p| {
                rows.push(row(&criteria, cand.seq, cand.uid, m, p));
            })?;
            if dates {
                // The sent date (RFC 5256 2.2: INTERNALDATE when there is none), the same
                // `sent_date` as from the head, read alone from the sort keys made at
                // delivery (THREAD's other keys are not made); messages expunged
                // meanwhile (no keys) leave, as they do from a scan of heads.
                let asked: Vec<(u32, i64)> = rows.iter().map(|r| (r.uid, r.nums[0])).collect();
                let dated =
                    sel.indexes
                        .cache
                        .sent_dates(st, sel.mb, sel.uidvalidity, &asked)?;
                // `dated` follows `rows` (ascending sequence), without the missing ones.
                let mut k = dated.into_iter().peekable();
                rows.retain_mut(|r| match k.peek() {
                    Some(&(u, date)) if u == r.uid => {
                        r.nums[2] = date;
                        k.next();
                        true
                    }
                    _ => false,
                });
            }
            // The order is total (ties go by sequence number, and those differ), so an
            // unstable sort gives the same answer without a stable sort's buffer.
            rows.sort_unstable_by(|a, b| compare(&criteria, a, b));
            Ok(rows)
        })
        .await;
    // Searchable heads this scan derived: kept in the store after the answer.
    crate::commands::fetch::write_stored_later(s);
    let rows = match r {
        Ok(r) => r,
        Err(e) => return Ok(store_error(&e)),
    };
    if let Some(returns) = returns {
        let (out, saved) = esort(tag, uid, &returns, &rows, with_modseq);
        if returns.contains(&SearchReturn::Save) {
            if let Some(sel) = s.selected_mut() {
                sel.saved = saved;
            }
        }
        s.conn.push(out.as_bytes());
        return Ok(Reply::ok("SORT completed"));
    }
    let mut out = String::with_capacity(32 + rows.len() * 8);
    out.push_str("* SORT");
    for r in &rows {
        out.push(' ');
        push_num(&mut out, if uid { r.uid } else { r.seq });
    }
    if let (true, Some(m)) = (with_modseq, rows.iter().map(|r| r.modseq).max()) {
        out.push_str(&format!(" (MODSEQ {m})"));
    }
    out.push_str("\r\n");
    s.conn.push(out.as_bytes());
    Ok(Reply::ok("SORT completed"))
}

#[cfg(test)]
mod tests {
    use super::{base_subject, ordered_set, push_num};

    #[test]
    fn numbers_in_decimal() {
        for n in [0, 7, 10, 99, 100, 4096, 65535, 1_000_000, u32::MAX] {
            let mut s = String::from("x");
            push_num(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }

    #[test]
    fn ordered_sets_keep_the_order() {
        assert_eq!(
            ordered_set(&[4, 5, 10, 9, 6, 7, 1, 2, 8, 3]),
            "4:5,10,9,6:7,1:2,8,3"
        );
        assert_eq!(ordered_set(&[3, 2, 1]), "3,2,1");
        assert_eq!(ordered_set(&[1, 2, 3]), "1:3");
        assert_eq!(ordered_set(&[7]), "7");
        assert_eq!(ordered_set(&[]), "");
        assert_eq!(ordered_set(&[u32::MAX, 0]), "4294967295,0");
    }

    #[test]
    fn base_subjects_of_rfc_5256_section_2_1() {
        let b = |s: &str| base_subject(s);
        assert_eq!(b("Hello"), ("HELLO".into(), false));
        assert_eq!(b("Re: hello"), ("HELLO".into(), true));
        assert_eq!(b("RE: Re: re:hello"), ("HELLO".into(), true));
        assert_eq!(b("Fwd: hello"), ("HELLO".into(), true));
        assert_eq!(b("Fw : hello"), ("HELLO".into(), true));
        assert_eq!(b("Re[2]: hello"), ("HELLO".into(), true));
        assert_eq!(b("Re [2]: hello"), ("HELLO".into(), true));
        assert_eq!(b("[list] Re: hello"), ("HELLO".into(), true));
        assert_eq!(b("[list] hello"), ("HELLO".into(), false));
        assert_eq!(b("[list][x] Re: [list] hello"), ("HELLO".into(), true));
        // A blob that is the whole subject stays.
        assert_eq!(b("[list]"), ("[LIST]".into(), false));
        assert_eq!(b("Re: [list]"), ("[LIST]".into(), true));
        assert_eq!(b("hello (fwd)"), ("HELLO".into(), true));
        assert_eq!(b("hello (fwd) (FWD)  "), ("HELLO".into(), true));
        assert_eq!(b("[Fwd: hello]"), ("HELLO".into(), true));
        assert_eq!(b("[Fwd: Re: hello (fwd)]"), ("HELLO".into(), true));
        assert_eq!(b("Re: [Fwd: [Fwd: hello]]"), ("HELLO".into(), true));
        assert_eq!(b("  hello \t  world  "), ("HELLO WORLD".into(), false));
        assert_eq!(b("Reply to this"), ("REPLY TO THIS".into(), false));
        assert_eq!(b("Re:"), ("".into(), true));
        assert_eq!(b(""), ("".into(), false));
        assert_eq!(b("[a [b] c"), ("[A [B] C".into(), false));
        assert_eq!(b("Grüße"), ("GRU\u{308}ßE".into(), false));
        assert_eq!(b("Re: Re: "), ("".into(), true));
    }
}

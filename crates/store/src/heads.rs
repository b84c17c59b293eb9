//! Message heads (issue 18): per blob, what SEARCH of header keys (RFC 9051 6.4.4
//! FROM, TO, CC, BCC, SUBJECT, HEADER, SENT*), SORT (RFC 5256) and THREAD (RFC 5256)
//! read: the envelope, the sent date, the top-level header's decoded fields and the sort
//! fields ([`ParsedMessage::encode_head`]), kept uncompressed in `blob_head` when the
//! blob's parse is stored. A pass over a big mailbox then decodes a few hundred octets
//! per message, never the MIME tree nor the compressed body text that `blob_search`
//! holds (before, `UID SEARCH SUBJECT` decompressed every message's whole text).
//!
//! The answers are the same as from the full parse: the head is cut from the same
//! [`ParsedMessage`] at delivery. Blobs stored before this table have no head row; they
//! are read the general way ([`Backend::parsed_many`] with the search text) and their head
//! is kept then, so the next pass finds it.
//!
//! Also the MIME trees alone ([`Backend::roots_many`], FETCH BODYSTRUCTURE of a range):
//! decoded from the stored structure without its envelope and sort fields.

use crate::sqlite::SqliteBackend;
use crate::*;
use letterbox_message::ParsedMessage;
use rusqlite::{params, Connection};
use std::collections::HashSet;

/// Keeps a blob's head (called wherever its parse is stored: `put_blob_parse`).
pub(crate) fn put(c: &Connection, info_id: i64, head: &[u8]) -> Result<()> {
    c.prepare_cached("INSERT OR REPLACE INTO blob_head (id, head) VALUES (?1, ?2)")?
        .execute(params![info_id, head])?;
    Ok(())
}

impl SqliteBackend {
    pub(crate) fn heads_many_impl(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, ParsedMessage)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut missing = Vec::new();
        let mut out = self.read_conn(|c| {
            // A dense run of UIDs (a whole mailbox) is one range scan, not a seek per UID.
            let lo = uids.iter().copied().min().unwrap_or(0);
            let hi = uids.iter().copied().max().unwrap_or(0);
            let dense = u64::from(hi - lo) < 2 * uids.len() as u64;
            let mut st = c.prepare_cached(if dense {
                "SELECT m.uid, h.head
                 FROM messages m LEFT JOIN blob_info i ON i.hash = m.blob
                 LEFT JOIN blob_head h ON h.id = i.id
                 WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
            } else {
                "SELECT m.uid, h.head
                 FROM messages m LEFT JOIN blob_info i ON i.hash = m.blob
                 LEFT JOIN blob_head h ON h.id = i.id
                 WHERE m.mailbox_id = ?1 AND m.uid IN (SELECT value FROM json_each(?2)) ORDER BY m.uid"
            })?;
            let (mut rows, wanted) = if dense {
                let w: HashSet<u32> = uids.iter().copied().collect();
                (st.query(params![mailbox, lo, hi])?, Some(w))
            } else {
                (st.query(params![mailbox, uid_list(uids)])?, None)
            };
            let mut out = Vec::with_capacity(uids.len());
            while let Some(r) = rows.next()? {
                let uid = r.get::<_, i64>(0)? as u32;
                if wanted.as_ref().is_some_and(|w| !w.contains(&uid)) {
                    continue;
                }
                let head = match r.get_ref(1)? {
                    // Split bodies' heads are packed (`dedup.rs`).
                    rusqlite::types::ValueRef::Blob(b) => {
                        ParsedMessage::decode_head(&crate::sqlite::dedup::unpack_structure(b))
                    }
                    _ => None,
                };
                match head {
                    Some(p) => out.push((uid, p)),
                    None => missing.push(uid),
                }
            }
            Ok(out)
        })?;
        if !missing.is_empty() {
            // Stored before heads were kept (or by another structure version): read with
            // the search text, and the head kept for the next pass.
            let more = self.parsed_many(mailbox, &missing, true)?;
            let mut keep = Vec::with_capacity(more.len());
            for (uid, mut p) in more {
                keep.push((uid, p.encode_head()));
                p.search_body = String::new();
                out.push((uid, p));
            }
            out.sort_by_key(|e| e.0);
            // Best effort: a failure here costs only speed.
            if let Err(e) = self.write_lazy_pub(move |ctx| {
                for (uid, head) in keep {
                    ctx.tx
                        .prepare_cached(
                            "INSERT OR REPLACE INTO blob_head (id, head)
                             SELECT i.id, ?3 FROM messages m JOIN blob_info i ON i.hash = m.blob
                             WHERE m.mailbox_id = ?1 AND m.uid = ?2",
                        )?
                        .execute(params![mailbox, uid, head])?;
                }
                Ok(())
            }) {
                tracing::debug!("store: keeping message heads: {e}");
            }
        }
        Ok(out)
    }
}

impl SqliteBackend {
    /// The MIME trees of many messages (FETCH BODY/BODYSTRUCTURE), by ascending UID,
    /// with offsets counting from the start of the message (prefix included), decoding
    /// nothing else of their structures; UIDs that do not exist are left out.
    pub(crate) fn roots_many_impl(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
    ) -> Result<Vec<(u32, letterbox_message::Part)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut missing = Vec::new();
        let mut out = self.read_conn(|c| {
            let lo = uids.iter().copied().min().unwrap_or(0);
            let hi = uids.iter().copied().max().unwrap_or(0);
            let dense = u64::from(hi - lo) < 2 * uids.len() as u64;
            let mut st = c.prepare_cached(if dense {
                "SELECT m.uid, length(m.prefix), i.structure
                 FROM messages m LEFT JOIN blob_info i ON i.hash = m.blob
                 WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
            } else {
                "SELECT m.uid, length(m.prefix), i.structure
                 FROM messages m LEFT JOIN blob_info i ON i.hash = m.blob
                 WHERE m.mailbox_id = ?1 AND m.uid IN (SELECT value FROM json_each(?2)) ORDER BY m.uid"
            })?;
            let (mut rows, wanted) = if dense {
                let w: HashSet<u32> = uids.iter().copied().collect();
                (st.query(params![mailbox, lo, hi])?, Some(w))
            } else {
                (st.query(params![mailbox, uid_list(uids)])?, None)
            };
            let mut out = Vec::with_capacity(uids.len());
            while let Some(r) = rows.next()? {
                let uid = r.get::<_, i64>(0)? as u32;
                if wanted.as_ref().is_some_and(|w| !w.contains(&uid)) {
                    continue;
                }
                let prefix_len = r.get::<_, i64>(1)? as u32;
                let root = match r.get_ref(2)? {
                    rusqlite::types::ValueRef::Blob(b) => {
                        ParsedMessage::decode_root(&crate::sqlite::dedup::unpack_structure(b))
                    }
                    _ => None,
                };
                match root {
                    Some(mut root) => {
                        // As `with_prefix` (sqlite.rs): the prefix belongs to the header.
                        if prefix_len > 0 {
                            root.shift(prefix_len);
                            root.offset_header = 0;
                        }
                        out.push((uid, root))
                    }
                    None => missing.push(uid),
                }
            }
            Ok(out)
        })?;
        if !missing.is_empty() {
            // Stored by an older version: parsed again (and kept) the general way.
            let more = self.parsed_many(mailbox, &missing, false)?;
            out.extend(more.into_iter().map(|(u, p)| (u, p.root)));
            out.sort_by_key(|e| e.0);
        }
        Ok(out)
    }
}

fn uid_list(uids: &[u32]) -> String {
    let mut s = String::with_capacity(uids.len() * 7 + 2);
    s.push('[');
    for (i, u) in uids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&u.to_string());
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use crate::*;
    use std::sync::Arc;

    fn msg(prefix: &str, body: &str) -> NewMessage {
        NewMessage {
            prefix: prefix.as_bytes().to_vec(),
            body: Arc::new(body.as_bytes().to_vec()),
            flags: Flags::default(),
            keywords: vec![],
            internal_date: 1_700_000_000,
        }
    }

    /// Rows of `blob_head`, and of `blob_info` (one per stored parse).
    fn heads_rows(dir: &std::path::Path) -> (i64, i64) {
        let c = rusqlite::Connection::open(dir.join("store.db")).unwrap();
        let n = |t: &str| {
            c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap()
        };
        (n("blob_head"), n("blob_info"))
    }

    /// Heads and trees read alone are exactly those parts of the full parse, for messages
    /// with and without a per-recipient prefix, and old blobs without a head get one.
    #[test]
    fn heads_and_roots_match_the_full_parse() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        s.add_domain("example.com").unwrap();
        let hash = format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap());
        let a = s
            .add_account("a@example.com", &hash, QuotaLimit::Unlimited)
            .unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap();
        let bodies = [
            "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nFrom: \"A\" <a@x>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n".to_string(),
            "References: <r1@x> <r2@x>\r\nMessage-ID: <m@x>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ntwo\r\n--b--\r\n".to_string(),
            "no header at all".to_string(),
        ];
        for (i, b) in bodies.iter().enumerate() {
            let prefix = if i % 2 == 0 { "Delivered-To: a@example.com\r\n" } else { "" };
            s.append(inbox.id, msg(prefix, b), false).unwrap();
        }
        s.expunge(inbox.id, &[2]).unwrap();
        let check = |s: &Store| {
            let uids = [1, 2, 3, 99];
            let full = s.parsed_many(inbox.id, &uids, true).unwrap();
            let heads = s.heads_many(inbox.id, &uids).unwrap();
            let roots = s.roots_many(inbox.id, &uids).unwrap();
            let tree = s.parsed_many(inbox.id, &uids, false).unwrap();
            assert_eq!(full.len(), 2);
            assert_eq!(heads.len(), 2);
            assert_eq!(roots.len(), 2);
            for (((f, h), r), t) in full.iter().zip(&heads).zip(&roots).zip(&tree) {
                assert_eq!((f.0, h.0, r.0), (f.0, f.0, f.0));
                assert_eq!(h.1.envelope, f.1.envelope);
                assert_eq!(h.1.sent_date, f.1.sent_date);
                assert_eq!(h.1.search_headers, f.1.search_headers);
                assert_eq!(h.1.sort, f.1.sort);
                assert!(h.1.search_body.is_empty());
                assert_eq!(r.1, t.1.root, "tree with the prefix's shift");
            }
            // A sparse set is read by seeks, a dense one by a range: the same answers.
            assert_eq!(s.heads_many(inbox.id, &[3]).unwrap()[0].1.envelope, full[1].1.envelope);
            assert_eq!(s.roots_many(inbox.id, &[1]).unwrap()[0].1, tree[0].1.root);
        };
        let (heads, infos) = heads_rows(dir.path());
        assert_eq!(heads, infos, "one head per stored parse, kept at delivery");
        check(&s);
        drop(s);
        // As stored before heads were kept: read the general way, the heads then kept.
        rusqlite::Connection::open(dir.path().join("store.db"))
            .unwrap()
            .execute("DELETE FROM blob_head", [])
            .unwrap();
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        check(&s);
        assert_eq!(heads_rows(dir.path()).0, 2, "kept for the messages read");
        check(&s);
    }
}

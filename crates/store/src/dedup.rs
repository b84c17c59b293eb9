//! The embedded backend's side of single-instance part storage (issue 15). The rules
//! (which parts, how a body is cut and rebuilt, what a reference is) are in `parts.rs`;
//! here are the SQLite tables `parts` and `blob_split` and the part files in
//! `data_dir/parts`, kept by the same safety rule as blob files (`blob.rs`):
//! - a part file is written and fsynced before the transaction that references it
//!   (outside the write lock, in `prepare_blob`), and that transaction checks, under the
//!   lock, that the file is still there, writing it again from the body if not;
//! - a part file is removed only under the write lock, by collection, once its count
//!   reached zero in an earlier transaction (or when no row names it: a kill between
//!   the file's fsync and the commit leaves such an orphan, and collection finds it).
//!
//! So an acknowledged message always has its parts on disk, and `kill -9` at any point
//! leaves at most files that `letterbox gc` removes.

use super::{SqliteBackend, WriteCtx};
use crate::blob::{self, BlobDir, BlobId};
use crate::parts::{self, PartRef};
use crate::{Error, Result};
use letterbox_message::Part;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;

/// A body prepared for split storage: its part files are written (fsynced).
pub(super) struct PreparedSplit {
    /// The skeleton, compressed with the mail dictionary (`mailpack.rs`).
    skeleton: Vec<u8>,
    parts: Vec<PartRef>,
    /// The skeleton's own parse: its header's octets and its search text, as
    /// `encode_parsed` serialises it (before compression).
    skeleton_header: Vec<u8>,
    skeleton_search: Vec<u8>,
}

/// Which rows of a split body's parse the skeleton makes redundant (issue 15: every
/// split body keeps its skeleton in the database, a few hundred octets compressed,
/// header and text parts included). The header (`blob_header`) and the search text
/// (`blob_search`) are then not stored a second time: readers take them from the
/// skeleton ([`split_header`], [`split_search`]). Each is left out only when the
/// skeleton's own parse gives exactly what the body's does, checked when the body is
/// stored, so that the answers never change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Slim {
    pub(super) header: bool,
    pub(super) search: bool,
}

impl PreparedSplit {
    /// What the skeleton holds of the body's parse: `header` and `search_raw` as
    /// `encode_parsed` made them of the whole body.
    pub(super) fn slim(&self, header: &[u8], search_raw: &[u8]) -> Slim {
        Slim {
            header: self.skeleton_header == header,
            search: self.skeleton_search == search_raw,
        }
    }
}

/// The serialised search text (headers, body) of a parse, as stored before compression.
pub(crate) fn search_raw(headers: &str, body: &str) -> Vec<u8> {
    postcard::to_allocvec(&(headers, body)).unwrap_or_default()
}

/// The skeleton of a split body, decompressed; `None` if the body is not split.
fn skeleton_of(c: &Connection, hash: &[u8]) -> Result<Option<Vec<u8>>> {
    let z: Option<Vec<u8>> = c
        .prepare_cached("SELECT skeleton FROM blob_split WHERE hash = ?1")?
        .query_row([hash], |r| r.get(0))
        .optional()?;
    match z {
        Some(z) => Ok(Some(crate::mailpack::decompress(&z)?)),
        None => Ok(None),
    }
}

/// The top-level header's octets of a split body, from its skeleton (which starts
/// with them: parts are cut only from bodies after it).
pub(super) fn split_header(c: &Connection, hash: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(skeleton_of(c, hash)?.map(|mut sk| {
        let end = (letterbox_message::parse(&sk).root.offset_body as usize).min(sk.len());
        sk.truncate(end);
        sk
    }))
}

/// The search text (header fields, text of the text parts) of a split body, from its
/// skeleton: the parts cut out are never text, so it holds all of it.
pub(super) fn split_search(c: &Connection, hash: &[u8]) -> Result<Option<(String, String)>> {
    Ok(skeleton_of(c, hash)?.map(|sk| {
        let p = letterbox_message::parse(&sk);
        (p.search_headers, p.search_body)
    }))
}

/// The first octet of a record kept compressed without a dictionary (`blob_info.structure`
/// of split bodies stored before `mailpack.rs`): far from
/// [`letterbox_message::STRUCTURE_VERSION`], which opens a plain one.
const PACKED_STRUCTURE: u8 = 0xFF;

/// The first octet of a record compressed with [`crate::mailpack::DICT`]: the structure
/// and the head (`blob_head`) of a split body.
const PACKED_WITH_DICT: u8 = 0xFE;

/// A split body's structure or head as stored: compressed with the mail dictionary,
/// behind [`PACKED_WITH_DICT`], when that is shorter. Only split bodies' are (their
/// envelope, MIME tree and head are most of what the database keeps of them); FETCH and
/// SEARCH over a mailbox of ordinary mail read plain records as before.
pub(super) fn pack_structure(plain: &[u8]) -> Option<Vec<u8>> {
    let z = crate::mailpack::compress(plain).ok()?;
    (z.len() + 1 < plain.len()).then(|| {
        let mut out = Vec::with_capacity(z.len() + 1);
        out.push(PACKED_WITH_DICT);
        out.extend_from_slice(&z);
        out
    })
}

/// A stored structure or head as [`letterbox_message::ParsedMessage::decode`] and
/// `decode_head` read it: packed ones decompressed, plain ones as they are. A packed one
/// that does not decompress gives an empty slice, which decodes as nothing (the store
/// then parses the body again).
pub(crate) fn unpack_structure(stored: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    match stored.split_first() {
        Some((&(PACKED_STRUCTURE | PACKED_WITH_DICT), z)) => {
            Cow::Owned(crate::mailpack::decompress(z).unwrap_or_default())
        }
        _ => Cow::Borrowed(stored),
    }
}

/// Whether a body is stored split (in the caller's transaction).
pub(super) fn is_split(c: &Connection, hash: &[u8]) -> Result<bool> {
    Ok(c
        .prepare_cached("SELECT 1 FROM blob_split WHERE hash = ?1")?
        .exists([hash])?)
}

/// Whether any stored body references the part.
fn part_live(c: &Connection, id: &BlobId) -> Result<bool> {
    Ok(c
        .prepare_cached("SELECT refcount > 0 FROM parts WHERE hash = ?1")?
        .query_row([&id.0[..]], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// The stored skeleton and map of a split body.
pub(super) fn split_data(c: &Connection, id: &BlobId) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    Ok(c
        .prepare_cached("SELECT skeleton, parts FROM blob_split WHERE hash = ?1")?
        .query_row([&id.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// A reader of a split body: the skeleton, with each part's file opened when reached.
pub(super) fn joined_reader(
    dir: &BlobDir,
    skeleton: &[u8],
    map: &[u8],
) -> Result<blob::BlobReader> {
    let dir = dir.clone();
    let open: parts::PartOpener = Box::new(move |id| {
        Ok(Box::new(dir.open_reader(id)?) as Box<dyn std::io::Read + Send>)
    });
    Ok(blob::BlobReader::joined(skeleton, map, open)?)
}

impl SqliteBackend {
    /// Outside the write lock: cuts a body into skeleton and large parts (`None` if it
    /// has none, or `[store] part_dedup_min` is 0) and writes the part files.
    pub(super) fn prepare_split(&self, body: &[u8], root: &Part) -> Result<Option<PreparedSplit>> {
        let Some(split) = parts::split(body, root, self.opts.part_dedup_min) else {
            return Ok(None);
        };
        self.hold_objects(super::KIND_PART, split.parts.iter().map(|p| p.id).collect())?;
        for (i, p) in split.parts.iter().enumerate() {
            // Does nothing when the file exists (another message's copy).
            self.parts.put(&p.id, split.part(body, i))?;
        }
        let sp = letterbox_message::parse(&split.skeleton);
        let header_end = (sp.root.offset_body as usize).min(split.skeleton.len());
        Ok(Some(PreparedSplit {
            skeleton: crate::mailpack::compress(&split.skeleton)?,
            parts: split.parts,
            skeleton_header: split.skeleton[..header_end].to_vec(),
            skeleton_search: search_raw(&sp.search_headers, &sp.search_body),
        }))
    }

    /// Where part files live (for disk-usage reporting and tests).
    pub fn part_dir(&self) -> &BlobDir {
        &self.parts
    }
}

impl WriteCtx<'_> {
    pub(super) fn has_split(&self, id: &BlobId) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM blob_split WHERE hash = ?1")?
            .exists([&id.0[..]])?)
    }

    /// Stores a body split: its map row and one reference per map record on the parts,
    /// in the caller's transaction. A part file a collector removed since it was
    /// prepared is written again from `body`.
    pub(super) fn put_split(&mut self, id: &BlobId, body: &[u8], sp: &PreparedSplit) -> Result<()> {
        for p in &sp.parts {
            if !self.object_present(super::KIND_PART, &p.id, true)? {
                let octets = usize::try_from(p.offset)
                    .ok()
                    .zip(usize::try_from(p.offset + p.len).ok())
                    .and_then(|(a, b)| body.get(a..b))
                    .ok_or_else(|| Error::Invalid("part outside its body".into()))?;
                self.parts.put(&p.id, octets)?;
            }
            self.tx
                .prepare_cached(
                    "INSERT INTO parts (hash, size, refcount) VALUES (?1, ?2, 1)
                     ON CONFLICT (hash) DO UPDATE SET refcount = refcount + 1",
                )?
                .execute(params![&p.id.0[..], p.len as i64])?;
            self.release_hold(super::KIND_PART, &p.id)?;
        }
        self.tx
            .prepare_cached("INSERT INTO blob_split (hash, skeleton, parts) VALUES (?1, ?2, ?3)")?
            .execute(params![&id.0[..], sp.skeleton, parts::encode_map(&sp.parts)])?;
        Ok(())
    }

    /// When a body's row goes (collection): its map row, and the references it held.
    pub(super) fn free_split(&mut self, hash: &[u8]) -> Result<()> {
        let map: Option<Vec<u8>> = self
            .tx
            .prepare_cached("SELECT parts FROM blob_split WHERE hash = ?1")?
            .query_row([hash], |r| r.get(0))
            .optional()?;
        let Some(map) = map else { return Ok(()) };
        match parts::decode_map(&map) {
            Some(refs) => {
                for p in refs {
                    self.tx
                        .prepare_cached("UPDATE parts SET refcount = refcount - 1 WHERE hash = ?1")?
                        .execute([&p.id.0[..]])?;
                }
            }
            // Its parts keep a reference too many: `check` reports them.
            None => tracing::error!("store: malformed part map of blob {}", hex::encode(hash)),
        }
        self.tx
            .prepare_cached("DELETE FROM blob_split WHERE hash = ?1")?
            .execute([hash])?;
        Ok(())
    }

    /// Removes the files of prepared parts that no body references: those of a store
    /// that was refused (over quota), so that a refusal leaves no file behind.
    pub(super) fn drop_unused_parts(&mut self, sp: &PreparedSplit) -> Result<()> {
        for p in &sp.parts {
            if !part_live(&self.tx, &p.id)? {
                self.drop_object(super::KIND_PART, &p.id)?;
            }
        }
        Ok(())
    }

    /// Collection: removes the parts at zero (file first, then row: a row left without
    /// its file is harmless, a new reference writes the file again) and part files that
    /// no live row names. Returns how many parts went.
    pub(super) fn collect_parts(&mut self) -> Result<u64> {
        let dead = {
            let mut st = self.tx.prepare("SELECT hash FROM parts WHERE refcount <= 0")?;
            let v = st
                .query_map([], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            v
        };
        let mut removed = 0;
        for h in &dead {
            if let Ok(arr) = <[u8; 32]>::try_from(h.as_slice()) {
                self.drop_object(super::KIND_PART, &BlobId(arr))?;
            }
            self.tx.execute("DELETE FROM parts WHERE hash = ?1", [h])?;
            removed += 1;
        }
        for id in self.parts.scan()? {
            if !part_live(&self.tx, &id)? {
                self.drop_object(super::KIND_PART, &id)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// What `check` finds wrong with split bodies and parts (the rule is `parts::check`).
pub(super) fn check(b: &SqliteBackend, deep: bool, problems: &mut Vec<String>) -> Result<()> {
    let (rows, splits): (Vec<parts::PartRow>, Vec<parts::SplitRow>) = b.read(|c| {
        let mut st = c.prepare("SELECT hash, size, refcount FROM parts")?;
        let rows = st
            .query_map([], |r| {
                Ok(parts::PartRow { hash: r.get(0)?, size: r.get(1)?, refcount: r.get(2)? })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut st = c.prepare(
            "SELECT s.hash, s.skeleton, s.parts, b.size FROM blob_split s
             LEFT JOIN blobs b ON b.hash = s.hash",
        )?;
        let splits = st
            .query_map([], |r| {
                Ok(parts::SplitRow {
                    hash: r.get(0)?,
                    skeleton: r.get(1)?,
                    map: r.get(2)?,
                    size: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((rows, splits))
    })?;
    // The part files on disk: one a row does not name is an orphan to report.
    let files: HashSet<BlobId> = b.parts.scan()?.into_iter().collect();
    parts::check(&rows, &splits, &b.parts, Some(&files), deep, problems)
}

#[cfg(test)]
mod tests {
    use crate::*;
    use std::sync::Arc;

    /// Base64-like lines, distinct per seed.
    fn attachment(seed: u32, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + n / 38);
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v.push(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(x % 64) as usize]);
            if i % 76 == 75 {
                v.extend_from_slice(b"\r\n");
            }
        }
        v
    }

    fn message(n: u32, attachments: &[&[u8]]) -> Vec<u8> {
        let mut m = format!(
            "From: a@example.com\r\nSubject: message {n}\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b{n}\"\r\n\r\n--b{n}\r\n\
             Content-Type: text/plain\r\n\r\nThis is message {n}.\r\n"
        )
        .into_bytes();
        for a in attachments {
            m.extend_from_slice(
                format!("--b{n}\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n").as_bytes(),
            );
            m.extend_from_slice(a);
            m.extend_from_slice(b"\r\n");
        }
        m.extend_from_slice(format!("--b{n}--\r\n").as_bytes());
        m
    }

    fn new(body: &[u8]) -> NewMessage {
        NewMessage {
            prefix: Vec::new(),
            body: Arc::new(body.to_vec()),
            flags: Flags::default(),
            keywords: vec![],
            internal_date: 1_700_000_000,
        }
    }

    fn setup() -> (tempfile::TempDir, Store, Mailbox) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        s.add_domain("example.com").unwrap();
        let hash = format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap());
        let a = s.add_account("a@example.com", &hash, QuotaLimit::Unlimited).unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap();
        (dir, s, inbox)
    }

    fn files(dir: &std::path::Path, sub: &str) -> usize {
        crate::blob::BlobDir::open(dir.join(sub)).unwrap().scan().unwrap().len()
    }

    #[test]
    fn shared_parts_are_stored_once_and_collected_with_the_last_message() {
        let (dir, s, inbox) = setup();
        let shared = attachment(1, 300_000);
        let own = attachment(2, 100_000);
        let mut bodies = Vec::new();
        for n in 0..5u32 {
            let body = if n == 0 {
                message(n, &[&shared, &own])
            } else {
                message(n, &[&shared])
            };
            s.append(inbox.id, new(&body), true).unwrap();
            bodies.push(body);
        }
        // Two parts, no whole-body file; every message reads back exactly, whole and
        // in ranges that cross the part boundaries.
        assert_eq!(files(dir.path(), "parts"), 2);
        assert_eq!(files(dir.path(), "blobs"), 0);
        for (i, body) in bodies.iter().enumerate() {
            let uid = i as u32 + 1;
            assert_eq!(&s.open_message(inbox.id, uid).unwrap().read_all().unwrap(), body);
            let p = s.parsed(inbox.id, uid).unwrap();
            let start = p.root.offset_body as u64 + 100;
            let got = s.open_message(inbox.id, uid).unwrap().read_range(start, 200_000).unwrap();
            assert_eq!(got, body[start as usize..start as usize + 200_000]);
            assert_eq!(s.message(inbox.id, uid).unwrap().size, body.len() as u64);
        }
        let acct = s.account("a@example.com").unwrap();
        assert_eq!(acct.quota_used, bodies.iter().map(|b| b.len() as u64).sum::<u64>());
        assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
        // A copy shares the body, and so the parts.
        s.copy(inbox.id, &[2], inbox.id).unwrap();
        // Message 1 goes: its own part is freed, the shared one stays.
        s.expunge(inbox.id, &[1]).unwrap();
        s.gc().unwrap();
        assert_eq!(files(dir.path(), "parts"), 1);
        assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
        s.expunge(inbox.id, &[2, 3, 4]).unwrap();
        s.gc().unwrap();
        assert_eq!(files(dir.path(), "parts"), 1);
        assert_eq!(s.open_message(inbox.id, 5).unwrap().read_all().unwrap(), bodies[4]);
        s.expunge(inbox.id, &[5, 6]).unwrap();
        assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
        s.gc().unwrap();
        assert_eq!(files(dir.path(), "parts"), 0);
        assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
        // Stored again after collection: the part comes back.
        s.append(inbox.id, new(&bodies[3]), true).unwrap();
        assert_eq!(s.open_message(inbox.id, 7).unwrap().read_all().unwrap(), bodies[3]);
        assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    }

    /// A split body keeps no `blob_header` or `blob_search` row and a packed structure,
    /// and every read gives what the same message stored whole gives.
    #[test]
    fn split_bodies_keep_slim_rows_and_read_the_same() {
        let (dir, s, inbox) = setup();
        let whole_dir = tempfile::tempdir().unwrap();
        let whole = Store::open_embedded(
            whole_dir.path(),
            StoreOptions { part_dedup_min: 0, ..StoreOptions::default() },
        )
        .unwrap();
        whole.add_domain("example.com").unwrap();
        let hash = format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap());
        let wa = whole.add_account("a@example.com", &hash, QuotaLimit::Unlimited).unwrap();
        let winbox = whole.mailbox(wa.id, "INBOX").unwrap();
        let shared = attachment(7, 200_000);
        // Encoded words, a second text part and an attachment name to search for.
        let body = |n: u32| {
            let mut m = format!(
                "From: =?UTF-8?Q?J=C3=B6rg?= <j@example.com>\r\nTo: a@example.com\r\n\
                 Subject: =?UTF-8?B?w6TDtsO8?= report {n}\r\nMessage-ID: <m{n}@example.com>\r\n\
                 MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
                 --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nzanzibar {n} gr\u{fc}\u{df}e\r\n\
                 --b\r\nContent-Type: text/html\r\n\r\n<p>quokka</p>\r\n\
                 --b\r\nContent-Type: application/pdf; name=\"plan{n}.pdf\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n"
            )
            .into_bytes();
            m.extend_from_slice(&shared);
            m.extend_from_slice(b"\r\n--b--\r\n");
            m
        };
        let mut prefixed = new(&body(2));
        prefixed.prefix = b"Delivered-To: a@example.com\r\n".to_vec();
        for m in [new(&body(1)), prefixed] {
            s.append(inbox.id, m.clone(), true).unwrap();
            whole.append(winbox.id, m, true).unwrap();
        }
        let db = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
        let count = |t: &str| -> i64 {
            db.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0)).unwrap()
        };
        assert_eq!(count("blob_split"), 2);
        assert_eq!(count("blob_info"), 2);
        assert_eq!(count("blob_header"), 0);
        assert_eq!(count("blob_search"), 0);
        // Structure and head packed with the mail dictionary (`mailpack.rs`).
        let packed: i64 = db
            .query_row("SELECT count(*) FROM blob_info WHERE substr(structure, 1, 1) = x'fe'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(packed, 2);
        let packed: i64 = db
            .query_row("SELECT count(*) FROM blob_head WHERE substr(head, 1, 1) = x'fe'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(packed, 2);
        let uids = [1, 2];
        let same = |s: &Store| {
            assert_eq!(s.heads_many(inbox.id, &uids).unwrap(), whole.heads_many(winbox.id, &uids).unwrap());
            assert_eq!(s.headers_many(inbox.id, &uids).unwrap(), whole.headers_many(winbox.id, &uids).unwrap());
            for uid in uids {
                assert_eq!(
                    s.open_message(inbox.id, uid).unwrap().read_all().unwrap(),
                    whole.open_message(winbox.id, uid).unwrap().read_all().unwrap()
                );
            }
        };
        same(&s);
        assert_eq!(s.parsed_many(inbox.id, &uids, true).unwrap(), whole.parsed_many(winbox.id, &uids, true).unwrap());
        assert_eq!(s.parsed_many(inbox.id, &uids, false).unwrap(), whole.parsed_many(winbox.id, &uids, false).unwrap());
        assert_eq!(s.envelopes_many(inbox.id, &uids).unwrap(), whole.envelopes_many(winbox.id, &uids).unwrap());
        assert_eq!(s.roots_many(inbox.id, &uids).unwrap(), whole.roots_many(winbox.id, &uids).unwrap());
        for needle in ["zanzibar", "quokka", "plan2.pdf", "größe", "äöü"] {
            assert_eq!(
                s.text_candidates(inbox.id, &[needle]).unwrap(),
                whole.text_candidates(winbox.id, &[needle]).unwrap(),
                "{needle}"
            );
        }
        let p = s.parsed(inbox.id, 2).unwrap();
        assert!(p.search_body.contains("zanzibar 2"), "{:?}", p.search_body);
        // Reading them stored nothing back.
        assert_eq!(count("blob_header"), 0);
        assert_eq!(count("blob_search"), 0);
        assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
        // Rows as stores before the mail dictionary wrote them (skeleton and structure
        // compressed without it, head plain) read the same.
        {
            type Row = (i64, Vec<u8>, Vec<u8>, Vec<u8>);
            let rows: Vec<Row> = db
                .prepare(
                    "SELECT i.id, s.skeleton, i.structure, h.head FROM blob_split s
                     JOIN blob_info i ON i.hash = s.hash JOIN blob_head h ON h.id = i.id",
                )
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(rows.len(), 2);
            for (id, skeleton, structure, head) in rows {
                let skeleton = crate::mailpack::decompress(&skeleton).unwrap();
                let structure = super::unpack_structure(&structure).into_owned();
                let head = super::unpack_structure(&head).into_owned();
                let mut old_structure = vec![super::PACKED_STRUCTURE];
                old_structure.extend(zstd::bulk::compress(&structure, 19).unwrap());
                db.execute(
                    "UPDATE blob_split SET skeleton = ?2 WHERE hash = (SELECT hash FROM blob_info WHERE id = ?1)",
                    rusqlite::params![id, crate::blob::compress(&skeleton).unwrap()],
                )
                .unwrap();
                db.execute(
                    "UPDATE blob_info SET structure = ?2 WHERE id = ?1",
                    rusqlite::params![id, old_structure],
                )
                .unwrap();
                db.execute("UPDATE blob_head SET head = ?2 WHERE id = ?1", rusqlite::params![id, head])
                    .unwrap();
            }
        }
        // A fresh store (no cached parse) over the old rows.
        drop(s);
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        same(&s);
        assert_eq!(s.parsed_many(inbox.id, &uids, true).unwrap(), whole.parsed_many(winbox.id, &uids, true).unwrap());
        assert_eq!(s.roots_many(inbox.id, &uids).unwrap(), whole.roots_many(winbox.id, &uids).unwrap());
        assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
        // Collection takes the slim rows with the body.
        s.expunge(inbox.id, &uids).unwrap();
        s.gc().unwrap();
        assert_eq!(count("blob_info"), 0);
        assert_eq!(count("blob_split"), 0);
    }

    #[test]
    fn check_finds_bad_references_and_gc_finds_orphans() {
        let (dir, s, inbox) = setup();
        let shared = attachment(3, 200_000);
        s.append(inbox.id, new(&message(1, &[&shared])), true).unwrap();
        s.append(inbox.id, new(&message(2, &[&shared])), true).unwrap();
        let db = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
        db.execute("UPDATE parts SET refcount = refcount + 1", []).unwrap();
        let p = s.check(false).unwrap();
        assert!(p.iter().any(|l| l.contains("refcount 3 but 2")), "{p:?}");
        db.execute("UPDATE parts SET refcount = refcount - 1", []).unwrap();
        assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
        // A part file replaced by other octets: the deep check sees it, and the
        // message reads as an error, never as wrong octets.
        let id = crate::BlobId::of(&shared);
        let parts = crate::blob::BlobDir::open(dir.path().join("parts")).unwrap();
        let path = parts.path(&id);
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, zstd::encode_all(&b"other octets"[..], 3).unwrap()).unwrap();
        assert_eq!(s.check(false).unwrap(), Vec::<String>::new());
        let p = s.check(true).unwrap();
        assert!(p.iter().any(|l| l.contains("content does not match")), "{p:?}");
        assert!(s.open_message(inbox.id, 1).unwrap().read_all().is_err());
        std::fs::write(&path, good).unwrap();
        // A skeleton cut short keeps its frame's size: only the deep check reads it.
        let skel: Vec<u8> = db
            .query_row("SELECT skeleton FROM blob_split WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        db.execute("UPDATE blob_split SET skeleton = ?1 WHERE id = 1", [&skel[..skel.len() - 4]])
            .unwrap();
        assert_eq!(s.check(false).unwrap(), Vec::<String>::new());
        let p = s.check(true).unwrap();
        assert!(p.iter().any(|l| l.contains("skeleton does not decompress")), "{p:?}");
        db.execute("UPDATE blob_split SET skeleton = ?1 WHERE id = 1", [&skel]).unwrap();
        assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
        // A map naming a part that is not stored.
        let mut map: Vec<u8> = db
            .query_row("SELECT parts FROM blob_split WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        map[16..48].fill(0);
        db.execute("UPDATE blob_split SET parts = ?1 WHERE id = 1", [map]).unwrap();
        let p = s.check(false).unwrap();
        assert!(p.iter().any(|l| l.contains("not stored")), "{p:?}");
        assert!(p.iter().any(|l| l.contains("refcount 2 but 1")), "{p:?}");
        drop(db);
        // A part file written by a store killed before its commit: gc removes it.
        let (dir2, s2, _) = setup();
        let parts2 = crate::blob::BlobDir::open(dir2.path().join("parts")).unwrap();
        parts2.put(&crate::BlobId::of(b"orphan"), b"orphan").unwrap();
        assert_eq!(s2.check(false).unwrap().len(), 1);
        assert_eq!(s2.gc().unwrap().orphan_files_removed, 1);
        assert_eq!(s2.check(true).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn backup_and_restore_carry_the_parts() {
        let (_dir, s, inbox) = setup();
        let shared = attachment(5, 150_000);
        let bodies: Vec<Vec<u8>> = (0..3).map(|n| message(n, &[&shared])).collect();
        for b in &bodies {
            s.append(inbox.id, new(b), true).unwrap();
        }
        let dest = tempfile::tempdir().unwrap();
        s.backup(dest.path()).unwrap();
        assert_eq!(files(dest.path(), "parts"), 1);
        let to = tempfile::tempdir().unwrap();
        crate::restore(dest.path(), &to.path().join("data")).unwrap();
        let r = Store::open_embedded(&to.path().join("data"), StoreOptions::default()).unwrap();
        assert_eq!(r.check(true).unwrap(), Vec::<String>::new());
        for (i, b) in bodies.iter().enumerate() {
            assert_eq!(&r.open_message(inbox.id, i as u32 + 1).unwrap().read_all().unwrap(), b);
        }
    }

    #[test]
    fn refused_and_off_leave_no_parts() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        s.add_domain("example.com").unwrap();
        let hash = format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap());
        let a = s.add_account("a@example.com", &hash, QuotaLimit::Bytes(1000)).unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap();
        let body = message(1, &[&attachment(4, 100_000)]);
        assert!(matches!(s.append(inbox.id, new(&body), true), Err(Error::OverQuota)));
        assert_eq!(files(dir.path(), "parts"), 0);
        // `part_dedup_min = 0`: stored whole.
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions { part_dedup_min: 0, ..StoreOptions::default() };
        let s = Store::open_embedded(dir.path(), opts).unwrap();
        s.add_domain("example.com").unwrap();
        let a = s.add_account("a@example.com", &hash, QuotaLimit::Unlimited).unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap();
        s.append(inbox.id, new(&body), true).unwrap();
        assert_eq!(files(dir.path(), "parts"), 0);
        assert_eq!(files(dir.path(), "blobs"), 1);
        assert_eq!(s.open_message(inbox.id, 1).unwrap().read_all().unwrap(), body);
    }
}

//! Store tests that look at the embedded backend's own files and rows (SQLite tables,
//! blob files, stores written by older versions): they run against SQLite only. Every
//! other store test is in `tests.rs`, run against each backend by `conformance.rs`.

use super::*;
use crate::conformance::sqlite::{
    cheap_hash, files_only, msg, scan_text, store, store_files, usage_matches, TEXT_MESSAGES,
};
use std::sync::Arc;

/// Rows of `blob_data` (inline blobs), read beside the store.
fn inline_rows(dir: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(dir.join("store.db")).unwrap();
    c.query_row("SELECT count(*) FROM blob_data", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn append_dedup_quota_and_gc() {
    let (dir, s) = store_files();
    let a = s
        .add_account("alice@example.com", &cheap_hash(), QuotaLimit::Bytes(1000))
        .unwrap();
    let b = s
        .add_account("bob@example.com", &cheap_hash(), QuotaLimit::Default)
        .unwrap();
    let body = Arc::new(b"Subject: hello\r\n\r\nbody text\r\n".to_vec());
    let res = s
        .deliver(
            body.clone(),
            1_700_000_000,
            vec![(a.id, b"X-Pre: a\r\n".to_vec()), (b.id, vec![])],
            true,
        )
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()));
    // One blob file for two recipients.
    assert_eq!(dir.path().join("blobs").read_dir().unwrap().count(), 2); // tmp + one fan-out dir
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let m = s.message(inbox.id, 1).unwrap();
    assert_eq!(m.size, 10 + body.len() as u64);
    let bytes = s.open_message(inbox.id, 1).unwrap().read_all().unwrap();
    assert_eq!(bytes, [b"X-Pre: a\r\n".as_slice(), &body].concat());
    let p = s.parsed(inbox.id, 1).unwrap();
    assert_eq!(
        &bytes[p.root.offset_body as usize..p.root.offset_end as usize],
        b"body text\r\n"
    );
    assert_eq!(p.envelope.subject.as_deref(), Some("hello"));
    assert_eq!(
        s.open_message(inbox.id, 1)
            .unwrap()
            .read_range(2, 5)
            .unwrap(),
        b"Pre: ".to_vec()
    );
    usage_matches(&s, "alice@example.com");
    usage_matches(&s, "bob@example.com");
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    // Over quota: nothing stored, usage unchanged.
    let big = msg(&"x".repeat(2000));
    assert!(matches!(
        s.append(inbox.id, big.clone(), true),
        Err(Error::OverQuota)
    ));
    assert_eq!(s.list_messages(inbox.id, false).unwrap().len(), 1);
    // ... and no orphan blob file left behind.
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    // Raising the quota takes effect at once.
    s.set_quota("alice@example.com", QuotaLimit::Bytes(10_000))
        .unwrap();
    s.append(inbox.id, big, true).unwrap();
    usage_matches(&s, "alice@example.com");
    // Removing a user with mail needs force; afterwards bob's copy still reads.
    assert!(matches!(
        s.remove_account("alice@example.com", false),
        Err(Error::Refused(_))
    ));
    s.remove_account("alice@example.com", true).unwrap();
    assert!(matches!(
        s.account("alice@example.com"),
        Err(Error::NotFound(_))
    ));
    let binbox = s.mailbox(b.id, "INBOX").unwrap();
    assert_eq!(
        s.open_message(binbox.id, 1).unwrap().read_all().unwrap(),
        *body
    );
    s.expunge(binbox.id, &[1]).unwrap();
    // An orphan file (a crash between blob write and commit) is found and collected.
    let fan = dir.path().join("blobs/00");
    std::fs::create_dir_all(&fan).unwrap();
    std::fs::write(fan.join("00".repeat(32)), b"junk").unwrap();
    assert_eq!(s.check(false).unwrap().len(), 1);
    let report = s.gc().unwrap();
    assert_eq!(report.blobs_removed, 1);
    assert_eq!(report.orphan_files_removed, 1);
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    let sqlite = sqlite::SqliteBackend::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(sqlite.blob_dir().scan().unwrap().is_empty());
}

#[test]
fn small_bodies_inline_dedup_read_gc_and_check() {
    let (dir, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Bytes(10_000))
        .unwrap();
    let b = s
        .add_account("b@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let body = Arc::new(b"Subject: small\r\n\r\ninline body\r\n".to_vec());
    let res = s
        .deliver(
            body.clone(),
            1_700_000_000,
            vec![(a.id, b"X-Pre: a\r\n".to_vec()), (b.id, vec![])],
            true,
        )
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()));
    // No file: one row in the database for both recipients.
    let sqlite = sqlite::SqliteBackend::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(sqlite.blob_dir().scan().unwrap().is_empty());
    assert_eq!(inline_rows(dir.path()), 1);
    let ia = s.mailbox(a.id, "INBOX").unwrap();
    let ib = s.mailbox(b.id, "INBOX").unwrap();
    let bytes = s.open_message(ia.id, 1).unwrap().read_all().unwrap();
    assert_eq!(bytes, [b"X-Pre: a\r\n".as_slice(), &body].concat());
    assert_eq!(
        s.open_message(ia.id, 1).unwrap().read_range(2, 5).unwrap(),
        b"Pre: ".to_vec()
    );
    assert_eq!(s.open_message(ib.id, 1).unwrap().read_all().unwrap(), *body);
    assert_eq!(
        s.parsed(ib.id, 1).unwrap().envelope.subject.as_deref(),
        Some("small")
    );
    usage_matches(&s, "a@example.com");
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    // Copies share the row; over quota, nothing is added.
    let sent = s.mailbox(b.id, "Sent").unwrap();
    s.copy(ib.id, &[1], sent.id).unwrap();
    assert!(matches!(
        s.append(ia.id, msg(&"q".repeat(20_000)), true),
        Err(Error::OverQuota)
    ));
    assert_eq!(inline_rows(dir.path()), 1);
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    // At refcount zero the row awaits collection, and a new reference reuses it.
    s.expunge(ia.id, &[1]).unwrap();
    s.expunge(ib.id, &[1]).unwrap();
    s.expunge(sent.id, &[1]).unwrap();
    let again = s
        .append(
            ia.id,
            NewMessage {
                body: body.clone(),
                ..msg("")
            },
            true,
        )
        .unwrap();
    assert_eq!(
        s.open_message(ia.id, again.uid)
            .unwrap()
            .read_all()
            .unwrap(),
        *body
    );
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    // Once unreferenced, gc removes the row with the blob record.
    s.expunge(ia.id, &[again.uid]).unwrap();
    let report = s.gc().unwrap();
    assert_eq!(report.blobs_removed, 1);
    assert_eq!(inline_rows(dir.path()), 0);
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    usage_matches(&s, "a@example.com");
    usage_matches(&s, "b@example.com");
}

#[test]
fn bodies_above_inline_max_are_files() {
    let (dir, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let big = format!(
        "Subject: big\r\n\r\n{}",
        "0123456789abcdef".repeat((DEFAULT_INLINE_MAX as usize) / 16 + 1)
    );
    let small = "Subject: small\r\n\r\nx\r\n";
    s.append(inbox.id, msg(&big), false).unwrap();
    s.append(inbox.id, msg(small), false).unwrap();
    let sqlite = sqlite::SqliteBackend::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(sqlite.blob_dir().scan().unwrap().len(), 1);
    assert_eq!(inline_rows(dir.path()), 1);
    assert_eq!(
        s.open_message(inbox.id, 1).unwrap().read_all().unwrap(),
        big.as_bytes()
    );
    assert_eq!(
        s.open_message(inbox.id, 2).unwrap().read_all().unwrap(),
        small.as_bytes()
    );
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
}

#[test]
fn file_blobs_of_an_older_store_stay_readable() {
    let (dir, s) = store_files();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let old = "Subject: old\r\n\r\nstored as a file\r\n";
    s.append(inbox.id, msg(old), false).unwrap();
    drop(s);
    // Reopened with inline blobs on (the default): the file is still read and shared.
    let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        s.open_message(inbox.id, 1).unwrap().read_all().unwrap(),
        old.as_bytes()
    );
    s.append(inbox.id, msg(old), false).unwrap();
    s.append(inbox.id, msg("Subject: new\r\n\r\ninline\r\n"), false)
        .unwrap();
    assert_eq!(inline_rows(dir.path()), 1, "only the new body is inline");
    let sqlite = sqlite::SqliteBackend::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(sqlite.blob_dir().scan().unwrap().len(), 1);
    assert_eq!(
        s.open_message(inbox.id, 2).unwrap().read_all().unwrap(),
        old.as_bytes()
    );
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    // A lost inline row is reported like a lost file.
    let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
    c.execute("DELETE FROM blob_data", []).unwrap();
    let problems = s.check(false).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("missing"), "{problems:?}");
    // Everything expunged and collected: no file, no row.
    s.expunge(inbox.id, &[1, 2, 3]).unwrap();
    s.gc().unwrap();
    assert!(sqlite.blob_dir().scan().unwrap().is_empty());
    assert_eq!(inline_rows(dir.path()), 0);
}

#[test]
fn verified_passwords_are_cached_until_the_hash_changes() {
    let (dir, s) = store();
    s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    // Nothing cached before a successful check; a failure caches nothing.
    assert_eq!(s.authenticate_cached("a@example.com", "pw").unwrap(), None);
    assert_eq!(s.authenticate("a@example.com", "wrong").unwrap(), None);
    assert_eq!(
        s.authenticate_cached("a@example.com", "wrong").unwrap(),
        None
    );
    let a = s.authenticate("A@Example.com", "pw").unwrap().unwrap();
    assert_eq!(a.address, "a@example.com");
    assert_eq!(
        s.authenticate_cached("a@example.com", "pw").unwrap(),
        Some(a.clone())
    );
    assert_eq!(s.authenticate_cached("a@example.com", "pw2").unwrap(), None);
    assert_eq!(s.authenticate("a@example.com", "pw2").unwrap(), None);
    // A new password set from another process (the CLI) makes the entry stale at once.
    let other = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    let new = format!("{{BLF-CRYPT}}{}", bcrypt::hash("new", 4).unwrap());
    other.set_password_hash("a@example.com", &new).unwrap();
    assert_eq!(s.authenticate_cached("a@example.com", "pw").unwrap(), None);
    assert_eq!(s.authenticate("a@example.com", "pw").unwrap(), None);
    assert!(s.authenticate("a@example.com", "new").unwrap().is_some());
    assert!(s
        .authenticate_cached("a@example.com", "new")
        .unwrap()
        .is_some());
    // `[auth] cache_ttl = 0`: never cached.
    let off = Store::open_embedded(
        dir.path(),
        StoreOptions {
            auth_cache_ttl: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    assert!(off.authenticate("a@example.com", "new").unwrap().is_some());
    assert_eq!(
        off.authenticate_cached("a@example.com", "new").unwrap(),
        None
    );
}

/// A store written before the `blob_*` tables: structure and search text in `blobs`.
#[test]
fn rows_of_an_older_version_are_read_and_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let texts: Vec<String> = TEXT_MESSAGES.iter().map(|m| m.to_string()).collect();
    let (want_parsed, want_headers, want_cands);
    {
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        s.add_domain("example.com").unwrap();
        let a = s
            .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
            .unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap();
        for m in &texts {
            s.append(inbox.id, msg(m), false).unwrap();
        }
        let uids: Vec<u32> = (1..=texts.len() as u32).collect();
        want_parsed = s.parsed_many(inbox.id, &uids, true).unwrap();
        want_headers = s.headers_many(inbox.id, &uids).unwrap();
        want_cands = scan_text(&s, inbox.id, &uids, "zanzibar");
    }
    // Turn it into the old layout.
    {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
        // Whether the octets are a file or inline, the old rows held the parse in `blobs`.
        for raw in &texts {
            let h = crate::blob::BlobId::of(raw.as_bytes()).0.to_vec();
            let mut p = letterbox_message::parse(raw.as_bytes());
            let search = (
                std::mem::take(&mut p.search_headers),
                std::mem::take(&mut p.search_body),
            );
            let search = zstd::bulk::compress(&postcard::to_allocvec(&search).unwrap(), 3).unwrap();
            let n = c
                .execute(
                    "UPDATE blobs SET structure = ?2, search = ?3 WHERE hash = ?1",
                    rusqlite::params![h, p.encode(), search],
                )
                .unwrap();
            assert_eq!(n, 1);
        }
        c.execute_batch(
            "DELETE FROM blob_header; DELETE FROM blob_grams; DELETE FROM blob_search; DELETE FROM blob_info;",
        )
        .unwrap();
    }
    let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    let a = s.account("a@example.com").unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let uids: Vec<u32> = (1..=texts.len() as u32).collect();
    // Envelopes alone come from a parse of the older rows too.
    let envs: Vec<(u32, letterbox_message::Envelope)> = want_parsed
        .iter()
        .map(|(u, p)| (*u, p.envelope.clone()))
        .collect();
    assert_eq!(
        s.envelopes_many(inbox.id, &[2, 1]).unwrap(),
        envs[..2].to_vec()
    );
    // No filter yet: every message is a candidate.
    assert_eq!(
        s.text_candidates(inbox.id, &["zanzibar"]).unwrap(),
        Some(uids.clone())
    );
    assert_eq!(s.headers_many(inbox.id, &uids).unwrap(), want_headers);
    assert_eq!(s.parsed_many(inbox.id, &uids, true).unwrap(), want_parsed);
    // Read once, stored anew: the filter narrows now, and the answers are the same.
    let c = s.text_candidates(inbox.id, &["zanzibar"]).unwrap().unwrap();
    assert!(c.len() < uids.len());
    for u in &want_cands {
        assert!(c.contains(u));
    }
    assert_eq!(s.parsed_many(inbox.id, &uids, true).unwrap(), want_parsed);
    assert_eq!(s.headers_many(inbox.id, &uids).unwrap(), want_headers);
    assert_eq!(s.envelopes_many(inbox.id, &uids).unwrap(), envs);
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    // Garbage collection removes the new rows with the blob.
    s.expunge(inbox.id, &uids).unwrap();
    s.gc().unwrap();
    let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
    for t in ["blob_info", "blob_header", "blob_grams", "blob_search"] {
        let n: i64 = c
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{t}");
    }
}

#[test]
fn inline_bodies_stay_readable_when_inline_max_is_lowered() {
    let (dir, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let body = "Subject: kept inline\r\n\r\nbody\r\n";
    s.append(inbox.id, msg(body), false).unwrap();
    drop(s);
    // `[store] inline_max = 0` from now on: the inline body is still read and shared,
    // new bodies become files.
    let s = Store::open_embedded(dir.path(), files_only()).unwrap();
    assert_eq!(
        s.open_message(inbox.id, 1).unwrap().read_all().unwrap(),
        body.as_bytes()
    );
    s.append(inbox.id, msg(body), false).unwrap();
    s.append(inbox.id, msg("Subject: new\r\n\r\nfile\r\n"), false)
        .unwrap();
    assert_eq!(inline_rows(dir.path()), 1);
    let sqlite = sqlite::SqliteBackend::open(dir.path(), files_only()).unwrap();
    assert_eq!(sqlite.blob_dir().scan().unwrap().len(), 1);
    assert_eq!(
        s.open_message(inbox.id, 2).unwrap().read_all().unwrap(),
        body.as_bytes()
    );
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
}

#[test]
fn append_many_is_all_or_nothing() {
    // Bodies as files, so that "no blob is left" below is about files.
    let (dir, s) = store_files();
    let a = s
        .add_account("m@example.com", &cheap_hash(), QuotaLimit::Bytes(100))
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    fn count(p: &std::path::Path) -> usize {
        std::fs::read_dir(p).map_or(0, |d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    let files = || count(&dir.path().join("blobs"));
    let before = files();
    // 40 + 70 octets do not fit in 100 together: neither is stored, no blob is left.
    let r = s.append_many(
        inbox.id,
        vec![msg(&"a".repeat(40)), msg(&"b".repeat(70))],
        true,
    );
    assert!(matches!(r, Err(Error::OverQuota)), "{r:?}");
    assert!(s.list_messages(inbox.id, false).unwrap().is_empty());
    assert_eq!(s.account("m@example.com").unwrap().quota_used, 0);
    assert_eq!(files(), before);
    // Two that fit: consecutive UIDs, usage counts both, the same body twice is fine.
    let done = s
        .append_many(
            inbox.id,
            vec![msg(&"c".repeat(30)), msg(&"c".repeat(30))],
            true,
        )
        .unwrap();
    assert_eq!(done.iter().map(|x| x.uid).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(s.account("m@example.com").unwrap().quota_used, 60);
    usage_matches(&s, "m@example.com");
    // Deleted-flagged octets are counted for STATUS DELETED-STORAGE.
    s.store_flags(inbox.id, &[2], FlagOp::Add, Flags::DELETED, &[], None)
        .unwrap();
    let c = s.mailbox_counts(inbox.id).unwrap();
    assert_eq!((c.size, c.deleted, c.deleted_size), (60, 1, 30));
}

/// A store written by structure version 3 (the `blob_*` tables, but envelopes without
/// names from comments, search text without MIME part headers, filters of that text):
/// each message is parsed again on its first read, and SEARCH's filter lets it through
/// until then.
#[test]
fn rows_of_structure_version_3_are_parsed_again() {
    let dir = tempfile::tempdir().unwrap();
    let raw = "From: user@example.org (Real Name)\r\nSubject: old\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
--b\r\nContent-Type: application/octet-stream; name=\"file16.bin\"\r\nContent-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"file16.bin\"\r\n\r\nAAEC\r\n--b--\r\n";
    let want = {
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        s.add_domain("example.com").unwrap();
        let a = s
            .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
            .unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap();
        s.append(inbox.id, msg(raw), false).unwrap();
        s.parsed_many(inbox.id, &[1], true).unwrap()
    };
    assert_eq!(
        want[0].1.envelope.from[0].name.as_deref(),
        Some("Real Name")
    );
    assert!(want[0].1.search_body.contains("file16.bin"));
    // What version 3 stored for it.
    {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
        let h = crate::blob::BlobId::of(raw.as_bytes()).0.to_vec();
        let mut p = letterbox_message::parse(raw.as_bytes());
        for a in [
            &mut p.envelope.from,
            &mut p.envelope.sender,
            &mut p.envelope.reply_to,
        ] {
            a[0].name = None;
        }
        let old_body = "see attached".to_string();
        let old_headers = std::mem::take(&mut p.search_headers);
        p.search_body = String::new();
        let mut structure = p.encode();
        structure[0] = 3;
        let mut grams = crate::grams::build(&old_headers, &old_body);
        grams[0] = 1;
        let search =
            zstd::bulk::compress(&postcard::to_allocvec(&(old_headers, old_body)).unwrap(), 3)
                .unwrap();
        let id: i64 = c
            .query_row("SELECT id FROM blob_info WHERE hash = ?1", [&h], |r| {
                r.get(0)
            })
            .unwrap();
        c.execute(
            "UPDATE blob_info SET structure = ?2 WHERE id = ?1",
            rusqlite::params![id, structure],
        )
        .unwrap();
        c.execute(
            "UPDATE blob_grams SET grams = ?2 WHERE id = ?1",
            rusqlite::params![id, grams],
        )
        .unwrap();
        c.execute(
            "UPDATE blob_search SET search = ?2 WHERE id = ?1",
            rusqlite::params![id, search],
        )
        .unwrap();
    }
    let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    let a = s.account("a@example.com").unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    // The old filter does not know the attachment's name, and is not trusted.
    assert_eq!(
        s.text_candidates(inbox.id, &["file16"]).unwrap(),
        Some(vec![1])
    );
    // The envelope alone comes from a new parse.
    assert_eq!(
        s.envelopes_many(inbox.id, &[1]).unwrap(),
        vec![(1, want[0].1.envelope.clone())]
    );
    assert_eq!(s.parsed_many(inbox.id, &[1], true).unwrap(), want);
    assert_eq!(scan_text(&s, inbox.id, &[1], "file16.bin"), vec![1]);
    // Stored anew: version 4 structure, version 2 filter, and the filter still passes.
    let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
    let (v, g): (Vec<u8>, Vec<u8>) = c
        .query_row(
            "SELECT i.structure, g.grams FROM blob_info i JOIN blob_grams g ON g.id = i.id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(v[0], letterbox_message::STRUCTURE_VERSION);
    assert_eq!(g[0], 2);
    assert_eq!(
        s.text_candidates(inbox.id, &["file16"]).unwrap(),
        Some(vec![1])
    );
    assert_eq!(
        s.text_candidates(inbox.id, &["quebec"]).unwrap(),
        Some(vec![])
    );
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
}

/// Issue 15: a policy strips through `strip::run_policies`; the replaced message keeps
/// its save date (so it expires from Trash when the original would have), the space log
/// records the strip and the expiry in the transactions that freed the space, and
/// usage stays the sum of sizes.
#[test]
fn strip_policy_save_date_and_space_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    s.add_domain("example.com").unwrap();
    let a = s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Default).unwrap();
    let att = "A".repeat(30_000);
    let body = format!(
        "From: b@example.org\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{att}\r\n--x--\r\n"
    );
    let trash = s.mailbox(a.id, "Trash").unwrap();
    let sent = s.mailbox(a.id, "Sent").unwrap();
    let t = s.append(trash.id, msg(&body), true).unwrap();
    let old = s.append(sent.id, msg(&body), true).unwrap();
    // Saved into Trash ten days ago.
    let saved = now() - 10 * 86_400;
    rusqlite::Connection::open(dir.path().join("store.db"))
        .unwrap()
        .execute("UPDATE message_saved SET saved = ?1 WHERE mailbox_id = ?2", rusqlite::params![saved, trash.id])
        .unwrap();
    // No policy: nothing.
    assert_eq!(strip::run_policies(&*s, now(), &mut |_, _| {}).unwrap(), (0, 0));
    s.set_strip_policy(
        "example.com",
        Some(StripPolicy { older_than_days: 30, larger_than: 10_000, folders: vec!["\\Trash".into(), "\\Sent".into()] }),
    )
    .unwrap();
    assert!(s.set_strip_policy("nowhere.example", None).is_err());
    let (n, freed) = strip::run_policies(&*s, now(), &mut |_, _| {}).unwrap();
    assert_eq!(n, 2);
    assert!(freed > 2 * 29_000, "{freed}");
    let new_t = s.list_messages(trash.id, false).unwrap();
    assert_eq!(new_t.len(), 1);
    assert!(new_t[0].uid > t.uid);
    let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
    let kept: i64 = c
        .query_row("SELECT saved FROM message_saved WHERE mailbox_id = ?1 AND uid = ?2", rusqlite::params![trash.id, new_t[0].uid], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, saved, "the save date carries over");
    usage_matches(&s, "a@example.com");
    // Twice is once: placeholders are not stripped again.
    assert_eq!(strip::run_policies(&*s, now(), &mut |_, _| {}).unwrap(), (0, 0));
    // An account's own "off" beats its domain's.
    s.set_strip_policy("a@example.com", Some(StripPolicy { older_than_days: 0, larger_than: 0, folders: vec![] })).unwrap();
    assert_eq!(s.strip_policy_for("A@example.com").unwrap().older_than_days, 0);
    // Expiry at 25 days (the save date is 10 days old plus 25 > 30) is logged too.
    let gone = s.expire(now() + 25 * 86_400).unwrap();
    assert_eq!(gone.len(), 1);
    let log = s.space_log(a.id, 0).unwrap();
    let kinds: Vec<(&str, &str)> = log.iter().map(|e| (e.kind.as_str(), e.mailbox.as_str())).collect();
    assert_eq!(kinds.iter().filter(|k| k.0 == "strip").count(), 2, "{log:?}");
    assert!(kinds.contains(&("expire", "Trash")), "{log:?}");
    let sent_entry = log.iter().find(|e| e.mailbox == "Sent").unwrap();
    assert_eq!(sent_entry.uid, Some(old.uid));
    assert!(sent_entry.detail.contains("application/pdf \"a.pdf\""), "{}", sent_entry.detail);
    let days = s.space_freed_by_day(a.id, 0).unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].stripped, freed);
    assert_eq!(days[0].expired, gone[0].bytes);
    usage_matches(&s, "a@example.com");
    // The daily task: due once per interval.
    assert!(s.maintenance_due("t", 1000, 86_400).unwrap());
    assert!(!s.maintenance_due("t", 2000, 86_400).unwrap());
    assert!(s.maintenance_due("t", 1000 + 86_400, 86_400).unwrap());
    // The log and the account's own policies go with the account; a new account of the
    // same address follows its domain's.
    s.set_expire("a@example.com", SpecialUse::Trash, Some(0)).unwrap();
    s.remove_account("a@example.com", true).unwrap();
    let left: i64 = c.query_row("SELECT count(*) FROM space_log", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 0);
    s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Default).unwrap();
    assert_eq!(s.strip_policy_for("a@example.com").unwrap().older_than_days, 30);
    assert!(s.expire_policies().unwrap().is_empty());
    assert_eq!(s.strip_policies().unwrap().len(), 1);
}

/// A store from before `message_bodystructure` kept the BODYSTRUCTURE renderings'
/// copies in a `messages.bodystructure` column: opened, its copies move into the table
/// and the column goes; the answers are the same, read from the copies alone.
#[test]
fn bodystructure_column_moves_into_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let uids = [1, 2, 3, 4, 5, 6, 7, 8];
    let sql = |q: &str| {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
        c.execute_batch(q).unwrap();
    };
    let count = |q: &str| -> i64 {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
        c.query_row(q, [], |r| r.get(0)).unwrap()
    };
    let (inbox, other, before);
    {
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        s.add_domain("example.com").unwrap();
        let a = s
            .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
            .unwrap();
        inbox = s.mailbox(a.id, "INBOX").unwrap().id;
        for m in &TEXT_MESSAGES[..4] {
            s.append(inbox, msg(m), false).unwrap();
        }
        other = s.create_mailbox(a.id, "Other", None).unwrap().id;
        s.copy(inbox, &[1, 2], other).unwrap();
        before = [inbox, other].map(|mb| s.bodystructures_many(mb, &uids).unwrap());
        assert_eq!(before[0].len() + before[1].len(), 6);
    }
    // The layout of before: the copies in the rows (one row without: a blob stored
    // before the renderings), no table.
    sql("ALTER TABLE messages ADD COLUMN bodystructure BLOB;
         UPDATE messages SET bodystructure = (SELECT data FROM message_bodystructure c
             WHERE c.mailbox_id = messages.mailbox_id AND c.uid = messages.uid)
           WHERE NOT (mailbox_id = (SELECT min(mailbox_id) FROM messages) AND uid = 4);
         DROP TABLE message_bodystructure;");
    assert_eq!(count("SELECT count(*) FROM messages WHERE bodystructure IS NOT NULL"), 5);
    let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        count("SELECT count(*) FROM pragma_table_info('messages') WHERE name = 'bodystructure'"),
        0
    );
    assert_eq!(count("SELECT count(*) FROM message_bodystructure"), 5);
    // The row without a copy is read through its blob's rendering.
    for (mb, want) in [inbox, other].iter().zip(&before) {
        assert_eq!(&s.bodystructures_many(*mb, &uids).unwrap(), want);
    }
    s.copy(inbox, &[4], other).unwrap();
    assert_eq!(count("SELECT count(*) FROM message_bodystructure"), 6);
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    drop(s);
    // Opened again, nothing moves twice.
    let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(count("SELECT count(*) FROM message_bodystructure"), 6);
    assert_eq!(&s.bodystructures_many(inbox, &uids).unwrap(), &before[0]);
}

/// Octets made at delivery and copied per message row (`searchables.rs` `Copies`:
/// `row`, from `blob`) by every insert (APPEND, COPY, MOVE), going with the row (expunge,
/// mailbox deletion); a store from before the table reads its rows through their blob's
/// octets, and rows inserted after carry their own copy. `got` reads them as the
/// backend answers, `want` as IMAP derives them otherwise.
type Many = fn(&Store, MailboxId, &[u32]) -> Vec<(u32, Vec<u8>)>;
fn copied_per_message_row(row: &str, blob: &str, got: Many, want: Many) {
    let dir = tempfile::tempdir().unwrap();
    let uids = [1, 2, 3, 4, 5, 6, 7, 8];
    let answers = |s: &Store, mb: MailboxId| (got(s, mb, &uids), want(s, mb, &uids));
    let sql = |q: &str| {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
        c.execute_batch(q).unwrap();
    };
    let count = |q: &str| -> i64 {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
        c.query_row(q, [], |r| r.get(0)).unwrap()
    };
    let copies = || count(&format!("SELECT count(*) FROM {row}"));
    let (a, inbox, other);
    {
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        s.add_domain("example.com").unwrap();
        a = s
            .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
            .unwrap()
            .id;
        inbox = s.mailbox(a, "INBOX").unwrap().id;
        for m in &TEXT_MESSAGES[..4] {
            s.append(inbox, msg(m), false).unwrap();
        }
        other = s.create_mailbox(a, "Other", None).unwrap().id;
        s.copy(inbox, &[1, 2], other).unwrap();
        s.move_messages(inbox, &[3], other).unwrap();
        assert_eq!(copies(), 6);
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM messages m JOIN {row} s
                 ON s.mailbox_id = m.mailbox_id AND s.uid = m.uid"
            )),
            6
        );
        for mb in [inbox, other] {
            let (all, wanted) = answers(&s, mb);
            assert_eq!((all.len(), &all), (3, &wanted));
        }
        // The copy goes with its row.
        s.expunge(inbox, &[4]).unwrap();
        assert_eq!(copies(), 5);
        let gone = s.create_mailbox(a, "Gone", None).unwrap().id;
        s.copy(inbox, &[1, 2], gone).unwrap();
        assert_eq!(copies(), 7);
        s.delete_mailbox(a, "Gone").unwrap();
        assert_eq!(copies(), 5);
    }
    // A store from before the table: opened, it gets it, empty; the rows are read
    // through their blob's record.
    sql(&format!("DROP TABLE {row}"));
    let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(copies(), 0);
    for (mb, n) in [(inbox, 2), (other, 3)] {
        let (all, wanted) = answers(&s, mb);
        assert_eq!((all.len(), &all), (n, &wanted));
    }
    // Rows inserted now carry their own: without the blobs' records, only they are
    // answered (the others' heads are decoded by IMAP).
    s.copy(inbox, &[1], other).unwrap();
    s.append(other, msg(TEXT_MESSAGES[4]), false).unwrap();
    assert_eq!(copies(), 2);
    sql(&format!("DELETE FROM {blob}"));
    let (all, wanted) = answers(&s, other);
    assert_eq!(wanted.len(), 5);
    assert_eq!(all, wanted[3..].to_vec());
    // A sparse set is answered the same way.
    assert_eq!(got(&s, other, &[wanted[4].0, 1000]), wanted[4..].to_vec());
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
}

/// SEARCH's records made at delivery, copied per row (`message_searchable`).
#[test]
fn searchables_are_copied_per_message_row() {
    copied_per_message_row(
        "message_searchable",
        "blob_searchable",
        |s, mb, uids| s.searchables_many(mb, uids).unwrap(),
        |s, mb, uids| {
            s.heads_many(mb, uids)
                .unwrap()
                .into_iter()
                .map(|(u, h)| (u, letterbox_message::searchable::encode(&h)))
                .collect()
        },
    );
}

/// FETCH BODYSTRUCTURE's renderings made at delivery, copied per row
/// (`message_bodystructure`, `bodystructures.rs`).
#[test]
fn bodystructures_are_copied_per_message_row() {
    copied_per_message_row(
        "message_bodystructure",
        "blob_bodystructure",
        |s, mb, uids| s.bodystructures_many(mb, uids).unwrap(),
        |s, mb, uids| {
            s.roots_many(mb, uids)
                .unwrap()
                .into_iter()
                .map(|(u, r)| (u, letterbox_message::imap::bodystructure(&r)))
                .collect()
        },
    );
}

/// FETCH ENVELOPE's renderings made at delivery, copied per row (`message_envelope`,
/// `envelopes.rs`).
#[test]
fn envelopes_are_copied_per_message_row() {
    copied_per_message_row(
        "message_envelope",
        "blob_envelope",
        |s, mb, uids| s.envelopes_rendered_many(mb, uids).unwrap(),
        |s, mb, uids| {
            s.envelopes_many(mb, uids)
                .unwrap()
                .into_iter()
                .map(|(u, e)| (u, letterbox_message::imap::rendered_envelope(&e, false)))
                .collect()
        },
    );
}

/// After a quiet spell the writer empties the log (`wal.rs`) and starts it again with one
/// page, so that the next client's write (a `\Recent` claim) does not pay for the log's
/// new header and its fsync; `serve`'s warm-up starts an empty log too. What the log
/// held is in the database, and nothing users see changed.
#[test]
fn idle_writer_leaves_a_started_log() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        wal_checkpoint_idle: std::time::Duration::from_millis(50),
        ..files_only()
    };
    let s = Store::open_embedded(dir.path(), opts).unwrap();
    s.add_domain("example.com").unwrap();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    for i in 0..20 {
        s.append(inbox.id, msg(&format!("Subject: {i}\r\n\r\nbody")), false)
            .unwrap();
    }
    let db = dir.path().join("store.db");
    let page: u64 = {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap()
    };
    // The header (32 octets) and one frame (24 octets and a page).
    let started = 32 + 24 + page;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sqlite::wal::wal_size(&db) != started && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(sqlite::wal::wal_size(&db), started);
    assert_eq!(s.list_messages(inbox.id, false).unwrap().len(), 20);
    drop(s);
    // Closed (the writer thread ends on its own): no log left behind.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sqlite::wal::wal_size(&db) != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(sqlite::wal::wal_size(&db), 0);
}

/// `[store] reader_cache_bytes` is each pooled reader's page cache (SQLite's `cache_size`
/// in KiB, negative), the one opened with the store and those opened when the pool is
/// empty; the writer keeps SQLite's default.
#[test]
fn readers_have_the_configured_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        reader_cache_bytes: 8 << 20,
        ..StoreOptions::default()
    };
    let sqlite = sqlite::SqliteBackend::open(dir.path(), opts).unwrap();
    fn cache(c: &rusqlite::Connection) -> Result<i64> {
        Ok(c.query_row("PRAGMA cache_size", [], |r| r.get(0))?)
    }
    assert_eq!(sqlite.read(cache).unwrap(), -8192);
    // A second reader while the first is out of the pool: a new connection, same cache.
    let nested = sqlite.read(|_| sqlite.read(cache)).unwrap();
    assert_eq!(nested, -8192);
    // Not the writer's.
    assert_eq!(sqlite.write(|ctx| cache(ctx.tx())).unwrap(), -2000);
    // The default: 2 MiB.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite::SqliteBackend::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        sqlite.read(cache).unwrap(),
        -((sqlite::DEFAULT_READER_CACHE_BYTES / 1024) as i64)
    );
}

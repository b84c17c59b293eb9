// Included once per backend by `conformance.rs` (no `use` of its own needed).
use std::sync::Arc;

pub(crate) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = OPEN(dir.path(), StoreOptions::default()).unwrap();
    s.add_domain("example.com").unwrap();
    (dir, s)
}

/// A store that keeps every body in a blob file (`[store] inline_max = 0`), as stores
/// made before inline blobs did.
pub(crate) fn store_files() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = OPEN(dir.path(), files_only()).unwrap();
    s.add_domain("example.com").unwrap();
    (dir, s)
}

pub(crate) fn files_only() -> StoreOptions {
    StoreOptions {
        inline_max: 0,
        ..StoreOptions::default()
    }
}

pub(crate) fn cheap_hash() -> String {
    // Argon2 at default cost is slow in debug builds; tests use a real but cheap hash.
    format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap())
}

pub(crate) fn msg(body: &str) -> NewMessage {
    NewMessage {
        prefix: Vec::new(),
        body: Arc::new(body.as_bytes().to_vec()),
        flags: Flags::default(),
        keywords: vec![],
        internal_date: 1_700_000_000,
    }
}

pub(crate) fn usage_matches(s: &Store, address: &str) {
    let a = s.account(address).unwrap();
    let mut sum = 0;
    for mb in s.list_mailboxes(a.id).unwrap() {
        sum += s
            .list_messages(mb.id, false)
            .unwrap()
            .iter()
            .map(|m| m.size)
            .sum::<u64>();
    }
    assert_eq!(a.quota_used, sum, "usage equals the sum of sizes");
}

#[test]
fn accounts_and_default_mailboxes() {
    let (_d, s) = store();
    let a = s
        .add_account("Alice@Example.com", &cheap_hash(), QuotaLimit::Default)
        .unwrap();
    assert_eq!(a.address, "alice@example.com");
    assert_eq!(a.effective_limit, Some(200 << 20));
    let names: Vec<String> = s
        .list_mailboxes(a.id)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    for n in ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(names.contains(&n.to_string()), "{n}");
    }
    assert_eq!(
        s.mailbox(a.id, "Sent").unwrap().special_use,
        Some(SpecialUse::Sent)
    );
    assert_eq!(s.mailbox(a.id, "inbox").unwrap().name, "INBOX");
    assert!(matches!(
        s.add_account("alice@example.com", &cheap_hash(), QuotaLimit::Default),
        Err(Error::Exists(_))
    ));
    assert!(matches!(
        s.add_account("bob@other.org", &cheap_hash(), QuotaLimit::Default),
        Err(Error::Invalid(_))
    ));
    for bad in [
        "nobody",
        "@example.com",
        "a b@example.com",
        "x@-bad-.com",
        "a..b@example.com",
    ] {
        assert!(
            matches!(
                s.add_account(bad, &cheap_hash(), QuotaLimit::Default),
                Err(Error::Invalid(_))
            ),
            "{bad}"
        );
    }
    assert!(s.authenticate("alice@example.com", "pw").unwrap().is_some());
    assert!(s.authenticate("ALICE@example.com", "pw").unwrap().is_some());
    assert!(s.authenticate("alice@example.com", "PW").unwrap().is_none());
    assert!(s
        .authenticate("nobody@example.com", "pw")
        .unwrap()
        .is_none());
}

#[test]
fn legacy_hash_is_upgraded_at_login() {
    let (_d, s) = store();
    s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Default)
        .unwrap();
    assert!(s.authenticate("a@example.com", "pw").unwrap().is_some());
    // Still valid after the rehash, now Argon2id.
    assert!(s.authenticate("a@example.com", "pw").unwrap().is_some());
}

#[test]
fn resolve_aliases_tags_and_catchall() {
    let (_d, s) = store();
    let a = s
        .add_account("alice@example.com", &cheap_hash(), QuotaLimit::Default)
        .unwrap();
    let b = s
        .add_account("bob@example.com", &cheap_hash(), QuotaLimit::Default)
        .unwrap();
    let ids = |r: Resolved| match r {
        Resolved::Accounts(v) => v.into_iter().map(|a| a.id).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ids(s.resolve("Alice@example.com").unwrap()), vec![a.id]);
    assert_eq!(
        ids(s.resolve("alice+lists@example.com").unwrap()),
        vec![a.id]
    );
    assert_eq!(
        s.resolve("carol@example.com").unwrap(),
        Resolved::NoSuchUser
    );
    assert_eq!(
        s.resolve("alice@elsewhere.org").unwrap(),
        Resolved::NotLocal
    );
    s.add_alias(
        "team@example.com",
        &["alice@example.com".into(), "bob@example.com".into()],
    )
    .unwrap();
    assert_eq!(
        ids(s.resolve("team@example.com").unwrap()),
        vec![a.id, b.id]
    );
    // Aliases of aliases, and loops, terminate.
    s.add_alias(
        "all@example.com",
        &["team@example.com".into(), "all@example.com".into()],
    )
    .unwrap();
    assert_eq!(ids(s.resolve("all@example.com").unwrap()), vec![a.id, b.id]);
    s.add_alias("@example.com", &["bob@example.com".into()])
        .unwrap();
    assert_eq!(ids(s.resolve("anything@example.com").unwrap()), vec![b.id]);
    assert_eq!(s.list_aliases(None).unwrap().len(), 3);
    s.remove_alias("team@example.com", &["bob@example.com".into()])
        .unwrap();
    assert_eq!(ids(s.resolve("team@example.com").unwrap()), vec![a.id]);
    assert!(matches!(
        s.remove_alias("nope@example.com", &[]),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.add_alias("x@nowhere.org", &["alice@example.com".into()]),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn uids_modseq_flags_expunge() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let r1 = s
        .append(inbox.id, msg("Subject: 1\r\n\r\none"), false)
        .unwrap();
    let r2 = s
        .append(inbox.id, msg("Subject: 2\r\n\r\ntwo"), false)
        .unwrap();
    assert_eq!((r1.uid, r2.uid), (1, 2));
    assert!(r2.modseq > r1.modseq);
    let kw = vec!["$Forwarded".to_string()];
    let res = s
        .store_flags(inbox.id, &[1, 2, 99], FlagOp::Add, Flags::SEEN, &kw, None)
        .unwrap();
    assert_eq!(res.updated.len(), 2);
    let ms = res.updated[0].modseq;
    assert!(ms > r2.modseq);
    // UNCHANGEDSINCE below the current MODSEQ refuses that message.
    let res = s
        .store_flags(
            inbox.id,
            &[1],
            FlagOp::Add,
            Flags::FLAGGED,
            &[],
            Some(ms - 1),
        )
        .unwrap();
    assert_eq!(res.modified, vec![1]);
    let m = s.message(inbox.id, 1).unwrap();
    assert_eq!(m.flags, Flags::SEEN);
    assert_eq!(m.keywords, kw);
    assert!(s
        .store_flags(
            inbox.id,
            &[1],
            FlagOp::Add,
            Flags::default(),
            &["bad kw".into()],
            None
        )
        .is_err());
    let removed = s.expunge(inbox.id, &[1, 5]).unwrap();
    assert_eq!(removed, vec![1]);
    let ch = s.changes_since(inbox.id, ms).unwrap();
    assert_eq!(ch.vanished, vec![1]);
    // UIDs are never reused.
    let r3 = s
        .append(inbox.id, msg("Subject: 3\r\n\r\nthree"), false)
        .unwrap();
    assert_eq!(r3.uid, 3);
    let counts = s.mailbox_counts(inbox.id).unwrap();
    assert_eq!((counts.messages, counts.unseen), (2, 1));
}

#[test]
fn recent_is_claimed_once() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    s.append(inbox.id, msg("Subject: 1\r\n\r\none"), false)
        .unwrap();
    assert!(s.list_messages(inbox.id, true).unwrap()[0].recent);
    assert!(!s.list_messages(inbox.id, true).unwrap()[0].recent);
}

/// IMAP's stored mailbox index: kept and replaced whole, only for the mailbox's current
/// UIDVALIDITY, and gone with its mailbox.
#[test]
fn mailbox_index_is_kept_with_its_mailbox() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let mb = s.create_mailbox(a.id, "Big", None).unwrap();
    assert_eq!(s.load_mailbox_index(mb.id).unwrap(), None);
    s.save_mailbox_index(mb.id, mb.uidvalidity, 7, b"one".to_vec()).unwrap();
    assert_eq!(
        s.load_mailbox_index(mb.id).unwrap(),
        Some((mb.uidvalidity, 7, b"one".to_vec()))
    );
    s.save_mailbox_index(mb.id, mb.uidvalidity, 9, b"two".to_vec()).unwrap();
    assert_eq!(
        s.load_mailbox_index(mb.id).unwrap(),
        Some((mb.uidvalidity, 9, b"two".to_vec()))
    );
    // The same, lent rather than copied out.
    let mut lent = None;
    assert!(s
        .read_mailbox_index(mb.id, &mut |uv, m, d| lent = Some((uv, m, d.to_vec())))
        .unwrap());
    assert_eq!(lent, Some((mb.uidvalidity, 9, b"two".to_vec())));
    // Another UIDVALIDITY (a stale session's) is not kept.
    s.save_mailbox_index(mb.id, mb.uidvalidity + 1, 10, b"x".to_vec()).unwrap();
    assert_eq!(s.load_mailbox_index(mb.id).unwrap().unwrap().1, 9);
    s.delete_mailbox(a.id, "Big").unwrap();
    assert_eq!(s.load_mailbox_index(mb.id).unwrap(), None);
    assert!(!s.read_mailbox_index(mb.id, &mut |_, _, _| panic!("no copy")).unwrap());
    // Nor for a mailbox that is gone.
    s.save_mailbox_index(mb.id, mb.uidvalidity, 11, b"y".to_vec()).unwrap();
    assert_eq!(s.load_mailbox_index(mb.id).unwrap(), None);
}

/// The stored mailbox indexes IMAP preloads after a start: only mailboxes that have one,
/// the largest first, at most as many as asked, and none once its mailbox is gone.
#[test]
fn mailbox_indexes_are_listed_largest_first() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    assert_eq!(s.list_mailbox_indexes(10).unwrap(), vec![]);
    let small = s.create_mailbox(a.id, "Small", None).unwrap();
    let big = s.create_mailbox(a.id, "Big", None).unwrap();
    // One without a copy is not listed.
    s.create_mailbox(a.id, "None", None).unwrap();
    let mid = s.create_mailbox(a.id, "Mid", None).unwrap();
    s.save_mailbox_index(small.id, small.uidvalidity, 3, vec![1; 10]).unwrap();
    s.save_mailbox_index(big.id, big.uidvalidity, 3, vec![2; 300]).unwrap();
    s.save_mailbox_index(mid.id, mid.uidvalidity, 3, vec![3; 40]).unwrap();
    assert_eq!(
        s.list_mailbox_indexes(10).unwrap(),
        vec![(big.id, 300), (mid.id, 40), (small.id, 10)]
    );
    assert_eq!(s.list_mailbox_indexes(2).unwrap(), vec![(big.id, 300), (mid.id, 40)]);
    assert_eq!(s.list_mailbox_indexes(0).unwrap(), vec![]);
    // A copy replaced by a smaller one moves down.
    s.save_mailbox_index(big.id, big.uidvalidity, 4, vec![2; 5]).unwrap();
    assert_eq!(
        s.list_mailbox_indexes(10).unwrap(),
        vec![(mid.id, 40), (small.id, 10), (big.id, 5)]
    );
    s.delete_mailbox(a.id, "Mid").unwrap();
    assert_eq!(s.list_mailbox_indexes(10).unwrap(), vec![(small.id, 10), (big.id, 5)]);
}

/// IMAP's stored message cache: chunks per mailbox and kind, replaced one by one, read
/// by a range of chunk numbers, only for the mailbox's current UIDVALIDITY, and gone
/// with their mailbox.
#[test]
fn message_cache_is_kept_with_its_mailbox() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let mb = s.create_mailbox(a.id, "Big", None).unwrap();
    let other = s.create_mailbox(a.id, "Other", None).unwrap();
    let uv = mb.uidvalidity;
    assert_eq!(s.load_message_cache(mb.id, 1, 0, u32::MAX).unwrap(), vec![]);
    s.save_message_cache(mb.id, 1, 0, uv, b"zero".to_vec()).unwrap();
    s.save_message_cache(mb.id, 1, 7, uv, b"seven".to_vec()).unwrap();
    s.save_message_cache(mb.id, 2, 0, uv, b"utf8".to_vec()).unwrap();
    s.save_message_cache(other.id, 1, 0, other.uidvalidity, b"o".to_vec()).unwrap();
    s.save_message_cache(mb.id, 1, 7, uv, b"seven again".to_vec()).unwrap();
    assert_eq!(
        s.load_message_cache(mb.id, 1, 0, u32::MAX).unwrap(),
        vec![(0, uv, b"zero".to_vec()), (7, uv, b"seven again".to_vec())]
    );
    assert_eq!(s.load_message_cache(mb.id, 1, 1, 7).unwrap().len(), 1);
    assert_eq!(s.load_message_cache(mb.id, 1, 1, 6).unwrap(), vec![]);
    assert_eq!(
        s.load_message_cache(mb.id, 2, 0, 0).unwrap(),
        vec![(0, uv, b"utf8".to_vec())]
    );
    // Another UIDVALIDITY (a stale session's) is not kept.
    s.save_message_cache(mb.id, 1, 0, uv + 1, b"x".to_vec()).unwrap();
    assert_eq!(s.load_message_cache(mb.id, 1, 0, 0).unwrap()[0].2, b"zero");
    s.delete_mailbox(a.id, "Big").unwrap();
    assert_eq!(s.load_message_cache(mb.id, 1, 0, u32::MAX).unwrap(), vec![]);
    assert_eq!(s.load_message_cache(mb.id, 2, 0, u32::MAX).unwrap(), vec![]);
    // Nor for a mailbox that is gone; the other mailbox keeps its own.
    s.save_message_cache(mb.id, 1, 0, uv, b"y".to_vec()).unwrap();
    assert_eq!(s.load_message_cache(mb.id, 1, 0, u32::MAX).unwrap(), vec![]);
    assert_eq!(s.load_message_cache(other.id, 1, 0, 0).unwrap().len(), 1);
}

/// FETCH BODYSTRUCTURE's answers kept at delivery: for every message stored (with or
/// without a per-recipient prefix, shared by a copy), exactly IMAP's rendering of its
/// MIME tree; a sparse set is answered as a dense one, and UIDs that do not exist or
/// were expunged are left out.
#[test]
fn bodystructures_kept_at_delivery() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let bodies = [
        "Subject: plain\r\n\r\nhello\r\n",
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@y\r\n\r\ntwo\r\n--b--\r\n",
        "Content-Type: text/plain; name=\"Gr\u{fc}\u{df}e.txt\"\r\n\r\nhi\r\n",
        "no header at all",
    ];
    for (i, b) in bodies.iter().enumerate() {
        let mut m = msg(b);
        if i % 2 == 0 {
            m.prefix = b"Delivered-To: a@example.com\r\n".to_vec();
        }
        s.append(inbox.id, m, false).unwrap();
    }
    s.expunge(inbox.id, &[2]).unwrap();
    let other = s.create_mailbox(a.id, "Other", None).unwrap();
    s.copy(inbox.id, &[1, 3, 4], other.id).unwrap();
    for mb in [inbox.id, other.id] {
        let uids = [1, 2, 3, 4, 99];
        let want: Vec<(u32, Vec<u8>)> = s
            .roots_many(mb, &uids)
            .unwrap()
            .into_iter()
            .map(|(u, r)| (u, letterbox_message::imap::bodystructure(&r)))
            .collect();
        assert_eq!(want.len(), 3);
        assert_eq!(s.bodystructures_many(mb, &uids).unwrap(), want);
        // A sparse set is read by seeks, not a range.
        let last = want[2].clone();
        assert_eq!(s.bodystructures_many(mb, &[last.0, 1000]).unwrap(), vec![last]);
    }
    let got = s.bodystructures_many(inbox.id, &[3]).unwrap();
    assert!(!letterbox_message::imap::same_with_utf8(&got[0].1), "a literal: {:?}", got[0].1);
}

/// Stores `bodies` four ways for the tests of what is kept at delivery: APPENDed to a
/// new account's INBOX (every other one with a per-recipient prefix), the second then
/// expunged, the others copied to `Other`, and copied to a third mailbox, moved from
/// there to `Other` and that mailbox deleted. Returns the account, INBOX and `Other`.
fn stored_four_ways(s: &Store, bodies: [&str; 4]) -> (Account, Mailbox, Mailbox) {
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    for (i, b) in bodies.iter().enumerate() {
        let mut m = msg(b);
        if i % 2 == 0 {
            m.prefix = b"Delivered-To: a@example.com\r\n".to_vec();
        }
        s.append(inbox.id, m, false).unwrap();
    }
    s.expunge(inbox.id, &[2]).unwrap();
    let other = s.create_mailbox(a.id, "Other", None).unwrap();
    s.copy(inbox.id, &[1, 3, 4], other.id).unwrap();
    // A moved message keeps what was kept; a deleted mailbox's go with it.
    let third = s.create_mailbox(a.id, "Third", None).unwrap();
    s.copy(inbox.id, &[1, 3, 4], third.id).unwrap();
    s.move_messages(third.id, &[1, 2, 3], other.id).unwrap();
    s.delete_mailbox(a.id, "Third").unwrap();
    (a, inbox, other)
}

/// SEARCH's searchable heads kept at delivery: for every message stored (with or without
/// a per-recipient prefix, shared by a copy), exactly the record made from its decoded
/// head (what IMAP makes otherwise); a sparse set is answered as a dense one, and UIDs
/// that do not exist or were expunged are left out.
#[test]
fn searchables_kept_at_delivery() {
    let (_d, s) = store();
    let (_, inbox, other) = stored_four_ways(
        &s,
        [
            "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nFrom: \"A B\" <a@x.example>, g: c@d;\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n",
            "Subject: gone\r\n\r\nx\r\n",
            "To: undisclosed-recipients:;\r\nX-Long: folded\r\n  value\r\n\r\nhi\r\n",
            "no header at all",
        ],
    );
    for mb in [inbox.id, other.id] {
        let uids = [1, 2, 3, 4, 5, 6, 99];
        let want: Vec<(u32, Vec<u8>)> = s
            .heads_many(mb, &uids)
            .unwrap()
            .into_iter()
            .map(|(u, h)| (u, letterbox_message::searchable::encode(&h)))
            .collect();
        assert_eq!(want.len(), if mb == inbox.id { 3 } else { 6 });
        let got = s.searchables_many(mb, &uids).unwrap();
        assert_eq!(got, want);
        assert!(got.iter().all(|(_, r)| letterbox_message::searchable::valid(r)));
        // A sparse set is read by seeks, not a range.
        let last = want[want.len() - 1].clone();
        assert_eq!(s.searchables_many(mb, &[last.0, 1000]).unwrap(), vec![last]);
    }
    // The fields IMAP compares are there, decoded.
    let got = s.searchables_many(inbox.id, &[1]).unwrap();
    let r = letterbox_message::searchable::Record::read(&got[0].1).unwrap();
    assert_eq!(r.sent_day(), Some(20_781));
    assert!(r.fields().any(|(n, _, v)| n == b"Subject" && v == "Grüße".as_bytes()));
}

/// FETCH ENVELOPE's answers kept at delivery and copied per row: for every message
/// stored (with or without a per-recipient prefix, shared by a copy, moved, imported
/// with and without its UID), exactly IMAP's rendering of its decoded envelope without
/// UTF8=ACCEPT; a sparse set is answered as a dense one, UIDs that do not exist or were
/// expunged are left out, and a rendering with an 8-bit string is not the UTF8=ACCEPT one.
#[test]
fn envelopes_rendered_at_delivery() {
    let (_d, s) = store();
    let bodies = [
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nFrom: \"A B\" <a@x.example>, g: c@d;\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nhello\r\n",
        "Subject: gone\r\n\r\nx\r\n",
        "Subject: Gr\u{fc}\u{df}e \"quoted\"\r\nFrom: J\u{f6}rg <j@b\u{fc}cher.example>\r\nTo: undisclosed-recipients:;\r\n\r\nhi\r\n",
        "no header at all",
    ];
    let (a, inbox, other) = stored_four_ways(&s, bodies);
    // Imported, with its UID kept and without.
    s.import_begin(a.id, "maildir:/e", true).unwrap();
    let imp = s.import_mailbox(a.id, "Imported", 555).unwrap();
    s.import_message(imp.mailbox.id, import_one("e/1", Some(7), bodies[2])).unwrap();
    s.import_message(imp.mailbox.id, import_one("e/2", None, bodies[0])).unwrap();
    for mb in [inbox.id, other.id, imp.mailbox.id] {
        let uids = [1, 2, 3, 4, 5, 6, 7, 8, 99];
        let want: Vec<(u32, Vec<u8>)> = s
            .envelopes_many(mb, &uids)
            .unwrap()
            .into_iter()
            .map(|(u, e)| (u, letterbox_message::imap::rendered_envelope(&e, false)))
            .collect();
        assert_eq!(
            want.len(),
            match mb {
                m if m == inbox.id => 3,
                m if m == other.id => 6,
                _ => 2,
            }
        );
        let got = s.envelopes_rendered_many(mb, &uids).unwrap();
        assert_eq!(got, want);
        // A sparse set is read by seeks, not a range.
        let last = want[want.len() - 1].clone();
        assert_eq!(s.envelopes_rendered_many(mb, &[last.0, 1000]).unwrap(), vec![last]);
    }
    let got = s.envelopes_rendered_many(inbox.id, &[1, 3]).unwrap();
    assert!(got[0].1.starts_with(b"(\"Tue, 24 Nov 2026 10:00:00 +0000\" \"=?utf-8?q?"), "{:?}", got[0].1);
    assert!(letterbox_message::imap::same_with_utf8(&got[0].1));
    assert!(!letterbox_message::imap::same_with_utf8(&got[1].1), "a literal: {:?}", got[1].1);
    assert!(s.envelopes_rendered_many(inbox.id, &[]).unwrap().is_empty());
}

/// SORT (DATE) and THREAD's keys kept at delivery and copied into each row: for every
/// message stored (with or without a per-recipient prefix, shared by a copy, moved),
/// exactly the record made from its decoded head (what IMAP derives otherwise); a
/// sparse set is answered as a dense one, and UIDs that do not exist or were expunged
/// are left out.
#[test]
fn sortkeys_kept_at_delivery() {
    use letterbox_message::sortkeys::SortKeys;
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let bodies = [
        "Subject: =?utf-8?q?Re:_Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <one@x>\r\nReferences: <r1@x>\r\n <r2@x>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n",
        "Subject: gone\r\n\r\nx\r\n",
        "In-Reply-To: <one@x>\r\nDate: not a date\r\n\r\nhi\r\n",
        "no header at all",
    ];
    for (i, b) in bodies.iter().enumerate() {
        let mut m = msg(b);
        if i % 2 == 0 {
            m.prefix = b"Delivered-To: a@example.com\r\n".to_vec();
        }
        s.append(inbox.id, m, false).unwrap();
    }
    s.expunge(inbox.id, &[2]).unwrap();
    let other = s.create_mailbox(a.id, "Other", None).unwrap();
    s.copy(inbox.id, &[1, 3, 4], other.id).unwrap();
    let third = s.create_mailbox(a.id, "Third", None).unwrap();
    s.copy(inbox.id, &[1, 3, 4], third.id).unwrap();
    s.move_messages(third.id, &[1, 2, 3], other.id).unwrap();
    for mb in [inbox.id, other.id] {
        let uids: Vec<u32> = (1..=8).chain([99]).collect();
        let want: Vec<(u32, SortKeys)> = s
            .heads_many(mb, &uids)
            .unwrap()
            .into_iter()
            .map(|(u, h)| (u, SortKeys::of(&h)))
            .collect();
        assert!(want.len() == 3 || want.len() == 6, "{}", want.len());
        let got: Vec<(u32, SortKeys)> = s
            .sortkeys_many(mb, &uids)
            .unwrap()
            .iter()
            .map(|(u, r)| (u, SortKeys::decode(r).unwrap()))
            .collect();
        assert_eq!(got, want);
        // SORT (DATE)'s read: the same records' sent dates alone.
        let dates: Vec<(u32, Option<i64>)> = want.iter().map(|(u, k)| (*u, k.sent_date)).collect();
        assert_eq!(s.sent_dates_many(mb, &uids).unwrap(), dates);
        assert_eq!(s.sent_dates_many(mb, &[want[0].0, want[2].0, 1000]).unwrap(), [dates[0], dates[2]]);
        assert_eq!(s.sent_dates_many(mb, &[]).unwrap(), []);
        // A sparse set is read by seeks, not a range.
        let last = s.sortkeys_many(mb, &[want[2].0]).unwrap();
        assert_eq!(s.sortkeys_many(mb, &[want[2].0, 1000]).unwrap(), last);
    }
    // The fields SORT and THREAD compare are there, decoded.
    let got: Vec<(u32, Vec<u8>)> = s
        .sortkeys_many(inbox.id, &[1, 3])
        .unwrap()
        .iter()
        .map(|(u, r)| (u, r.to_vec()))
        .collect();
    let k = SortKeys::decode(&got[0].1).unwrap();
    assert_eq!(k.sent_date, Some(1_795_514_400));
    // The base subject (RFC 5256 2.1), made at delivery (records of version LBS2).
    assert_eq!(k.subject, None);
    assert_eq!(k.base_subject, Some(letterbox_message::subject::base_subject("Re: Grüße")));
    assert_eq!(k.base_subject.as_ref().map(|b| b.1), Some(true));
    assert_eq!(k.message_id.as_deref(), Some("one@x"));
    assert_eq!(k.refs, ["r1@x", "r2@x"]);
    let k = SortKeys::decode(&got[1].1).unwrap();
    assert_eq!((k.sent_date, k.refs), (None, vec!["one@x".to_string()]));
}

/// SELECT's read: the mailbox, the `\Recent` claim and the account; EXAMINE reports the
/// unclaimed UIDs and takes none; a claim is taken once, and the mailbox is read after
/// it (its UIDNEXT and HIGHESTMODSEQ cover what was claimed).
#[test]
fn open_mailbox_claims_recent_once() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Bytes(1_000_000))
        .unwrap();
    let b = s
        .add_account("b@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    assert!(matches!(open_mailbox(&*s, a.id, "Nope", Some(true)), Err(Error::NotFound(_))));
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let o = open_mailbox(&*s, a.id, "INBOX", Some(true)).unwrap();
    assert_eq!((o.mailbox.id, o.recent, o.account.id), (inbox.id, (0, 0), a.id));
    for i in 0..2 {
        s.append(inbox.id, msg(&format!("Subject: {i}\r\n\r\nbody")), false)
            .unwrap();
    }
    let o = open_mailbox(&*s, a.id, "INBOX", Some(false)).unwrap();
    assert_eq!(o.recent, (1, u32::MAX));
    assert_eq!(o.account.quota_used, s.account_by_id(a.id).unwrap().quota_used);
    assert_eq!(o.account.effective_limit, Some(1_000_000));
    assert!(o.account.quota_used > 0);
    let o = open_mailbox(&*s, a.id, "INBOX", Some(true)).unwrap();
    let now = s.mailbox_by_id(inbox.id).unwrap();
    assert_eq!(o.recent, (1, 3));
    assert_eq!(
        (o.mailbox.uidnext, o.mailbox.highestmodseq),
        (now.uidnext, now.highestmodseq)
    );
    assert_eq!(o.mailbox.uidnext, 3);
    assert_eq!(open_mailbox(&*s, a.id, "INBOX", Some(true)).unwrap().recent, (0, 0));
    assert_eq!(open_mailbox(&*s, a.id, "INBOX", Some(false)).unwrap().recent, (3, u32::MAX));
    assert_eq!(open_mailbox(&*s, a.id, "INBOX", None).unwrap().recent, (0, 0));
    // Each account opens its own INBOX.
    let o = open_mailbox(&*s, b.id, "INBOX", Some(true)).unwrap();
    assert_ne!(o.mailbox.id, inbox.id);
    assert_eq!((o.account.id, o.account.effective_limit), (b.id, None));
}

/// `serve`'s warm-up before its first client (issue 18) changes nothing a user sees:
/// `\Recent` stays unclaimed, MODSEQs and quota as they were; it runs on an empty
/// store and again on the same one.
#[test]
fn warm_up_changes_nothing_users_see() {
    let (_d, s) = store();
    crate::warm_up(&*s).unwrap();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    s.append(inbox.id, msg("Subject: x\r\n\r\nbody"), false).unwrap();
    let before = s.mailbox_by_id(inbox.id).unwrap();
    let used = s.account_by_id(a.id).unwrap().quota_used;
    crate::warm_up(&*s).unwrap();
    crate::warm_up(&*s).unwrap();
    let after = s.mailbox_by_id(inbox.id).unwrap();
    assert_eq!(
        (after.uidnext, after.highestmodseq),
        (before.uidnext, before.highestmodseq)
    );
    assert_eq!(s.account_by_id(a.id).unwrap().quota_used, used);
    assert_eq!(open_mailbox(&*s, a.id, "INBOX", Some(true)).unwrap().recent, (1, 2));
}

#[test]
fn copy_move_and_quota() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Bytes(100))
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let trash = s.mailbox(a.id, "Trash").unwrap();
    s.append(inbox.id, msg(&"y".repeat(60)), true).unwrap();
    // A copy would exceed the quota: refused, nothing stored.
    assert!(matches!(
        s.copy(inbox.id, &[1], trash.id),
        Err(Error::OverQuota)
    ));
    // Moving is never refused.
    let pairs = s.move_messages(inbox.id, &[1], trash.id).unwrap();
    assert_eq!(pairs, vec![(1, 1)]);
    assert!(s.list_messages(inbox.id, false).unwrap().is_empty());
    usage_matches(&s, "a@example.com");
    assert_eq!(s.account("a@example.com").unwrap().quota_used, 60);
}

#[test]
fn mailbox_create_rename_delete() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    s.create_mailbox(a.id, "Work/Projects/X", None).unwrap();
    // RFC 9051 6.3.4 allows either; as Dovecot, superiors are not created.
    assert!(matches!(s.mailbox(a.id, "Work"), Err(Error::NotFound(_))));
    assert!(matches!(
        s.mailbox(a.id, "Work/Projects"),
        Err(Error::NotFound(_))
    ));
    s.create_mailbox(a.id, "Work", None).unwrap();
    assert!(matches!(
        s.create_mailbox(a.id, "Work", None),
        Err(Error::Exists(_))
    ));
    for bad in ["", "/x", "x/", "a//b", "tab\there"] {
        assert!(
            matches!(s.create_mailbox(a.id, bad, None), Err(Error::Invalid(_))),
            "{bad:?}"
        );
    }
    let x = s.mailbox(a.id, "Work/Projects/X").unwrap();
    s.append(x.id, msg("Subject: x\r\n\r\nx"), false).unwrap();
    s.subscribe(a.id, "Work/Projects").unwrap();
    s.rename_mailbox(a.id, "Work", "Job/Old").unwrap();
    let moved = s.mailbox(a.id, "Job/Old/Projects/X").unwrap();
    assert_eq!(moved.id, x.id);
    assert_eq!(moved.uidvalidity, x.uidvalidity);
    assert!(s
        .subscriptions(a.id)
        .unwrap()
        .contains(&"Job/Old/Projects".to_string()));
    assert!(s.mailbox(a.id, "Work").is_err());
    assert!(matches!(s.mailbox(a.id, "Job"), Err(Error::NotFound(_))));
    assert!(matches!(
        s.rename_mailbox(a.id, "Job", "Job/Inner"),
        Err(Error::Invalid(_))
    ));
    // A parent that is no mailbox renames its children; a name with none is not found.
    s.rename_mailbox(a.id, "Job", "Task").unwrap();
    assert_eq!(s.mailbox(a.id, "Task/Old/Projects/X").unwrap().id, x.id);
    assert!(matches!(s.mailbox(a.id, "Task"), Err(Error::NotFound(_))));
    assert!(matches!(
        s.rename_mailbox(a.id, "Job", "Other"),
        Err(Error::NotFound(_))
    ));
    s.rename_mailbox(a.id, "Task", "Job").unwrap();
    // Renaming INBOX moves its messages and leaves it empty.
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    s.append(inbox.id, msg("Subject: i\r\n\r\ni"), false)
        .unwrap();
    s.rename_mailbox(a.id, "INBOX", "Old Inbox").unwrap();
    assert!(s.list_messages(inbox.id, false).unwrap().is_empty());
    assert_eq!(
        s.list_messages(s.mailbox(a.id, "Old Inbox").unwrap().id, false)
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        s.delete_mailbox(a.id, "inbox"),
        Err(Error::Refused(_))
    ));
    s.delete_mailbox(a.id, "Job/Old/Projects/X").unwrap();
    usage_matches(&s, "a@example.com");
    assert_eq!(
        s.account("a@example.com").unwrap().quota_used,
        "Subject: i\r\n\r\ni".len() as u64
    );
}

#[test]
fn warnings_cross_once_and_rearm() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Bytes(1000))
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let r = s.append(inbox.id, msg(&"a".repeat(700)), true).unwrap();
    assert_eq!(r.crossed_warning, None);
    let r = s.append(inbox.id, msg(&"b".repeat(150)), true).unwrap();
    assert_eq!(r.crossed_warning, Some(80));
    let r = s.append(inbox.id, msg(&"c".repeat(10)), true).unwrap();
    assert_eq!(r.crossed_warning, None, "one warning per crossing");
    let r = s.append(inbox.id, msg(&"d".repeat(100)), true).unwrap();
    assert_eq!(r.crossed_warning, Some(95));
    // Lowering the quota does not swallow a warning: the next delivery sends it.
    let b = s
        .add_account("b@example.com", &cheap_hash(), QuotaLimit::Bytes(10_000))
        .unwrap();
    let binbox = s.mailbox(b.id, "INBOX").unwrap();
    s.append(binbox.id, msg(&"f".repeat(850)), true).unwrap();
    s.set_quota("b@example.com", QuotaLimit::Bytes(1000))
        .unwrap();
    // ... and leaves nothing pending, so the warning is not sent twice (by the sweep
    // and again by the delivery that crosses).
    assert_eq!(s.take_pending_warning(b.id).unwrap(), None);
    assert!(!s.pending_warnings().unwrap().contains(&b.id));
    let r = s.append(binbox.id, msg("g"), true).unwrap();
    assert_eq!(r.crossed_warning, Some(80));
    assert_eq!(s.take_pending_warning(b.id).unwrap(), Some(80));
    assert_eq!(s.take_pending_warning(b.id).unwrap(), None);
    let r = s.append(binbox.id, msg("h"), true).unwrap();
    assert_eq!(r.crossed_warning, None, "warned once");
    // Fall below both, then cross 80 again.
    s.expunge(inbox.id, &[2, 3, 4]).unwrap();
    let r = s.append(inbox.id, msg(&"e".repeat(150)), true).unwrap();
    assert_eq!(r.crossed_warning, Some(80));
}

#[test]
fn retention_sweep() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    s.set_retention("a@example.com", Some(Retention::Days(7)))
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    s.append(inbox.id, msg("Subject: 1\r\n\r\n1"), false)
        .unwrap();
    s.append(inbox.id, msg("Subject: 2\r\n\r\n2"), false)
        .unwrap();
    s.mark_pop3_retrieved(inbox.id, &[1], 1_000_000).unwrap();
    assert_eq!(s.sweep_retention(1_000_000 + 6 * 86_400).unwrap(), 0);
    assert_eq!(s.sweep_retention(1_000_000 + 7 * 86_400).unwrap(), 1);
    let left: Vec<u32> = s
        .list_messages(inbox.id, false)
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(left, vec![2]);
}

#[test]
fn concurrent_appends_group_commit() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| {
                        s.append(
                            inbox.id,
                            msg(&format!("Subject: {t}-{i}\r\n\r\nbody {t} {i}")),
                            false,
                        )
                        .unwrap()
                        .uid
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut uids: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    uids.sort();
    assert_eq!(uids, (1..=200).collect::<Vec<_>>());
    usage_matches(&s, "a@example.com");
}

#[tokio::test]
async fn change_feed_reports_commits() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let mut rx = s.watch(a.id);
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let r = s
        .run(move |b| b.append(inbox.id, msg("Subject: x\r\n\r\nx"), false))
        .await
        .unwrap();
    let c = rx.recv().await.unwrap();
    assert_eq!(c.kind, ChangeKind::Added { uid: r.uid });
    assert_eq!(c.modseq, r.modseq);
    // A failed write publishes nothing.
    let _ = s
        .run(move |b| {
            b.append(inbox.id, msg("x"), true)
                .and_then(|_| b.create_mailbox(a.id, "", None))
        })
        .await;
    s.run(move |b| b.store_flags(inbox.id, &[1], FlagOp::Add, Flags::SEEN, &[], None))
        .await
        .unwrap();
    let mut kinds = vec![];
    while let Ok(c) = rx.try_recv() {
        kinds.push(c.kind);
    }
    assert!(kinds.contains(&ChangeKind::Flags { uid: 1 }));
}

#[test]
fn deliver_refused_for_every_recipient_leaves_no_blob_file() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Bytes(100))
        .unwrap();
    let b = s
        .add_account("b@example.com", &cheap_hash(), QuotaLimit::Bytes(100))
        .unwrap();
    let body = Arc::new("z".repeat(500).into_bytes());
    let r = s
        .deliver(body.clone(), 1, vec![(a.id, vec![]), (b.id, vec![])], true)
        .unwrap();
    assert!(r.iter().all(|x| matches!(x, Err(Error::OverQuota))));
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    // The same content delivered later (a raised quota) is stored whole.
    s.set_quota("b@example.com", QuotaLimit::Unlimited).unwrap();
    let r = s
        .deliver(body.clone(), 1, vec![(a.id, vec![]), (b.id, vec![])], true)
        .unwrap();
    assert!(r[0].is_err() && r[1].is_ok());
    let inbox = s.mailbox(b.id, "INBOX").unwrap();
    assert_eq!(
        s.open_message(inbox.id, 1).unwrap().read_all().unwrap(),
        *body
    );
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
}

#[test]
fn login_blocks() {
    let (_d, s) = store();
    s.block("ip:192.0.2.1", 1000, "10 failed logins").unwrap();
    s.block("ip:192.0.2.1", 500, "again").unwrap();
    assert_eq!(
        s.blocks(999).unwrap(),
        vec![("ip:192.0.2.1".to_string(), 1000, "again".to_string())]
    );
    assert!(s.blocks(1000).unwrap().is_empty(), "expired");
    assert!(s.unblock("ip:192.0.2.1").unwrap());
    assert!(!s.unblock("ip:192.0.2.1").unwrap());
}

#[test]
fn pending_warnings_are_taken_once() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Bytes(1000))
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    assert_eq!(s.take_pending_warning(a.id).unwrap(), None);
    // A copy (as IMAP COPY does) crossing 80% leaves a warning pending too.
    s.append(inbox.id, msg(&"a".repeat(450)), true).unwrap();
    let trash = s.mailbox(a.id, "Trash").unwrap();
    s.copy(inbox.id, &[1], trash.id).unwrap();
    assert_eq!(s.pending_warnings().unwrap(), vec![a.id]);
    assert_eq!(s.take_pending_warning(a.id).unwrap(), Some(80));
    assert_eq!(s.take_pending_warning(a.id).unwrap(), None, "taken once");
    assert!(s.pending_warnings().unwrap().is_empty());
    // Falling below cancels an unsent warning.
    s.expunge(trash.id, &[1]).unwrap();
    s.append(inbox.id, msg(&"b".repeat(400)), true).unwrap();
    assert_eq!(s.take_pending_warning(a.id).unwrap(), Some(80));
}

#[test]
fn structures_in_bulk_without_search_text() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    for i in 1..=5 {
        s.append(
            inbox.id,
            msg(&format!("Subject: s{i}\r\n\r\nneedle{i} body\r\n")),
            false,
        )
        .unwrap();
    }
    s.expunge(inbox.id, &[3]).unwrap();
    let light = s.parsed_many(inbox.id, &[1, 2, 3, 5, 99], false).unwrap();
    let uids: Vec<u32> = light.iter().map(|(u, _)| *u).collect();
    assert_eq!(uids, vec![1, 2, 5]);
    assert_eq!(light[2].1.envelope.subject.as_deref(), Some("s5"));
    assert!(
        light[0].1.search_body.is_empty(),
        "no search text unless asked"
    );
    let full = s.parsed_many(inbox.id, &[2, 4], true).unwrap();
    assert!(full[0].1.search_body.contains("needle2"));
    assert!(full[1].1.search_headers.contains("Subject: s4"));
    assert!(s
        .parsed(inbox.id, 5)
        .unwrap()
        .search_body
        .contains("needle5"));
    assert!(matches!(s.parsed(inbox.id, 3), Err(Error::NotFound(_))));
    assert!(s.parsed_many(inbox.id, &[], true).unwrap().is_empty());
    let envs = s.envelopes_many(inbox.id, &[5, 3, 99, 1]).unwrap();
    assert_eq!(envs.len(), 2);
    assert_eq!((envs[0].0, envs[1].0), (1, 5));
    assert_eq!(envs[1].1.subject.as_deref(), Some("s5"));
    assert!(s.envelopes_many(inbox.id, &[]).unwrap().is_empty());
    // A dense run is read as a range: what lies between and was not asked stays out.
    let dense: Vec<u32> = s
        .envelopes_many(inbox.id, &[1, 2, 5])
        .unwrap()
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(dense, vec![1, 2, 5]);
    let metas: Vec<u32> = s
        .messages(inbox.id, &[5, 3, 1])
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(metas, vec![1, 5]);
}

#[test]
fn lazy_and_durable_writes_mixed_in_batches() {
    // Flag changes (committed without fsync) and appends (fsynced) queued at once: the
    // writer commits the lazy ones apart; every write lands, MODSEQs stay unique.
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    for i in 0..40 {
        s.append(inbox.id, msg(&format!("Subject: {i}\r\n\r\n{i}")), false)
            .unwrap();
    }
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..10u32 {
                    if t % 2 == 0 {
                        let uid = t * 10 + i + 1;
                        let r = s
                            .store_flags(inbox.id, &[uid], FlagOp::Add, Flags::SEEN, &[], None)
                            .unwrap();
                        assert_eq!(r.updated.len(), 1);
                    } else {
                        s.append(inbox.id, msg(&format!("Subject: n{t}-{i}\r\n\r\nx")), false)
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let all = s.list_messages(inbox.id, false).unwrap();
    assert_eq!(all.len(), 60);
    let seen: Vec<u32> = all
        .iter()
        .filter(|m| m.flags.contains(Flags::SEEN))
        .map(|m| m.uid)
        .collect();
    assert_eq!(seen, (1..=10).chain(21..=30).collect::<Vec<_>>());
    let mut modseqs: Vec<u64> = all.iter().map(|m| m.modseq).collect();
    modseqs.sort();
    modseqs.dedup();
    assert_eq!(modseqs.len(), 60, "every change took its own MODSEQ");
    assert_eq!(
        s.mailbox_by_id(inbox.id).unwrap().highestmodseq,
        *modseqs.last().unwrap()
    );
    usage_matches(&s, "a@example.com");
}

/// What CONDSTORE/QRESYNC rely on: `changes_since(m)` is strictly above `m` (changed
/// messages with their current MODSEQ, expunged UIDs with the MODSEQ of their removal),
/// and UNCHANGEDSINCE lets a message at exactly that MODSEQ through.
#[test]
fn changes_since_is_strictly_above() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    for i in 0..3 {
        s.append(inbox.id, msg(&format!("Subject: {i}\r\n\r\nx")), false)
            .unwrap();
    }
    let before = s.mailbox(a.id, "INBOX").unwrap().highestmodseq;
    let m = s
        .store_flags(inbox.id, &[2], FlagOp::Add, Flags::SEEN, &[], Some(before))
        .unwrap();
    assert!(m.modified.is_empty());
    let m = m.updated[0].modseq;
    assert_eq!(m, before + 1);
    assert_eq!(s.expunge(inbox.id, &[3]).unwrap(), vec![3]);
    let e = s.mailbox(a.id, "INBOX").unwrap().highestmodseq;
    assert_eq!(e, m + 1);
    let ch = s.changes_since(inbox.id, before).unwrap();
    assert_eq!(
        ch.changed
            .iter()
            .map(|c| (c.uid, c.modseq))
            .collect::<Vec<_>>(),
        vec![(2, m)]
    );
    assert_eq!(ch.vanished, vec![3]);
    let ch = s.changes_since(inbox.id, m).unwrap();
    assert!(ch.changed.is_empty());
    assert_eq!(ch.vanished, vec![3]);
    assert_eq!(
        s.changes_since(inbox.id, e).unwrap(),
        ChangesSince::default()
    );
    // At exactly its MODSEQ a message passes UNCHANGEDSINCE; one below, it does not.
    let r = s
        .store_flags(inbox.id, &[2], FlagOp::Add, Flags::FLAGGED, &[], Some(m))
        .unwrap();
    assert_eq!((r.updated.len(), r.modified.len()), (1, 0));
    let r = s
        .store_flags(inbox.id, &[1, 2], FlagOp::Add, Flags::DRAFT, &[], Some(m))
        .unwrap();
    assert_eq!(r.modified, vec![2]);
    assert_eq!(r.updated.iter().map(|u| u.uid).collect::<Vec<_>>(), vec![1]);
}

/// The messages whose search text contains `needle` the way IMAP SEARCH TEXT compares
/// (case-insensitive substring of the decoded headers or body): the scan the filter
/// must agree with.
pub(crate) fn scan_text(s: &Store, mb: MailboxId, uids: &[u32], needle: &str) -> Vec<u32> {
    let n = needle.to_lowercase();
    s.parsed_many(mb, uids, true)
        .unwrap()
        .into_iter()
        .filter(|(_, p)| {
            p.search_headers.to_lowercase().contains(&n)
                || p.search_body.to_lowercase().contains(&n)
        })
        .map(|(u, _)| u)
        .collect()
}

pub(crate) const TEXT_MESSAGES: &[&str] = &[
    "Subject: Zanzibar trip\r\nFrom: Zoë <zoe@example.org>\r\n\r\nplain body\r\n",
    "Subject: hello\r\n\r\nThe needle ZANZIBAR is here.\r\n",
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n\r\nnothing\r\n",
    "Subject: x\r\nContent-Type: text/html\r\n\r\n<p>HTML z<b>anzibar</b> &amp; \u{212A}elvin</p>\r\n",
    "Subject: y\r\n\r\nİstanbul ab\r\n",
    "Subject: multi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nin part zanzibarish\r\n--b--\r\n",
    "no header at all, zanz ibar",
];

#[test]
fn text_candidates_never_miss_a_match() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    for m in TEXT_MESSAGES {
        s.append(inbox.id, msg(m), false).unwrap();
    }
    let uids: Vec<u32> = (1..=TEXT_MESSAGES.len() as u32).collect();
    for needle in [
        "zanzibar",
        "ZanZibar",
        "köln",
        "KÖLN",
        "grüße",
        "zoë",
        "example.org",
        "kelvin",
        "istanbul",
        "i̇stanbul",
        "zanz ibar",
        "subject: hello",
        "ab",
        "z",
        "",
        "quebec",
        "anzibar &",
        "n\u{e9}e",
    ] {
        let want = scan_text(&s, inbox.id, &uids, needle);
        let lower = needle.to_lowercase();
        match s.text_candidates(inbox.id, &[&lower]).unwrap() {
            None => assert!(lower.len() < 3, "{needle:?}: filtered only from 3 octets"),
            Some(c) => {
                for u in &want {
                    assert!(c.contains(u), "{needle:?}: UID {u} matches but was dropped");
                }
            }
        }
    }
    // It narrows: a word no message holds leaves (almost surely) no candidate.
    let c = s.text_candidates(inbox.id, &["quebec"]).unwrap().unwrap();
    assert!(c.is_empty(), "{c:?}");
    let c = s.text_candidates(inbox.id, &["zanzibar"]).unwrap().unwrap();
    assert!(c.contains(&1) && c.contains(&2) && c.contains(&6));
    // Several needles: every one must be there.
    let c = s
        .text_candidates(inbox.id, &["zanzibar", "quebec"])
        .unwrap()
        .unwrap();
    assert!(c.is_empty());
}

#[test]
fn headers_in_bulk_equal_the_message_octets() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    for m in TEXT_MESSAGES {
        s.append(inbox.id, msg(m), false).unwrap();
    }
    let body = Arc::new(b"Subject: delivered\r\nTo: a@example.com\r\n\r\nhi\r\n".to_vec());
    s.deliver(
        body,
        1_700_000_000,
        vec![(a.id, b"Return-Path: <x@example.org>\r\n".to_vec())],
        false,
    )
    .unwrap();
    let n = TEXT_MESSAGES.len() as u32 + 1;
    s.expunge(inbox.id, &[2]).unwrap();
    let uids: Vec<u32> = (1..=n + 1).collect();
    let got = s.headers_many(inbox.id, &uids).unwrap();
    let got_uids: Vec<u32> = got.iter().map(|(u, _)| *u).collect();
    let want_uids: Vec<u32> = (1..=n).filter(|&u| u != 2).collect();
    assert_eq!(got_uids, want_uids);
    for (uid, h) in got {
        let p = s.parsed(inbox.id, uid).unwrap();
        let full = s.open_message(inbox.id, uid).unwrap().read_all().unwrap();
        assert_eq!(h, full[..p.root.offset_body as usize], "UID {uid}");
    }
    let last = &s.headers_many(inbox.id, &[n]).unwrap()[0].1;
    assert!(last.starts_with(b"Return-Path: <x@example.org>\r\nSubject: delivered\r\n"));
    assert!(last.ends_with(b"\r\n\r\n"));
}

#[test]
fn new_mailbox_names_without_dot_levels() {
    let (_d, s) = store();
    let a = s
        .add_account("n@example.com", &cheap_hash(), QuotaLimit::Default)
        .unwrap();
    for bad in ["..", "a/../b", "./x", "a/.", "a//b", "/a", "~bob", "~"] {
        assert!(
            matches!(s.create_mailbox(a.id, bad, None), Err(Error::Invalid(_))),
            "{bad}"
        );
    }
    s.create_mailbox(a.id, "a..b/.hidden/x~bob/~", None)
        .unwrap();
    assert!(matches!(
        s.rename_mailbox(a.id, "Archive", "x/.."),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn deliver_to_targets_create_and_fallback() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let body = Arc::new(b"Subject: x\r\n\r\nhi\r\n".to_vec());
    let mk = |mailbox: &str, create: bool| Delivery {
        mailbox: mailbox.into(),
        create,
        flags: Flags::SEEN,
        keywords: vec!["$label1".into(), "bad word".into()],
        ..Delivery::inbox(a.id, b"X-P: 1\r\n".to_vec())
    };
    let r = s
        .deliver_to(
            body.clone(),
            // The parse a delivery made for its filters (the store does not parse again).
            Some(letterbox_message::parse(&body)),
            1,
            vec![mk("Junk", false), mk("Lists/rust", false), mk("Lists/rust", true)],
            true,
        )
        .unwrap();
    let junk = s.mailbox(a.id, "Junk").unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let lists = s.mailbox(a.id, "Lists/rust").unwrap();
    assert_eq!(r[0].as_ref().unwrap().mailbox, junk.id);
    // Missing without :create: INBOX. With :create: made; its parent is not (as CREATE:
    // superior names are listed \NonExistent, never made into folders).
    assert_eq!(r[1].as_ref().unwrap().mailbox, inbox.id);
    assert_eq!(r[2].as_ref().unwrap().mailbox, lists.id);
    assert!(s.mailbox(a.id, "Lists").is_err());
    let m = s.message(junk.id, 1).unwrap();
    assert_eq!(m.flags, Flags::SEEN);
    assert_eq!(m.keywords, vec!["$label1".to_string()]);
    assert_eq!(s.parsed(junk.id, 1).unwrap().envelope.subject.as_deref(), Some("x"));
    usage_matches(&s, "a@example.com");
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
}

/// The version of an account's scripts changes with every change to them, stays put
/// between changes, and is never given again, not even to an account made under a
/// deleted one's id (the server keeps compiled scripts by version). A backend that keeps
/// no version (`None`) passes.
#[test]
fn sieve_version_changes_with_the_scripts() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    let Some(v) = s.sieve_version(a.id).unwrap() else {
        return;
    };
    let mut seen = vec![v];
    let mut changed = |s: &Store| {
        let v = s.sieve_version(a.id).unwrap().unwrap();
        assert!(!seen.contains(&v), "version {v} given again ({seen:?})");
        assert_eq!(s.sieve_version(a.id).unwrap(), Some(v));
        seen.push(v);
    };
    s.sieve_put(a.id, "one", b"keep;".to_vec(), None).unwrap();
    changed(&s);
    s.sieve_put(a.id, "one", b"discard;".to_vec(), None).unwrap();
    changed(&s);
    s.sieve_activate(a.id, Some("one")).unwrap();
    changed(&s);
    s.sieve_rename(a.id, "one", "two").unwrap();
    changed(&s);
    s.sieve_activate(a.id, None).unwrap();
    changed(&s);
    s.sieve_delete(a.id, "two").unwrap();
    changed(&s);
    // Reading changes nothing.
    s.sieve_list(a.id).unwrap();
    s.sieve_active(a.id).unwrap();
    assert_eq!(s.sieve_version(a.id).unwrap(), seen.last().copied());
    // Another account's changes are its own.
    let b = s
        .add_account("b@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    s.sieve_put(b.id, "x", b"keep;".to_vec(), None).unwrap();
    assert_eq!(s.sieve_version(a.id).unwrap(), seen.last().copied());
    seen.push(s.sieve_version(b.id).unwrap().unwrap());
    // An account made after b was removed (under its id, where the backend reuses ids)
    // meets no version given before.
    s.remove_account("b@example.com", true).unwrap();
    let c = s
        .add_account("c@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    s.sieve_put(c.id, "x", b"keep;".to_vec(), None).unwrap();
    let vc = s.sieve_version(c.id).unwrap().unwrap();
    assert!(!seen.contains(&vc), "version {vc} given again ({seen:?})");
}

#[test]
fn sieve_scripts_and_seen() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited)
        .unwrap();
    s.sieve_put(a.id, "one", b"keep;".to_vec(), Some(2)).unwrap();
    s.sieve_put(a.id, "two", b"discard;".to_vec(), Some(2)).unwrap();
    assert!(matches!(
        s.sieve_put(a.id, "three", b"keep;".to_vec(), Some(2)),
        Err(Error::Refused(_))
    ));
    // Replacing an existing one is not a new script.
    s.sieve_put(a.id, "two", b"stop;".to_vec(), Some(2)).unwrap();
    assert!(s.sieve_active(a.id).unwrap().is_none());
    s.sieve_activate(a.id, Some("two")).unwrap();
    assert_eq!(
        s.sieve_active(a.id).unwrap(),
        Some(("two".to_string(), b"stop;".to_vec()))
    );
    s.sieve_activate(a.id, Some("one")).unwrap();
    let l = s.sieve_list(a.id).unwrap();
    assert_eq!(l.iter().filter(|x| x.active).count(), 1);
    assert!(matches!(s.sieve_delete(a.id, "one"), Err(Error::Refused(_))));
    s.sieve_rename(a.id, "one", "uno").unwrap();
    assert_eq!(s.sieve_active(a.id).unwrap().unwrap().0, "uno");
    assert!(matches!(s.sieve_activate(a.id, Some("nope")), Err(Error::NotFound(_))));
    s.sieve_activate(a.id, None).unwrap();
    s.sieve_delete(a.id, "uno").unwrap();
    assert!(matches!(s.sieve_get(a.id, "uno"), Err(Error::NotFound(_))));
    assert!(s.sieve_put(a.id, "bad\nname", vec![], None).is_err());
    assert!(!s.sieve_seen(a.id, "v1", 100, 10).unwrap());
    assert!(s.sieve_seen(a.id, "v1", 200, 50).unwrap());
    assert!(!s.sieve_seen(a.id, "v1", 300, 150).unwrap());
    // Scripts go with their account.
    s.remove_account("a@example.com", true).unwrap();
    assert_eq!(s.sieve_list(a.id).unwrap(), vec![]);
}

/// Issue 15: a user's choice (the portal): one message, one attachment, by section.
#[test]
fn strip_chosen_message_and_part() {
    let (_d, s) = store();
    let a = s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Default).unwrap();
    let body = "Subject: s\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\nQUJD\r\n--x\r\nContent-Type: image/png; name=b.png\r\n\r\nQUJD\r\n--x--\r\n";
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let one = s.append(inbox.id, msg(body), true).unwrap();
    let two = s.append(inbox.id, msg(body), true).unwrap();
    let acct = s.account("a@example.com").unwrap();
    let sel = strip::Selection {
        only: Some(vec![("INBOX".into(), two.uid)]),
        sections: Some(vec!["3".into()]),
        rule: "portal".into(),
        ..Default::default()
    };
    let steps = strip::run(&*s, &acct, &sel, true, now(), &mut |_| {}).unwrap();
    assert_eq!(steps.len(), 1, "{steps:?}");
    let strip::Step::Stripped { uid, new_uid: Some(n), removed, .. } = &steps[0] else { panic!("{steps:?}") };
    assert_eq!((*uid, removed.len(), removed[0].filename.as_str()), (two.uid, 1, "b.png"));
    let uids: Vec<u32> = s.list_messages(inbox.id, false).unwrap().iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![one.uid, *n]);
    let new = s.open_message(inbox.id, *n).unwrap().read_all().unwrap();
    let new = String::from_utf8(new).unwrap();
    assert!(new.contains("name=a.pdf\r\n\r\nQUJD") && new.contains("name=\"Deleted: b.png\""), "{new}");
    usage_matches(&s, "a@example.com");
}

// --- auxiliary methods (issue 17: the same meaning on every backend) ---

fn queued(now: i64, account: Option<AccountId>, rcpts: &[&str]) -> queue::NewQueued {
    queue::NewQueued {
        sender: "a@example.com".into(),
        account,
        message: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
        rcpts: rcpts
            .iter()
            .map(|r| queue::NewQueuedRcpt {
                address: r.to_string(),
                notify: queue::NOTIFY_FAILURE,
                ..Default::default()
            })
            .collect(),
        envid: Some("env-1".into()),
        now,
        ..Default::default()
    }
}

#[test]
fn queue_due_update_remove_and_ids_never_reused() {
    use queue::*;
    let (_d, s) = store();
    let a = s.queue_insert(queued(100, Some(1), &["x@r.test", "y@r.test"])).unwrap();
    let b = s.queue_insert(queued(200, Some(1), &["z@r.test"])).unwrap();
    assert!(matches!(s.queue_insert(queued(200, None, &[])), Err(Error::Invalid(_))));
    assert_eq!(s.queue_due(99, 10).unwrap(), Vec::<QueueId>::new());
    assert_eq!(s.queue_due(150, 10).unwrap(), vec![a]);
    s.queue_release(a).unwrap();
    assert_eq!(s.queue_due(300, 1).unwrap(), vec![a], "bounded, oldest first");
    s.queue_release(a).unwrap();
    assert_eq!(s.queue_next_due().unwrap(), Some(100));
    let m = s.queue_get(a).unwrap();
    assert_eq!(
        (m.sender.as_str(), m.account, m.created, m.size, m.envid.as_deref(), m.held, m.attempts),
        ("a@example.com", Some(1), 100, 20, Some("env-1"), false, 0)
    );
    let addrs: Vec<&str> = m.rcpts.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addrs, ["x@r.test", "y@r.test"]);
    assert_eq!(m.rcpts[0].notify, NOTIFY_FAILURE);
    assert_eq!(s.queue_body(a).unwrap(), b"Subject: x\r\n\r\nbody\r\n");
    // One recipient delivered, the other deferred: the entry stays, due later.
    let u = QueueUpdate {
        rcpts: vec![
            (m.rcpts[0].id, RcptStatus::Delivered, "250 ok".into()),
            (m.rcpts[1].id, RcptStatus::Pending, "451 later".into()),
        ],
        next_attempt: 500,
        count_attempt: true,
        last_error: "451 later".into(),
        warned: true,
    };
    assert!(s.queue_update(a, u).unwrap());
    let m = s.queue_get(a).unwrap();
    assert_eq!((m.attempts, m.next_attempt, m.warned), (1, 500, true));
    assert_eq!(m.rcpts[0].status, RcptStatus::Delivered);
    assert_eq!((m.rcpts[1].status, m.rcpts[1].last_reply.as_str()), (RcptStatus::Pending, "451 later"));
    assert_eq!(s.queue_due(300, 10).unwrap(), vec![b]);
    s.queue_release(b).unwrap();
    // Hold, release, retry, unknown ids.
    s.queue_set_held(b, true, 300).unwrap();
    assert!(s.queue_due(300, 10).unwrap().is_empty());
    assert_eq!(s.queue_next_due().unwrap(), Some(500));
    s.queue_set_held(b, false, 300).unwrap();
    assert_eq!(s.queue_due(300, 10).unwrap(), vec![b]);
    s.queue_release(b).unwrap();
    assert_eq!(s.queue_retry(None, 300).unwrap(), 2);
    assert_eq!(s.queue_due(300, 10).unwrap(), vec![a, b]);
    assert_eq!(s.queue_list(0, 10).unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(s.queue_list(a, 10).unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), vec![b]);
    assert!(matches!(s.queue_get(b + 1000), Err(Error::NotFound(_))));
    assert!(matches!(s.queue_body(b + 1000), Err(Error::NotFound(_))));
    assert!(matches!(s.queue_remove(b + 1000), Err(Error::NotFound(_))));
    assert!(matches!(s.queue_set_held(b + 1000, true, 1), Err(Error::NotFound(_))));
    assert!(matches!(s.queue_retry(Some(b + 1000), 1), Err(Error::NotFound(_))));
    // The last pending recipient failed: the entry is gone, and an update finds nothing.
    let u = QueueUpdate {
        rcpts: vec![(m.rcpts[1].id, RcptStatus::Failed, "550 no".into())],
        next_attempt: 600,
        count_attempt: true,
        ..Default::default()
    };
    assert!(s.queue_update(a, u.clone()).unwrap());
    assert!(matches!(s.queue_get(a), Err(Error::NotFound(_))));
    assert!(matches!(s.queue_body(a), Err(Error::NotFound(_))));
    assert!(!s.queue_update(a, u).unwrap());
    s.queue_remove(b).unwrap();
    assert!(s.queue_list(0, 10).unwrap().is_empty());
    assert_eq!(s.queue_next_due().unwrap(), None);
    // IDs are never reused, even once the newest entry is gone.
    let c = s.queue_insert(queued(700, None, &["w@r.test"])).unwrap();
    assert!(c > b && c > a, "{c} after {a}, {b}");
    s.queue_remove(c).unwrap();
    let d = s.queue_insert(queued(700, None, &["w@r.test"])).unwrap();
    assert!(d > c);
}

#[test]
fn outbound_use_and_holds() {
    let (_d, s) = store();
    s.queue_insert(queued(1000, Some(7), &["a@r.test", "b@r.test"])).unwrap();
    s.queue_insert(queued(5000, Some(7), &["c@r.test"])).unwrap();
    s.queue_insert(queued(5000, Some(8), &["d@r.test"])).unwrap();
    s.queue_insert(queued(5000, None, &["e@r.test"])).unwrap();
    // At 5100: one message in the last hour (5000), three recipients in the last day.
    let u = s.outbound_use(7, 5100).unwrap();
    assert_eq!((u.messages_hour, u.rcpts_day), (1, 3));
    let u = s.outbound_use(7, 1000 + 86_400 + 1).unwrap();
    assert_eq!((u.messages_hour, u.rcpts_day), (0, 1), "the day-old use is out");
    assert_eq!(s.outbound_use(9, 5100).unwrap(), queue::OutboundUse::default());
    assert!(!s.outbound_held(7).unwrap());
    s.set_outbound_hold(7, true).unwrap();
    s.set_outbound_hold(7, true).unwrap();
    assert!(s.outbound_held(7).unwrap());
    assert!(!s.outbound_held(8).unwrap());
    s.set_outbound_hold(7, false).unwrap();
    assert!(!s.outbound_held(7).unwrap());
}

#[test]
fn blocks_keep_the_longer_until() {
    let (_d, s) = store();
    s.block("user:a@example.com", 2000, "first").unwrap();
    s.block("user:a@example.com", 3000, "second").unwrap();
    s.block("ip:192.0.2.9", 1500, "x").unwrap();
    assert_eq!(
        s.blocks(1000).unwrap(),
        vec![
            ("ip:192.0.2.9".to_string(), 1500, "x".to_string()),
            ("user:a@example.com".to_string(), 3000, "second".to_string()),
        ]
    );
    assert_eq!(s.blocks(2999).unwrap().len(), 1);
    assert!(s.unblock("user:a@example.com").unwrap());
    assert!(s.blocks(1000).unwrap().iter().all(|b| b.0 != "user:a@example.com"));
}

#[test]
fn app_passwords_add_authenticate_remove() {
    let (_d, s) = store();
    let acct = s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Default).unwrap();
    let imap = Protocols::parse_list("imap,smtp").unwrap();
    let pw = s.add_app_password("a@example.com", " phone ", imap).unwrap();
    assert!(matches!(s.add_app_password("a@example.com", "phone", imap), Err(Error::Exists(_))));
    assert!(matches!(s.add_app_password("nobody@example.com", "x", imap), Err(Error::NotFound(_))));
    assert!(matches!(s.add_app_password("a@example.com", "", imap), Err(Error::Invalid(_))));
    let ok = |p: &str, proto, cached| {
        s.authenticate_app_password("A@example.com", p, proto, cached)
            .unwrap()
            .map(|(a, n)| (a.id, a.address, n))
    };
    let phone = Some((acct.id, "a@example.com".to_string(), "phone".to_string()));
    assert_eq!(ok(&pw, Protocol::Imap, true), None, "not verified yet");
    assert_eq!(ok(&pw, Protocol::Imap, false), phone);
    assert_eq!(ok(&pw, Protocol::Imap, true), phone, "cached now");
    assert_eq!(ok(&pw.to_uppercase().replace('-', ""), Protocol::Smtp, false), phone);
    assert_eq!(ok(&pw, Protocol::Pop3, false), None, "not for POP3");
    assert_eq!(ok(&pw, Protocol::Web, false), None);
    assert_eq!(ok("pw", Protocol::Imap, false), None);
    assert!(s.authenticate_app_password("b@example.com", &pw, Protocol::Imap, false).unwrap().is_none());
    assert!(s.authenticate("a@example.com", &pw).unwrap().is_none());
    let listed = s.list_app_passwords("a@example.com").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].name.as_str(), listed[0].protocols.names(), listed[0].last_used), ("phone", vec!["imap", "smtp"], None));
    // A login through it is recorded, and marks its last use.
    let rec = LoginRecord { at: 4242, remote: "192.0.2.1".into(), protocol: "imap".into(), app_password: Some("phone".into()) };
    s.record_login(acct.id, rec.clone(), 10).unwrap();
    assert_eq!(s.list_app_passwords("a@example.com").unwrap()[0].last_used, Some(4242));
    assert_eq!(s.recent_logins("a@example.com").unwrap(), vec![rec]);
    s.remove_app_password("a@example.com", "phone").unwrap();
    assert_eq!(ok(&pw, Protocol::Imap, true), None, "revoked: not even cached");
    assert_eq!(ok(&pw, Protocol::Imap, false), None);
    assert!(matches!(s.remove_app_password("a@example.com", "phone"), Err(Error::NotFound(_))));
    assert!(s.list_app_passwords("a@example.com").unwrap().is_empty());
}

#[test]
fn login_history_keeps_the_last() {
    let (_d, s) = store();
    let a = s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Default).unwrap();
    let b = s.add_account("b@example.com", &cheap_hash(), QuotaLimit::Default).unwrap();
    for i in 0..5 {
        let rec = LoginRecord { at: 1000 + i, remote: "192.0.2.1".into(), protocol: "pop3".into(), app_password: None };
        s.record_login(a.id, rec.clone(), 3).unwrap();
        s.record_login(b.id, rec, 0).unwrap();
    }
    let logins = s.recent_logins("a@example.com").unwrap();
    assert_eq!(logins.iter().map(|l| l.at).collect::<Vec<_>>(), [1004, 1003, 1002]);
    assert_eq!(logins[0].protocol, "pop3");
    assert!(s.recent_logins("b@example.com").unwrap().is_empty(), "keep 0: none");
    assert!(matches!(s.recent_logins("c@example.com"), Err(Error::NotFound(_))));
}

#[test]
fn api_tokens_checked_by_digest() {
    let (_d, s) = store();
    let t = s.add_api_token("backup").unwrap();
    assert!(t.starts_with("lbx_") && t.len() == 47, "{t}");
    assert!(matches!(s.add_api_token("backup"), Err(Error::Exists(_))));
    assert!(matches!(s.add_api_token(" "), Err(Error::Invalid(_))));
    assert_eq!(s.check_api_token(&t).unwrap().as_deref(), Some("backup"));
    assert_eq!(s.check_api_token(&format!("{t}x")).unwrap(), None);
    let mut wrong = t.clone();
    wrong.pop();
    wrong.push(if t.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(s.check_api_token(&wrong).unwrap(), None, "same selector, other digest");
    let listed = s.list_api_tokens().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "backup");
    assert!(listed[0].last_used.is_some_and(|t| (t - now()).abs() < 60));
    s.remove_api_token("backup").unwrap();
    assert_eq!(s.check_api_token(&t).unwrap(), None);
    assert!(matches!(s.remove_api_token("backup"), Err(Error::NotFound(_))));
}

fn dkim_key(domain: &str, selector: &str, alg: DkimAlgorithm, state: DkimState) -> DkimKey {
    DkimKey {
        domain: domain.into(),
        selector: selector.into(),
        algorithm: alg,
        private_key: format!("private {selector}").into_bytes(),
        public_key: format!("public {selector}").into_bytes(),
        created: 100,
        state,
        changed: 100,
    }
}

#[test]
fn dkim_keys_activation_retires_the_old_set() {
    let (_d, s) = store();
    s.add_domain("other.org").unwrap();
    let v0 = s.dkim_version().unwrap();
    s.add_dkim_keys(vec![
        dkim_key("example.com", "a1", DkimAlgorithm::Ed25519, DkimState::Active),
        dkim_key("example.com", "a2", DkimAlgorithm::Rsa, DkimState::Active),
    ])
    .unwrap();
    let v1 = s.dkim_version().unwrap();
    assert_ne!(v1, v0, "adding keys moves the version");
    // All or none: the second key's domain is not local.
    assert!(matches!(
        s.add_dkim_keys(vec![
            dkim_key("other.org", "o1", DkimAlgorithm::Ed25519, DkimState::Active),
            dkim_key("nowhere.test", "o2", DkimAlgorithm::Rsa, DkimState::Active),
        ]),
        Err(Error::NotFound(_))
    ));
    assert!(s.dkim_keys("other.org").unwrap().is_empty());
    assert!(matches!(
        s.add_dkim_keys(vec![dkim_key("example.com", "A1", DkimAlgorithm::Ed25519, DkimState::Published)]),
        Err(Error::Exists(_))
    ));
    assert_eq!(s.dkim_version().unwrap(), v1, "a refused change moves nothing");
    s.add_dkim_keys(vec![
        dkim_key("example.com", "b1", DkimAlgorithm::Ed25519, DkimState::Published),
        dkim_key("example.com", "b2", DkimAlgorithm::Rsa, DkimState::Published),
    ])
    .unwrap();
    let keys = s.dkim_keys("example.com").unwrap();
    assert_eq!(keys.iter().map(|k| k.selector.as_str()).collect::<Vec<_>>(), ["a1", "a2", "b1", "b2"]);
    assert_eq!(keys[1].algorithm, DkimAlgorithm::Rsa);
    assert_eq!(keys[2].private_key, b"private b1");
    let active = |s: &Store| s.active_dkim_keys().unwrap().into_iter().map(|k| k.selector).collect::<Vec<_>>();
    assert_eq!(active(&s), ["a1", "a2"]);
    let v2 = s.dkim_version().unwrap();
    let retired = s.activate_dkim_keys("example.com", &["b1".into(), "b2".into()]).unwrap();
    assert_eq!(retired, ["a1", "a2"]);
    assert_eq!(active(&s), ["b1", "b2"]);
    assert_ne!(s.dkim_version().unwrap(), v2);
    let keys = s.dkim_keys("example.com").unwrap();
    assert_eq!(keys[0].state, DkimState::Retired);
    assert!(keys[0].changed > 100, "state change time recorded");
    assert!(matches!(s.activate_dkim_keys("example.com", &["a1".into()]), Err(Error::Refused(_))));
    assert!(matches!(s.activate_dkim_keys("example.com", &["zz".into()]), Err(Error::NotFound(_))));
    assert!(matches!(s.activate_dkim_keys("example.com", &[]), Err(Error::Invalid(_))));
    assert!(matches!(s.dkim_keys("nowhere.test"), Err(Error::NotFound(_))));
    assert_eq!(active(&s), ["b1", "b2"], "refusals change nothing");
}

#[test]
fn maintenance_due_once_per_interval_among_callers() {
    let (_d, s) = store();
    // Eight callers (threads, as eight nodes would be) at the same instant: one wins.
    let wins = |now: i64| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || s.maintenance_due("nightly", now, 100).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).filter(|w| *w).count()
    };
    assert_eq!(wins(1000), 1);
    assert_eq!(wins(1099), 0, "within the interval");
    assert_eq!(wins(1100), 1);
    assert!(s.maintenance_due("other", 1100, 100).unwrap(), "per task");
    assert!(s.maintenance_due("nightly", 500, 100).unwrap(), "a clock set back: due again");
    assert!(!s.maintenance_due("nightly", 550, 100).unwrap());
}

#[test]
fn expire_and_strip_policies_per_scope() {
    let (_d, s) = store();
    s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Default).unwrap();
    s.set_expire("example.com", SpecialUse::Trash, Some(7)).unwrap();
    s.set_expire("A@example.com", SpecialUse::Junk, Some(0)).unwrap();
    s.set_expire("a@example.com", SpecialUse::Trash, Some(3)).unwrap();
    assert!(matches!(s.set_expire("a@example.com", SpecialUse::Sent, Some(1)), Err(Error::Invalid(_))));
    assert!(matches!(s.set_expire("nobody@example.com", SpecialUse::Trash, Some(1)), Err(Error::NotFound(_))));
    assert!(matches!(s.set_expire("nowhere.test", SpecialUse::Trash, Some(1)), Err(Error::NotFound(_))));
    assert_eq!(
        s.expire_policies().unwrap(),
        vec![
            ExpirePolicy { scope: "a@example.com".into(), trash: Some(3), junk: Some(0) },
            ExpirePolicy { scope: "example.com".into(), trash: Some(7), junk: None },
        ]
    );
    s.set_expire("example.com", SpecialUse::Trash, None).unwrap();
    s.set_expire("a@example.com", SpecialUse::Junk, None).unwrap();
    assert_eq!(
        s.expire_policies().unwrap(),
        vec![ExpirePolicy { scope: "a@example.com".into(), trash: Some(3), junk: None }],
        "a scope with nothing of its own is forgotten"
    );

    let p = |days, size, folders: &[&str]| StripPolicy {
        older_than_days: days,
        larger_than: size,
        folders: folders.iter().map(|f| f.to_string()).collect(),
    };
    s.set_strip_policy("example.com", Some(p(30, 1000, &["\\Sent", "Archive/2020"]))).unwrap();
    s.set_strip_policy("a@example.com", Some(p(0, 0, &[]))).unwrap();
    assert!(matches!(s.set_strip_policy("example.com", Some(p(3, 1, &[]))), Err(Error::Invalid(_))));
    assert!(matches!(s.set_strip_policy("example.com", Some(p(3, 1, &["a\nb"]))), Err(Error::Invalid(_))));
    assert_eq!(
        s.strip_policies().unwrap(),
        vec![
            ("a@example.com".to_string(), p(0, 0, &[])),
            ("example.com".to_string(), p(30, 1000, &["\\Sent", "Archive/2020"])),
        ]
    );
    assert_eq!(s.strip_policy_for("A@example.com").unwrap(), p(0, 0, &[]), "the account's own");
    assert_eq!(s.strip_policy_for("b@example.com").unwrap(), p(30, 1000, &["\\Sent", "Archive/2020"]));
    assert_eq!(s.strip_policy_for("b@other.org").unwrap(), StripPolicy::default(), "[attachments]");
    s.set_strip_policy("a@example.com", None).unwrap();
    assert_eq!(s.strip_policy_for("a@example.com").unwrap().older_than_days, 30);
}

#[test]
fn expire_empties_old_trash_into_the_space_log() {
    let (_d, s) = store();
    let a = s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Default).unwrap();
    let trash = s.mailbox(a.id, "Trash").unwrap();
    s.append(trash.id, msg("Subject: old\r\n\r\nx\r\n"), true).unwrap();
    s.append(trash.id, msg("Subject: old too\r\n\r\nxy\r\n"), true).unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    s.append(inbox.id, msg("Subject: kept\r\n\r\nx\r\n"), true).unwrap();
    s.set_expire("a@example.com", SpecialUse::Trash, Some(2)).unwrap();
    let t = now();
    assert_eq!(s.expire(t + 86_400).unwrap(), vec![], "one day: too young");
    let gone = s.expire(t + 3 * 86_400).unwrap();
    assert_eq!(
        gone,
        vec![Expired { address: "a@example.com".into(), mailbox: "Trash".into(), messages: 2, bytes: 43 }]
    );
    assert!(s.list_messages(trash.id, false).unwrap().is_empty());
    assert_eq!(s.list_messages(inbox.id, false).unwrap().len(), 1);
    usage_matches(&s, "a@example.com");
    let log = s.space_log(a.id, 0).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].kind.as_str(), log[0].mailbox.as_str(), log[0].messages, log[0].bytes, log[0].uid),
        ("expire", "Trash", 2, 43, None)
    );
    let freed = s.space_freed_by_day(a.id, 0).unwrap();
    assert_eq!(freed, vec![FreedDay { day: log[0].at / 86_400, stripped: 0, expired: 43 }]);
    assert_eq!(s.space_log_purge(log[0].at).unwrap(), 0);
    assert_eq!(s.space_log_purge(log[0].at + 1).unwrap(), 1);
    assert!(s.space_log(a.id, 0).unwrap().is_empty());
}

#[test]
fn web_sessions_requests_and_counts() {
    use web::*;
    let (_d, s) = store();
    let a = s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Bytes(1000)).unwrap();
    let w = s.web();
    // Sessions.
    w.session_create([1; 32], a.id, "csrf1", 2000).unwrap();
    w.session_create([2; 32], a.id, "csrf2", 1000).unwrap();
    assert_eq!(w.session_get([1; 32], 1500).unwrap(), Some(WebSession { account_id: a.id, csrf: "csrf1".into(), expires: 2000 }));
    assert_eq!(w.session_get([2; 32], 1500).unwrap(), None, "expired");
    assert_eq!(w.sessions_purge(1500).unwrap(), 1);
    w.session_delete([1; 32]).unwrap();
    assert_eq!(w.session_get([1; 32], 1500).unwrap(), None);
    w.session_create([3; 32], a.id, "c", 5000).unwrap();
    assert_eq!(w.sessions_end_account(a.id).unwrap(), 1);
    // Quota requests: one open at a time, decided once, the approval sets the limit.
    let r = w.quota_request_open(a.id, 5000, "three computers").unwrap();
    assert_eq!((r.address.as_str(), r.size, r.status), ("a@example.com", 5000, RequestStatus::Pending));
    assert!(matches!(w.quota_request_open(a.id, 6000, "again"), Err(Error::Exists(_))));
    let d = w.quota_request_decide(r.id, "op@example.com", Decision::Approve(4000)).unwrap();
    assert_eq!((d.status, d.granted_size, d.decided_by.as_deref()), (RequestStatus::Approved, Some(4000), Some("op@example.com")));
    assert_eq!(s.account_by_id(a.id).unwrap().effective_limit, Some(4000));
    assert!(matches!(w.quota_request_decide(r.id, "x", Decision::Deny("no".into())), Err(Error::Refused(_))));
    let r2 = w.quota_request_open(a.id, 9000, "more").unwrap();
    let d2 = w.quota_request_decide(r2.id, "cli:root", Decision::Deny("no room".into())).unwrap();
    assert_eq!((d2.status, d2.note.as_deref()), (RequestStatus::Denied, Some("no room")));
    assert_eq!(s.account_by_id(a.id).unwrap().effective_limit, Some(4000));
    assert_eq!(w.quota_requests(false).unwrap(), vec![]);
    assert_eq!(w.quota_requests(true).unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), vec![r2.id, r.id]);
    assert_eq!(w.quota_requests_of(a.id).unwrap().len(), 2);
    assert_eq!(w.quota_request(r.id).unwrap(), d);
    assert!(matches!(w.quota_request(r2.id + 100), Err(Error::NotFound(_))));
    // Operators.
    assert!(matches!(w.admin_add("nobody@example.com", None), Err(Error::NotFound(_))));
    assert!(matches!(w.admin_add("a@example.com", Some("nope.org")), Err(Error::NotFound(_))));
    w.admin_add("a@example.com", None).unwrap();
    assert!(matches!(w.admin_add("A@example.com", None), Err(Error::Exists(_))));
    w.admin_add("a@example.com", Some("Example.com")).unwrap();
    assert_eq!(
        w.admin_list().unwrap(),
        vec![
            AdminGrant { address: "a@example.com".into(), domain: None },
            AdminGrant { address: "a@example.com".into(), domain: Some("example.com".into()) },
        ]
    );
    assert_eq!(w.admin_remove("a@example.com", None).unwrap(), 2);
    assert!(matches!(w.admin_remove("a@example.com", None), Err(Error::NotFound(_))));
    // Usage history and delivery counts.
    assert_eq!(w.usage_sample_all(10).unwrap(), 1);
    assert_eq!(w.usage_sample_all(10).unwrap(), 1, "refreshed, not added");
    s.append(s.mailbox(a.id, "INBOX").unwrap().id, msg("Subject: s\r\n\r\nx\r\n"), true).unwrap();
    w.usage_sample_all(11).unwrap();
    assert_eq!(
        w.usage_samples(a.id, 0).unwrap(),
        vec![UsageSample { day: 10, used: 0, limit: Some(4000) }, UsageSample { day: 11, used: 17, limit: Some(4000) }]
    );
    assert_eq!(w.domain_usage_samples("example.com", 11).unwrap(), vec![UsageSample { day: 11, used: 17, limit: Some(4000) }]);
    w.usage_sample_all(11 + USAGE_HISTORY_DAYS).unwrap();
    assert_eq!(w.usage_samples(a.id, 0).unwrap().iter().map(|x| x.day).collect::<Vec<_>>(), vec![11, 11 + USAGE_HISTORY_DAYS]);
    let big = w.largest_messages(a.id, 5).unwrap();
    assert_eq!((big.len(), big[0].mailbox_name.as_str(), big[0].uid, big[0].size), (1, "INBOX", 1, 17));
    for o in [DeliveryOutcome::Delivered, DeliveryOutcome::Delivered, DeliveryOutcome::Bounced] {
        w.count_delivery("Example.com", 5, o).unwrap();
    }
    w.count_delivery("example.com", 6, DeliveryOutcome::Refused).unwrap();
    assert_eq!(
        w.domain_counts("example.com", 0).unwrap(),
        vec![
            DomainDay { day: 5, delivered: 2, refused: 0, bounced: 1 },
            DomainDay { day: 6, delivered: 0, refused: 1, bounced: 0 },
        ]
    );
    // Disabling ends the account's sessions.
    w.session_create([4; 32], a.id, "c", i64::MAX).unwrap();
    w.set_disabled("a@example.com", true, "op").unwrap();
    assert!(w.is_disabled(a.id).unwrap());
    assert_eq!(w.disabled_accounts().unwrap(), vec![a.id]);
    assert_eq!(w.session_get([4; 32], 0).unwrap(), None);
    w.set_disabled("a@example.com", false, "op").unwrap();
    assert!(!w.is_disabled(a.id).unwrap());
    assert!(matches!(w.set_disabled("nobody@example.com", true, "op"), Err(Error::NotFound(_))));
}

#[test]
fn import_runs_keys_and_uidls() {
    let (_d, s) = store();
    let a = s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Default).unwrap();
    assert_eq!(s.import_begin(a.id, "maildir:/x", false).unwrap(), ImportStart::Fresh);
    let mb = s.import_mailbox(a.id, "INBOX", 777).unwrap();
    assert!(mb.keeps_uids);
    let one = |key: &str, uid, uidl: Option<&str>| ImportMessage {
        key: key.into(),
        uid,
        message: msg("Subject: i\r\n\r\nx\r\n"),
        pop3_uidl: uidl.map(str::to_string),
    };
    let r = s.import_message(mb.mailbox.id, one("INBOX/777/5", Some(5), Some("UIDL-5"))).unwrap();
    assert!(matches!(r, Imported::Stored { uid: 5, .. }), "{r:?}");
    s.import_message(mb.mailbox.id, one("INBOX/777/9", Some(9), None)).unwrap();
    s.import_message(mb.mailbox.id, one("INBOX%/777/1", Some(1), None)).unwrap();
    assert_eq!(
        s.import_message(mb.mailbox.id, one("INBOX/777/5", Some(5), Some("UIDL-5"))).unwrap(),
        Imported::AlreadyImported
    );
    // The run did not finish: a second run resumes it, though the account has mail now.
    assert_eq!(s.import_begin(a.id, "maildir:/x", false).unwrap(), ImportStart::Resumed);
    let mut keys = s.imported_keys(a.id, "INBOX/").unwrap();
    keys.sort();
    assert_eq!(keys, ["INBOX/777/5", "INBOX/777/9"], "a prefix, not a pattern");
    assert_eq!(s.pop3_uidls(mb.mailbox.id).unwrap(), vec![(5, "UIDL-5".to_string())]);
    s.import_finish(a.id, "maildir:/x").unwrap();
    assert!(matches!(s.import_begin(a.id, "maildir:/x", false), Err(Error::Refused(_))));
    assert_eq!(s.import_begin(a.id, "maildir:/x", true).unwrap(), ImportStart::Merge);
    s.expunge(mb.mailbox.id, &[5]).unwrap();
    assert_eq!(s.pop3_uidls(mb.mailbox.id).unwrap(), vec![], "only present messages");
}

// Moved from import.rs (SQLite only there) so that it runs against every backend.
fn import_one(key: &str, uid: Option<u32>, body: &str) -> ImportMessage {
    ImportMessage {
        key: key.into(),
        uid,
        message: NewMessage {
            prefix: Vec::new(),
            body: Arc::new(body.as_bytes().to_vec()),
            flags: Flags::SEEN,
            keywords: vec!["project".into()],
            internal_date: 1_700_000_000,
        },
        pop3_uidl: Some(format!("uidl-{key}")),
    }
}

#[test]
fn uids_kept_never_reused_once_per_key() {
    let (_d, s) = store();
    let a = s
        .add_account("a@example.com", &cheap_hash(), QuotaLimit::Default)
        .unwrap();
    assert_eq!(
        s.import_begin(a.id, "src", false).unwrap(),
        ImportStart::Fresh
    );
    let im = s.import_mailbox(a.id, "INBOX", 4242).unwrap();
    assert!(im.keeps_uids);
    assert_eq!(s.mailbox(a.id, "INBOX").unwrap().uidvalidity, 4242);
    let mb = im.mailbox.id;
    // Out of order, with a gap: both UIDs kept; UIDNEXT past the highest.
    assert!(matches!(
        s.import_message(mb, import_one("k7", Some(7), "m7\r\n")).unwrap(),
        Imported::Stored { uid: 7, .. }
    ));
    assert!(matches!(
        s.import_message(mb, import_one("k3", Some(3), "m3\r\n")).unwrap(),
        Imported::Stored { uid: 3, .. }
    ));
    assert_eq!(
        s.import_message(mb, import_one("k3", Some(3), "m3\r\n")).unwrap(),
        Imported::AlreadyImported
    );
    // An expunged UID is never given again: the message gets a new one.
    s.expunge(mb, &[3]).unwrap();
    assert!(matches!(
        s.import_message(mb, import_one("other", Some(3), "x\r\n"))
            .unwrap(),
        Imported::Stored { uid: 8, .. }
    ));
    s.import_finish_mailbox(mb, 20).unwrap();
    assert_eq!(s.mailbox_by_id(mb).unwrap().uidnext, 20);
    assert_eq!(
        s.pop3_uidls(mb).unwrap(),
        vec![(7, "uidl-k7".to_string()), (8, "uidl-other".to_string())]
    );
    let m = s.message(mb, 7).unwrap();
    assert_eq!(
        (m.flags, m.keywords.clone()),
        (Flags::SEEN, vec!["project".to_string()])
    );
    // Unfinished: a rerun resumes; finished: refused unless merging.
    assert_eq!(
        s.import_begin(a.id, "src", false).unwrap(),
        ImportStart::Resumed
    );
    s.import_finish(a.id, "src").unwrap();
    assert!(matches!(
        s.import_begin(a.id, "src", false),
        Err(Error::Refused(_))
    ));
    assert_eq!(
        s.import_begin(a.id, "src", true).unwrap(),
        ImportStart::Merge
    );
    // A mailbox with mail under another UIDVALIDITY does not keep UIDs.
    assert!(!s.import_mailbox(a.id, "INBOX", 99).unwrap().keeps_uids);
    assert!(s.check(true).unwrap().is_empty());
}

#[test]
fn removed_account_leaves_no_rights_or_policies_to_its_successor() {
    let (_d, s) = store();
    let a = s.add_account("op@example.com", &cheap_hash(), QuotaLimit::Default).unwrap();
    let w = s.web();
    w.admin_add("op@example.com", None).unwrap();
    w.session_create([7; 32], a.id, "csrf", i64::MAX).unwrap();
    s.set_expire("op@example.com", SpecialUse::Trash, Some(3)).unwrap();
    s.set_expire("example.com", SpecialUse::Junk, Some(9)).unwrap();
    s.remove_account("op@example.com", false).unwrap();
    // A new account of the same address starts with nothing of the old one's.
    s.add_account("op@example.com", &cheap_hash(), QuotaLimit::Default).unwrap();
    assert!(w.admin_list().unwrap().is_empty(), "operator rights inherited");
    assert_eq!(w.session_get([7; 32], 0).unwrap(), None, "session survived");
    let scopes: Vec<String> = s.expire_policies().unwrap().into_iter().map(|p| p.scope).collect();
    assert_eq!(scopes, vec!["example.com".to_string()]);
    // A removed domain takes its own policies with it.
    s.remove_account("op@example.com", false).unwrap();
    s.remove_domain("example.com").unwrap();
    assert!(s.expire_policies().unwrap().is_empty());
}

/// Base64-like lines, distinct per seed (an attachment's encoded octets).
fn attachment_lines(seed: u32, n: usize) -> Vec<u8> {
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

/// Message `n` with a text part and the given attachments.
fn with_attachments(n: u32, attachments: &[&[u8]]) -> Vec<u8> {
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

/// Part files of a store in files mode (`data_dir/parts`, on every backend).
fn part_files(dir: &std::path::Path) -> usize {
    crate::blob::BlobDir::open(dir.join("parts")).unwrap().scan().unwrap().len()
}

/// Single-instance storage of large parts (issue 15, `parts.rs`), on every backend:
/// a part is stored once however many bodies carry it, every message reads back byte
/// for byte (whole and in ranges across the parts), quota counts whole messages, and a
/// part goes with the last body referencing it, at collection; stored again after
/// that, it comes back.
#[test]
fn large_parts_are_shared_counted_and_collected() {
    let (dir, s) = store();
    let a = s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited).unwrap();
    let b = s.add_account("b@example.com", &cheap_hash(), QuotaLimit::Unlimited).unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let binbox = s.mailbox(b.id, "INBOX").unwrap();
    let shared = attachment_lines(1, 300_000);
    let own = attachment_lines(2, 100_000);
    let new = |body: &[u8]| NewMessage { body: Arc::new(body.to_vec()), ..msg("") };
    let mut bodies = Vec::new();
    for n in 0..5u32 {
        let body = if n == 0 {
            with_attachments(n, &[&shared, &own])
        } else {
            with_attachments(n, &[&shared])
        };
        s.append(inbox.id, new(&body), true).unwrap();
        bodies.push(body);
    }
    // Two parts, no whole-body file.
    assert_eq!(part_files(dir.path()), 2);
    assert_eq!(crate::blob::BlobDir::open(dir.path().join("blobs")).unwrap().scan().unwrap().len(), 0);
    for (i, body) in bodies.iter().enumerate() {
        let uid = i as u32 + 1;
        assert_eq!(&s.open_message(inbox.id, uid).unwrap().read_all().unwrap(), body);
        let p = s.parsed(inbox.id, uid).unwrap();
        let start = p.root.offset_body as u64 + 100;
        let got = s.open_message(inbox.id, uid).unwrap().read_range(start, 200_000).unwrap();
        assert_eq!(got, body[start as usize..start as usize + 200_000]);
        assert_eq!(s.message(inbox.id, uid).unwrap().size, body.len() as u64);
        assert_eq!(p.root.body_len() as usize + p.root.offset_body as usize, body.len());
    }
    assert_eq!(
        s.account("a@example.com").unwrap().quota_used,
        bodies.iter().map(|b| b.len() as u64).sum::<u64>()
    );
    usage_matches(&s, "a@example.com");
    // The same body to another account, and a copy: the part is still stored once.
    s.append(binbox.id, new(&bodies[1]), true).unwrap();
    s.copy(inbox.id, &[2], inbox.id).unwrap();
    assert_eq!(part_files(dir.path()), 2);
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    // Message 1 goes: its own part is freed, the shared one stays.
    s.expunge(inbox.id, &[1]).unwrap();
    s.gc().unwrap();
    assert_eq!(part_files(dir.path()), 1);
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    s.expunge(inbox.id, &[2, 3, 4, 5, 6]).unwrap();
    s.gc().unwrap();
    assert_eq!(part_files(dir.path()), 1, "b's message still references it");
    assert_eq!(&s.open_message(binbox.id, 1).unwrap().read_all().unwrap(), &bodies[1]);
    s.expunge(binbox.id, &[1]).unwrap();
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    s.gc().unwrap();
    assert_eq!(part_files(dir.path()), 0);
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    usage_matches(&s, "a@example.com");
    assert_eq!(s.account("a@example.com").unwrap().quota_used, 0);
    // Stored again after collection: the part comes back.
    s.append(inbox.id, new(&bodies[3]), true).unwrap();
    assert_eq!(part_files(dir.path()), 1);
    assert_eq!(&s.open_message(inbox.id, 7).unwrap().read_all().unwrap(), &bodies[3]);
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
}

/// A delivery refused over quota references no part, and `part_dedup_min = 0` stores
/// bodies whole, on every backend.
#[test]
fn refused_and_unsplit_bodies_reference_no_part() {
    let dir = tempfile::tempdir().unwrap();
    let s = OPEN(dir.path(), StoreOptions { part_dedup_min: 0, ..StoreOptions::default() }).unwrap();
    s.add_domain("example.com").unwrap();
    let a = s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited).unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    let body = with_attachments(1, &[&attachment_lines(4, 100_000)]);
    let new = |body: &[u8]| NewMessage { body: Arc::new(body.to_vec()), ..msg("") };
    s.append(inbox.id, new(&body), true).unwrap();
    assert_eq!(part_files(dir.path()), 0);
    assert_eq!(&s.open_message(inbox.id, 1).unwrap().read_all().unwrap(), &body);
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    let (dir, s) = store();
    let a = s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Bytes(1000)).unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    assert!(matches!(s.append(inbox.id, new(&body), true), Err(Error::OverQuota)));
    s.gc().unwrap();
    assert_eq!(s.check(true).unwrap(), Vec::<String>::new());
    assert_eq!(s.account("a@example.com").unwrap().quota_used, 0);
    let _ = dir;
}

/// Internationalised domains (`idn.rs`): a U-label and its A-label are one domain,
/// stored as the A-label, for domains, accounts, aliases and lookups.
#[test]
fn idn_one_stored_form() {
    let (_d, s) = store();
    s.add_domain("Exämple.com").unwrap();
    assert!(matches!(s.add_domain("xn--exmple-cua.com"), Err(Error::Exists(_))));
    assert!(s.list_domains().unwrap().contains(&"xn--exmple-cua.com".to_string()));
    assert!(matches!(s.add_domain("xn--a.com"), Err(Error::Invalid(_))));
    let a = s
        .add_account("x@xn--exmple-cua.com", &cheap_hash(), QuotaLimit::Default)
        .unwrap();
    assert_eq!(a.address, "x@xn--exmple-cua.com");
    assert!(matches!(
        s.add_account("X@EXÄMPLE.com", &cheap_hash(), QuotaLimit::Default),
        Err(Error::Exists(_))
    ));
    for form in ["x@exämple.com", "X@EXÄMPLE.COM", "x@XN--EXMPLE-CUA.com"] {
        match s.resolve(form).unwrap() {
            Resolved::Accounts(v) => assert_eq!(v[0].id, a.id, "{form}"),
            other => panic!("{form}: {other:?}"),
        }
        assert!(s.authenticate(form, "pw").unwrap().is_some(), "{form}");
    }
    s.add_alias("info@exämple.com", &["x@exämple.com".into()]).unwrap();
    assert_eq!(
        s.list_aliases(None).unwrap(),
        vec![(
            "info@xn--exmple-cua.com".to_string(),
            vec!["x@xn--exmple-cua.com".to_string()]
        )]
    );
    assert!(matches!(s.resolve("info@xn--exmple-cua.com").unwrap(), Resolved::Accounts(_)));
}

/// `alias add` of an alias that exists: the same targets are nothing to do, others
/// are refused and change nothing.
#[test]
fn alias_add_existing() {
    let (_d, s) = store();
    s.add_alias("team@example.com", &["a@example.com".into(), "b@example.com".into()])
        .unwrap();
    s.add_alias("TEAM@example.com", &["b@example.com".into(), "a@example.com".into()])
        .unwrap();
    let e = s
        .add_alias("team@example.com", &["c@example.com".into()])
        .unwrap_err();
    assert!(matches!(e, Error::Refused(_)), "{e:?}");
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(
        s.list_aliases(Some("team@example.com")).unwrap()[0].1,
        vec!["a@example.com".to_string(), "b@example.com".to_string()]
    );
}

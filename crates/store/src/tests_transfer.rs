// Included once per backend by `conformance.rs`, after `tests.rs`: moving an embedded
// store into the backend under test (`transfer.rs`, `letterbox migrate --to`).

/// An embedded source with a bit of everything.
fn transfer_source(dir: &std::path::Path) -> Store {
    let s = Store::open_embedded(dir, files_only()).unwrap();
    s.add_domain("example.com").unwrap();
    let a = s.add_account("a@example.com", &cheap_hash(), QuotaLimit::Bytes(10 << 20)).unwrap();
    s.add_account("b@example.com", &cheap_hash(), QuotaLimit::Unlimited).unwrap();
    s.set_retention("b@example.com", Some(Retention::Delete)).unwrap();
    s.add_alias("sales@example.com", &["a@example.com".into(), "b@example.com".into()]).unwrap();
    s.add_app_password("a@example.com", "phone", Protocols::from_bits(1)).unwrap();
    s.add_api_token("ci").unwrap();
    s.sieve_put(a.id, "main", b"keep;\r\n".to_vec(), None).unwrap();
    s.sieve_put(a.id, "other", b"discard;\r\n".to_vec(), None).unwrap();
    s.sieve_activate(a.id, Some("main")).unwrap();
    s.set_expire("example.com", SpecialUse::Trash, Some(7)).unwrap();
    let key = |selector: &str, state| DkimKey {
        domain: "example.com".into(),
        selector: selector.into(),
        algorithm: DkimAlgorithm::Ed25519,
        private_key: vec![1, 2, 3],
        public_key: vec![4, 5, 6],
        created: 1_600_000_000,
        state,
        changed: 1_600_000_100,
    };
    s.add_dkim_keys(vec![key("old", DkimState::Retired), key("cur", DkimState::Active)]).unwrap();
    s.web().admin_add("a@example.com", Some("example.com")).unwrap();
    s.web().set_disabled("b@example.com", true, "op").unwrap();
    s.set_outbound_hold(a.id, true).unwrap();
    s.delete_mailbox(a.id, "Archive").unwrap();
    let work = s.create_mailbox(a.id, "Work/2024", None).unwrap();
    s.subscribe(a.id, "Work/2024").unwrap();
    s.unsubscribe(a.id, "Junk").unwrap();
    let inbox = s.mailbox(a.id, "INBOX").unwrap();
    for i in 0..5 {
        let mut m = msg(&format!("Subject: m{i}\r\n\r\nbody {i}\r\n"));
        m.keywords = vec![format!("kw{i}")];
        m.internal_date = 1_600_000_000 + i;
        s.append(inbox.id, m, true).unwrap();
    }
    s.store_flags(inbox.id, &[1, 3], FlagOp::Add, Flags::SEEN, &[], None).unwrap();
    s.expunge(inbox.id, &[2]).unwrap();
    s.deliver(Arc::new(b"Subject: big\r\n\r\n".repeat(5000)), 1_650_000_000, vec![(a.id, b"Received: x\r\n".to_vec())], true)
        .unwrap();
    s.append(work.id, msg("Subject: w\r\n\r\nw\r\n"), true).unwrap();
    let rcpt = |a: &str| crate::queue::NewQueuedRcpt { address: a.into(), orcpt: None, notify: 0 };
    let q = s
        .queue_insert(crate::queue::NewQueued {
            sender: "a@example.com".into(),
            account: Some(a.id),
            message: b"Subject: out\r\n\r\nout\r\n".to_vec(),
            rcpts: vec![rcpt("x@remote.example"), rcpt("y@remote.example")],
            envid: Some("env-1".into()),
            ret_full: false,
            smtputf8: false,
            body_8bit: false,
            held: false,
            now: 1_700_000_000,
        })
        .unwrap();
    let rc = s.queue_get(q).unwrap().rcpts;
    let done = (rc[0].id, crate::queue::RcptStatus::Delivered, "250 2.0.0 ok".to_string());
    s.queue_update(
        q,
        crate::queue::QueueUpdate {
            rcpts: vec![done],
            next_attempt: 1_700_000_600,
            count_attempt: true,
            last_error: "451 4.4.1 later".into(),
            warned: false,
        },
    )
    .unwrap();
    s
}

/// A queue entry as compared: sender, created, ENVID, recipients (address, state,
/// reply), next attempt, last error, octets.
type QueueView = (String, i64, Option<String>, Vec<(String, String, String)>, i64, String, Vec<u8>);

/// The queue as a comparable list.
fn queue_of(s: &Store) -> Vec<QueueView> {
    s.queue_list(0, 100)
        .unwrap()
        .into_iter()
        .map(|q| {
            let r = q.rcpts.iter().map(|r| (r.address.clone(), format!("{:?}", r.status), r.last_reply.clone())).collect();
            (q.sender, q.created, q.envid, r, q.next_attempt, q.last_error, s.queue_body(q.id).unwrap())
        })
        .collect()
}

/// With `fresh`, the target was made from this very state of the source: its MODSEQs
/// are all above the source's.
fn same_mail(src: &Store, dst: &Store, address: &str, fresh: bool) {
    let (a, b) = (src.account(address).unwrap(), dst.account(address).unwrap());
    assert_eq!((a.quota_limit, a.pop3_retention, a.quota_used), (b.quota_limit, b.pop3_retention, b.quota_used));
    let names = |s: &Store, id| {
        let mut v: Vec<_> = s.list_mailboxes(id).unwrap().into_iter().map(|m| (m.name.clone(), m)).collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    let (ma, mb) = (names(src, a.id), names(dst, b.id));
    assert_eq!(ma.iter().map(|m| &m.0).collect::<Vec<_>>(), mb.iter().map(|m| &m.0).collect::<Vec<_>>());
    for ((_, x), (_, y)) in ma.iter().zip(&mb) {
        assert_eq!((x.uidvalidity, x.uidnext, x.special_use), (y.uidvalidity, y.uidnext, y.special_use), "{}", x.name);
        assert!(y.highestmodseq >= x.highestmodseq, "{}", x.name);
        let (la, lb) = (src.list_messages(x.id, false).unwrap(), dst.list_messages(y.id, false).unwrap());
        assert_eq!(la.len(), lb.len(), "{}", x.name);
        for (m, n) in la.iter().zip(&lb) {
            assert_eq!((m.uid, m.flags, &m.keywords, m.internal_date, m.size), (n.uid, n.flags, &n.keywords, n.internal_date, n.size));
            assert!(!fresh || n.modseq > x.highestmodseq, "above anything a client cached");
            let oa = src.open_message(x.id, m.uid).unwrap().read_all().unwrap();
            let ob = dst.open_message(y.id, n.uid).unwrap().read_all().unwrap();
            assert_eq!(oa, ob);
        }
        // FETCH BODYSTRUCTURE's renderings kept at delivery: the target has them too.
        let uids: Vec<u32> = la.iter().map(|m| m.uid).collect();
        let kept = dst.bodystructures_many(y.id, &uids).unwrap();
        assert_eq!(kept.len(), uids.len(), "{}", x.name);
        assert_eq!(src.bodystructures_many(x.id, &uids).unwrap(), kept, "{}", x.name);
        // And FETCH ENVELOPE's, copied per row.
        let kept = dst.envelopes_rendered_many(y.id, &uids).unwrap();
        assert_eq!(kept.len(), uids.len(), "{}", x.name);
        assert_eq!(src.envelopes_rendered_many(x.id, &uids).unwrap(), kept, "{}", x.name);
        assert_eq!(src.save_dates(x.id).unwrap(), dst.save_dates(y.id).unwrap());
        assert_eq!(src.expunged_uids(x.id).unwrap(), dst.expunged_uids(y.id).unwrap());
    }
    let subs = |s: &Store, id| {
        let mut v = s.subscriptions(id).unwrap();
        v.sort();
        v
    };
    assert_eq!(subs(src, a.id), subs(dst, b.id));
    assert_eq!(src.password_hash(address).unwrap(), dst.password_hash(address).unwrap());
    let apps = |s: &Store| s.app_password_records(address).unwrap().into_iter().map(|r| (r.name, r.hash, r.protocols)).collect::<Vec<_>>();
    assert_eq!(apps(src), apps(dst));
    assert_eq!(src.sieve_list(a.id).unwrap(), dst.sieve_list(b.id).unwrap());
    usage_matches(dst, address);
}

#[test]
fn transfer_moves_everything_and_resumes() {
    let (sd, dd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = transfer_source(sd.path());
    let dst = OPEN(dd.path(), StoreOptions::default()).unwrap();
    let mut lines = Vec::new();
    let r = crate::transfer::transfer(&*src, &*dst, "src", &mut |l: &str| lines.push(l.to_string())).unwrap();
    assert!(!r.resumed);
    assert_eq!((r.accounts, r.copied, r.skipped), (2, 6, 0));
    for a in ["a@example.com", "b@example.com"] {
        same_mail(&src, &dst, a, true);
    }
    assert_eq!(dst.list_aliases(None).unwrap(), src.list_aliases(None).unwrap());
    assert_eq!(dst.expire_policies().unwrap(), src.expire_policies().unwrap());
    let tok = |s: &Store| s.api_token_records().unwrap().into_iter().map(|t| (t.name, t.hash)).collect::<Vec<_>>();
    assert_eq!(tok(&src), tok(&dst));
    assert_eq!(dst.check(true).unwrap(), Vec::<String>::new());
    assert_eq!(queue_of(&dst), queue_of(&src));
    let keys = |s: &Store| {
        let mut v: Vec<_> = s.dkim_keys("example.com").unwrap().into_iter()
            .map(|k| (k.selector, k.state, k.private_key, k.public_key, k.created, k.changed)).collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    assert_eq!(keys(&dst), keys(&src));
    assert_eq!(dst.web().admin_list().unwrap(), src.web().admin_list().unwrap());
    let b = dst.account("b@example.com").unwrap();
    assert!(dst.web().is_disabled(b.id).unwrap());
    assert!(dst.outbound_held(dst.account("a@example.com").unwrap().id).unwrap());
    assert_eq!(r.queued, 1);

    // Run again after new mail reached the source: only that is copied.
    let a = src.account("a@example.com").unwrap();
    let inbox = src.mailbox(a.id, "INBOX").unwrap();
    src.append(inbox.id, msg("Subject: late\r\n\r\nlate\r\n"), true).unwrap();
    let r = crate::transfer::transfer(&*src, &*dst, "src", &mut |_: &str| {}).unwrap();
    assert!(r.resumed);
    assert_eq!((r.accounts, r.copied, r.skipped), (0, 1, 6));
    same_mail(&src, &dst, "a@example.com", false);
    assert_eq!(dst.check(false).unwrap(), Vec::<String>::new());
    assert_eq!((r.queued, queue_of(&dst)), (0, queue_of(&src)), "no entry twice");

    // A target holding anything else is refused, and left alone.
    let od = tempfile::tempdir().unwrap();
    let other = OPEN(od.path(), StoreOptions::default()).unwrap();
    other.add_domain("other.example").unwrap();
    let e = crate::transfer::transfer(&*src, &*other, "src", &mut |_: &str| {});
    assert!(matches!(e, Err(Error::Refused(_))), "{:?}", e.err());
    assert_eq!(other.list_domains().unwrap(), vec!["other.example".to_string()]);
    // So is another source's target.
    let e = crate::transfer::transfer(&*src, &*dst, "elsewhere", &mut |_: &str| {});
    assert!(matches!(e, Err(Error::Refused(_))), "{:?}", e.err());
    assert!(dst.authenticate("a@example.com", "pw").unwrap().is_some(), "the old password");
}

/// Moving an embedded store whose bodies are stored split (`parts.rs`): the target
/// stores them split again (the transfer delivers whole bodies, which the target cuts
/// by its own `[store] part_dedup_min`), one part for all of them.
#[test]
fn transfer_keeps_shared_parts_shared() {
    let (sd, dd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = Store::open_embedded(sd.path(), StoreOptions::default()).unwrap();
    src.add_domain("example.com").unwrap();
    let a = src.add_account("a@example.com", &cheap_hash(), QuotaLimit::Unlimited).unwrap();
    let inbox = src.mailbox(a.id, "INBOX").unwrap();
    let shared = attachment_lines(9, 200_000);
    for n in 0..3 {
        let body = with_attachments(n, &[&shared]);
        src.append(inbox.id, NewMessage { body: Arc::new(body), ..msg("") }, true).unwrap();
    }
    assert_eq!(part_files(sd.path()), 1);
    let dst = OPEN(dd.path(), StoreOptions::default()).unwrap();
    crate::transfer::transfer(&*src, &*dst, "src", &mut |_: &str| {}).unwrap();
    same_mail(&src, &dst, "a@example.com", true);
    assert_eq!(part_files(dd.path()), 1);
    assert_eq!(crate::blob::BlobDir::open(dd.path().join("blobs")).unwrap().scan().unwrap().len(), 0);
    assert_eq!(dst.check(true).unwrap(), Vec::<String>::new());
}

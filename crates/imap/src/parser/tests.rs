use super::*;

fn ok(s: &str) -> CommandBody {
    match parse_command(s.as_bytes()) {
        Ok(c) => c.body,
        Err(e) => panic!("{s:?}: {e:?}"),
    }
}

fn err(s: &[u8]) -> ParseError {
    match parse_command(s) {
        Ok(c) => panic!("{:?} parsed as {c:?}", String::from_utf8_lossy(s)),
        Err(e) => e,
    }
}

#[test]
fn simple_commands() {
    assert_eq!(ok("a1 CAPABILITY"), CommandBody::Capability);
    assert_eq!(ok("a1 noop"), CommandBody::Noop);
    assert_eq!(
        ok("a LOGIN alice \"p\\\"w\""),
        CommandBody::Login {
            user: b"alice".to_vec(),
            password: b"p\"w".to_vec()
        }
    );
    assert_eq!(
        ok("a LOGIN {5}\r\nalice {2+}\r\npw"),
        CommandBody::Login {
            user: b"alice".to_vec(),
            password: b"pw".to_vec()
        }
    );
    assert_eq!(
        ok("a AUTHENTICATE plain AGFAYgBj"),
        CommandBody::Authenticate {
            mechanism: "PLAIN".into(),
            initial: Some("AGFAYgBj".into())
        }
    );
    assert_eq!(
        ok("a ENABLE IMAP4rev2 UTF8=ACCEPT"),
        CommandBody::Enable(vec!["IMAP4rev2".into(), "UTF8=ACCEPT".into()])
    );
    assert_eq!(
        ok("a ID (\"name\" \"x\" \"version\" NIL)"),
        CommandBody::Id(Some(vec![
            ("name".into(), Some("x".into())),
            ("version".into(), None)
        ]))
    );
    assert_eq!(ok("a ID NIL"), CommandBody::Id(None));
    assert_eq!(
        ok("a RENAME \"a b\" c/d"),
        CommandBody::Rename {
            from: MailboxArg(b"a b".to_vec()),
            to: MailboxArg(b"c/d".to_vec())
        }
    );
}

#[test]
fn list_forms() {
    match ok("a LIST \"\" *") {
        CommandBody::List {
            patterns, options, ..
        } => {
            assert_eq!(patterns, vec![MailboxArg(b"*".to_vec())]);
            assert!(!options.extended);
        }
        b => panic!("{b:?}"),
    }
    match ok(
        "a LIST (SUBSCRIBED) \"\" (\"%\" \"INBOX/*\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))",
    ) {
        CommandBody::List {
            patterns, options, ..
        } => {
            assert_eq!(patterns.len(), 2);
            assert!(options.subscribed && options.return_children);
            assert_eq!(
                options.return_status,
                Some(vec![StatusItem::Messages, StatusItem::Unseen])
            );
        }
        b => panic!("{b:?}"),
    }
    assert!(matches!(ok("a LSUB \"\" %"), CommandBody::Lsub { .. }));
}

#[test]
fn append_forms() {
    match ok("a APPEND INBOX (\\Seen $Junk) \" 7-Feb-1994 21:52:25 -0800\" {5}\r\nhello") {
        CommandBody::Append {
            flags,
            date,
            message,
            ..
        } => {
            assert_eq!(
                flags,
                vec![
                    Flag::System(letterbox_store::Flags::SEEN),
                    Flag::Keyword("$Junk".into())
                ]
            );
            assert_eq!(date, Some(760_686_745));
            assert_eq!(message, b"hello");
        }
        b => panic!("{b:?}"),
    }
    match ok("a APPEND INBOX ~{3}\r\na\0b") {
        CommandBody::Append {
            message, binary, ..
        } => assert_eq!((message, binary), (b"a\0b".to_vec(), true)),
        b => panic!("{b:?}"),
    }
    assert!(matches!(
        ok("a APPEND x UTF8 (~{1+}\r\nz)"),
        CommandBody::Append { binary: false, .. }
    ));
    assert!(matches!(
        ok("a APPEND x {1+}\r\nz"),
        CommandBody::Append { binary: false, .. }
    ));
    err(b"a APPEND INBOX {5}\r\nhell");
    err(b"a APPEND INBOX \"bad date\" {1}\r\nx");
}

#[test]
fn sequence_sets() {
    use SeqNum::*;
    err(b"a FETCH 1:*,3,$ FLAGS");
    match ok("a UID FETCH 4:2,*,7 (UID)") {
        CommandBody::Fetch { uid, set, .. } => {
            assert!(uid);
            assert_eq!(
                set,
                SequenceSet::Ranges(vec![
                    (Value(4), Value(2)),
                    (Star, Star),
                    (Value(7), Value(7))
                ])
            );
        }
        b => panic!("{b:?}"),
    }
    match ok("a FETCH $ FAST") {
        CommandBody::Fetch { set, items, .. } => {
            assert_eq!(set, SequenceSet::Saved);
            assert_eq!(items.len(), 3);
        }
        b => panic!("{b:?}"),
    }
    err(b"a FETCH 0 FLAGS");
    err(b"a FETCH 1: FLAGS");
    err(b"a FETCH 99999999999 FLAGS");
}

#[test]
fn fetch_attributes() {
    match ok("a FETCH 1 (BODY.PEEK[1.2.HEADER.FIELDS (From \"To\")]<0.100> BODY[] BINARY[1]<5.5> BINARY.SIZE[2] RFC822.SIZE BODYSTRUCTURE BODY BODY[1.MIME] BODY[TEXT])") {
        CommandBody::Fetch { items, .. } => {
            assert_eq!(
                items[0],
                FetchAtt::BodySection {
                    peek: true,
                    section: Section {
                        part: vec![1, 2],
                        text: Some(SectionText::HeaderFields {
                            not: false,
                            fields: vec!["From".into(), "To".into()]
                        })
                    },
                    partial: Some((0, 100))
                }
            );
            assert_eq!(
                items[1],
                FetchAtt::BodySection {
                    peek: false,
                    section: Section::default(),
                    partial: None
                }
            );
            assert_eq!(
                items[2],
                FetchAtt::Binary {
                    peek: false,
                    part: vec![1],
                    partial: Some((5, 5))
                }
            );
            assert_eq!(items[3], FetchAtt::BinarySize { part: vec![2] });
            assert_eq!(items[4], FetchAtt::Rfc822Size);
            assert_eq!(items[5], FetchAtt::BodyStructure);
            assert_eq!(items[6], FetchAtt::Body);
            assert_eq!(
                items[7],
                FetchAtt::BodySection {
                    peek: false,
                    section: Section {
                        part: vec![1],
                        text: Some(SectionText::Mime)
                    },
                    partial: None
                }
            );
        }
        b => panic!("{b:?}"),
    }
    err(b"a FETCH 1 (BODY[MIME])");
    err(b"a FETCH 1 (BODY[1.FOO])");
    err(b"a FETCH 1 (BODYX)");
    err(b"a FETCH 1 (BODY[]<1.0>)");
    err(b"a FETCH 1 ()");
}

#[test]
fn search_keys() {
    use SearchKey as K;
    match ok("a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM alice NOT (SEEN SINCE 1-Feb-2020) 1:3 UID 5:*") {
        CommandBody::Search {
            uid,
            charset,
            returns,
            key,
        } => {
            assert!(uid);
            assert_eq!(charset.as_deref(), Some("UTF-8"));
            assert_eq!(returns, Some(vec![SearchReturn::Min, SearchReturn::Count]));
            let K::And(keys) = key else { panic!() };
            assert_eq!(keys.len(), 3);
            assert!(matches!(&keys[0], K::Or(a, b) if **a == K::From("alice".into()) && matches!(&**b, K::Not(_))));
        }
        b => panic!("{b:?}"),
    }
    assert!(matches!(
        ok("a SEARCH HEADER \"Message-ID\" \"<x@y>\""),
        CommandBody::Search {
            key: K::Header(..),
            ..
        }
    ));
    assert!(matches!(
        ok("a SEARCH $"),
        CommandBody::Search {
            key: K::Seq(SequenceSet::Saved),
            ..
        }
    ));
    assert!(matches!(
        ok("a SEARCH SENTON \"1-Jan-2000\""),
        CommandBody::Search { .. }
    ));
    err(b"a SEARCH");
    err(b"a SEARCH FROM");
    err(b"a SEARCH BEFORE 31-Feb-2000");
    err(b"a SEARCH BOGUS");
    let deep = format!("a SEARCH {}ALL{}", "(".repeat(200), ")".repeat(200));
    err(deep.as_bytes());
    let nots = format!("a SEARCH {}ALL", "NOT ".repeat(200));
    err(nots.as_bytes());
}

#[test]
fn store_and_copy() {
    assert_eq!(
        ok("a STORE 1:2 +FLAGS.SILENT (\\Deleted foo)"),
        CommandBody::Store {
            uid: false,
            set: SequenceSet::Ranges(vec![(SeqNum::Value(1), SeqNum::Value(2))]),
            op: StoreOp::Add,
            silent: true,
            flags: vec![
                Flag::System(letterbox_store::Flags::DELETED),
                Flag::Keyword("foo".into())
            ],
            unchanged_since: None,
        }
    );
    assert!(matches!(
        ok("a UID STORE 1 FLAGS \\Seen"),
        CommandBody::Store { uid: true, .. }
    ));
    assert!(matches!(
        ok("a UID MOVE 1:* Trash"),
        CommandBody::Move { uid: true, .. }
    ));
    assert!(matches!(
        ok("a UID EXPUNGE 1,2"),
        CommandBody::Expunge { uids: Some(_) }
    ));
}

#[test]
fn errors_keep_the_tag() {
    assert_eq!(err(b"a1 FROB").tag.as_deref(), Some("a1"));
    assert_eq!(err(b"a1 NOOP extra").tag.as_deref(), Some("a1"));
    assert_eq!(err(b"").tag, None);
    assert_eq!(err(b"+ x").tag, None);
    assert_eq!(err(b"a1").tag.as_deref(), Some("a1"));
    assert_eq!(err(b"* NOOP").tag, None);
}

/// A tiny deterministic generator (xorshift), so the property test needs no crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Property: the parser never panics, whatever it is fed — random octets, and valid
/// commands mutated (octets flipped, cut, spliced, literal sizes changed).
#[test]
fn never_panics_on_random_or_mutated_input() {
    let seeds: &[&[u8]] = &[
        b"a FETCH 1:* (BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.10> BINARY[1] FLAGS)",
        b"a UID SEARCH RETURN (MIN ALL) CHARSET UTF-8 OR NOT FROM x (SEEN SINCE 1-Feb-2020) 1:3,$",
        b"a APPEND INBOX (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {5}\r\nhello",
        b"a LIST (SUBSCRIBED) \"\" (\"%\" \"*\") RETURN (STATUS (MESSAGES))",
        b"a LOGIN {5}\r\nalice {2+}\r\npw",
        b"a STORE 1 +FLAGS.SILENT (\\Deleted kw)",
        b"a ID (\"k\" \"v\")",
        b"a UID MOVE 1:5 \"Trash\"",
        b"a STATUS INBOX (MESSAGES UIDNEXT SIZE)",
        b"a AUTHENTICATE PLAIN =",
        b"a UID SORT (REVERSE DATE SUBJECT DISPLAYFROM) UTF-8 OLDER 5 YOUNGER 9 EMAILID M1-_",
        b"a THREAD REFERENCES US-ASCII (THREADID T1) FETCH 1 (PREVIEW (LAZY) EMAILID)",
        b"a SELECT INBOX (CONDSTORE QRESYNC (67890007 90060115194045000 41:211,214:541 (1:5 41:45)))",
        b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
        b"a STORE 1 (UNCHANGEDSINCE 0) +FLAGS.SILENT (\\Seen)",
        b"a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338",
        b"a APPEND x (\\Seen) {1}\r\na \" 7-Feb-1994 21:52:25 -0800\" {2+}\r\nbc",
        b"a SETQUOTA \"\" (STORAGE 512)",
        b"a CREATE x (USE (\\Sent \\Trash))",
        b"a GETQUOTAROOT INBOX",
    ];
    let alphabet = b"aZ09 ()[]{}<>.:*$%\\\"~+-\r\n\0\xff";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let mut input: Vec<u8> = if round % 4 == 0 {
            (0..rng.below(80))
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect()
        } else {
            seeds[rng.below(seeds.len())].to_vec()
        };
        for _ in 0..=rng.below(4) {
            if input.is_empty() {
                break;
            }
            let i = rng.below(input.len());
            match rng.below(5) {
                0 => input[i] = alphabet[rng.below(alphabet.len())],
                1 => input.truncate(i),
                2 => input.insert(i, alphabet[rng.below(alphabet.len())]),
                3 => {
                    let j = rng.below(input.len());
                    let chunk = input[i.min(j)..i.max(j)].to_vec();
                    input.splice(i..i, chunk);
                }
                _ => input[i] = (rng.next() & 0xff) as u8,
            }
        }
        let _ = parse_command(&input);
    }
}

#[test]
fn sort_and_thread() {
    use SortKey::*;
    let crit = |reverse, key| SortCriterion { reverse, key };
    assert_eq!(
        ok("a SORT (REVERSE ARRIVAL cc date FROM SIZE SUBJECT TO DISPLAYFROM reverse DISPLAYTO) UTF-8 ALL"),
        CommandBody::Sort {
            uid: false,
            returns: None,
            criteria: vec![
                crit(true, Arrival),
                crit(false, Cc),
                crit(false, Date),
                crit(false, From),
                crit(false, Size),
                crit(false, Subject),
                crit(false, To),
                crit(false, DisplayFrom),
                crit(true, DisplayTo),
            ],
            charset: "UTF-8".into(),
            key: SearchKey::All,
        }
    );
    assert_eq!(
        ok("a UID SORT (SUBJECT) \"iso-8859-1\" SEEN 1:3"),
        CommandBody::Sort {
            uid: true,
            returns: None,
            criteria: vec![crit(false, Subject)],
            charset: "iso-8859-1".into(),
            key: SearchKey::And(vec![
                SearchKey::Seen,
                SearchKey::Seq(SequenceSet::Ranges(vec![(
                    SeqNum::Value(1),
                    SeqNum::Value(3)
                )]))
            ]),
        }
    );
    assert_eq!(
        ok("a UID THREAD references UTF-8 NOT DELETED"),
        CommandBody::Thread {
            uid: true,
            algorithm: ThreadAlgorithm::References,
            charset: "UTF-8".into(),
            key: SearchKey::Not(Box::new(SearchKey::Deleted)),
        }
    );
    assert_eq!(
        ok("a UID SORT RETURN (MIN max ALL COUNT SAVE) (DATE) UTF-8 ALL"),
        CommandBody::Sort {
            uid: true,
            returns: Some(vec![
                SearchReturn::Min,
                SearchReturn::Max,
                SearchReturn::All,
                SearchReturn::Count,
                SearchReturn::Save
            ]),
            criteria: vec![crit(false, Date)],
            charset: "UTF-8".into(),
            key: SearchKey::All,
        }
    );
    assert!(matches!(
        ok("a SORT RETURN () (DATE) UTF-8 ALL"),
        CommandBody::Sort { returns: Some(r), .. } if r.is_empty()
    ));
    assert!(matches!(
        ok("a THREAD ORDEREDSUBJECT US-ASCII ALL"),
        CommandBody::Thread {
            algorithm: ThreadAlgorithm::OrderedSubject,
            ..
        }
    ));
    // Empty or unknown criteria, a missing charset or search key, unknown algorithms.
    for bad in [
        &b"a SORT () UTF-8 ALL"[..],
        b"a SORT (SENDER) UTF-8 ALL",
        b"a SORT (REVERSE) UTF-8 ALL",
        b"a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
        b"a SORT (DATE) UTF-8",
        b"a SORT (DATE) ALL",
        b"a SORT DATE UTF-8 ALL",
        b"a THREAD REFS UTF-8 ALL",
        b"a THREAD REFERENCES UTF-8",
        b"a UID THREAD",
        b"a SORT RETURN (BOGUS) (DATE) UTF-8 ALL",
        b"a SORT RETURN (DATE) UTF-8 ALL",
        b"a SORT RETURN () UTF-8 ALL",
    ] {
        assert_eq!(err(bad).tag.as_deref(), Some("a"), "{bad:?}");
    }
}

#[test]
fn within_objectid_preview() {
    let key = |s: &str| match ok(s) {
        CommandBody::Search { key, .. } => key,
        other => panic!("{other:?}"),
    };
    assert_eq!(key("a SEARCH OLDER 3600"), SearchKey::Older(3600));
    assert_eq!(key("a SEARCH YOUNGER 1"), SearchKey::Younger(1));
    assert_eq!(
        key("a SEARCH EMAILID M6d-_x"),
        SearchKey::EmailId("M6d-_x".into())
    );
    assert_eq!(
        key("a SEARCH THREADID T1"),
        SearchKey::ThreadId("T1".into())
    );
    for bad in [
        &b"a SEARCH OLDER 0"[..],
        b"a SEARCH YOUNGER -1",
        b"a SEARCH EMAILID",
        b"a SEARCH EMAILID a.b",
        b"a SEARCH THREADID \"x\"",
    ] {
        assert_eq!(err(bad).tag.as_deref(), Some("a"), "{bad:?}");
    }
    let long = format!("a SEARCH EMAILID {}", "x".repeat(256));
    assert!(parse_command(long.as_bytes()).is_err());
    assert_eq!(
        ok("a FETCH 1 (EMAILID THREADID PREVIEW PREVIEW (LAZY) UID)"),
        CommandBody::Fetch {
            uid: false,
            set: SequenceSet::Ranges(vec![(SeqNum::Value(1), SeqNum::Value(1))]),
            items: vec![
                FetchAtt::EmailId,
                FetchAtt::ThreadId,
                FetchAtt::Preview { lazy: false },
                FetchAtt::Preview { lazy: true },
                FetchAtt::Uid
            ],
            modifiers: FetchModifiers::default(),
        }
    );
    // A list after PREVIEW that is not LAZY's is FETCH's modifiers (RFC 7162).
    assert!(matches!(
        ok("a UID FETCH 1:* PREVIEW (CHANGEDSINCE 5)"),
        CommandBody::Fetch { modifiers, items, .. }
            if modifiers.changed_since == Some(5) && items == vec![FetchAtt::Preview { lazy: false }]
    ));
    assert!(matches!(
        ok("a FETCH 1 PREVIEW (LAZY LAZY) (CHANGEDSINCE 5)"),
        CommandBody::Fetch { modifiers, .. } if modifiers.changed_since == Some(5)
    ));
    assert!(matches!(
        ok("a FETCH 1 PREVIEW (lazy)"),
        CommandBody::Fetch { .. }
    ));
    assert!(parse_command(b"a FETCH 1 (PREVIEW (FUZZY))").is_err());
    assert!(parse_command(b"a FETCH 1 (PREVIEW ())").is_err());
    assert_eq!(
        ok("a STATUS INBOX (MAILBOXID MESSAGES)"),
        CommandBody::Status {
            mailbox: MailboxArg(b"INBOX".to_vec()),
            items: vec![StatusItem::MailboxId, StatusItem::Messages],
        }
    );
}

#[test]
fn condstore_and_qresync_syntax() {
    use SeqNum::*;
    let r = |a: u32, b: u32| (Value(a), Value(b));
    match ok("a SELECT INBOX (CONDSTORE)") {
        CommandBody::Select { params, .. } => {
            assert_eq!(
                params,
                SelectParams {
                    condstore: true,
                    qresync: None
                }
            )
        }
        b => panic!("{b:?}"),
    }
    match ok("a EXAMINE x (QRESYNC (67890007 20050715194045000 41,43:211 (1:3 41:43)))") {
        CommandBody::Select {
            read_only, params, ..
        } => {
            assert!(read_only);
            assert_eq!(
                params.qresync,
                Some(Qresync {
                    uidvalidity: 67890007,
                    modseq: 20050715194045000,
                    known_uids: Some(SequenceSet::Ranges(vec![r(41, 41), r(43, 211)])),
                    seq_match: Some((
                        SequenceSet::Ranges(vec![r(1, 3)]),
                        SequenceSet::Ranges(vec![r(41, 43)])
                    )),
                })
            );
        }
        b => panic!("{b:?}"),
    }
    match ok("a SELECT x (QRESYNC (1 2 (1 5)))") {
        CommandBody::Select { params, .. } => {
            let q = params.qresync.unwrap();
            assert_eq!(q.known_uids, None);
            assert!(q.seq_match.is_some());
        }
        b => panic!("{b:?}"),
    }
    assert_eq!(
        ok("a SELECT x"),
        CommandBody::Select {
            mailbox: MailboxArg(b"x".to_vec()),
            read_only: false,
            params: SelectParams::default()
        }
    );
    for bad in [
        "a SELECT x (CONDSTORE",
        "a SELECT x ()",
        "a SELECT x (FOO)",
        "a SELECT x (CONDSTORE CONDSTORE)",
        "a SELECT x (QRESYNC (0 5))",
        "a SELECT x (QRESYNC (1 0))",
        "a SELECT x (QRESYNC (1))",
        "a SELECT x (QRESYNC (1 5 1:*))",
        "a SELECT x (QRESYNC (1 5 $))",
        "a SELECT x (QRESYNC (1 5 1:9 (1:2)))",
        "a SELECT x (QRESYNC (1 9223372036854775808))",
    ] {
        err(bad.as_bytes());
    }
    match ok("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)") {
        CommandBody::Fetch { uid, modifiers, .. } => {
            assert!(uid);
            assert_eq!(
                modifiers,
                FetchModifiers {
                    changed_since: Some(12345),
                    vanished: true
                }
            );
        }
        b => panic!("{b:?}"),
    }
    match ok("a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775807)") {
        CommandBody::Fetch { modifiers, .. } => {
            assert_eq!(modifiers.changed_since, Some(i64::MAX as u64))
        }
        b => panic!("{b:?}"),
    }
    for bad in [
        "a FETCH 1 FLAGS (CHANGEDSINCE 0)",
        "a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)",
        "a FETCH 1 FLAGS (CHANGEDSINCE)",
        "a FETCH 1 FLAGS ()",
        "a FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)",
        "a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",
        "a UID FETCH 1 FLAGS (VANISHED)",
        "a UID FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED VANISHED)",
        "a UID FETCH 1 FLAGS (FOO 1)",
        "a FETCH 1 FLAGS(CHANGEDSINCE 1)",
    ] {
        err(bad.as_bytes());
    }
    match ok("a UID STORE 1:3 (UNCHANGEDSINCE 0) -FLAGS (\\Seen)") {
        CommandBody::Store {
            unchanged_since, ..
        } => assert_eq!(unchanged_since, Some(0)),
        b => panic!("{b:?}"),
    }
    for bad in [
        "a STORE 1 (UNCHANGEDSINCE) FLAGS x",
        "a STORE 1 (UNCHANGEDSINCE 1 FLAGS x",
        "a STORE 1 (FOO 1) FLAGS x",
        "a STORE 1 (UNCHANGEDSINCE -1) FLAGS x",
    ] {
        err(bad.as_bytes());
    }
    match ok("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338") {
        CommandBody::Search { key, .. } => assert_eq!(key, SearchKey::ModSeq(620162338)),
        b => panic!("{b:?}"),
    }
    assert!(matches!(
        ok("a SEARCH MODSEQ 0"),
        CommandBody::Search {
            key: SearchKey::ModSeq(0),
            ..
        }
    ));
    for bad in [
        "a SEARCH MODSEQ \"/flags/\" all 5",
        "a SEARCH MODSEQ \"/x/y\" all 5",
        "a SEARCH MODSEQ \"/flags/\\\\Seen\" both 5",
        "a SEARCH MODSEQ \"/flags/\\\\Seen\" 5",
    ] {
        err(bad.as_bytes());
    }
    assert_eq!(
        ok("a ENABLE CONDSTORE QRESYNC"),
        CommandBody::Enable(vec!["CONDSTORE".into(), "QRESYNC".into()])
    );
}

#[test]
fn multiappend_and_extension_commands() {
    match ok("a APPEND x (\\Seen) {1}\r\na \" 7-Feb-1994 21:52:25 -0800\" {2+}\r\nbc ~{1}\r\nd") {
        CommandBody::MultiAppend { mailbox, messages } => {
            assert_eq!(mailbox, MailboxArg(b"x".to_vec()));
            assert_eq!(messages.len(), 3);
            assert_eq!(messages[0].flags.len(), 1);
            assert_eq!(messages[0].message, b"a");
            assert_eq!(messages[1].date, Some(760_686_745));
            assert_eq!(messages[1].message, b"bc");
            assert_eq!(messages[2].message, b"d");
        }
        b => panic!("{b:?}"),
    }
    // One message stays a plain APPEND.
    assert!(matches!(
        ok("a APPEND x {1}\r\na"),
        CommandBody::Append { .. }
    ));
    err(b"a APPEND x");
    err(b"a APPEND x {1}\r\na ");
    err(b"a APPEND x {1}\r\na  {1}\r\nb");
    err(b"a APPEND x {1}\r\na (\\Seen)");
    assert_eq!(ok("a GETQUOTA \"\""), CommandBody::GetQuota(vec![]));
    assert_eq!(
        ok("a getquotaroot INBOX"),
        CommandBody::GetQuotaRoot(MailboxArg(b"INBOX".to_vec()))
    );
    assert_eq!(
        ok("a SETQUOTA \"\" (storage 512 MESSAGE 10)"),
        CommandBody::SetQuota {
            root: vec![],
            limits: vec![("STORAGE".into(), 512), ("MESSAGE".into(), 10)]
        }
    );
    assert_eq!(
        ok("a SETQUOTA \"\" ()"),
        CommandBody::SetQuota {
            root: vec![],
            limits: vec![]
        }
    );
    for bad in [
        &b"a GETQUOTA"[..],
        b"a GETQUOTAROOT",
        b"a SETQUOTA \"\"",
        b"a SETQUOTA \"\" (STORAGE)",
        b"a SETQUOTA \"\" (STORAGE x)",
        b"a SETQUOTA \"\" STORAGE 5",
        b"a UNAUTHENTICATE now",
        b"a CREATE x ()",
        b"a CREATE x (USE)",
        b"a CREATE x (USE \\Sent)",
        b"a CREATE x (USE (Sent))",
        b"a CREATE x (FOO (\\Sent))",
        b"a CREATE x (USE (\\Sent) USE (\\Trash))",
        b"a STATUS x (DELETED-STORAGE BOGUS)",
    ] {
        err(bad);
    }
    assert_eq!(ok("a UNAUTHENTICATE"), CommandBody::Unauthenticate);
    assert_eq!(
        ok("a CREATE x (USE (\\Sent \\junk))"),
        CommandBody::CreateSpecialUse {
            mailbox: MailboxArg(b"x".to_vec()),
            uses: vec!["\\Sent".into(), "\\junk".into()]
        }
    );
    assert_eq!(
        ok("a CREATE x (USE ())"),
        CommandBody::CreateSpecialUse {
            mailbox: MailboxArg(b"x".to_vec()),
            uses: vec![]
        }
    );
    assert_eq!(
        ok("a STATUS x (DELETED-STORAGE APPENDLIMIT SIZE)"),
        CommandBody::Status {
            mailbox: MailboxArg(b"x".to_vec()),
            items: vec![
                StatusItem::DeletedStorage,
                StatusItem::AppendLimit,
                StatusItem::Size
            ]
        }
    );
}

#[test]
fn compress() {
    // RFC 4978 section 5: `compress = "COMPRESS" SP algorithm`.
    assert_eq!(
        ok("a COMPRESS DEFLATE"),
        CommandBody::Compress("DEFLATE".into())
    );
    assert_eq!(
        ok("a compress deflate"),
        CommandBody::Compress("DEFLATE".into())
    );
    // Any atom parses; the command answers an unknown algorithm BAD.
    assert_eq!(ok("a COMPRESS LZW"), CommandBody::Compress("LZW".into()));
    assert_eq!(ok("a COMPRESS DEFLATE").name(), "COMPRESS");
    for bad in [
        &b"a COMPRESS"[..],
        b"a COMPRESS ",
        b"a COMPRESS  DEFLATE",
        b"a COMPRESS DEFLATE DEFLATE",
        b"a COMPRESS \"DEFLATE\"",
        b"a COMPRESS (DEFLATE)",
    ] {
        err(bad);
    }
}

//! Session-level tests over an in-memory stream: what loopback end-to-end tests cannot
//! reach (a non-loopback peer without TLS gets LOGINDISABLED and PRIVACYREQUIRED).

use letterbox_proto::{Context, Peer};
use letterbox_store::{QuotaLimit, Store, StoreOptions};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn setup() -> (tempfile::TempDir, Context) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    store.add_domain("example.com").unwrap();
    let hash = format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap());
    store
        .add_account("alice@example.com", &hash, QuotaLimit::Default)
        .unwrap();
    let ctx = Context::new(store, Arc::new(letterbox_config::Config::default()));
    (dir, ctx)
}

async fn session(ctx: Context, remote: &str, tls: bool) -> BufReader<tokio::io::DuplexStream> {
    let (client, server) = tokio::io::duplex(1 << 16);
    let peer = Peer {
        addr: remote.parse().unwrap(),
        local: "127.0.0.1:143".parse().unwrap(),
        tls,
    };
    tokio::spawn(letterbox_imap::session::Session::new(ctx, peer, Box::new(server)).run());
    BufReader::new(client)
}

async fn line(c: &mut BufReader<tokio::io::DuplexStream>) -> String {
    let mut s = String::new();
    c.read_line(&mut s).await.unwrap();
    s.trim_end().to_string()
}

#[tokio::test]
async fn plaintext_refused_off_loopback_without_tls() {
    let (_d, ctx) = setup();
    let mut c = session(ctx.clone(), "192.0.2.7:40000", false).await;
    let greeting = line(&mut c).await;
    assert!(
        greeting.contains("LOGINDISABLED") && !greeting.contains("AUTH=PLAIN"),
        "{greeting}"
    );
    c.get_mut()
        .write_all(b"a LOGIN alice@example.com pw\r\n")
        .await
        .unwrap();
    assert_eq!(
        line(&mut c).await,
        "a NO [PRIVACYREQUIRED] Plaintext authentication requires TLS"
    );
    c.get_mut()
        .write_all(b"b AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHB3\r\n")
        .await
        .unwrap();
    assert_eq!(
        line(&mut c).await,
        "b NO [PRIVACYREQUIRED] Plaintext authentication requires TLS"
    );

    // The same peer over TLS may log in.
    let mut c = session(ctx, "192.0.2.7:40001", true).await;
    let greeting = line(&mut c).await;
    assert!(
        greeting.contains("AUTH=PLAIN") && !greeting.contains("LOGINDISABLED"),
        "{greeting}"
    );
    c.get_mut()
        .write_all(b"a LOGIN alice@example.com pw\r\n")
        .await
        .unwrap();
    assert!(line(&mut c).await.starts_with("a OK [CAPABILITY IMAP4rev2"));
    c.get_mut()
        .write_all(b"b SELECT INBOX\r\nc LOGOUT\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    loop {
        let l = line(&mut c).await;
        if l.is_empty() || l.starts_with("c ") {
            all.push(l);
            break;
        }
        all.push(l);
    }
    assert!(
        all.contains(&"b OK [READ-WRITE] SELECT completed".to_string()),
        "{all:?}"
    );
    assert!(all.contains(&"* BYE Logging out".to_string()), "{all:?}");
}

#[tokio::test]
async fn garbage_never_panics_and_ends_cleanly() {
    let (_d, ctx) = setup();
    let mut c = session(ctx, "127.0.0.1:40002", false).await;
    line(&mut c).await;
    let junk: &[&[u8]] = &[
        b"\x00\x01\x02\r\n",
        b"a FETCH\r\n",
        b"a UID\r\n",
        b"{5}\r\n",
        b"a SEARCH ((((((\r\n",
        b"a LOGIN {3}\r\n",
        b"\xff\xfe\r\n",
        b"* OK\r\n",
        b"a APPEND x {1+}\r\n",
        b"\r\n",
    ];
    for j in junk {
        c.get_mut().write_all(j).await.unwrap();
    }
    for _ in 0..10 {
        c.get_mut().write_all(b"x BOGUS\r\n").await.unwrap();
    }
    let mut got = Vec::new();
    loop {
        let l = line(&mut c).await;
        if l.is_empty() {
            break;
        }
        got.push(l);
    }
    assert_eq!(
        got.last().map(String::as_str),
        Some("* BYE Too many invalid commands"),
        "{got:?}"
    );
}

#[tokio::test]
async fn session_future_is_small() {
    let (_d, ctx) = setup();
    let (_client, server) = tokio::io::duplex(64);
    let peer = Peer {
        addr: "127.0.0.1:1".parse().unwrap(),
        local: "127.0.0.1:143".parse().unwrap(),
        tls: false,
    };
    let fut = letterbox_imap::session::Session::new(ctx, peer, Box::new(server)).run();
    let size = std::mem::size_of_val(&fut);
    eprintln!("session future: {size} octets");
    assert!(size < 16 * 1024, "{size}");
}

/// A tiny deterministic generator (xorshift), so the test needs no crate.
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
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

/// Property: whatever a logged-in client sends — valid commands with random arguments,
/// or mangled ones — the session never panics and the store stays consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_command_streams_never_panic() {
    let (_d, ctx) = setup();
    let mut config = letterbox_config::Config::default();
    config.limits.max_bad_commands = 1000;
    let ctx = Context::new(ctx.store.clone(), Arc::new(config));
    let sets = [
        "1",
        "1:*",
        "*",
        "2,4:6",
        "$",
        "0",
        "4294967295",
        "3:1",
        "1:2,*",
    ];
    let boxes = [
        "INBOX",
        "Archive",
        "\"a b\"",
        "Trash",
        "Nope",
        "x/y/z",
        "&AOk-t&AOk-",
        "\"\"",
    ];
    let templates = [
        "FETCH {s} (FLAGS UID)",
        "FETCH {s} (BODY.PEEK[1.2.MIME] BODY[HEADER.FIELDS (From)]<0.5> BINARY.PEEK[1] BINARY.SIZE[2])",
        "FETCH {s} (ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE)",
        "FETCH {s} RFC822",
        "UID FETCH {s} (BODY[])",
        "STORE {s} +FLAGS (\\Seen kw{n})",
        "STORE {s} -FLAGS.SILENT (\\Deleted)",
        "UID STORE {s} FLAGS (\\Deleted)",
        "SEARCH OR {s} NOT SEEN",
        "UID SEARCH RETURN (MIN MAX COUNT SAVE) TEXT a",
        "SEARCH SENTSINCE 1-Jan-2000 LARGER {n}",
        "COPY {s} {b}",
        "MOVE {s} {b}",
        "UID MOVE {s} {b}",
        "EXPUNGE",
        "UID EXPUNGE {s}",
        "CREATE {b}",
        "DELETE {b}",
        "RENAME {b} {b}",
        "SUBSCRIBE {b}",
        "LIST \"\" *",
        "LIST (SUBSCRIBED) \"\" % RETURN (STATUS (MESSAGES SIZE))",
        "LSUB \"\" *",
        "STATUS {b} (MESSAGES UIDNEXT UNSEEN SIZE DELETED HIGHESTMODSEQ)",
        "SELECT {b}",
        "SELECT INBOX",
        "SELECT INBOX",
        "EXAMINE {b}",
        "CLOSE",
        "UNSELECT",
        "NOOP",
        "ENABLE IMAP4rev2",
        "APPEND {b} (\\Seen) {{{len}+}}\r\n{msg}",
        "APPEND {b} ~{{{len}+}}\r\n{msg}",
    ];
    let mut handles = Vec::new();
    for seed in 1..=8u64 {
        let ctx = ctx.clone();
        handles.push(tokio::spawn(async move {
            let (client, server) = tokio::io::duplex(1 << 16);
            let peer = Peer {
                addr: "127.0.0.1:40100".parse().unwrap(),
                local: "127.0.0.1:143".parse().unwrap(),
                tls: false,
            };
            let session = tokio::spawn(
                letterbox_imap::session::Session::new(ctx, peer, Box::new(server)).run(),
            );
            let (mut rd, mut wr) = tokio::io::split(client);
            let drain = tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut sink).await;
                sink
            });
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x1234_5678_9abc));
            let mut script = b"l LOGIN alice@example.com pw\r\ns SELECT INBOX\r\n".to_vec();
            for i in 0..250 {
                let msg = format!(
                    "From: a{i}@x\r\nSubject: s{i}\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx{i}\r\n--b--\r\n"
                );
                let t = rng.pick(&templates);
                let mut cmd = t
                    .replacen("{s}", rng.pick(&sets), 1)
                    .replacen("{s}", rng.pick(&sets), 1)
                    .replacen("{b}", rng.pick(&boxes), 1)
                    .replacen("{b}", rng.pick(&boxes), 1)
                    .replace("{n}", &rng.below(5000).to_string())
                    .replace("{{{len}+}}", &format!("{{{}+}}", msg.len()))
                    .replace("{msg}", &msg)
                    .into_bytes();
                if rng.below(6) == 0 && !cmd.is_empty() && !cmd.contains(&b'\n') {
                    // Mangle: flip, cut or duplicate a byte (never a CR/LF, to stay framed).
                    let j = rng.below(cmd.len());
                    match rng.below(3) {
                        0 => cmd[j] = b"()[]{}<>*%\"\\ ~+0"[rng.below(16)],
                        1 => cmd.truncate(j.max(1)),
                        _ => {
                            let b = cmd[j];
                            cmd.insert(j, b)
                        }
                    }
                    // No literal announced by accident: the stream must stay framed.
                    cmd.retain(|&b| b != b'{');
                }
                script.extend_from_slice(format!("t{i} ").as_bytes());
                script.extend_from_slice(&cmd);
                script.extend_from_slice(b"\r\n");
            }
            script.extend_from_slice(b"z LOGOUT\r\n");
            wr.write_all(&script).await.unwrap();
            let result = tokio::time::timeout(std::time::Duration::from_secs(120), session).await;
            drop(wr);
            let out = String::from_utf8_lossy(&drain.await.unwrap()).into_owned();
            result.expect("session finished in time").expect("session did not panic");
            let tagged = |st: &str| out.lines().filter(|l| l.starts_with('t') && l.contains(st)).count();
            (tagged(" OK "), tagged(" NO "), tagged(" BAD "), out.lines().last().unwrap_or("").to_string())
        }));
    }
    for h in handles {
        let (ok, no, bad, last) = h.await.unwrap();
        // Another session may delete the selected mailbox: then BYE, as Dovecot does.
        let deleted = last == "* BYE Selected mailbox was deleted";
        assert!(last.starts_with("z OK LOGOUT") || deleted, "{last}");
        assert!(
            deleted || ok > 30,
            "too few commands ran: OK {ok} NO {no} BAD {bad}; {last}"
        );
    }
    // The store is still consistent.
    // A blob written for an APPEND whose mailbox vanished meanwhile is an orphan file
    // until garbage collection (the store's rule); after it, nothing may be wrong.
    let problems = ctx
        .store
        .run(|s| {
            s.gc()?;
            s.check(true)
        })
        .await
        .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

//! Session tests over an in-memory stream: what needs a peer address other than
//! loopback, or a look inside the store between commands. The protocol end to end is
//! tested with real clients under tests/pop3/.

use super::*;
use letterbox_store::{QuotaLimit, Retention, Store, StoreOptions};
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    svc: Arc<Pop3Service>,
}

fn fixture(config: letterbox_proto::Config) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    store.add_domain("example.com").unwrap();
    let hash = letterbox_store::password::hash("pw");
    store
        .add_account("alice@example.com", &hash, QuotaLimit::Default)
        .unwrap();
    let svc = Pop3Service::new(Context::new(store.clone(), Arc::new(config)));
    Fixture {
        _dir: dir,
        store,
        svc,
    }
}

fn deliver(store: &Store, body: &[u8]) -> u32 {
    let a = store.account("alice@example.com").unwrap();
    let r = store
        .deliver(
            Arc::new(body.to_vec()),
            1_700_000_000,
            vec![(a.id, vec![])],
            false,
        )
        .unwrap();
    r[0].as_ref().unwrap().uid
}

struct Client {
    r: BufReader<ReadHalf<DuplexStream>>,
    w: WriteHalf<DuplexStream>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn connect(f: &Fixture, addr: &str) -> Client {
        let (a, b) = tokio::io::duplex(1 << 16);
        let peer = Peer {
            addr: addr.parse::<SocketAddr>().unwrap(),
            local: "127.0.0.1:110".parse().unwrap(),
            tls: false,
        };
        let task = tokio::spawn(f.svc.clone().serve(Box::new(b), peer));
        let (r, w) = tokio::io::split(a);
        let mut c = Client {
            r: BufReader::new(r),
            w,
            task,
        };
        let greeting = c.line().await;
        assert!(
            greeting.starts_with("+OK ") && !greeting.contains('<'),
            "{greeting}"
        );
        c
    }

    async fn line(&mut self) -> String {
        let mut s = String::new();
        self.r.read_line(&mut s).await.unwrap();
        assert!(s.ends_with("\r\n"), "reply {s:?} ends with CRLF");
        s.truncate(s.len() - 2);
        s
    }

    async fn cmd(&mut self, c: &str) -> String {
        self.w
            .write_all(format!("{c}\r\n").as_bytes())
            .await
            .unwrap();
        self.line().await
    }

    async fn multi(&mut self, c: &str) -> Vec<String> {
        let first = self.cmd(c).await;
        assert!(first.starts_with("+OK"), "{c}: {first}");
        let mut lines = Vec::new();
        loop {
            let l = self.line().await;
            if l == "." {
                return lines;
            }
            lines.push(l);
        }
    }

    /// Drops the connection without QUIT; returns when the session has ended.
    async fn vanish(self) {
        drop(self.r);
        drop(self.w);
        self.task.await.unwrap();
    }

    async fn login(&mut self) {
        assert_eq!(self.cmd("USER alice@example.com").await, "+OK Send PASS");
        let r = self.cmd("PASS pw").await;
        assert!(r.starts_with("+OK alice@example.com has "), "{r}");
    }
}

#[tokio::test]
async fn no_password_auth_in_the_clear_from_afar() {
    let f = fixture(Default::default());
    let mut c = Client::connect(&f, "192.0.2.7:40000").await;
    let caps = c.multi("CAPA").await;
    assert!(
        !caps.iter().any(|c| c == "USER" || c.starts_with("SASL")),
        "{caps:?}"
    );
    assert!(caps.contains(&"EXPIRE NEVER USER".to_string()), "{caps:?}");
    assert!(c
        .cmd("USER alice@example.com")
        .await
        .starts_with("-ERR [AUTH] "));
    assert!(c
        .cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHB3")
        .await
        .starts_with("-ERR [AUTH] "));
    assert!(c.cmd("STAT").await.starts_with("-ERR "));
    assert_eq!(c.cmd("QUIT").await, "+OK Letterbox POP3 server signing off");

    // The operator may allow it.
    let mut config = letterbox_proto::Config::default();
    config.auth.allow_plaintext = true;
    let f = fixture(config);
    let mut c = Client::connect(&f, "192.0.2.7:40000").await;
    c.login().await;
}

#[tokio::test]
async fn maildrop_lock_is_released_on_every_exit() {
    let f = fixture(Default::default());
    deliver(&f.store, b"Subject: a\r\n\r\nA\r\n");
    let mut first = Client::connect(&f, "127.0.0.1:1").await;
    first.login().await;
    let mut second = Client::connect(&f, "127.0.0.1:2").await;
    assert_eq!(second.cmd("USER alice@example.com").await, "+OK Send PASS");
    let r = second.cmd("PASS pw").await;
    assert!(r.starts_with("-ERR [IN-USE] "), "{r}");
    // Still in AUTHORIZATION: may try again.
    assert!(second.cmd("STAT").await.starts_with("-ERR "));

    // The first client vanishes without QUIT: the lock goes, nothing is deleted.
    assert!(first.cmd("DELE 1").await.starts_with("+OK"));
    first.vanish().await;
    second.login().await;
    assert_eq!(second.cmd("STAT").await, format!("+OK 1 {}", 17));
    assert!(second.cmd("QUIT").await.starts_with("+OK"));
    second.task.await.unwrap();

    // After QUIT at once.
    let mut third = Client::connect(&f, "127.0.0.1:3").await;
    third.login().await;
}

#[tokio::test]
async fn imap_expunge_during_session_fails_retr_cleanly() {
    let f = fixture(Default::default());
    let u1 = deliver(&f.store, b"Subject: a\r\n\r\nA\r\n");
    deliver(&f.store, b"Subject: b\r\n\r\nB\r\n");
    let mut c = Client::connect(&f, "127.0.0.1:1").await;
    c.login().await;
    let a = f.store.account("alice@example.com").unwrap();
    let mb = f.store.mailbox(a.id, "INBOX").unwrap();
    f.store.expunge(mb.id, &[u1]).unwrap();
    // New mail waits for the next session.
    deliver(&f.store, b"Subject: c\r\n\r\nC\r\n");
    let r = c.cmd("RETR 1").await;
    assert!(r.starts_with("-ERR ") && r.contains("removed"), "{r}");
    assert!(c.cmd("TOP 1 0").await.starts_with("-ERR "));
    assert_eq!(c.multi("RETR 2").await, vec!["Subject: b", "", "B"]);
    assert_eq!(c.cmd("STAT").await, "+OK 2 34");
    assert!(c.cmd("DELE 1").await.starts_with("+OK"));
    assert!(c.cmd("QUIT").await.starts_with("+OK"));
    c.task.await.unwrap();
    let left = f.store.list_messages(mb.id, false).unwrap();
    assert_eq!(left.len(), 2, "message 2 and the new one");
    assert!(
        left[0].flags.contains(letterbox_store::Flags::SEEN),
        "RETR marks \\Seen"
    );
}

#[tokio::test]
async fn large_message_streams_byte_exact() {
    let f = fixture(Default::default());
    // 3 MiB with lines that start with dots, and no final CRLF.
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    let mut i = 0u64;
    while body.len() < 3 << 20 {
        body.extend_from_slice(
            format!(".line {i} {}\r\n", "x".repeat((i % 97) as usize)).as_bytes(),
        );
        i += 1;
    }
    body.extend_from_slice(b"..tail");
    deliver(&f.store, &body);
    let mut c = Client::connect(&f, "127.0.0.1:1").await;
    c.login().await;
    // RETR adds the missing final CRLF, and LIST counts it (RFC 1939: the exact size).
    assert_eq!(c.cmd("LIST 1").await, format!("+OK 1 {}", body.len() + 2));
    assert_eq!(
        c.cmd("RETR 1").await,
        format!("+OK {} octets", body.len() + 2)
    );
    let mut got = Vec::new();
    loop {
        let mut l = Vec::new();
        c.r.read_until(b'\n', &mut l).await.unwrap();
        assert!(l.ends_with(b"\r\n"));
        if l == b".\r\n" {
            break;
        }
        got.extend_from_slice(l.strip_prefix(b".").unwrap_or(&l));
    }
    let mut expect = body.clone();
    expect.extend_from_slice(b"\r\n");
    assert!(got == expect, "byte-exact after unstuffing");
    assert_eq!(c.cmd("NOOP").await, "+OK");
}

#[tokio::test]
async fn retention_days_records_first_retrieval() {
    let f = fixture(Default::default());
    f.store
        .set_retention("alice@example.com", Some(Retention::Days(2)))
        .unwrap();
    deliver(&f.store, b"Subject: a\r\n\r\nA\r\n");
    deliver(&f.store, b"Subject: b\r\n\r\nB\r\n");
    let mut c = Client::connect(&f, "127.0.0.1:1").await;
    c.login().await;
    assert!(c.multi("CAPA").await.contains(&"EXPIRE 2".to_string()));
    c.multi("RETR 1").await;
    c.multi("TOP 2 0").await; // TOP is not a retrieval
    c.vanish().await;
    let now = letterbox_store::now();
    assert_eq!(f.store.sweep_retention(now + 86_400).unwrap(), 0);
    assert_eq!(f.store.sweep_retention(now + 2 * 86_400 + 5).unwrap(), 1);
    let a = f.store.account("alice@example.com").unwrap();
    let mb = f.store.mailbox(a.id, "INBOX").unwrap();
    assert_eq!(f.store.list_messages(mb.id, false).unwrap().len(), 1);
}

#[tokio::test]
async fn garbage_never_panics() {
    let mut config = letterbox_proto::Config::default();
    config.limits.max_bad_commands = u32::MAX;
    config.limits.max_auth_failures = u32::MAX;
    config.auth.failure_delay_ms = 0;
    config.auth.max_failures = 0;
    let f = fixture(config);
    deliver(&f.store, b"Subject: a\r\n\r\n.A\r\nno end");
    deliver(&f.store, b"");
    let words: &[&[u8]] = &[
        b"USER",
        b"PASS",
        b"AUTH",
        b"PLAIN",
        b"LOGIN",
        b"STAT",
        b"LIST",
        b"RETR",
        b"TOP",
        b"DELE",
        b"RSET",
        b"NOOP",
        b"UIDL",
        b"CAPA",
        b"UTF8",
        b"STLS",
        b"APOP",
        b"*",
        b"0",
        b"1",
        b"2",
        b"3",
        b"-1",
        b"99999999999999999999",
        b"alice@example.com",
        b"pw",
        b"=",
        b"AGFsaWNlQGV4YW1wbGUuY29tAHB3",
        b"\xff\x00",
        b"\t",
        b"",
        b"x",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut input = Vec::new();
    for i in 0..3000 {
        if i % 200 == 0 {
            input.extend_from_slice(b"USER alice@example.com\r\nPASS pw\r\n");
        }
        for k in 0..rand(4) {
            if k > 0 {
                input.push(b' ');
            }
            input.extend_from_slice(words[rand(words.len())]);
        }
        input.extend_from_slice(if rand(10) == 0 { b"\n" } else { b"\r\n" });
    }
    let c = Client::connect(&f, "127.0.0.1:1").await;
    let Client { mut r, mut w, task } = c;
    let drain = tokio::spawn(async move {
        let mut sink = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut sink)
            .await
            .unwrap();
        sink
    });
    w.write_all(&input).await.unwrap();
    w.write_all(b"QUIT\r\n").await.unwrap();
    let out = drain.await.unwrap();
    task.await.expect("the session did not panic");
    assert!(out.ends_with(b"\r\n"));
    let replies = out.windows(2).filter(|w| w == b"\r\n").count();
    assert!(
        replies >= 3000,
        "every line was answered ({replies} reply lines)"
    );
    // Nothing was deleted outside a QUIT in TRANSACTION, and the lock was released.
    let mut c = Client::connect(&f, "127.0.0.1:2").await;
    c.login().await;
}

#[tokio::test(start_paused = true)]
async fn autologout_after_ten_minutes_deletes_nothing() {
    let mut config = letterbox_proto::Config::default();
    config.limits.timeout_authenticated = 5; // RFC 1939 3: at least 10 minutes all the same
    let f = fixture(config);
    deliver(&f.store, b"Subject: a\r\n\r\nA\r\n");
    let mut c = Client::connect(&f, "127.0.0.1:1").await;
    c.login().await;
    assert_eq!(c.cmd("DELE 1").await, "+OK Message 1 deleted");
    let t = tokio::time::Instant::now();
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut c.r, &mut rest)
        .await
        .unwrap();
    assert!(rest.is_empty(), "closed without a response: {rest:?}");
    assert!(t.elapsed() >= std::time::Duration::from_secs(600));
    c.task.await.unwrap();
    let a = f.store.account("alice@example.com").unwrap();
    let mb = f.store.mailbox(a.id, "INBOX").unwrap();
    assert_eq!(f.store.list_messages(mb.id, false).unwrap().len(), 1);
    let mut c = Client::connect(&f, "127.0.0.1:2").await;
    c.login().await;
}

//! Session tests over an in-memory stream against a real (temporary) store.

use crate::{inbound, Mode};
use letterbox_config::{ByteSize, Config};
use letterbox_proto::{Context, Peer};
use letterbox_store::{QuotaLimit, Store, StoreOptions};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    config: Arc<Config>,
}

fn env(quota: u64) -> Env {
    env_with(quota, |_| {})
}

fn env_with(quota: u64, f: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        hostname: "mx.example.com".into(),
        ..Default::default()
    };
    config.quota.default = ByteSize(quota);
    f(&mut config);
    let store = Store::open_embedded(
        dir.path(),
        StoreOptions {
            default_quota: quota,
            warn_at: config.quota.warn_at.clone(),
            default_retention: config.pop3.retention,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    store.add_domain("example.com").unwrap();
    let hash = format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap());
    for a in ["alice@example.com", "bob@example.com", "carol@example.com"] {
        store.add_account(a, &hash, QuotaLimit::Default).unwrap();
    }
    store
        .add_alias(
            "team@example.com",
            &["alice@example.com".into(), "bob@example.com".into()],
        )
        .unwrap();
    Env {
        _dir: dir,
        store,
        config: Arc::new(config),
    }
}

struct Client {
    r: BufReader<tokio::io::ReadHalf<DuplexStream>>,
    w: tokio::io::WriteHalf<DuplexStream>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn start(e: &Env, mode: Mode) -> Client {
        Client::start_from(e, mode, "127.0.0.1:40000").await
    }

    async fn start_from(e: &Env, mode: Mode, addr: &str) -> Client {
        let (a, b) = tokio::io::duplex(1 << 16);
        let ctx = Context::new(e.store.clone(), e.config.clone());
        let peer = Peer {
            addr: addr.parse().unwrap(),
            local: "127.0.0.1:25".parse().unwrap(),
            tls: false,
        };
        let task = tokio::spawn(inbound::run(ctx, mode, Box::new(b), peer));
        let (r, w) = tokio::io::split(a);
        let mut c = Client {
            r: BufReader::new(r),
            w,
            task,
        };
        let greeting = c.reply().await;
        assert!(greeting.starts_with("220 mx.example.com"), "{greeting}");
        c
    }

    async fn send(&mut self, data: &[u8]) {
        self.w.write_all(data).await.unwrap();
    }

    /// One (possibly multi-line) reply, lines joined with `\n`.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                self.r.read_line(&mut line),
            )
            .await
            .expect("reply in time")
            .unwrap();
            if n == 0 {
                return all + "<EOF>";
            }
            assert!(line.ends_with("\r\n"), "{line:?}");
            all.push_str(line.trim_end());
            if line.as_bytes().get(3) == Some(&b'-') {
                all.push('\n');
            } else {
                return all;
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    async fn closed(mut self) -> bool {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.r.read_to_end(&mut rest),
        )
        .await;
        let _ = self.task.await;
        true
    }
}

fn inbox(e: &Env, address: &str) -> Vec<Vec<u8>> {
    let a = e.store.account(address).unwrap();
    let mb = e.store.mailbox(a.id, "INBOX").unwrap();
    e.store
        .list_messages(mb.id, false)
        .unwrap()
        .iter()
        .map(|m| {
            e.store
                .open_message(mb.id, m.uid)
                .unwrap()
                .read_all()
                .unwrap()
        })
        .collect()
}

fn body_of(stored: &[u8]) -> &[u8] {
    // After the three trace headers we add (Received spans three lines).
    let mut i = 0;
    for _ in 0..5 {
        i += stored[i..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    }
    &stored[i..]
}

#[tokio::test]
async fn smtp_delivery_with_trace_headers() {
    let e = env(10 << 20);
    let mut c = Client::start(&e, Mode::Smtp).await;
    let ehlo = c.cmd("EHLO client.example.org").await;
    for ext in [
        "PIPELINING",
        "SIZE 52428800",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
    ] {
        assert!(
            ehlo.contains(&format!("250-{ext}")) || ehlo.contains(&format!("250 {ext}")),
            "{ehlo}"
        );
    }
    assert!(
        ehlo.starts_with("250-mx.example.com Hello client.example.org [127.0.0.1]"),
        "{ehlo}"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<bob@example.org> SIZE=100 BODY=8BITMIME")
            .await,
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        c.cmd("RCPT TO:<alice@example.com>").await,
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        c.cmd("RCPT TO:<Alice+tag@Example.com>").await,
        "250 2.1.5 Recipient OK"
    );
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send(b"Subject: hi\r\n\r\n..dot\r\nbare\nend\r\n.\r\n")
        .await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0 Message accepted"), "{r}");
    assert!(c.cmd("QUIT").await.starts_with("221 2.0.0"));
    assert!(c.closed().await);
    let msgs = inbox(&e, "alice@example.com");
    assert_eq!(
        msgs.len(),
        1,
        "two recipient addresses, one account, one copy"
    );
    let m = String::from_utf8(msgs[0].clone()).unwrap();
    assert!(m.starts_with("Return-Path: <bob@example.org>\r\nDelivered-To: alice@example.com\r\nReceived: from client.example.org ([127.0.0.1])\r\n\tby mx.example.com (Letterbox) with ESMTP id "), "{m}");
    assert!(m.contains("\tfor <alice@example.com>; "), "{m}");
    assert_eq!(
        body_of(&msgs[0]),
        b"Subject: hi\r\n\r\n.dot\r\nbare\r\nend\r\n"
    );
    assert!(e.store.check(true).unwrap().is_empty());
}

#[tokio::test]
async fn refusals_and_sequence() {
    let e = env(10 << 20);
    let mut c = Client::start(&e, Mode::Smtp).await;
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.c>").await,
        "503 5.5.1 Send EHLO or HELO first"
    );
    assert!(c.cmd("HELO x").await.starts_with("250 mx.example.com"));
    assert_eq!(
        c.cmd("RCPT TO:<alice@example.com>").await,
        "503 5.5.1 Need MAIL before RCPT"
    );
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 Need MAIL command");
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.c> SIZE=10").await,
        "555 5.5.4 MAIL parameters not recognized or not implemented"
    );
    assert!(c.cmd("EHLO x").await.starts_with("250-"));
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.c> SIZE=99999999999").await,
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@@b.c>").await,
        "501 5.1.7 Bad sender address syntax"
    );
    assert_eq!(c.cmd("MAIL FROM:<>").await, "250 2.1.0 Sender OK");
    assert_eq!(c.cmd("MAIL FROM:<>").await, "503 5.5.1 Nested MAIL command");
    assert_eq!(
        c.cmd("RCPT TO:<x@elsewhere.org>").await,
        "554 5.7.1 <x@elsewhere.org>: Relay access denied"
    );
    assert_eq!(
        c.cmd("RCPT TO:<nobody@example.com>").await,
        "550 5.1.1 <nobody@example.com>: Recipient address rejected: no such user here"
    );
    assert_eq!(
        c.cmd("RCPT TO:<bad address@example.com>").await.get(..9),
        Some("501 5.1.3")
    );
    assert_eq!(
        c.cmd("RCPT TO:alice@example.com").await.get(..9),
        Some("501 5.1.3")
    );
    assert_eq!(
        c.cmd("RCPT TO:<alice@example.com> NOTIFY=NEVER")
            .await
            .get(..9),
        Some("555 5.5.4")
    );
    assert_eq!(c.cmd("DATA").await, "554 5.5.1 No valid recipients");
    assert_eq!(c.cmd("VRFY alice").await.get(..9), Some("252 2.5.0"));
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 OK");
    assert_eq!(c.cmd("HELP").await.get(..9), Some("214 2.0.0"));
    assert_eq!(c.cmd("STARTTLS").await.get(..9), Some("502 5.5.1"));
    assert_eq!(c.cmd("RSET").await, "250 2.0.0 OK");
    assert_eq!(c.cmd("FOO").await, "500 5.5.1 Command unrecognized");
    let long = format!("NOOP {}", "x".repeat(70_000));
    assert_eq!(c.cmd(&long).await, "500 5.5.2 Line too long");
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 OK");
    drop(c);
    assert!(inbox(&e, "alice@example.com").is_empty());
}

#[tokio::test]
async fn too_many_recipients_and_bad_command_limit() {
    let e = env_with(10 << 20, |c| {
        c.smtp.max_recipients = 2;
        c.limits.max_bad_commands = 3;
    });
    let mut c = Client::start(&e, Mode::Smtp).await;
    c.cmd("EHLO x").await;
    c.cmd("MAIL FROM:<>").await;
    assert_eq!(
        c.cmd("RCPT TO:<alice@example.com>").await,
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        c.cmd("RCPT TO:<bob@example.com>").await,
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        c.cmd("RCPT TO:<carol@example.com>").await,
        "452 4.5.3 Too many recipients"
    );
    c.send(b"X1\r\nX2\r\nX3\r\nX4\r\n").await;
    assert_eq!(c.reply().await, "500 5.5.1 Command unrecognized");
    assert_eq!(c.reply().await, "500 5.5.1 Command unrecognized");
    assert_eq!(c.reply().await, "500 5.5.1 Command unrecognized");
    assert_eq!(
        c.reply().await,
        "421 4.7.0 mx.example.com Too many errors, closing connection"
    );
    assert_eq!(c.reply().await, "<EOF>");
}

#[tokio::test]
async fn pipelining_and_bdat() {
    let e = env(10 << 20);
    let mut c = Client::start(&e, Mode::Smtp).await;
    c.cmd("EHLO x").await;
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nBDAT 10\r\nline1\nab\r\nBDAT 6 LAST\r\nc\r\nd\r\nNOOP\r\n").await;
    assert_eq!(c.reply().await, "250 2.1.0 Sender OK");
    assert_eq!(c.reply().await, "250 2.1.5 Recipient OK");
    assert!(c.reply().await.starts_with("550 5.1.1"));
    assert_eq!(c.reply().await, "250 2.1.5 Recipient OK");
    assert_eq!(c.reply().await, "250 2.0.0 10 octets received");
    assert!(c.reply().await.starts_with("250 2.0.0 Message accepted"));
    assert_eq!(c.reply().await, "250 2.0.0 OK");
    for who in ["alice@example.com", "bob@example.com"] {
        let m = inbox(&e, who);
        assert_eq!(body_of(&m[0]), b"line1\r\nab\r\nc\r\nd\r\n");
    }
    // BDAT without a transaction: the octets are still consumed.
    assert_eq!(
        c.cmd("BDAT 6 LAST\r\nQUIT").await,
        "503 5.5.1 Need MAIL command"
    );
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 OK");
    // Too big in chunks.
    let e2 = env_with(10 << 20, |c| c.smtp.max_message_size = ByteSize(8));
    let mut c = Client::start(&e2, Mode::Smtp).await;
    c.cmd("EHLO x").await;
    c.cmd("MAIL FROM:<>").await;
    c.cmd("RCPT TO:<alice@example.com>").await;
    c.send(b"BDAT 5\r\n12345").await;
    assert_eq!(c.reply().await, "250 2.0.0 5 octets received");
    c.send(b"BDAT 5 LAST\r\n12345").await;
    assert_eq!(
        c.reply().await,
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 OK");
    c.cmd("MAIL FROM:<>").await;
    c.cmd("RCPT TO:<alice@example.com>").await;
    assert!(c.cmd("DATA").await.starts_with("354"));
    assert_eq!(
        c.cmd("123456789\r\n.").await,
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    assert!(inbox(&e2, "alice@example.com").is_empty());
}

#[tokio::test]
async fn lmtp_per_recipient_quota() {
    // 2000 octets each; carol is filled up first.
    let e = env_with(2000, |c| c.quota.warn_at = vec![]);
    let carol = e.store.account("carol@example.com").unwrap();
    e.store
        .set_quota("carol@example.com", QuotaLimit::Bytes(1000))
        .unwrap();
    let _ = carol;
    let mut c = Client::start(&e, Mode::Lmtp).await;
    assert_eq!(
        c.cmd("EHLO x").await,
        "500 5.5.1 This is LMTP (RFC 2033): use LHLO"
    );
    assert!(c.cmd("LHLO x").await.contains("250 CHUNKING"));
    c.cmd("MAIL FROM:<s@example.org>").await;
    assert_eq!(
        c.cmd("RCPT TO:<alice@example.com>").await,
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        c.cmd("RCPT TO:<carol@example.com>").await,
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        c.cmd("RCPT TO:<bob@example.com>").await,
        "250 2.1.5 Recipient OK"
    );
    assert!(c.cmd("DATA").await.starts_with("354"));
    let body = format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(1000));
    c.send(format!("{body}.\r\n").as_bytes()).await;
    assert!(c.reply().await.starts_with("250 2.0.0 <alice@example.com>"));
    assert_eq!(
        c.reply().await,
        "552 5.2.2 <carol@example.com> Mailbox full"
    );
    assert!(c.reply().await.starts_with("250 2.0.0 <bob@example.com>"));
    assert_eq!(inbox(&e, "carol@example.com").len(), 0);
    assert_eq!(body_of(&inbox(&e, "bob@example.com")[0]), body.as_bytes());
    // Now alice is over half; a declared size that does not fit is refused at RCPT.
    c.cmd("MAIL FROM:<> SIZE=1500").await;
    assert_eq!(
        c.cmd("RCPT TO:<alice@example.com>").await,
        "552 5.2.2 <alice@example.com>: Mailbox full"
    );
    assert_eq!(c.cmd("RSET").await, "250 2.0.0 OK");
    // A raised quota takes effect at once.
    e.store
        .set_quota("alice@example.com", QuotaLimit::Bytes(100_000))
        .unwrap();
    c.cmd("MAIL FROM:<> SIZE=1500").await;
    assert_eq!(
        c.cmd("RCPT TO:<alice@example.com>").await,
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(c.cmd("DATA\r\nshort\r\n.").await.get(..3), Some("354"));
    assert!(c.reply().await.starts_with("250 2.0.0 <alice@example.com>"));
    assert!(e.store.check(true).unwrap().is_empty());
}

#[tokio::test]
async fn smtp_quota_at_data() {
    let e = env_with(2000, |c| c.quota.warn_at = vec![]);
    e.store
        .set_quota("carol@example.com", QuotaLimit::Bytes(500))
        .unwrap();
    let mut c = Client::start(&e, Mode::Smtp).await;
    c.cmd("EHLO x").await;
    // One recipient, too big for it: 552 after the data.
    c.cmd("MAIL FROM:<>").await;
    c.cmd("RCPT TO:<carol@example.com>").await;
    c.cmd("DATA").await;
    let body = format!("{}\r\n.", "z".repeat(600));
    assert_eq!(c.cmd(&body).await, "552 5.2.2 Mailbox full");
    // Two recipients, one full: accepted (and logged).
    c.cmd("MAIL FROM:<>").await;
    c.cmd("RCPT TO:<carol@example.com>").await;
    c.cmd("RCPT TO:<bob@example.com>").await;
    c.cmd("DATA").await;
    assert!(c.cmd(&body).await.starts_with("250 2.0.0"));
    assert_eq!(inbox(&e, "carol@example.com").len(), 0);
    assert_eq!(inbox(&e, "bob@example.com").len(), 1);
}

#[tokio::test]
async fn warnings_once_per_crossing() {
    let e = env_with(100_000, |c| c.quota.warn_at = vec![50, 90]);
    let mut c = Client::start(&e, Mode::Lmtp).await;
    c.cmd("LHLO x").await;
    async fn deliver(n: usize, c: &mut Client) {
        let cmds = format!(
            "MAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n{}\r\n.\r\n",
            "w".repeat(n)
        );
        c.send(cmds.as_bytes()).await;
        for _ in 0..3 {
            c.reply().await;
        }
        let r = c.reply().await;
        assert!(r.starts_with("250 2.0.0"), "{r}");
    }
    let count = |e: &Env| inbox(e, "alice@example.com").len();
    deliver(30_000, &mut c).await; // ~30%
    assert_eq!(count(&e), 1);
    deliver(25_000, &mut c).await; // ~55%: crosses 50
    let msgs = inbox(&e, "alice@example.com");
    assert_eq!(msgs.len(), 3, "message + warning");
    let w = String::from_utf8(msgs[2].clone()).unwrap();
    assert!(w.contains("Subject: Your mailbox is 50% full"), "{w}");
    assert!(w.contains("postmaster@example.com"), "{w}");
    deliver(5_000, &mut c).await; // still between 50 and 90: no new warning
    assert_eq!(count(&e), 4);
    deliver(30_000, &mut c).await; // over 90%
    let msgs = inbox(&e, "alice@example.com");
    assert_eq!(msgs.len(), 6);
    assert!(String::from_utf8_lossy(&msgs[5]).contains("Your mailbox is 90% full"));
    // Falling below re-arms: empty the box, then cross 50% again.
    let a = e.store.account("alice@example.com").unwrap();
    let mb = e.store.mailbox(a.id, "INBOX").unwrap();
    let uids: Vec<u32> = e
        .store
        .list_messages(mb.id, false)
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    e.store.expunge(mb.id, &uids).unwrap();
    deliver(20_000, &mut c).await;
    assert_eq!(count(&e), 1);
    deliver(40_000, &mut c).await;
    let msgs = inbox(&e, "alice@example.com");
    assert_eq!(msgs.len(), 3);
    assert!(String::from_utf8_lossy(&msgs[2]).contains("Your mailbox is 50% full"));
    assert!(e.store.check(true).unwrap().is_empty());
}

#[tokio::test]
async fn disconnect_mid_data_stores_nothing() {
    let e = env(10 << 20);
    let mut c = Client::start(&e, Mode::Smtp).await;
    c.cmd("EHLO x").await;
    c.cmd("MAIL FROM:<>").await;
    c.cmd("RCPT TO:<alice@example.com>").await;
    c.cmd("DATA").await;
    c.send(b"Subject: partial\r\n\r\nsome text\r\n").await;
    let Client { r, w, task } = c;
    drop(w);
    drop(r);
    task.await.unwrap();
    assert!(inbox(&e, "alice@example.com").is_empty());
    assert_eq!(e.store.account("alice@example.com").unwrap().quota_used, 0);
}

#[tokio::test]
async fn idle_client_times_out() {
    let e = env_with(10 << 20, |c| c.limits.timeout_unauthenticated = 1);
    let mut c = Client::start(&e, Mode::Smtp).await;
    c.cmd("EHLO x").await;
    c.send(b"MAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
        .await;
    for _ in 0..3 {
        c.reply().await;
    }
    c.send(b"Subject: slow\r\n").await;
    assert_eq!(
        c.reply().await,
        "421 4.4.2 mx.example.com Timeout, closing connection"
    );
    assert_eq!(c.reply().await, "<EOF>");
    assert!(inbox(&e, "alice@example.com").is_empty());
}

#[tokio::test]
async fn garbage_never_panics() {
    let e = env_with(10 << 20, |c| {
        c.limits.timeout_unauthenticated = 2;
        c.limits.max_line_length = 1024;
        c.limits.max_bad_commands = 1000;
        c.limits.timeout_authenticated = 2;
        c.auth.failure_delay_ms = 1;
    });
    // A small deterministic generator: no extra dependency.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: &[&[u8]] = &[
        b"EHLO x\r\n",
        b"LHLO x\r\n",
        b"HELO\r\n",
        b"MAIL FROM:<>\r\n",
        b"MAIL FROM:<a@b.c> SIZE=\r\n",
        b"MAIL FROM:<\"q\\\"x\"@b.c> BODY=8BITMIME SMTPUTF8\r\n",
        b"RCPT TO:<alice@example.com>\r\n",
        b"RCPT TO:<team@example.com>\r\n",
        b"RCPT TO:<@a,@b:x@example.com>\r\n",
        b"RCPT TO:<>\r\n",
        b"DATA\r\n",
        b".\r\n",
        b"..\r\n",
        b"BDAT 3\r\n",
        b"BDAT 0 LAST\r\n",
        b"BDAT 18446744073709551615\r\n",
        b"BDAT x\r\n",
        b"RSET\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b"\0\xff\xfe",
        b"MAIL",
        b" FROM:<",
        b">\r\n",
        b"AUTH PLAIN\r\n",
        b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHB3\r\n",
        b"AUTH LOGIN\r\n",
        b"YWxpY2VAZXhhbXBsZS5jb20=\r\n",
        b"*\r\n",
        b"MAIL FROM:<alice@example.com>\r\n",
        b"STARTTLS\r\n",
        b"VRFY\r\n",
        b"NOOP \xc3\x28\r\n",
    ];
    for round in 0..200 {
        let mode = [Mode::Smtp, Mode::Lmtp, Mode::Submission][round % 3];
        let mut c = Client::start(&e, mode).await;
        let mut input = Vec::new();
        for _ in 0..(next() % 60) {
            match next() % 4 {
                0 => input.extend((0..next() % 300).map(|_| next() as u8)),
                _ => input.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]),
            }
        }
        input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        c.send(&input).await;
        // Read everything until the server closes (QUIT, error limit or time-out).
        let Client { mut r, w, task } = c;
        let mut out = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(20), r.read_to_end(&mut out)).await;
        drop(w);
        assert!(read.is_ok(), "session {round} did not end");
        task.await.expect("session task must not panic");
    }
    assert!(e.store.check(true).unwrap().is_empty());
}

fn b64(s: &str) -> String {
    letterbox_proto::sasl::encode_base64(s.as_bytes())
}

#[tokio::test]
async fn submission_auth_sender_and_local_delivery() {
    let e = env_with(10 << 20, |c| c.auth.failure_delay_ms = 1);
    e.store
        .add_alias("sales@example.com", &["alice@example.com".into()])
        .unwrap();
    e.store
        .add_alias("@example.com", &["alice@example.com".into()])
        .unwrap();
    let mut c = Client::start(&e, Mode::Submission).await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "503 5.5.1 Send EHLO first");
    let ehlo = c.cmd("EHLO laptop").await;
    // Loopback: AUTH offered without TLS; no TLS in this context, so no STARTTLS.
    assert!(ehlo.ends_with("\n250 AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(c.cmd("STARTTLS").await, "502 5.5.1 STARTTLS not available");
    assert_eq!(
        c.cmd("MAIL FROM:<alice@example.com>").await,
        "530 5.7.0 Authentication required"
    );
    let wrong = b64("\0alice@example.com\0nope");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {wrong}")).await,
        "535 5.7.8 Authentication credentials invalid"
    );
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
    assert_eq!(c.cmd(&b64("alice@example.com")).await, "334 UGFzc3dvcmQ6");
    assert_eq!(
        c.cmd(&b64("pw")).await,
        "235 2.7.0 Authentication successful"
    );
    assert!(!c.cmd("EHLO laptop").await.contains("AUTH"));
    for bad in [
        "bob@example.com",
        "other@example.com",
        "",
        "alice@example.org",
    ] {
        let r = c.cmd(&format!("MAIL FROM:<{bad}>")).await;
        assert!(r.starts_with("553 5.7.1 <"), "{bad}: {r}");
    }
    assert_eq!(
        c.cmd("MAIL FROM:<sales@example.com> AUTH=<>").await,
        "250 2.1.0 Sender OK"
    );
    // Issue 12: a remote recipient is accepted and queued.
    assert_eq!(
        c.cmd("RCPT TO:<x@elsewhere.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;x@elsewhere.org")
            .await,
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        c.cmd("RCPT TO:<bob@example.com>").await,
        "250 2.1.5 Recipient OK"
    );
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send(b"Subject: s\r\n\r\nbody\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 2.0.0 Message accepted"));
    assert!(c.cmd("QUIT").await.starts_with("221"));
    assert!(c.closed().await);
    let [m] = &inbox(&e, "bob@example.com")[..] else {
        panic!("one message")
    };
    let text = String::from_utf8_lossy(m);
    assert!(
        text.starts_with("Return-Path: <sales@example.com>\r\n"),
        "{text}"
    );
    assert!(text.contains(" with ESMTPA id "), "{text}");
    assert_eq!(body_of(m), b"Subject: s\r\n\r\nbody\r\n");
    let [q] = &e.store.queue_list(0, 10).unwrap()[..] else {
        panic!("one queue entry")
    };
    assert_eq!(q.sender, "sales@example.com");
    assert_eq!(q.rcpts.len(), 1);
    assert_eq!(q.rcpts[0].address, "x@elsewhere.org");
    assert_eq!(q.rcpts[0].orcpt.as_deref(), Some("x@elsewhere.org"));
    assert_eq!(q.rcpts[0].notify, 2 | 4);
    let queued = e.store.queue_body(q.id).unwrap();
    assert!(queued.starts_with(b"Received: from laptop"));
    assert!(queued.ends_with(b"Subject: s\r\n\r\nbody\r\n"));
}

#[tokio::test]
async fn submission_off_loopback_needs_tls_for_auth() {
    let e = env(10 << 20);
    let mut c = Client::start_from(&e, Mode::Submission, "192.0.2.9:4000").await;
    let ehlo = c.cmd("EHLO x").await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", b64("\0alice@example.com\0pw")))
            .await,
        "538 5.7.11 Encryption required for requested authentication mechanism: use STARTTLS"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<alice@example.com>").await,
        "530 5.7.0 Authentication required"
    );
    // Port 25 never offers AUTH.
    let mut c = Client::start(&e, Mode::Smtp).await;
    assert!(!c.cmd("EHLO x").await.contains("AUTH"));
    assert_eq!(
        c.cmd("AUTH PLAIN").await,
        "502 5.5.1 AUTH not available on this service"
    );
}

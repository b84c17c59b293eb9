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

//! A whole POP3 session driven by the fuzzer's octets (issue 7): whatever a client sends,
//! before or after login, the session answers without panicking or hanging, and every
//! reply is CRLF-terminated. The store is a real one in a temporary directory, with an
//! account whose hash is cheap to check (`{SSHA256}`, password `pw`) so that inputs reach
//! the TRANSACTION state, and two messages (one with lines that need dot-stuffing).
#![no_main]

use letterbox_proto::{Context, Peer, Service};
use letterbox_store::{QuotaLimit, Store, StoreOptions};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `{SSHA256}` of `pw` (salt `fuzzsalt`).
const HASH: &str = "{SSHA256}5QqnS++5smnNMevN2EJiUsB6NuLVVFHFqkBGdra6edxmdXp6c2FsdA==";
const USER: &str = "alice@example.com";

struct World {
    rt: tokio::runtime::Runtime,
    store: Store,
    svc: Arc<dyn Service>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_embedded(dir.path(), StoreOptions::default()).expect("store");
        store.add_domain("example.com").expect("domain");
        store
            .add_account(USER, HASH, QuotaLimit::Default)
            .expect("account");
        let mut config = letterbox_config::Config::default();
        config.limits.max_line_length = 512;
        config.limits.max_bad_commands = u32::MAX;
        config.limits.max_auth_failures = u32::MAX;
        config.auth.failure_delay_ms = 0;
        config.auth.max_failures = 0;
        let ctx = Context::new(store.clone(), Arc::new(config));
        let svc: Arc<dyn Service> = letterbox_pop3::Pop3Service::new(ctx);
        World {
            rt,
            store,
            svc,
            _dir: dir,
        }
    })
}

/// Puts the two messages back when a session deleted them.
fn refill(w: &World) {
    let a = w.store.account(USER).expect("account");
    let mb = w.store.mailbox(a.id, "INBOX").expect("inbox");
    if w.store.list_messages(mb.id, false).expect("list").len() >= 2 {
        return;
    }
    for body in [
        &b"Subject: a\r\n\r\n.leading dot\r\n..two\r\n.\r\nno end"[..],
        &b"From: b@example.org\r\n\r\nline\r\n"[..],
    ] {
        let _ = w
            .store
            .deliver(Arc::new(body.to_vec()), 1_700_000_000, vec![(a.id, vec![])], false);
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    refill(w);
    w.rt.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 16);
        let peer = Peer {
            addr: "192.0.2.1:40000".parse().expect("addr"),
            local: "192.0.2.2:110".parse().expect("addr"),
            // As on pop3s: passwords allowed, STLS refused.
            tls: true,
        };
        let session = tokio::spawn(w.svc.clone().serve(Box::new(server), peer));
        let (mut r, mut wr) = tokio::io::split(client);
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = r.read_to_end(&mut out).await;
            out
        });
        let _ = wr.write_all(data).await;
        let _ = wr.shutdown().await;
        drop(wr);
        let out = tokio::time::timeout(std::time::Duration::from_secs(20), reader)
            .await
            .expect("the session hung")
            .expect("reader");
        session.await.expect("the session panicked");
        assert!(out.starts_with(b"+OK "), "no greeting");
        assert!(out.ends_with(b"\r\n"), "a reply without its line end");
    });
});

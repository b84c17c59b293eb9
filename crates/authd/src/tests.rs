//! The protocol over an in-memory stream. Postfix itself talks to the real binary in
//! tests/authd/.

use super::*;
use letterbox_store::{QuotaLimit, Store, StoreOptions};
use tokio::io::{AsyncBufReadExt, DuplexStream, ReadHalf, WriteHalf};

struct Client {
    _dir: tempfile::TempDir,
    r: BufReader<ReadHalf<DuplexStream>>,
    w: WriteHalf<DuplexStream>,
}

async fn client(config: letterbox_proto::Config) -> Client {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    store.add_domain("example.com").unwrap();
    let hash = letterbox_store::password::hash("pw\tsecret");
    store
        .add_account("alice@example.com", &hash, QuotaLimit::Default)
        .unwrap();
    let svc = AuthService::new(Context::new(store, Arc::new(config)));
    let (a, b) = tokio::io::duplex(1 << 16);
    let peer = Peer {
        addr: "0.0.0.0:0".parse().unwrap(),
        local: "0.0.0.0:0".parse().unwrap(),
        tls: false,
    };
    tokio::spawn(svc.serve(Box::new(b), peer));
    let (r, w) = tokio::io::split(a);
    let mut c = Client {
        _dir: dir,
        r: BufReader::new(r),
        w,
    };
    let mut hs = Vec::new();
    loop {
        let l = c.line().await;
        let done = l == "DONE";
        hs.push(l);
        if done {
            break;
        }
    }
    assert_eq!(hs[0], "VERSION\t1\t2");
    assert_eq!(hs[1], "MECH\tPLAIN\tplaintext");
    assert_eq!(hs[2], "MECH\tLOGIN\tplaintext");
    assert!(hs[3].starts_with("SPID\t") && hs[4] == "CUID\t1", "{hs:?}");
    assert!(
        hs[5].starts_with("COOKIE\t") && hs[5].len() == 7 + 32,
        "{hs:?}"
    );
    c.send("VERSION\t1\t0\nCPID\t4242\n").await;
    c
}

impl Client {
    async fn line(&mut self) -> String {
        let mut s = String::new();
        self.r.read_line(&mut s).await.unwrap();
        s.trim_end_matches('\n').to_string()
    }
    async fn send(&mut self, s: &str) {
        self.w.write_all(s.as_bytes()).await.unwrap();
    }
    async fn ask(&mut self, s: &str) -> String {
        self.send(s).await;
        self.line().await
    }
}

fn b64(s: &[u8]) -> String {
    sasl::encode_base64(s)
}

fn quick() -> letterbox_proto::Config {
    let mut c = letterbox_proto::Config::default();
    c.auth.failure_delay_ms = 1;
    c
}

#[tokio::test]
async fn plain_and_login_as_postfix_sends_them() {
    let mut c = client(quick()).await;
    let good = b64(b"\0alice@example.com\0pw\tsecret");
    let r = c
        .ask(&format!(
            "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp={good}\n"
        ))
        .await;
    assert_eq!(r, "OK\t1\tuser=alice@example.com");
    let bad = b64(b"\0alice@example.com\0wrong");
    let r = c
        .ask(&format!(
            "AUTH\t2\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp={bad}\n"
        ))
        .await;
    assert_eq!(r, "FAIL\t2\tuser=alice@example.com");
    // PLAIN without an initial response: an empty challenge first.
    assert_eq!(
        c.ask("AUTH\t3\tPLAIN\tservice=smtp\trip=127.0.0.1\n").await,
        "CONT\t3\t"
    );
    assert_eq!(
        c.ask(&format!("CONT\t3\t{good}\n")).await,
        "OK\t3\tuser=alice@example.com"
    );
    // LOGIN: user name, then password.
    assert_eq!(
        c.ask("AUTH\t4\tLOGIN\tservice=smtp\trip=127.0.0.1\n").await,
        "CONT\t4\tVXNlcm5hbWU6"
    );
    assert_eq!(
        c.ask(&format!("CONT\t4\t{}\n", b64(b"ALICE@example.com")))
            .await,
        "CONT\t4\tUGFzc3dvcmQ6"
    );
    assert_eq!(
        c.ask(&format!("CONT\t4\t{}\n", b64(b"pw\tsecret"))).await,
        "OK\t4\tuser=alice@example.com"
    );
    // LOGIN with the user name as initial response.
    assert_eq!(
        c.ask(&format!(
            "AUTH\t5\tLOGIN\tservice=smtp\trip=127.0.0.1\tresp={}\n",
            b64(b"alice@example.com")
        ))
        .await,
        "CONT\t5\tUGFzc3dvcmQ6"
    );
    assert_eq!(
        c.ask(&format!("CONT\t5\t{}\n", b64(b"nope"))).await,
        "FAIL\t5\tuser=alice@example.com"
    );
    assert_eq!(
        c.ask("AUTH\t6\tCRAM-MD5\tservice=smtp\n").await,
        "FAIL\t6\treason=Unsupported authentication mechanism"
    );
    assert_eq!(
        c.ask("AUTH\t7\tPLAIN\tservice=smtp\trip=127.0.0.1\tresp=!!\n")
            .await,
        "FAIL\t7\treason=Invalid base64 data or malformed response"
    );
}

#[tokio::test]
async fn plaintext_needs_tls_off_loopback() {
    let mut c = client(quick()).await;
    let good = b64(b"\0alice@example.com\0pw\tsecret");
    let r = c
        .ask(&format!(
            "AUTH\t1\tPLAIN\tservice=smtp\trip=192.0.2.7\tresp={good}\n"
        ))
        .await;
    assert_eq!(r, format!("FAIL\t1\treason={PLAINTEXT_REFUSED}"));
    let r = c
        .ask(&format!(
            "AUTH\t2\tPLAIN\tservice=smtp\trip=192.0.2.7\tsecured\tresp={good}\n"
        ))
        .await;
    assert_eq!(r, "OK\t2\tuser=alice@example.com");
}

#[tokio::test]
async fn failures_block_the_client_ip_not_the_mta() {
    let mut cfg = quick();
    cfg.auth.max_failures = 2;
    let mut c = client(cfg).await;
    let bad = b64(b"\0alice@example.com\0wrong");
    let good = b64(b"\0alice@example.com\0pw\tsecret");
    for id in 1..=2 {
        let r = c
            .ask(&format!(
                "AUTH\t{id}\tPLAIN\tservice=smtp\trip=192.0.2.7\tsecured\tresp={bad}\n"
            ))
            .await;
        assert_eq!(r, format!("FAIL\t{id}\tuser=alice@example.com"));
    }
    // The IP and the account are blocked now: even the right password fails.
    let r = c
        .ask(&format!(
            "AUTH\t3\tPLAIN\tservice=smtp\trip=192.0.2.7\tsecured\tresp={good}\n"
        ))
        .await;
    assert_eq!(r, "FAIL\t3\tuser=alice@example.com");
}

#[tokio::test]
async fn protocol_errors_end_the_connection() {
    let mut c = client(quick()).await;
    c.send("AUTH\t1\tLOGIN\tservice=smtp\trip=127.0.0.1\n")
        .await;
    assert_eq!(c.line().await, "CONT\t1\tVXNlcm5hbWU6");
    // A duplicate id while the first is in progress.
    c.send("AUTH\t1\tLOGIN\tservice=smtp\trip=127.0.0.1\n")
        .await;
    assert_eq!(c.line().await, "");
    let mut c = client(quick()).await;
    c.send("BOGUS\n").await;
    assert_eq!(c.line().await, "");
}

#[test]
fn tab_escaping() {
    assert_eq!(unescape("a\u{1}tb\u{1}1\u{1}nc\u{1}0"), "a\tb\u{1}\nc\0");
    assert_eq!(escape("a\tb\u{1}\nc\r"), "a\u{1}tb\u{1}1\u{1}nc\u{1}r");
}

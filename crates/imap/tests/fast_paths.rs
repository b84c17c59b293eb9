//! The fast paths of FETCH and SEARCH give the same answers as the general ones:
//! SEARCH TEXT/BODY narrowed by the store's trigram filter against the same keys under
//! `NOT NOT` (which the filter does not look into, so every message's text is compared),
//! and header sections served from the stored header octets against the same octets cut
//! from the whole message.

use letterbox_proto::{Context, Peer};
use letterbox_store::{Flags, NewMessage, QuotaLimit, Store, StoreOptions};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

type Client = BufReader<tokio::io::DuplexStream>;

const MESSAGES: &[&str] = &[
    "Subject: Zanzibar trip\r\nFrom: Zo\u{eb} <zoe@example.org>\r\nTo: a@example.com\r\n\r\nplain body\r\n",
    "Subject: hello\r\nFrom: bob@example.net\r\n\r\nThe needle ZANZIBAR is here.\r\n",
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n\r\nnothing to see\r\n",
    "Subject: x\r\nContent-Type: text/html\r\n\r\n<p>HTML z<b>anzibar</b> &amp; \u{212A}elvin</p>\r\n",
    "Subject: y\r\nCc: Carol <carol@example.com>\r\n\r\n\u{130}stanbul ab\r\n",
    "Subject: multi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nin part zanzibarish\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner quebec\r\n\r\ninner body kilo\r\n--b--\r\n",
    "no header at all, zanz ibar",
    "Subject: empty body\r\n\r\n",
];

async fn setup() -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    store.add_domain("example.com").unwrap();
    let hash = format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap());
    let a = store
        .add_account("alice@example.com", &hash, QuotaLimit::Default)
        .unwrap();
    let inbox = store.mailbox(a.id, "INBOX").unwrap();
    for (i, m) in MESSAGES.iter().enumerate() {
        store
            .append(
                inbox.id,
                NewMessage {
                    prefix: Vec::new(),
                    body: Arc::new(m.as_bytes().to_vec()),
                    flags: if i % 2 == 0 {
                        Flags::SEEN
                    } else {
                        Flags::default()
                    },
                    keywords: vec![],
                    internal_date: 1_700_000_000,
                },
                false,
            )
            .unwrap();
    }
    // A delivery with a per-recipient prefix, and a gap in the UIDs.
    store
        .deliver(
            Arc::new(
                b"Subject: delivered zanzibar\r\nTo: alice@example.com\r\n\r\nhi\r\n".to_vec(),
            ),
            1_700_000_000,
            vec![(a.id, b"Return-Path: <x@example.org>\r\n".to_vec())],
            false,
        )
        .unwrap();
    store.expunge(inbox.id, &[3]).unwrap();
    let ctx = Context::new(store, Arc::new(letterbox_config::Config::default()));
    let (client, server) = tokio::io::duplex(1 << 16);
    let peer = Peer {
        addr: "127.0.0.1:40000".parse().unwrap(),
        local: "127.0.0.1:143".parse().unwrap(),
        tls: false,
    };
    tokio::spawn(letterbox_imap::session::Session::new(ctx, peer, Box::new(server)).run());
    let mut c = BufReader::new(client);
    let mut greeting = String::new();
    c.read_line(&mut greeting).await.unwrap();
    cmd(&mut c, "LOGIN alice@example.com pw").await;
    cmd(&mut c, "SELECT INBOX").await;
    (dir, c)
}

/// Sends a command and returns its untagged responses (literals inline) and checks the
/// tagged OK.
async fn cmd(c: &mut Client, command: &str) -> Vec<Vec<u8>> {
    c.get_mut()
        .write_all(format!("t {command}\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let mut resp = Vec::new();
        loop {
            let mut l = Vec::new();
            c.read_until(b'\n', &mut l).await.unwrap();
            assert!(!l.is_empty(), "connection closed during {command}");
            resp.extend_from_slice(&l);
            // A literal: `{n}\r\n` then n octets, then the line goes on.
            let lit = l
                .strip_suffix(b"}\r\n")
                .and_then(|h| h.iter().rposition(|&b| b == b'{').map(|p| &h[p + 1..]))
                .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok());
            match lit {
                Some(n) => {
                    let mut buf = vec![0; n];
                    c.read_exact(&mut buf).await.unwrap();
                    resp.extend_from_slice(&buf);
                }
                None => break,
            }
        }
        if resp.starts_with(b"t ") {
            assert!(
                resp.starts_with(b"t OK"),
                "{command}: {}",
                String::from_utf8_lossy(&resp)
            );
            return out;
        }
        out.push(resp);
    }
}

#[tokio::test]
async fn filtered_text_search_equals_the_full_comparison() {
    let (_d, mut c) = setup().await;
    let needles = [
        "zanzibar",
        "ZanZibar",
        "k\u{f6}ln",
        "K\u{d6}LN",
        "gr\u{fc}\u{df}e",
        "zo\u{eb}",
        "example.org",
        "kelvin",
        "istanbul",
        "i\u{307}stanbul",
        "\"zanz ibar\"",
        "\"subject: hello\"",
        "quebec",
        "kilo",
        "ab",
        "z",
        "\"\"",
        "nowhere-at-all",
        "\"anzibar &\"",
    ];
    let mut hits = 0;
    for n in needles {
        // Non-ASCII needles go as (non-synchronising) literals.
        let n = if n.is_ascii() {
            n.to_string()
        } else {
            format!("{{{}+}}\r\n{n}", n.len())
        };
        for key in ["TEXT", "BODY"] {
            for extra in ["", " SEEN", " SUBJECT zanzibar", " TEXT here"] {
                let fast = cmd(
                    &mut c,
                    &format!("UID SEARCH CHARSET UTF-8 {key} {n}{extra}"),
                )
                .await;
                let full = cmd(
                    &mut c,
                    &format!("UID SEARCH CHARSET UTF-8 NOT NOT {key} {n}{extra}"),
                )
                .await;
                assert_eq!(fast, full, "{key} {n}{extra}");
                hits += usize::from(fast[0].len() > b"* SEARCH\r\n".len());
            }
        }
    }
    assert!(hits > 20, "the needles find something ({hits})");
    // The bench's case: exactly the messages that hold the word.
    assert_eq!(
        cmd(&mut c, "UID SEARCH TEXT zanzibar").await,
        vec![b"* SEARCH 1 2 6 9\r\n".to_vec()]
    );
}

#[tokio::test]
async fn header_sections_equal_the_message_octets() {
    let (_d, mut c) = setup().await;
    let whole = cmd(&mut c, "FETCH 1:* (BODY.PEEK[])").await;
    let headers = cmd(
        &mut c,
        "FETCH 1:* (BODY.PEEK[HEADER] RFC822.HEADER BODY.PEEK[HEADER]<3.20>)",
    )
    .await;
    assert_eq!(whole.len(), headers.len());
    for (w, h) in whole.iter().zip(&headers) {
        let w = String::from_utf8_lossy(w);
        let h = String::from_utf8_lossy(h);
        // The whole message's literal, cut at the end of its header.
        let msg = &w[w.find("}\r\n").unwrap() + 3..w.len() - 3];
        let end = msg.find("\r\n\r\n").map(|p| p + 4).unwrap_or(msg.len());
        let head = &msg[..end];
        let seq = &w[..w.find(" FETCH").unwrap()];
        let want = format!(
            "{seq} FETCH (BODY[HEADER] {{{}}}\r\n{head} RFC822.HEADER {{{}}}\r\n{head} BODY[HEADER]<3> {{{}}}\r\n{})\r\n",
            head.len(),
            head.len(),
            head.len().saturating_sub(3).min(20),
            &head[3.min(head.len())..(3 + 20).min(head.len())],
        );
        assert_eq!(h, want);
    }
    // Header fields are cut from those octets.
    let a = cmd(
        &mut c,
        "FETCH 8 (BODY.PEEK[HEADER.FIELDS (SUBJECT RETURN-PATH)] BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)])",
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&a[0]),
        "* 8 FETCH (BODY[HEADER.FIELDS (SUBJECT RETURN-PATH)] {61}\r\nReturn-Path: <x@example.org>\r\nSubject: delivered zanzibar\r\n\r\n \
         BODY[HEADER.FIELDS.NOT (SUBJECT)] {55}\r\nReturn-Path: <x@example.org>\r\nTo: alice@example.com\r\n\r\n)\r\n"
    );
}

#[tokio::test]
async fn flags_from_the_session_equal_the_general_path() {
    let (_d, mut c) = setup().await;
    cmd(&mut c, "STORE 2:4 +FLAGS (\\Flagged $Work)").await;
    for (fast, general) in [
        ("FETCH 1:* (FLAGS)", "FETCH 1:* (FLAGS RFC822.SIZE)"),
        (
            "FETCH 2,5:* (UID FLAGS)",
            "FETCH 2,5:* (UID FLAGS RFC822.SIZE)",
        ),
        ("UID FETCH 1:* (FLAGS)", "UID FETCH 1:* (FLAGS RFC822.SIZE)"),
        ("UID FETCH 4:6 (UID)", "UID FETCH 4:6 (UID RFC822.SIZE)"),
    ] {
        let a = cmd(&mut c, fast).await;
        let b: Vec<Vec<u8>> = cmd(&mut c, general)
            .await
            .into_iter()
            .map(|r| {
                let r = String::from_utf8(r).unwrap();
                let at = r.find(" RFC822.SIZE ").unwrap();
                let end = at + 13 + r[at + 13..].find(')').unwrap();
                format!("{}{}", &r[..at], &r[end..]).into_bytes()
            })
            .collect();
        assert_eq!(a, b, "{fast}");
        assert!(!a.is_empty());
    }
    assert_eq!(
        String::from_utf8(cmd(&mut c, "FETCH 2 (FLAGS)").await.remove(0)).unwrap(),
        "* 2 FETCH (FLAGS (\\Flagged \\Recent $Work))\r\n"
    );
}

#[tokio::test]
async fn envelopes_alone_equal_envelopes_from_the_whole_structure() {
    let (_d, mut c) = setup().await;
    let fast = cmd(&mut c, "FETCH 1:* (ENVELOPE)").await;
    let general: Vec<Vec<u8>> = cmd(&mut c, "FETCH 1:* (ENVELOPE BODY)")
        .await
        .into_iter()
        .map(|r| {
            let r = String::from_utf8(r).unwrap();
            format!("{})\r\n", &r[..r.rfind(" BODY (").unwrap()]).into_bytes()
        })
        .collect();
    assert_eq!(fast, general);
    assert_eq!(fast.len(), 8);
    assert!(
        String::from_utf8_lossy(&fast[0])
            .starts_with("* 1 FETCH (ENVELOPE (NIL \"Zanzibar trip\" ("),
        "{}",
        String::from_utf8_lossy(&fast[0])
    );
}

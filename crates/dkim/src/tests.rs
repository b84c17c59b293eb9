//! Signing with keys from a real store, verified with mail-auth's verifier against the
//! records `record` prints (dkimpy checks the same through the binary in tests/dkim/).

use super::*;
use letterbox_store::StoreOptions;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};
use std::borrow::Borrow;
use std::hash::Hash;

/// A TXT cache that answers from the records we give it and nothing else.
struct Records(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for Records {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }
    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }
    fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

fn records(keys: &[DkimKey]) -> Records {
    let mut m = HashMap::new();
    for k in keys {
        let dk = DomainKey::parse(record(k).as_bytes()).unwrap();
        m.insert(record_name(k).into_boxed_str(), Txt::from(dk));
    }
    Records(Mutex::new(m))
}

/// (selector, result) of each signature, verified against `keys`' records only (the
/// resolver points at a closed loopback port: nothing leaves the machine).
async fn verify(message: &[u8], keys: &[DkimKey]) -> Vec<(String, DkimResult)> {
    use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    let resolver = MessageAuthenticator::new(
        ResolverConfig::from_name_servers(vec![NameServerConfig::udp(
            "127.0.0.1".parse().unwrap(),
        )]),
        ResolverOpts::default(),
    )
    .unwrap();
    let cache = records(keys);
    let msg = AuthenticatedMessage::parse(message).unwrap();
    let out = resolver
        .verify_dkim(Parameters::new(&msg).with_txt_cache(&cache))
        .await;
    out.iter()
        .map(|o| {
            (
                o.signature().map(|s| s.s.clone()).unwrap_or_default(),
                o.result().clone(),
            )
        })
        .collect()
}

const MESSAGE: &[u8] = b"From: Alice <alice@Example.COM>\r\n\
To: bob@remote.example\r\n\
Subject: Hello  there\r\n\
Date: Sun, 06 Dec 2026 10:00:00 +0000\r\n\
Message-ID: <1@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hi Bob,\r\n\
the body.\r\n";

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
    store.add_domain("example.com").unwrap();
    (dir, store)
}

fn signed(signer: &Signer, message: &[u8]) -> Vec<u8> {
    let mut m = signer.sign(message).unwrap().expect("signed");
    m.extend_from_slice(message);
    m
}

#[tokio::test]
async fn both_algorithms_sign_and_verify() {
    let (_dir, store) = store();
    let now = 1_796_551_200; // 2026-12-06
    let stem = next_stem(&[], now);
    assert_eq!(stem, "lb20261206");
    let pair = generate_pair("example.com", &stem, DkimState::Active, now).unwrap();
    store.add_dkim_keys(pair.clone()).unwrap();
    let signer = Signer::new(store.clone());
    let header = signer.sign(MESSAGE).unwrap().unwrap();
    let text = String::from_utf8(header.clone()).unwrap();
    assert!(text.starts_with("DKIM-Signature: v=1; a=ed25519-sha256; s=lb20261206e; d=example.com; c=relaxed/relaxed;"), "{text}");
    assert!(text.contains("a=rsa-sha256; s=lb20261206r;"), "{text}");
    assert!(text.ends_with("\r\n") && text.matches("DKIM-Signature:").count() == 2);
    // From is oversigned (listed once more than present), as are Subject and Reply-To.
    let h: String = text
        .split("h=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(h.to_ascii_lowercase().matches("from").count(), 2, "{h}");
    assert!(h.to_ascii_lowercase().contains("reply-to"), "{h}");

    let mut m = header;
    m.extend_from_slice(MESSAGE);
    let results = verify(&m, &pair).await;
    assert_eq!(
        results,
        vec![
            ("lb20261206e".to_string(), DkimResult::Pass),
            ("lb20261206r".to_string(), DkimResult::Pass)
        ]
    );
    // Relaxed canonicalization: re-folding and trailing whitespace do not matter...
    let refolded = String::from_utf8(m.clone())
        .unwrap()
        .replace("Subject: Hello  there", "Subject: Hello\r\n there ")
        .replace("the body.\r\n", "the body.  \r\n\r\n");
    let results = verify(refolded.as_bytes(), &pair).await;
    assert!(
        results.iter().all(|(_, r)| *r == DkimResult::Pass),
        "{results:?}"
    );
    // ...but a changed body or subject, or an added From, does.
    for altered in [
        String::from_utf8(m.clone())
            .unwrap()
            .replace("Hi Bob", "Hi Eve"),
        String::from_utf8(m.clone())
            .unwrap()
            .replace("Hello  there", "Hello there!"),
        String::from_utf8(m.clone())
            .unwrap()
            .replace("To: bob", "From: mallory@evil.example\r\nTo: bob"),
    ] {
        let results = verify(altered.as_bytes(), &pair).await;
        assert_eq!(results.len(), 2);
        // mail-auth calls a body hash mismatch Neutral, a bad header signature Fail:
        // neither passes.
        assert!(
            results
                .iter()
                .all(|(_, r)| matches!(r, DkimResult::Fail(_) | DkimResult::Neutral(_))),
            "{results:?}"
        );
    }
}

#[tokio::test]
async fn no_signature_without_keys_or_for_other_domains() {
    let (_dir, store) = store();
    let signer = Signer::new(store.clone());
    assert_eq!(signer.sign(MESSAGE).unwrap(), None);
    let pair = generate_pair("example.com", "lb20261206", DkimState::Active, 1).unwrap();
    store.add_dkim_keys(pair).unwrap();
    let other = b"From: x@elsewhere.example\r\nSubject: s\r\n\r\nbody\r\n";
    assert_eq!(signer.sign(other).unwrap(), None);
    assert_eq!(
        signer.sign(b"Subject: no from\r\n\r\nbody\r\n").unwrap(),
        None
    );
    assert_eq!(signer.sign(b"").unwrap(), None);
    assert_eq!(signer.sign(b"\xff\xfe garbage").unwrap(), None);
    assert!(signer.sign(MESSAGE).unwrap().is_some());
    // Keys for a domain that is not local are refused.
    let foreign = generate_pair("elsewhere.example", "lb1", DkimState::Active, 1).unwrap();
    assert!(matches!(
        store.add_dkim_keys(foreign),
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn rotation_is_seen_without_restart_and_both_records_verify() {
    let (_dir, store) = store();
    let old = generate_pair("example.com", "lb20261206", DkimState::Active, 1).unwrap();
    store.add_dkim_keys(old.clone()).unwrap();
    let signer = Signer::new(store.clone());
    let before = signed(&signer, MESSAGE);
    let all = store.dkim_keys("example.com").unwrap();
    let stem = next_stem(&all, 1_796_551_200);
    assert_eq!(stem, "lb20261206-2");
    let new = generate_pair("example.com", &stem, DkimState::Published, 2).unwrap();
    store.add_dkim_keys(new.clone()).unwrap();
    // Published keys do not sign.
    let during = signed(&signer, MESSAGE);
    assert_eq!(
        String::from_utf8_lossy(&during)
            .matches("s=lb20261206-2")
            .count(),
        0
    );
    // The switch is made by another process (the CLI), on its own connection.
    let cli = Store::open_embedded(_dir.path(), StoreOptions::default()).unwrap();
    let retired = cli
        .activate_dkim_keys(
            "example.com",
            &["lb20261206-2e".into(), "lb20261206-2r".into()],
        )
        .unwrap();
    drop(cli);
    assert_eq!(
        retired,
        vec!["lb20261206e".to_string(), "lb20261206r".to_string()]
    );
    let after = signed(&signer, MESSAGE);
    let text = String::from_utf8_lossy(&after);
    assert!(
        text.contains("s=lb20261206-2e;") && text.contains("s=lb20261206-2r;"),
        "{text}"
    );
    assert!(!text.contains("s=lb20261206e;"));
    // During the overlap both sets of records are published: old mail and new mail verify.
    let mut published = old.clone();
    published.extend(new.clone());
    for m in [&before, &after] {
        let r = verify(m, &published).await;
        assert!(
            r.len() == 2 && r.iter().all(|(_, r)| *r == DkimResult::Pass),
            "{r:?}"
        );
    }
    // A retired key cannot be activated again.
    assert!(store
        .activate_dkim_keys("example.com", &["lb20261206e".into()])
        .is_err());
    // Removing the domain removes its keys, and the signer notices.
    store.remove_domain("example.com").unwrap();
    assert_eq!(signer.sign(MESSAGE).unwrap(), None);
}

#[test]
fn records_and_zone_lines() {
    let pair = generate_pair("example.com", "lb20261206", DkimState::Active, 1).unwrap();
    let ed = record(&pair[0]);
    assert!(ed.starts_with("v=DKIM1; k=ed25519; p="), "{ed}");
    // 32 octets of key: 44 base64 characters.
    assert_eq!(ed.len(), "v=DKIM1; k=ed25519; p=".len() + 44);
    let rsa = record(&pair[1]);
    assert!(
        rsa.starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"),
        "{rsa}"
    );
    let line = zone_txt(&record_name(&pair[1]), &rsa);
    assert!(
        line.starts_with("lb20261206r._domainkey.example.com. 3600 IN TXT ( \""),
        "{line}"
    );
    let joined: String = line
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(joined, rsa);
    assert_eq!(
        zone_txt("example.com.", "v=spf1 mx -all"),
        "example.com. 3600 IN TXT \"v=spf1 mx -all\""
    );
    assert_eq!(pair_stem("lb20261206-2e"), "lb20261206-2");
    assert_eq!(ymd(0), "19700101");
    assert_eq!(ymd(1_796_551_200), "20261206");
}

#[test]
fn from_domain_is_the_a_label() {
    // RFC 6532 lets the From be UTF-8; keys are stored (and d= written) under the A-label.
    let m = "From: Ann <ann@Bücher.Example>\r\nSubject: x\r\n\r\nbody\r\n";
    assert_eq!(
        from_domain(m.as_bytes()).as_deref(),
        Some("xn--bcher-kva.example")
    );
    let m = b"From: a@XN--BCHER-KVA.example\r\n\r\n";
    assert_eq!(from_domain(m).as_deref(), Some("xn--bcher-kva.example"));
}

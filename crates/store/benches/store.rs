//! The store's append and read paths, before any protocol: a baseline for later work.
//! `cargo bench -p letterbox-store`. Appends are durable (fsynced), so their figures
//! depend on the disk; the concurrent case shows what group commit buys.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use letterbox_store::{Flags, NewMessage, QuotaLimit, Store, StoreOptions};
use std::sync::Arc;

fn message(i: usize) -> Arc<Vec<u8>> {
    let mut m = format!(
        "From: Bench <bench@example.com>\r\nTo: a@example.com\r\nSubject: message {i}\r\n\
         Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{i}@bench>\r\n\r\n"
    );
    while m.len() < 5000 {
        m.push_str("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n");
    }
    Arc::new(m.into_bytes())
}

fn new(i: usize) -> NewMessage {
    NewMessage {
        prefix: b"Delivered-To: a@example.com\r\n".to_vec(),
        body: message(i),
        flags: Flags::default(),
        keywords: vec![],
        internal_date: 1_700_000_000,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    // `INLINE_MAX=0 cargo bench -p letterbox-store` measures bodies as blob files.
    let opts = StoreOptions {
        inline_max: std::env::var("INLINE_MAX")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(letterbox_store::DEFAULT_INLINE_MAX),
        ..StoreOptions::default()
    };
    let store = Store::open_embedded(dir.path(), opts).unwrap();
    store.add_domain("example.com").unwrap();
    let hash = letterbox_store::password::hash("pw");
    let a = store
        .add_account("a@example.com", &hash, QuotaLimit::Unlimited)
        .unwrap();
    let inbox = store.mailbox(a.id, "INBOX").unwrap();
    let mut g = c.benchmark_group("store");
    g.sample_size(20);
    let mut i = 0;
    g.throughput(Throughput::Elements(1));
    g.bench_function("append 5KB (durable, one writer)", |b| {
        b.iter(|| {
            i += 1;
            store.append(inbox.id, new(i), true).unwrap()
        })
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("append 5KB x64 (durable, 8 threads, group commit)", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let s = store.clone();
                    std::thread::spawn(move || {
                        for k in 0..8 {
                            s.append(
                                inbox.id,
                                new(1_000_000 + t * 1000 + k + rand_offset()),
                                true,
                            )
                            .unwrap();
                        }
                    })
                })
                .collect();
            handles.into_iter().for_each(|h| h.join().unwrap());
        })
    });
    let uid = store.append(inbox.id, new(42), true).unwrap().uid;
    g.throughput(Throughput::Elements(1));
    g.bench_function("read whole message", |b| {
        b.iter(|| {
            store
                .open_message(inbox.id, uid)
                .unwrap()
                .read_all()
                .unwrap()
        })
    });
    g.bench_function("read stored structure", |b| {
        b.iter(|| store.parsed(inbox.id, uid).unwrap())
    });
    g.bench_function("list messages (SELECT)", |b| {
        b.iter(|| store.list_messages(inbox.id, false).unwrap())
    });
    g.finish();
}

fn rand_offset() -> usize {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The SMTP/LMTP/submission command-line handling and the message content readers (DATA
//! with dot-unstuffing, BDAT chunks, line-end normalisation) must never panic, hang or
//! keep more than their limit, whatever they are sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        letterbox_smtp::inbound::fuzz_command_line(line);
    }
    let max = (data.first().copied().unwrap_or(0) as u64) * 16;
    runtime().block_on(async {
        let t = Duration::from_secs(5);
        let budget = letterbox_proto::budget::Budget::new(1 << 30);
        let mut r = tokio::io::BufReader::with_capacity(7, data);
        if let Ok(letterbox_smtp::data::Content::Complete(body)) =
            letterbox_smtp::data::read_data(&mut r, max, t, &mut budget.reserve()).await
        {
            assert!(body.len() as u64 <= max + 2, "DATA kept more than its limit");
        }
        let mut r = tokio::io::BufReader::with_capacity(5, data);
        let mut kept = Vec::new();
        let size = data.len() as u64 / 2;
        let mut room = budget.reserve();
        let _ = letterbox_smtp::data::read_chunk(&mut r, size, Some((&mut kept, &mut room)), max, t).await;
        assert!(kept.len() as u64 <= max, "BDAT kept more than its limit");
    });
    let out = letterbox_smtp::data::normalize_line_ends(data.to_vec());
    assert!(out.len() >= data.len());
});

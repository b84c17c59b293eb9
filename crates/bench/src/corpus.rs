//! Deterministic messages. Every message carries `X-Bench-Id: <id>`; from the id alone the
//! exact octets are generated again, so whatever a server hands back is checked against
//! what was delivered: servers may only prepend trace headers (Return-Path, Received,
//! Delivered-To), so the retrieved message must end with the original.
//!
//! Ids: `d<n>` a 5 KB delivery message, `c<n>` a corpus message (2 KB..200 KB, a third
//! multipart with a base64 attachment), `b<n>` a big-mailbox message (~50 KB, a third
//! multipart; one in a hundred of each has the SUBJECT, FROM or body needle: see [`big`]).

use anyhow::{bail, Result};
use base64::Engine as _;

pub const NEEDLE: &str = "zanzibar";

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "meeting", "invoice", "report",
    "schedule", "the", "and", "of", "to", "a", "in", "for", "is",
];

/// xorshift64*: small, fast and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn word(&mut self) -> &'static str {
        WORDS[self.below(WORDS.len() as u64) as usize]
    }
}

fn headers(out: &mut String, id: &str, rng: &mut Rng, to: &str) {
    let s = rng.below(97);
    out.push_str(&format!(
        "From: Sender {s} <sender{s}@example.org>\r\nTo: {to}\r\nSubject: {} {} {id}\r\nDate: Mon, 1 Jan 2024 10:{:02}:{:02} +0000\r\nMessage-ID: <{id}.bench@example.org>\r\nX-Bench-Id: {id}\r\nMIME-Version: 1.0\r\n",
        rng.word(),
        rng.word(),
        rng.below(60),
        rng.below(60),
    ));
}

/// Text lines (CRLF, at most ~75 columns) up to about `size` octets; now and then a line
/// starting with a dot, to exercise dot-stuffing.
fn text(out: &mut String, rng: &mut Rng, size: usize) {
    let start = out.len();
    while out.len() - start < size {
        let mut line = String::new();
        if rng.below(50) == 0 {
            line.push_str(".. ");
        }
        while line.len() < 60 {
            line.push_str(rng.word());
            line.push(' ');
        }
        out.push_str(line.trim_end());
        out.push_str("\r\n");
    }
}

fn delivery(n: u64) -> Vec<u8> {
    let id = format!("d{n}");
    let mut rng = Rng::new(n ^ 0xD);
    let mut m = String::with_capacity(5200);
    headers(&mut m, &id, &mut rng, "bench@example.com");
    m.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    let body = 5000 - m.len();
    text(&mut m, &mut rng, body);
    m.into_bytes()
}

fn corpus(n: u64) -> Vec<u8> {
    let id = format!("c{n}");
    let mut rng = Rng::new(n ^ 0xC0);
    let mut m = String::new();
    headers(&mut m, &id, &mut rng, "bench@example.com");
    // Sizes: 60% 2..10 KB, 25% 10..50 KB, 15% 50..200 KB; a third are multipart.
    let r = rng.below(100);
    let size = if r < 60 {
        2_100 + rng.below(8_000)
    } else if r < 85 {
        10_000 + rng.below(40_000)
    } else {
        50_000 + rng.below(150_000)
    } as usize;
    if n % 3 != 1 {
        m.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
        let body = size.saturating_sub(m.len());
        text(&mut m, &mut rng, body);
    } else {
        let b = format!("=_bench_{n}");
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n--{b}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        ));
        text(&mut m, &mut rng, 1_000);
        let raw_len = size.saturating_sub(m.len() + 300) * 3 / 4;
        let raw: Vec<u8> = (0..raw_len).map(|_| rng.next() as u8).collect();
        let enc = base64::engine::general_purpose::STANDARD.encode(raw);
        m.push_str(&format!(
            "\r\n--{b}\r\nContent-Type: application/octet-stream; name=\"file{n}.bin\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"file{n}.bin\"\r\n\r\n"
        ));
        for chunk in enc.as_bytes().chunks(76) {
            m.push_str(std::str::from_utf8(chunk).unwrap_or(""));
            m.push_str("\r\n");
        }
        m.push_str(&format!("\r\n--{b}--\r\n"));
    }
    m.into_bytes()
}

/// Big-mailbox needles (issue 18): one message in a hundred of each kind, deterministic,
/// so the right answer of each search is known from the ids alone.
/// `UID SEARCH SUBJECT "quarterly forecast"` hits the `b<n>` with `n % 100 == SUBJECT_REM`.
pub const SUBJECT_WORDS: &str = "quarterly forecast";
pub const SUBJECT_REM: u64 = 37;
/// `UID SEARCH FROM "zora.quill@example.net"` hits `n % 100 == FROM_REM`.
pub const FROM_ADDR: &str = "zora.quill@example.net";
pub const FROM_REM: u64 = 53;
/// `UID SEARCH TEXT zanzibar` hits `n % 100 == TEXT_REM` (the word is in the body only).
pub const TEXT_REM: u64 = 71;

/// Date of `b<n>`: 2024-01-01 00:00:00 +0000 plus 67 s per message, so every message has
/// its own date and `SORT (DATE)` has exactly one right order.
pub fn big_date_secs(n: u64) -> u64 {
    1_704_067_200 + n * 67
}

/// RFC 5322 date-time of a Unix time (UTC).
fn rfc5322_date(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d} {} {y} {:02}:{:02}:{:02} +0000",
        WD[days.rem_euclid(7) as usize],
        MON[(mo - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A big-mailbox message (issue 18's box): about 50 KB (30..70 KB), a third multipart
/// with a base64 attachment; three in four are replies (In-Reply-To/References to the
/// first of their group of four) so THREAD REFERENCES has threads to build.
fn big(n: u64) -> Vec<u8> {
    let id = format!("b{n}");
    let mut rng = Rng::new(n ^ 0xB16);
    let mut m = String::with_capacity(72_000);
    let s = rng.below(97);
    if n % 100 == FROM_REM {
        m.push_str(&format!("From: Zora Quill <{FROM_ADDR}>\r\n"));
    } else {
        m.push_str(&format!("From: Sender {s} <sender{s}@example.org>\r\n"));
    }
    m.push_str("To: big@example.com\r\n");
    let (w1, w2) = (rng.word(), rng.word());
    let root = n - n % 4;
    let re = if root != n { "Re: " } else { "" };
    if n % 100 == SUBJECT_REM {
        m.push_str(&format!("Subject: {re}{SUBJECT_WORDS} {w1} {id}\r\n"));
    } else {
        m.push_str(&format!("Subject: {re}{w1} {w2} {id}\r\n"));
    }
    m.push_str(&format!(
        "Date: {}\r\nMessage-ID: <{id}.bench@example.org>\r\n",
        rfc5322_date(big_date_secs(n))
    ));
    if root != n {
        m.push_str(&format!(
            "In-Reply-To: <b{root}.bench@example.org>\r\nReferences: <b{root}.bench@example.org>\r\n"
        ));
    }
    m.push_str(&format!("X-Bench-Id: {id}\r\nMIME-Version: 1.0\r\n"));
    let size = (30_000 + rng.below(40_000)) as usize;
    let needle = |m: &mut String| {
        if n % 100 == TEXT_REM {
            m.push_str(&format!("the needle {NEEDLE} is here\r\n"));
        }
    };
    if n % 3 != 1 {
        m.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
        let body = size.saturating_sub(m.len());
        text(&mut m, &mut rng, body);
        needle(&mut m);
    } else {
        let b = format!("=_big_{n}");
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n--{b}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        ));
        text(&mut m, &mut rng, 2_000);
        needle(&mut m);
        let raw_len = size.saturating_sub(m.len() + 300) * 3 / 4;
        let raw: Vec<u8> = (0..raw_len).map(|_| rng.next() as u8).collect();
        let enc = base64::engine::general_purpose::STANDARD.encode(raw);
        m.push_str(&format!(
            "\r\n--{b}\r\nContent-Type: application/pdf; name=\"report{n}.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"report{n}.pdf\"\r\n\r\n"
        ));
        for chunk in enc.as_bytes().chunks(76) {
            m.push_str(std::str::from_utf8(chunk).unwrap_or(""));
            m.push_str("\r\n");
        }
        m.push_str(&format!("\r\n--{b}--\r\n"));
    }
    m.into_bytes()
}

/// The message with this id.
pub fn message(id: &str) -> Option<Vec<u8>> {
    let (kind, n) = id.split_at(1.min(id.len()));
    let n: u64 = n.parse().ok()?;
    match kind {
        "d" => Some(delivery(n)),
        "c" => Some(corpus(n)),
        "b" => Some(big(n)),
        _ => None,
    }
}

pub fn id(kind: char, n: u64) -> String {
    format!("{kind}{n}")
}

/// The `X-Bench-Id` of a retrieved message (searched in its header only).
pub fn bench_id(msg: &[u8]) -> Option<&str> {
    let end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(msg.len());
    let head = &msg[..end];
    let key = b"\r\nX-Bench-Id: ";
    let at = head.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &head[at..];
    let stop = rest.iter().position(|&b| b == b'\r').unwrap_or(rest.len());
    std::str::from_utf8(&rest[..stop]).ok()
}

/// Checks a retrieved message against the one delivered; returns its id.
pub fn verify(got: &[u8]) -> Result<String> {
    let Some(id) = bench_id(got) else {
        bail!(
            "retrieved message ({} octets) has no X-Bench-Id header",
            got.len()
        );
    };
    let Some(want) = message(id) else {
        bail!("retrieved message has an unknown X-Bench-Id {id:?}");
    };
    if !got.ends_with(&want) {
        bail!(
            "message {id} corrupted: {} octets retrieved, {} delivered, content differs",
            got.len(),
            want.len()
        );
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_verifiable() {
        for id in ["d1", "c0", "c1", "c7", "b4242"] {
            let m = message(id).unwrap();
            assert_eq!(m, message(id).unwrap());
            assert!(m.ends_with(b"\r\n"));
            let mut traced = b"Return-Path: <x@y>\r\nReceived: from a\r\n".to_vec();
            traced.extend_from_slice(&m);
            assert_eq!(verify(&traced).unwrap(), id);
            let mut bad = traced.clone();
            let at = bad.len() - 10;
            bad[at] ^= 1;
            assert!(verify(&bad).is_err());
        }
        let sizes: Vec<usize> = (0..60).map(|n| corpus(n).len()).collect();
        assert!(
            sizes.iter().all(|&s| (2_000..=210_000).contains(&s)),
            "{sizes:?}"
        );
        assert!(sizes.iter().any(|&s| s > 50_000));
        assert!((4900..5200).contains(&delivery(3).len()));
        let t = |n| String::from_utf8(big(n)).unwrap();
        assert!(t(TEXT_REM).contains(NEEDLE) && !t(TEXT_REM + 1).contains(NEEDLE));
        assert!(t(100 + SUBJECT_REM).contains(&format!("Subject: Re: {SUBJECT_WORDS} ")));
        assert!(!t(SUBJECT_REM + 1).contains(SUBJECT_WORDS));
        assert!(t(FROM_REM).contains(FROM_ADDR) && !t(FROM_REM + 1).contains(FROM_ADDR));
        assert!(t(6).contains("In-Reply-To: <b4.bench@example.org>"));
        assert!(t(0).contains("Date: Mon, 1 Jan 2024 00:00:00 +0000"));
        assert!(t(1290).contains("Date: Tue, 2 Jan 2024 00:00:30 +0000"));
        let sizes: Vec<usize> = (0..30).map(|n| big(n).len()).collect();
        assert!(sizes.iter().all(|&s| (30_000..72_000).contains(&s)), "{sizes:?}");
        assert!(t(1).contains("multipart/mixed") && !t(0).contains("multipart/mixed"));
        for id in ["b0", "b1", "b71", "b137"] {
            assert_eq!(verify(&message(id).unwrap()).unwrap(), id);
        }
    }
}

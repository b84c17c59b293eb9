//! The `attachments` workload (issue 15: single-instance storage of attachments).
//!
//! Every user gets 20 distinct messages over LMTP (one recipient a transaction): an
//! original, forwards and replies of a thread about a set of files, each with its own
//! text (naming the user, so no two messages anywhere are identical and whole-body
//! deduplication cannot help) and one or two of 5 shared attachments (base64, 100 KB to
//! 1.5 MB of random octets, so compression cannot help either). The figure is bytes on
//! disk (growth of the target's `data=` directory, allocated blocks, hard links once)
//! over the logical bytes delivered. Then each user's messages are read back over POP3
//! (one connection at a time, timed: MB/s) and must be exactly what was sent (after the
//! server's trace headers).

use crate::client::{Pop3, Smtp};
use crate::sys;
use crate::workloads::{Metric, Opts, State, Target};
use anyhow::{ensure, Context as _, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Messages per user.
pub const PER_USER: u64 = 20;
/// The shared attachments' sizes (raw octets before base64).
const SIZES: [usize; 5] = [100_000, 250_000, 400_000, 800_000, 1_500_000];
const NAMES: [&str; 5] = ["agenda.pdf", "photo.jpg", "budget.xlsx", "slides.pptx", "scan.pdf"];
const TYPES: [&str; 5] = [
    "application/pdf",
    "image/jpeg",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/pdf",
];

/// The 5 attachments, base64 in 76-column CRLF lines (what mail programs send).
pub fn attachments() -> Vec<Vec<u8>> {
    use base64::Engine as _;
    SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1);
            let raw: Vec<u8> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            let mut out = Vec::with_capacity(b64.len() + b64.len() / 38);
            for line in b64.as_bytes().chunks(76) {
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
            }
            out
        })
        .collect()
}

/// Message `i` (0..20) of user `u`: which attachments it carries (forwards carry one,
/// some messages two), and a text of its own.
pub fn message(att: &[Vec<u8>], user: &str, i: u64) -> Vec<u8> {
    let kind = match i % 4 {
        0 => "",
        1 | 3 => "Fwd: ",
        _ => "Re: ",
    };
    let mut which = vec![(i % 5) as usize];
    if i % 3 == 0 {
        which.push(((i + 2) % 5) as usize);
    }
    let b = format!("=_b{i}");
    let mut m = format!(
        "From: Dana Example <dana{i}@example.org>\r\nTo: {user}\r\n\
         Subject: {kind}Files for the quarterly review ({i})\r\n\
         Date: Mon, 7 Dec 2026 09:{:02}:00 +0000\r\n\
         Message-ID: <att{i}.{user}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n\
         --{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello {user},\r\n\r\nmessage {i} of the thread: here are the files again.\r\n\
         > earlier text quoted in the reply ({i})\r\n\r\n",
        i % 60
    )
    .into_bytes();
    for w in which {
        m.extend_from_slice(
            format!(
                "--{b}\r\nContent-Type: {}; name=\"{}\"\r\nContent-Transfer-Encoding: base64\r\n\
                 Content-Disposition: attachment; filename=\"{}\"\r\n\r\n",
                TYPES[w], NAMES[w], NAMES[w]
            )
            .as_bytes(),
        );
        m.extend_from_slice(&att[w]);
    }
    m.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    m
}

/// The `i` of `Message-ID: <att{i}.{user}>` in a retrieved message.
fn message_number(msg: &[u8], user: &str) -> Option<u64> {
    let key = b"Message-ID: <att";
    let at = msg.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &msg[at..];
    let dot = rest.iter().position(|&b| b == b'.')?;
    let tail = format!(".{user}>");
    rest[dot..].starts_with(tail.as_bytes()).then_some(())?;
    std::str::from_utf8(&rest[..dot]).ok()?.parse().ok()
}

/// Empties the inboxes, delivers, measures, checks every message over POP3.
pub async fn run(t: &Target, o: &Opts, _st: &mut State) -> Result<Vec<Metric>> {
    let lmtp = t.lmtp.context("no lmtp listener")?;
    let pop3 = t.pop3.context("no pop3 listener")?;
    let att = Arc::new(attachments());
    // Start from empty inboxes (a previous workload may have filled them).
    for u in 0..o.users {
        let mut p = Pop3::login(pop3, &o.user(u), &o.password).await?;
        let (n, _) = p.stat().await?;
        for i in 1..=n {
            p.cmd(&format!("DELE {i}")).await?;
        }
        p.quit().await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dir = t.data.clone();
    let before = dir.as_deref().map(sys::disk_usage);
    let mut set = JoinSet::new();
    let sessions = o.sessions.max(1) as u64;
    for s in 0..sessions {
        let (o, att) = (o.clone(), att.clone());
        set.spawn(async move {
            let mut c = Smtp::connect(lmtp, true).await?;
            let mut k = s;
            while k < o.users * PER_USER {
                let (u, i) = (k / PER_USER, k % PER_USER);
                let user = o.user(u);
                let msg = message(&att, &user, i);
                c.deliver("dana@example.org", std::slice::from_ref(&user), &msg)
                    .await
                    .with_context(|| format!("message {i} to {user}"))?;
                k += sessions;
            }
            c.quit().await
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    // Let the servers settle (WAL checkpoints, index writes) before measuring.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let logical: u64 = (0..o.users)
        .flat_map(|u| (0..PER_USER).map(move |i| (u, i)))
        .map(|(u, i)| message(&att, &o.user(u), i).len() as u64)
        .sum();
    let mut out = vec![crate::workloads::info("logical MiB", logical as f64 / 1048576.0)];
    if let (Some(d), Some(b)) = (dir, before) {
        let grown = sys::disk_usage(&d).saturating_sub(b);
        out.push(crate::workloads::m("on disk MiB", grown as f64 / 1048576.0, false));
        out.push(crate::workloads::m("disk/logical", grown as f64 / logical as f64, false));
    }
    // Every message back, exact; the read timed (one connection, one user after the
    // other: what a POP3 client downloading its mail sees).
    let start = std::time::Instant::now();
    let mut octets = 0u64;
    for u in 0..o.users {
        let user = o.user(u);
        let mut p = Pop3::login(pop3, &user, &o.password).await?;
        let (n, _) = p.stat().await?;
        ensure!(n == PER_USER, "{user}: {n} messages stored, {PER_USER} delivered");
        // Concurrent sessions deliver a user's messages in any order: each is known by
        // its Message-ID, and each must be there once.
        let mut seen = vec![false; PER_USER as usize];
        for n in 1..=PER_USER {
            let got = p.multi(&format!("RETR {n}")).await?;
            octets += got.len() as u64;
            let i = message_number(&got, &user)
                .filter(|&i| i < PER_USER)
                .with_context(|| format!("{user}: message {n} has no Message-ID of ours"))?;
            ensure!(!seen[i as usize], "{user}: message {i} stored twice");
            seen[i as usize] = true;
            ensure!(
                got.ends_with(&message(&att, &user, i)),
                "{user}: message {n} differs from message {i} as delivered"
            );
        }
        p.quit().await?;
    }
    let secs = start.elapsed().as_secs_f64();
    out.push(crate::workloads::m("POP3 RETR all, MB/s", octets as f64 / 1e6 / secs, true));
    Ok(out)
}

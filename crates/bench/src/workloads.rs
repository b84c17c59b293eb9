//! The workloads of issue 8. Each runs against one target (server) and returns named
//! metrics, or an error when anything read back is missing or wrong (then the table shows
//! FAIL for that server, never a number).

use crate::client::{
    imap_code_number, imap_exists, imap_fetch_uid, imap_search, imap_status_messages,
    imap_vanished, Imap, ImapResp, Pop3, Smtp,
};
use std::collections::BTreeMap;
use crate::corpus::{self, FROM_ADDR, NEEDLE, SUBJECT_WORDS};
use crate::sys;
use anyhow::{anyhow, bail, ensure, Context as _, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// A server under test: one node, or several nodes on one shared store (issue 17), whose
/// clients the workloads spread over the nodes.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub name: String,
    /// Node A's listeners (the first of each list).
    pub lmtp: Option<SocketAddr>,
    pub smtp: Option<SocketAddr>,
    pub pop3: Option<SocketAddr>,
    pub imap: Option<SocketAddr>,
    /// Every node's listeners, node A first (`imap=A+B`): empty when not given.
    pub lmtp_all: Vec<SocketAddr>,
    pub smtp_all: Vec<SocketAddr>,
    pub imap_all: Vec<SocketAddr>,
    /// The server's (master) process; its descendants count too.
    pub pid: Option<u32>,
    /// The other nodes' processes (`pid=A+B`: B and on).
    pub more_pids: Vec<u32>,
    /// The database server the nodes share (PostgreSQL's postmaster; its backends are
    /// its children): its CPU is reported apart from the nodes'.
    pub db_pid: Option<u32>,
    /// Where it keeps mail (for the storage ratio).
    pub data: Option<PathBuf>,
    /// A file holding the server's pid (read when needed: a restart changes it).
    pub pidfile: Option<PathBuf>,
    /// A program that restarts the server and returns once it listens again (the big
    /// workload's cold figures).
    pub restart: Option<PathBuf>,
}

impl Target {
    /// `name=Letterbox,lmtp=127.0.0.1:2424,smtp=...,pop3=...,imap=...,pid=123,data=/dir`;
    /// several nodes: `lmtp=A+B,smtp=A+B,imap=A+B,pid=PA+PB,db=PID` (pop3 on node A).
    pub fn parse(spec: &str) -> Result<Target> {
        let mut t = Target::default();
        for part in spec.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| anyhow!("target: {part:?} is not key=value"))?;
            let addrs = || -> Result<Vec<SocketAddr>> {
                v.split('+')
                    .map(|a| a.parse::<SocketAddr>().with_context(|| format!("target {k}")))
                    .collect()
            };
            match k {
                "name" => t.name = v.to_string(),
                "lmtp" => t.lmtp_all = addrs()?,
                "smtp" => t.smtp_all = addrs()?,
                "pop3" => t.pop3 = addrs()?.first().copied(),
                "imap" => t.imap_all = addrs()?,
                "pid" => {
                    let mut pids = v.split('+').map(|p| p.parse::<u32>());
                    t.pid = pids.next().transpose()?;
                    t.more_pids = pids.collect::<Result<_, _>>()?;
                }
                "db" => t.db_pid = Some(v.parse()?),
                "data" => t.data = Some(v.into()),
                "pidfile" => t.pidfile = Some(v.into()),
                "restart" => t.restart = Some(v.into()),
                _ => bail!("target: unknown key {k:?}"),
            }
        }
        t.lmtp = t.lmtp_all.first().copied();
        t.smtp = t.smtp_all.first().copied();
        t.imap = t.imap_all.first().copied();
        ensure!(!t.name.is_empty(), "target: name= is required");
        Ok(t)
    }

    /// The server's current pid: from `pidfile=` if given, else `pid=`.
    pub fn current_pid(&self) -> Option<u32> {
        self.pidfile
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| s.trim().parse().ok())
            .or(self.pid)
    }

    /// Every node's processes and their descendants.
    pub fn node_processes(&self) -> Vec<u32> {
        let mut v = Vec::new();
        for p in self.current_pid().iter().chain(&self.more_pids) {
            v.extend(sys::process_tree(*p));
        }
        v
    }

    /// CPU seconds used so far by the nodes and by the database server (if `db=`).
    pub fn cpu(&self) -> (f64, Option<f64>) {
        let nodes = sys::cpu_secs(&self.node_processes());
        let db = self.db_pid.map(|p| sys::cpu_secs(&sys::process_tree(p)));
        (nodes, db)
    }

    /// How many nodes serve this target.
    pub fn nodes(&self) -> usize {
        self.imap_all.len().max(self.lmtp_all.len()).max(1)
    }

    /// Node `k`'s address in `list` (clients spread round robin), or the first's.
    pub fn at(list: &[SocketAddr], k: usize) -> Option<SocketAddr> {
        (!list.is_empty()).then(|| list[k % list.len()])
    }

    fn need(&self, a: Option<SocketAddr>, what: &str) -> Result<SocketAddr> {
        a.ok_or_else(|| anyhow!("{} has no {what} listener", self.name))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub users: u64,
    pub domain: String,
    pub password: String,
    pub sessions: usize,
    pub deliver_msgs: u64,
    /// Deliveries per second at most over all sessions; 0: unthrottled.
    pub deliver_rate: f64,
    pub corpus_msgs: u64,
    /// Recipients per LMTP transaction when the corpus is delivered.
    pub storage_rcpts: usize,
    pub pop3_clients: usize,
    /// Client processes the POP3 connections are spread over.
    pub pop3_procs: usize,
    pub imap_clients: usize,
    pub imap_secs: u64,
    pub big_msgs: u64,
    pub big_writers: usize,
    /// How the big mailbox was filled: `false` by APPEND here (timed: the APPEND row),
    /// `true` by the harness before the servers started (`bench/run --big-fill import`:
    /// the same `b<n>` messages imported into Letterbox and placed in Dovecot's
    /// Maildir), only checked here.
    pub big_imported: bool,
    pub idle: usize,
    /// Deliveries timed to the IDLE sessions, one after the other.
    pub idle_pushes: usize,
    /// IDLE sessions logging in at once (and warm-up logins at once).
    pub idle_concurrency: usize,
}

impl Opts {
    pub fn user(&self, i: u64) -> String {
        format!("user{}@{}", i + 1, self.domain)
    }
    pub fn big_user(&self) -> String {
        format!("big@{}", self.domain)
    }
}

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    /// `None`: a figure for information, no direction.
    pub higher_better: Option<bool>,
    /// The command measured gave a wrong answer or was refused: FAIL in the table, with
    /// this reason, never a time.
    pub fail: Option<String>,
}

pub(crate) fn m(name: &str, value: f64, higher_better: bool) -> Metric {
    Metric {
        name: name.to_string(),
        value,
        higher_better: Some(higher_better),
        fail: None,
    }
}

pub(crate) fn info(name: &str, value: f64) -> Metric {
    Metric {
        name: name.to_string(),
        value,
        higher_better: None,
        fail: None,
    }
}

/// Per-target state kept between repetitions.
#[derive(Debug, Default)]
pub struct State {
    pub corpus_ready: bool,
    /// The big mailbox is full (filled or checked once per run).
    pub big_loaded: bool,
    /// Its APPEND rate, when this run filled it by APPEND.
    pub big_append_rate: Option<f64>,
    /// Its contents were checked against the generator (once per run).
    pub big_checked: bool,
    pub next_delivery: u64,
    /// Messages of the big mailbox the resync workload expunged.
    pub big_expunged: u64,
    /// Resync rounds run (each changes a different 1%).
    pub resync_round: u64,
}

async fn join_all<T: 'static>(mut set: JoinSet<Result<T>>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                if first_err.is_none() {
                    first_err = Some(e);
                    set.abort_all();
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                first_err.get_or_insert(anyhow!("task failed: {e}"));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// POP3 STAT of every user's INBOX.
async fn counts(t: &Target, o: &Opts) -> Result<Vec<u64>> {
    let addr = t.need(t.pop3, "pop3")?;
    let sem = Arc::new(Semaphore::new(10));
    let mut set = JoinSet::new();
    for u in 0..o.users {
        let (user, pass, sem) = (o.user(u), o.password.clone(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire().await?;
            let mut p = Pop3::login(addr, &user, &pass)
                .await
                .with_context(|| format!("POP3 login {user}"))?;
            let (n, _) = p.stat().await?;
            p.quit().await?;
            Ok((u, n))
        });
    }
    let mut v = join_all(set).await?;
    v.sort();
    Ok(v.into_iter().map(|(_, n)| n).collect())
}

/// Deletes everything in every user's INBOX (POP3 DELE), so a workload starts known.
async fn empty_inboxes(t: &Target, o: &Opts) -> Result<()> {
    let addr = t.need(t.pop3, "pop3")?;
    let sem = Arc::new(Semaphore::new(10));
    let mut set = JoinSet::new();
    for u in 0..o.users {
        let (user, pass, sem) = (o.user(u), o.password.clone(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire().await?;
            let mut p = Pop3::login(addr, &user, &pass).await?;
            let (n, _) = p.stat().await?;
            for i in 1..=n {
                p.cmd(&format!("DELE {i}")).await?;
            }
            p.quit().await?;
            let mut p = Pop3::login(addr, &user, &pass).await?;
            let (n, _) = p.stat().await?;
            ensure!(n == 0, "{user}: {n} messages left after DELE and QUIT");
            p.quit().await
        });
    }
    join_all(set).await?;
    Ok(())
}

/// Workload 1: 5 KB messages over LMTP or SMTP, `sessions` connections, one recipient per
/// message spread over the users; then every user's count checked.
pub async fn delivery(t: &Target, o: &Opts, st: &mut State, lmtp: bool) -> Result<Vec<Metric>> {
    let addrs = if lmtp { &t.lmtp_all } else { &t.smtp_all };
    let what = if lmtp { "lmtp" } else { "smtp" };
    t.need(Target::at(addrs, 0), what)?;
    let before = counts(t, o).await.context("counting before delivery")?;
    let base = st.next_delivery;
    st.next_delivery += o.deliver_msgs;
    let n = o.deliver_msgs;
    let sessions = o.sessions as u64;
    let has_pid = t.current_pid().is_some();
    let cpu_before = t.cpu();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for s in 0..sessions {
        let o = o.clone();
        // Sessions spread over the nodes, round robin.
        let addr = t.need(Target::at(addrs, s as usize), what)?;
        set.spawn(async move {
            let mut c = Smtp::connect(addr, lmtp).await?;
            let mut i = s;
            while i < n {
                // --deliver-rate: message i is not sent before its slot.
                if o.deliver_rate > 0.0 {
                    let due = start + std::time::Duration::from_secs_f64(i as f64 / o.deliver_rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let msg = corpus::message(&corpus::id('d', base + i)).unwrap_or_default();
                let rcpt = o.user(i % o.users);
                c.deliver("sender@example.org", std::slice::from_ref(&rcpt), &msg)
                    .await
                    .with_context(|| format!("message {i} to {rcpt}"))?;
                i += sessions;
            }
            c.quit().await
        });
    }
    join_all(set).await?;
    let secs = start.elapsed().as_secs_f64();
    let cpu_after = t.cpu();
    let after = counts(t, o).await.context("counting after delivery")?;
    for u in 0..o.users {
        let want = (0..n).filter(|i| i % o.users == u).count() as u64;
        let got = after[u as usize] - before[u as usize].min(after[u as usize]);
        ensure!(
            got == want,
            "{}: {got} new messages stored, {want} delivered",
            o.user(u)
        );
    }
    // And the content of one per user.
    let pop = t.need(t.pop3, "pop3")?;
    for u in 0..o.users.min(n) {
        let mut p = Pop3::login(pop, &o.user(u), &o.password).await?;
        let last = after[u as usize];
        let msg = p.multi(&format!("RETR {last}")).await?;
        corpus::verify(&msg).with_context(|| format!("{} message {last}", o.user(u)))?;
        p.quit().await?;
    }
    let proto = if lmtp { "LMTP" } else { "SMTP" };
    let mut v = vec![m(&format!("{proto} msgs/s"), n as f64 / secs, true)];
    // The server's own CPU per message (its process tree; rspamd, a separate process,
    // is not in it): Letterbox's cost of filtering, apart from the scanner's.
    let per_msg = |a: f64, b: f64| (a - b).max(0.0) * 1000.0 / n.max(1) as f64;
    if has_pid {
        v.push(m(&format!("{proto} server CPU ms/msg"), per_msg(cpu_after.0, cpu_before.0), false));
    }
    // The shared database's own CPU (issue 17): what one delivery costs the primary.
    if let (Some(a), Some(b)) = (cpu_after.1, cpu_before.1) {
        v.push(m(&format!("{proto} database CPU ms/msg"), per_msg(a, b), false));
    }
    Ok(v)
}

/// Delivers the corpus (`corpus_msgs` messages) to every user over LMTP,
/// `storage_rcpts` recipients a transaction, `sessions` connections.
async fn deliver_corpus(t: &Target, o: &Opts) -> Result<()> {
    let addr = t.need(t.lmtp, "lmtp")?;
    let mut set = JoinSet::new();
    let sessions = o.sessions as u64;
    for s in 0..sessions {
        let o = o.clone();
        set.spawn(async move {
            let mut c = Smtp::connect(addr, true).await?;
            let all: Vec<String> = (0..o.users).map(|u| o.user(u)).collect();
            let mut i = s;
            while i < o.corpus_msgs {
                let msg = corpus::message(&corpus::id('c', i)).unwrap_or_default();
                for chunk in all.chunks(o.storage_rcpts.max(1)) {
                    c.deliver("list@example.org", chunk, &msg)
                        .await
                        .with_context(|| format!("corpus message {i}"))?;
                }
                i += sessions;
            }
            c.quit().await
        });
    }
    join_all(set).await?;
    Ok(())
}

fn corpus_bytes(o: &Opts) -> u64 {
    (0..o.corpus_msgs)
        .map(|i| corpus::message(&corpus::id('c', i)).map_or(0, |m| m.len() as u64))
        .sum()
}

/// Workload 6 (and the set-up of 2 and 3): empty inboxes, the corpus delivered to every
/// user; bytes on disk (growth of the mail directory) over logical bytes.
pub async fn storage(t: &Target, o: &Opts, st: &mut State) -> Result<Vec<Metric>> {
    empty_inboxes(t, o).await.context("emptying inboxes")?;
    let dir = t.data.clone();
    let before = dir.as_deref().map(sys::disk_usage);
    deliver_corpus(t, o).await?;
    let c = counts(t, o).await?;
    for (u, n) in c.iter().enumerate() {
        ensure!(
            *n == o.corpus_msgs,
            "{}: {n} messages stored, {} delivered",
            o.user(u as u64),
            o.corpus_msgs
        );
    }
    st.corpus_ready = true;
    // Let the servers settle (WAL checkpoints, index writes) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let logical = corpus_bytes(o) * o.users;
    let mut out = vec![info("logical MiB", logical as f64 / 1048576.0)];
    if let (Some(d), Some(b)) = (dir, before) {
        let after = sys::disk_usage(&d);
        let grown = after.saturating_sub(b);
        out.push(m("on disk MiB", grown as f64 / 1048576.0, false));
        out.push(m("disk/logical", grown as f64 / logical as f64, false));
    }
    Ok(out)
}

async fn ensure_corpus(t: &Target, o: &Opts, st: &mut State) -> Result<()> {
    if !st.corpus_ready {
        storage(t, o, st).await.context("setting up the corpus")?;
    }
    Ok(())
}

/// Downloads the INBOX of each of `users` (LIST, RETR every message) over `clients`
/// connections; every message is checked against the corpus (generated once, so the
/// check costs a comparison, not a generation) and every corpus message must be there.
/// Returns (octets, messages).
pub async fn pop3_download(
    addr: SocketAddr,
    o: &Opts,
    users: Vec<u64>,
    clients: usize,
) -> Result<(u64, u64)> {
    let want: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..o.corpus_msgs)
            .map(|i| corpus::message(&corpus::id('c', i)).unwrap_or_default())
            .collect(),
    );
    let users = Arc::new(users);
    let next = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for _ in 0..clients.max(1) {
        let (o, next, users, want) = (o.clone(), next.clone(), users.clone(), want.clone());
        set.spawn(async move {
            let (mut bytes, mut msgs) = (0u64, 0u64);
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&u) = users.get(k) else {
                    return Ok((bytes, msgs));
                };
                let user = o.user(u);
                let mut p = Pop3::login(addr, &user, &o.password)
                    .await
                    .with_context(|| format!("POP3 login {user}"))?;
                let list = p.list().await?;
                let mut seen = vec![0u32; o.corpus_msgs as usize];
                let mut msg = Vec::new();
                for (n, size) in list {
                    msg.clear();
                    p.multi_into(&format!("RETR {n}"), &mut msg).await?;
                    ensure!(
                        msg.len() as u64 == size,
                        "{user} message {n}: LIST said {size} octets, RETR sent {}",
                        msg.len()
                    );
                    let id = corpus::bench_id(&msg)
                        .ok_or_else(|| anyhow!("{user} message {n}: no X-Bench-Id"))?;
                    let k = id
                        .strip_prefix('c')
                        .and_then(|k| k.parse::<usize>().ok())
                        .filter(|k| *k < want.len())
                        .ok_or_else(|| anyhow!("{user} message {n}: unexpected id {id:?}"))?;
                    ensure!(
                        msg.ends_with(&want[k]),
                        "{user} message {n} ({id}) corrupted"
                    );
                    seen[k] += 1;
                    bytes += msg.len() as u64;
                    msgs += 1;
                }
                if let Some(k) = seen.iter().position(|&s| s == 0) {
                    bail!("{user}: corpus message c{k} missing");
                }
                p.quit().await?;
            }
        });
    }
    let r = join_all(set).await?;
    Ok((r.iter().map(|x| x.0).sum(), r.iter().map(|x| x.1).sum()))
}

/// Workload 2: `pop3_clients` connections download every user's INBOX (RETR all), each
/// message checked against the corpus, nothing missing. With `pop3_procs` > 1 the
/// connections are spread over that many client processes (`letterbox-bench
/// pop3-worker`, each taking every `pop3_procs`-th user), started and made ready before
/// the clock starts, so the client is not what limits the figure (issue 18).
pub async fn pop3(t: &Target, o: &Opts, st: &mut State) -> Result<Vec<Metric>> {
    ensure_corpus(t, o, st).await?;
    let addr = t.need(t.pop3, "pop3")?;
    let procs = o.pop3_procs.max(1);
    let (bytes, msgs, secs) = if procs == 1 {
        let start = Instant::now();
        let (b, n) = pop3_download(addr, o, (0..o.users).collect(), o.pop3_clients).await?;
        (b, n, start.elapsed().as_secs_f64())
    } else {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let exe = std::env::current_exe()?;
        let mut kids = Vec::new();
        for k in 0..procs {
            let clients = (o.pop3_clients / procs + usize::from(k < o.pop3_clients % procs)).max(1);
            let mut c = tokio::process::Command::new(&exe)
                .arg("pop3-worker")
                .args(["--addr", &addr.to_string()])
                .args(["--users", &o.users.to_string()])
                .args(["--domain", &o.domain, "--password", &o.password])
                .args(["--corpus-msgs", &o.corpus_msgs.to_string()])
                .args(["--index", &k.to_string(), "--procs", &procs.to_string()])
                .args(["--clients", &clients.to_string()])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("starting a pop3-worker")?;
            let stdin = c.stdin.take().ok_or_else(|| anyhow!("worker stdin"))?;
            let out = BufReader::new(c.stdout.take().ok_or_else(|| anyhow!("worker stdout"))?);
            kids.push((c, stdin, out.lines()));
        }
        for (_, _, lines) in &mut kids {
            let l = lines.next_line().await?.unwrap_or_default();
            ensure!(l == "ready", "pop3-worker said {l:?} instead of ready");
        }
        let start = Instant::now();
        for (_, stdin, _) in &mut kids {
            stdin.write_all(b"go\n").await?;
            stdin.flush().await?;
        }
        let (mut b, mut n) = (0u64, 0u64);
        for (_, _, lines) in &mut kids {
            let l = lines.next_line().await?.unwrap_or_default();
            let mut it = l.split_whitespace();
            match (it.next().and_then(|x| x.parse::<u64>().ok()), it.next().and_then(|x| x.parse::<u64>().ok())) {
                (Some(x), Some(y)) => {
                    b += x;
                    n += y;
                }
                _ => bail!("pop3-worker failed: {l}"),
            }
        }
        let secs = start.elapsed().as_secs_f64();
        for (mut c, _, _) in kids {
            c.wait().await?;
        }
        (b, n, secs)
    };
    let want = o.users * o.corpus_msgs;
    ensure!(msgs == want, "{msgs} messages downloaded, {want} expected");
    Ok(vec![
        m("MB/s", bytes as f64 / 1e6 / secs, true),
        m("msgs/s", msgs as f64 / secs, true),
    ])
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Workload 3: `imap_clients` clients loop login, select, fetch headers, fetch a body,
/// store flags, expunge, append, logout for `imap_secs` seconds.
pub async fn imap_mixed(t: &Target, o: &Opts, st: &mut State) -> Result<Vec<Metric>> {
    ensure_corpus(t, o, st).await?;
    t.need(t.imap, "imap")?;
    let cpu_before = t.cpu();
    let deadline = Instant::now() + Duration::from_secs(o.imap_secs);
    let start = Instant::now();
    let mut set = JoinSet::new();
    for c in 0..o.imap_clients as u64 {
        let o = o.clone();
        // Clients spread over the nodes, round robin.
        let addr = t.need(Target::at(&t.imap_all, c as usize), "imap")?;
        set.spawn(async move {
            // (operation index, seconds)
            let mut lat: Vec<(usize, f64)> = Vec::new();
            let mut rng = corpus::Rng::new(c + 77);
            let mut u = c;
            while Instant::now() < deadline {
                let user = o.user(u % o.users);
                u += o.imap_clients as u64;
                macro_rules! op {
                    ($k:expr, $e:expr) => {{
                        let t0 = Instant::now();
                        let r = $e.await.with_context(|| user.clone())?;
                        lat.push(($k, t0.elapsed().as_secs_f64()));
                        r
                    }};
                }
                let mut i = op!(0, Imap::login(addr, &user, &o.password));
                let sel = op!(1, i.cmd("SELECT INBOX"));
                let n = sel
                    .lines
                    .iter()
                    .find_map(|l| imap_exists(&l.text))
                    .ok_or_else(|| anyhow!("SELECT without EXISTS"))?;
                ensure!(n > 0, "{user}: INBOX is empty");
                let lo = n.saturating_sub(19).max(1);
                let h = op!(2, i.cmd(&format!(
                    "FETCH {lo}:{n} (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])"
                )));
                let fetched = h.lines.iter().filter(|l| l.literals.len() == 1).count() as u64;
                ensure!(
                    fetched == n - lo + 1,
                    "{user}: FETCH headers returned {fetched} of {}",
                    n - lo + 1
                );
                let k = 1 + rng.below(n);
                let b = op!(3, i.cmd(&format!("FETCH {k} (UID BODY.PEEK[])")));
                let body = b
                    .lines
                    .iter()
                    .find_map(|l| l.literals.first())
                    .ok_or_else(|| anyhow!("{user}: FETCH {k} BODY[] returned no literal"))?;
                let id = corpus::verify(body).with_context(|| format!("{user} message {k}"))?;
                op!(4, i.cmd("STORE 1 +FLAGS.SILENT (\\Seen \\Deleted)"));
                let e = op!(5, i.cmd("EXPUNGE"));
                ensure!(
                    e.lines.iter().any(|l| l.text.starts_with(b"* 1 EXPUNGE")),
                    "{user}: EXPUNGE did not expunge message 1"
                );
                let again = corpus::message(&id).unwrap_or_default();
                op!(6, i.append("INBOX", "\\Seen", &again));
                op!(7, i.logout());
            }
            Ok(lat)
        });
    }
    let r = join_all(set).await?;
    let secs = start.elapsed().as_secs_f64();
    let cpu_after = t.cpu();
    let all: Vec<(usize, f64)> = r.into_iter().flatten().collect();
    let mut lat: Vec<f64> = all.iter().map(|x| x.1).collect();
    lat.sort_by(f64::total_cmp);
    let mut out = vec![
        m("ops/s", lat.len() as f64 / secs, true),
        m("p50 ms", pct(&lat, 0.5) * 1e3, false),
        m("p99 ms", pct(&lat, 0.99) * 1e3, false),
    ];
    let per_op = |a: f64, b: f64| (a - b).max(0.0) * 1000.0 / lat.len().max(1) as f64;
    if t.current_pid().is_some() {
        out.push(m("server CPU ms/op", per_op(cpu_after.0, cpu_before.0), false));
    }
    if let (Some(a), Some(b)) = (cpu_after.1, cpu_before.1) {
        out.push(m("database CPU ms/op", per_op(a, b), false));
    }
    const OPS: [&str; 8] = [
        "LOGIN",
        "SELECT",
        "FETCH headers",
        "FETCH body",
        "STORE",
        "EXPUNGE",
        "APPEND",
        "LOGOUT",
    ];
    for (k, name) in OPS.iter().enumerate() {
        let mut v: Vec<f64> = all.iter().filter(|x| x.0 == k).map(|x| x.1).collect();
        v.sort_by(f64::total_cmp);
        out.push(m(&format!("{name} p50 ms"), pct(&v, 0.5) * 1e3, false));
    }
    Ok(out)
}

/// Fills the big mailbox once per run (emptied first): `big_msgs` messages by APPEND
/// over `big_writers` connections; the rate is the `big` workload's APPEND figure. With
/// `big_imported` the box was filled before the server started: only its count is
/// checked here (every answer is checked later against the key read from the box).
async fn load_big(addr: SocketAddr, o: &Opts, st: &mut State) -> Result<()> {
    if st.big_loaded {
        return Ok(());
    }
    let user = o.big_user();
    let n = o.big_msgs;
    let mut i = Imap::login(addr, &user, &o.password).await?;
    let s = i.cmd("STATUS INBOX (MESSAGES)").await?;
    let have = s
        .lines
        .iter()
        .find_map(|l| imap_status_messages(&l.text))
        .ok_or_else(|| anyhow!("STATUS without MESSAGES"))?;
    if o.big_imported {
        i.logout().await?;
        ensure!(
            have == n,
            "{user}'s INBOX holds {have} messages, {n} were imported before the start"
        );
        st.big_loaded = true;
        return Ok(());
    }
    if have > 0 {
        i.cmd("SELECT INBOX").await?;
        i.cmd("STORE 1:* +FLAGS.SILENT (\\Deleted)").await?;
        i.cmd("EXPUNGE").await?;
    }
    i.logout().await?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..o.big_writers {
        let (user, pass, next) = (user.clone(), o.password.clone(), next.clone());
        set.spawn(async move {
            let mut i = Imap::login(addr, &user, &pass).await?;
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    break;
                }
                let msg = corpus::message(&corpus::id('b', k)).unwrap_or_default();
                i.append("INBOX", "", &msg)
                    .await
                    .with_context(|| format!("APPEND {k}"))?;
            }
            i.logout().await
        });
    }
    join_all(set).await?;
    st.big_append_rate = Some(n as f64 / start.elapsed().as_secs_f64());
    st.big_loaded = true;
    Ok(())
}

/// The big-mailbox commands (issues 8 and 18), in the order a client opening the box
/// sends them: (metric name, command). The searches hit 1% each (see `corpus::big`).
fn big_commands() -> Vec<(&'static str, String)> {
    vec![
        ("SELECT", "SELECT INBOX".into()),
        ("FETCH 1:* FLAGS", "FETCH 1:* (FLAGS)".into()),
        (
            "FETCH 1:* FLAGS INTERNALDATE RFC822.SIZE ENVELOPE",
            "FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)".into(),
        ),
        ("FETCH 1:* BODYSTRUCTURE", "FETCH 1:* (BODYSTRUCTURE)".into()),
        (
            "UID SEARCH SUBJECT",
            format!("UID SEARCH SUBJECT \"{SUBJECT_WORDS}\""),
        ),
        ("UID SEARCH FROM", format!("UID SEARCH FROM \"{FROM_ADDR}\"")),
        ("UID SEARCH TEXT", format!("UID SEARCH TEXT {NEEDLE}")),
        ("UID SORT (DATE)", "UID SORT (DATE) UTF-8 ALL".into()),
        (
            "UID THREAD REFERENCES",
            "UID THREAD REFERENCES UTF-8 ALL".into(),
        ),
    ]
}

/// The answer key of the big mailbox: UID -> n of its `b<n>` message, read with
/// `UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (X-BENCH-ID)])`.
async fn big_uids(addr: SocketAddr, o: &Opts) -> Result<BTreeMap<u64, u64>> {
    let mut i = Imap::login(addr, &o.big_user(), &o.password).await?;
    i.cmd("EXAMINE INBOX").await?;
    let f = i
        .cmd("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (X-BENCH-ID)])")
        .await?;
    i.logout().await?;
    let mut map = BTreeMap::new();
    for l in &f.lines {
        let (Some(uid), Some(lit)) = (imap_fetch_uid(&l.text), l.literals.first()) else {
            continue;
        };
        let s = String::from_utf8_lossy(lit).to_ascii_lowercase();
        let n = s
            .find("x-bench-id:")
            .and_then(|k| s[k + 11..].trim_start().strip_prefix('b'))
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("UID {uid}: no X-Bench-Id b<n> in {s:?}"))?;
        map.insert(uid, n);
    }
    Ok(map)
}

/// The box holds what was put in, once per run (APPENDed or imported alike): with
/// nothing expunged yet, each of `b0`..`b<n-1>` exactly once; and a few whole messages
/// (the first, a multipart one, the last by UID) end with the generated octets.
async fn big_check_box(
    addr: SocketAddr,
    o: &Opts,
    key: &BTreeMap<u64, u64>,
    complete: bool,
) -> Result<()> {
    if complete {
        let mut ns: Vec<u64> = key.values().copied().collect();
        ns.sort_unstable();
        let missing = (0..o.big_msgs)
            .filter(|k| ns.binary_search(k).is_err())
            .count();
        ns.dedup();
        ensure!(
            missing == 0 && ns.len() == key.len(),
            "the box is not b0..b{}: {missing} missing, {} twice",
            o.big_msgs.saturating_sub(1),
            key.len() - ns.len()
        );
    }
    let mut uids: Vec<u64> = Vec::new();
    uids.extend(key.keys().next());
    uids.extend(key.iter().find(|(_, b)| *b % 3 == 1).map(|(u, _)| u));
    uids.extend(key.keys().next_back());
    let mut i = Imap::login(addr, &o.big_user(), &o.password).await?;
    i.cmd("EXAMINE INBOX").await?;
    for uid in uids {
        let r = i.cmd(&format!("UID FETCH {uid} (BODY.PEEK[])")).await?;
        let body = r
            .lines
            .iter()
            .find_map(|l| l.literals.first())
            .ok_or_else(|| anyhow!("UID FETCH {uid} BODY[] returned no literal"))?;
        let id = corpus::verify(body).with_context(|| format!("UID {uid}"))?;
        ensure!(
            id == corpus::id('b', key[&uid]),
            "UID {uid}: {id}, the key says b{}",
            key[&uid]
        );
    }
    i.logout().await
}

/// Checks one big-mailbox answer against the key.
fn big_check(name: &str, r: &ImapResp, key: &BTreeMap<u64, u64>) -> Result<()> {
    let n = key.len() as u64;
    let fetches = || r.lines.iter().filter(|l| is_fetch(&l.text)).count() as u64;
    let want = |rem: u64| -> Vec<u64> {
        key.iter()
            .filter(|(_, b)| *b % 100 == rem)
            .map(|(u, _)| *u)
            .collect()
    };
    let search = |rem: u64| -> Result<()> {
        let mut hits: Vec<u64> = r
            .lines
            .iter()
            .find_map(|l| imap_search(&l.text))
            .unwrap_or_default();
        hits.sort_unstable();
        let w = want(rem);
        ensure!(
            hits == w,
            "wrong answer: {} hits, {} expected ({} of them found, {} not in the box's answer)",
            hits.len(),
            w.len(),
            hits.iter().filter(|h| w.contains(h)).count(),
            hits.iter().filter(|h| !w.contains(h)).count()
        );
        Ok(())
    };
    match name {
        "SELECT" => {
            let e = r.lines.iter().find_map(|l| imap_exists(&l.text));
            ensure!(e == Some(n), "EXISTS {e:?}, {n} messages in the box");
        }
        "FETCH 1:* BODYSTRUCTURE" => {
            ensure!(fetches() == n, "{} responses of {n}", fetches());
            let multi = r
                .lines
                .iter()
                .filter(|l| {
                    l.text
                        .windows(7)
                        .any(|w| w.eq_ignore_ascii_case(b"\"MIXED\""))
                })
                .count();
            let want = key.values().filter(|b| *b % 3 == 1).count();
            ensure!(
                multi == want,
                "{multi} multipart/mixed BODYSTRUCTUREs, {want} expected"
            );
        }
        n2 if n2.starts_with("FETCH") => {
            ensure!(fetches() == n, "{} responses of {n}", fetches())
        }
        "UID SEARCH SUBJECT" => search(corpus::SUBJECT_REM)?,
        "UID SEARCH FROM" => search(corpus::FROM_REM)?,
        "UID SEARCH TEXT" => search(corpus::TEXT_REM)?,
        "UID SORT (DATE)" => {
            let got = r
                .lines
                .iter()
                .find_map(|l| imap_sort(&l.text))
                .ok_or_else(|| anyhow!("no * SORT response"))?;
            // Every message has its own Date, increasing with n.
            let mut w: Vec<(u64, u64)> = key.iter().map(|(u, b)| (*b, *u)).collect();
            w.sort_unstable();
            let w: Vec<u64> = w.into_iter().map(|x| x.1).collect();
            ensure!(
                got == w,
                "wrong order: {} UIDs, {} expected, first difference at position {:?}",
                got.len(),
                w.len(),
                got.iter().zip(&w).position(|(a, b)| a != b)
            );
        }
        "UID THREAD REFERENCES" => {
            let line = r
                .lines
                .iter()
                .find(|l| l.text.starts_with(b"* THREAD"))
                .ok_or_else(|| anyhow!("no * THREAD response"))?;
            let (mut uids, roots) = imap_thread(&line.text);
            uids.sort_unstable();
            let all: Vec<u64> = key.keys().copied().collect();
            ensure!(
                uids == all,
                "{} UIDs in the threads, {} in the box",
                uids.len(),
                all.len()
            );
            // Each group of four (a message and its three replies) is one thread.
            let groups: std::collections::BTreeSet<u64> = key.values().map(|b| b / 4).collect();
            ensure!(
                roots == groups.len(),
                "{roots} threads, {} expected",
                groups.len()
            );
        }
        _ => {}
    }
    Ok(())
}

/// `* SORT 3 1 2`: the numbers.
fn imap_sort(line: &[u8]) -> Option<Vec<u64>> {
    let s = std::str::from_utf8(line).ok()?;
    let rest = s.strip_prefix("* SORT")?;
    rest.split_whitespace().map(|n| n.parse().ok()).collect()
}

/// `* THREAD (1 2)(3 (4)(5))`: every number, and how many top-level threads.
fn imap_thread(line: &[u8]) -> (Vec<u64>, usize) {
    let (mut nums, mut roots, mut depth, mut cur) = (Vec::new(), 0, 0usize, None::<u64>);
    for &c in line.get(8..).unwrap_or(b"") {
        if c.is_ascii_digit() {
            cur = Some(cur.unwrap_or(0) * 10 + u64::from(c - b'0'));
            continue;
        }
        if let Some(v) = cur.take() {
            nums.push(v);
        }
        match c {
            b'(' => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if let Some(v) = cur {
        nums.push(v);
    }
    (nums, roots)
}

/// Warm SELECT is timed this many times, each as the first command of a new session,
/// and reported as the median. A SELECT takes a few hundred microseconds on either
/// server, so one sample mostly measured what the machine did at that instant (the
/// previous session's exit, a checkpoint, another process); the other commands take
/// milliseconds and keep one sample a pass.
const SELECT_SAMPLES: usize = 15;

/// One timed command in session `i`: its time, or FAIL (refused, or a wrong answer).
async fn big_timed(
    i: &mut Imap,
    name: &str,
    cmd: &str,
    key: &BTreeMap<u64, u64>,
) -> (f64, Option<String>) {
    let t0 = Instant::now();
    let r = i.cmd(cmd).await;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let fail = r
        .map_err(|e| anyhow!("{e:#}"))
        .and_then(|r| big_check(name, &r, key))
        .err()
        .map(|e| format!("{cmd}: {e:#}"));
    (ms, fail)
}

/// One pass of the big-mailbox commands in a new session; each command's time, or FAIL
/// (refused, or a wrong answer) with the reason. `select_samples` > 1 (warm passes):
/// SELECT is first timed in that many sessions less one of its own (LOGIN, SELECT,
/// LOGOUT), then in the pass's session, and the median is the figure (the same client
/// code and count for every server).
async fn big_pass(
    addr: SocketAddr,
    o: &Opts,
    key: &BTreeMap<u64, u64>,
    prefix: &str,
    select_samples: usize,
) -> Result<Vec<Metric>> {
    let mut selects = Vec::new();
    let mut fail = None;
    for _ in 1..select_samples {
        let mut i = Imap::login(addr, &o.big_user(), &o.password).await?;
        let (ms, f) = big_timed(&mut i, "SELECT", "SELECT INBOX", key).await;
        selects.push(ms);
        fail = fail.or(f);
        i.logout().await.ok();
    }
    let mut i = Imap::login(addr, &o.big_user(), &o.password).await?;
    let mut out = Vec::new();
    for (name, cmd) in big_commands() {
        let (mut ms, mut f) = big_timed(&mut i, name, &cmd, key).await;
        if name == "SELECT" {
            selects.push(ms);
            selects.sort_by(f64::total_cmp);
            ms = pct(&selects, 0.5);
            f = fail.take().or(f);
        }
        let mut mt = m(&format!("{prefix}{name} ms"), ms, false);
        mt.fail = f;
        out.push(mt);
    }
    i.logout().await.ok();
    Ok(out)
}

/// Runs the target's `restart=` program, then waits until its IMAP port greets again.
async fn restart(t: &Target, prog: &std::path::Path, addr: SocketAddr) -> Result<()> {
    let st = tokio::process::Command::new(prog)
        .status()
        .await
        .with_context(|| format!("running {}", prog.display()))?;
    ensure!(st.success(), "{}: {st}", prog.display());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if Imap::connect(addr).await.is_ok() {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{} did not listen again within 60 s of its restart",
            t.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Workload 4 (issues 8 and 18): one mailbox of `big_msgs` ~50 KB messages (loaded once
/// with APPEND from `big_writers` connections: the append rate), then the commands of
/// [`big_commands`], every answer checked against the key (UID -> message) read first:
/// - cold (when the target has `restart=`): the server restarted, then one pass in a new
///   session, so each command is the first of its kind since the restart;
/// - warm: one untimed pass in a session of its own, then the timed pass in another
///   (the table's median over repetitions is the warm figure); warm SELECT is the
///   median of [`SELECT_SAMPLES`] new sessions' first command.
pub async fn big(t: &Target, o: &Opts, st: &mut State) -> Result<Vec<Metric>> {
    let addr = t.need(t.imap, "imap")?;
    load_big(addr, o, st).await?;
    let n = o.big_msgs - st.big_expunged;
    let key = big_uids(addr, o).await.context("reading the answer key")?;
    ensure!(
        key.len() as u64 == n,
        "UID FETCH 1:*: {} messages, {n} appended",
        key.len()
    );
    if !st.big_checked {
        big_check_box(addr, o, &key, st.big_expunged == 0).await?;
        st.big_checked = true;
    }
    // No APPEND row when the box was imported (nothing was appended).
    let mut out: Vec<Metric> = st
        .big_append_rate
        .map(|r| m("APPEND msgs/s", r, true))
        .into_iter()
        .collect();
    let mut cold = Vec::new();
    if let Some(prog) = &t.restart {
        restart(t, prog, addr).await?;
        cold = big_pass(addr, o, &key, "cold ", 1).await?;
    }
    big_pass(addr, o, &key, "", 1).await?;
    out.extend(big_pass(addr, o, &key, "", SELECT_SAMPLES).await?);
    out.extend(cold);
    Ok(out)
}

fn is_fetch(line: &[u8]) -> bool {
    line.starts_with(b"* ")
        && line
            .windows(7)
            .take(24)
            .any(|w| w.eq_ignore_ascii_case(b" FETCH "))
}

/// Workload 5: `idle` connections in IDLE spread over the users; PSS of the server's
/// processes before and after, per connection; then `idle_pushes` messages to user 1
/// over LMTP, one after the other, each timed from the start of its LMTP transaction
/// until each of user 1's sessions saw its EXISTS. With several nodes (issue 17) the
/// sessions are all on the last node (B) and the deliveries go to the first (A), so
/// every push crosses the nodes' change feed.
pub async fn idle(t: &Target, o: &Opts, _st: &mut State) -> Result<Vec<Metric>> {
    let addr = t.need(Target::at(&t.imap_all, t.nodes() - 1), "imap")?;
    let lmtp = t.need(t.lmtp, "lmtp")?;
    t.current_pid()
        .ok_or_else(|| anyhow!("{}: no pid= to measure", t.name))?;
    // Warm up with as many logins at once as the sessions below open: password hashing
    // (Argon2: 19 MiB or more a check) leaves allocator arenas and auth processes at
    // their high-water mark, which belongs to the logins, not to the sessions held.
    let at_once = o.idle_concurrency.max(1);
    let mut set = JoinSet::new();
    for k in 0..at_once as u64 * 2 {
        let o = o.clone();
        set.spawn(async move {
            Imap::login(addr, &o.user(k % o.users), &o.password)
                .await?
                .logout()
                .await
        });
    }
    join_all(set).await.context("warm-up logins")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (before, _) = sys::pss_kib(&t.node_processes());
    let sem = Arc::new(Semaphore::new(at_once));
    let mut set = JoinSet::new();
    for k in 0..o.idle as u64 {
        let (o, sem) = (o.clone(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire().await?;
            // A tenth of the sessions are user 1's (the delivery target), the rest spread.
            let u = if k % 10 == 0 || o.users == 1 {
                0
            } else {
                1 + k % (o.users - 1)
            };
            let mut i = Imap::login(addr, &o.user(u), &o.password)
                .await
                .with_context(|| format!("IDLE session {k}"))?;
            let sel = i.cmd("SELECT INBOX").await?;
            let n = sel
                .lines
                .iter()
                .find_map(|l| imap_exists(&l.text))
                .unwrap_or(0);
            let tag = i.idle().await?;
            Ok((u, n, tag, i))
        });
    }
    let mut sessions = join_all(set).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, procs) = sys::pss_kib(&t.node_processes());
    let per_conn = (after.saturating_sub(before)) as f64 / o.idle as f64;
    let mine: Vec<_> = {
        let mut v = Vec::new();
        let mut rest = Vec::new();
        for s in sessions.drain(..) {
            if s.0 == 0 {
                v.push(s)
            } else {
                rest.push(s)
            }
        }
        sessions = rest;
        v
    };
    let watchers = mine.len();
    let pushes = o.idle_pushes.max(1);
    // Each watcher reports (push, when it saw it); a push is seen when EXISTS reaches
    // the count at SELECT plus the push's number (one EXISTS may announce several).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut set = JoinSet::new();
    for (_, n, tag, mut i) in mine {
        let tx = tx.clone();
        set.spawn(async move {
            let mut seen = 0usize;
            while seen < pushes {
                let e = i.wait_exists().await?;
                while seen < pushes && e > n + seen as u64 {
                    tx.send((seen, Instant::now())).ok();
                    seen += 1;
                }
            }
            i.done(&tag).await?;
            Ok(())
        });
    }
    drop(tx);
    let mut c = Smtp::connect(lmtp, true).await?;
    let mut lat: Vec<f64> = Vec::new();
    let mut all_reached: Vec<f64> = Vec::new();
    for p in 0..pushes {
        let msg = corpus::message(&corpus::id('d', 999_000_000 + p as u64)).unwrap_or_default();
        let start = Instant::now();
        c.deliver("sender@example.org", &[o.user(0)], &msg).await?;
        let mut last = 0.0f64;
        for _ in 0..watchers {
            let (q, when) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .map_err(|_| anyhow!("push {p} did not reach all {watchers} IDLE sessions in 60 s"))?
                .ok_or_else(|| anyhow!("an IDLE session ended before push {p}"))?;
            ensure!(q == p, "push {q} reported while push {p} was awaited");
            let ms = when.duration_since(start).as_secs_f64() * 1e3;
            last = last.max(ms);
            lat.push(ms);
        }
        all_reached.push(last);
    }
    c.quit().await?;
    join_all(set).await?;
    drop(sessions);
    lat.sort_by(f64::total_cmp);
    all_reached.sort_by(f64::total_cmp);
    Ok(vec![
        m("PSS KiB per IDLE conn", per_conn, false),
        info("PSS before MiB", before as f64 / 1024.0),
        info("PSS total MiB", after as f64 / 1024.0),
        info("server processes", procs as f64),
        m(&format!("delivery to {watchers} IDLEs ms"), pct(&all_reached, 0.5), false),
        m("push p50 ms", pct(&lat, 0.5), false),
        m("push p99 ms", pct(&lat, 0.99), false),
    ])
}

/// `3:5,9`-style UID set of ascending UIDs.
fn uid_set(uids: &[u64]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let (a, mut b) = (uids[i], uids[i]);
        while i + 1 < uids.len() && uids[i + 1] == b + 1 {
            i += 1;
            b = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&if a == b {
            a.to_string()
        } else {
            format!("{a}:{b}")
        });
        i += 1;
    }
    out
}

/// Workload 6 (issue 6): incremental resync of the big mailbox after 1% of it changed.
/// A client caches the mailbox (ENABLE QRESYNC, SELECT: UIDVALIDITY, HIGHESTMODSEQ, the
/// UIDs) and goes away; another session changes 1% of the messages (every 100th, from
/// an offset that moves each round: three in four get a keyword, one in four is
/// expunged); the client comes back and resyncs with `ENABLE QRESYNC` + `SELECT INBOX
/// (QRESYNC (uidvalidity modseq))` (RFC 7162). Measured from after LOGIN: octets both
/// ways and time. The answer is checked: the VANISHED (EARLIER) set holds every expunged
/// UID and no present one, the FETCH responses name every changed UID and no expunged
/// one, EXISTS adds up. For scale, the same client without QRESYNC: SELECT and `UID
/// FETCH 1:* (FLAGS)`, the least a client must read to learn the same.
pub async fn resync(t: &Target, o: &Opts, st: &mut State) -> Result<Vec<Metric>> {
    let addr = t.need(t.imap, "imap")?;
    let user = o.big_user();
    load_big(addr, o, st).await?;
    // 1. The client's cache.
    let mut c = Imap::login(addr, &user, &o.password).await?;
    c.cmd("ENABLE QRESYNC").await?;
    let sel = c.cmd("SELECT INBOX").await?;
    let code = |r: &crate::client::ImapResp, name: &str| {
        r.lines
            .iter()
            .find_map(|l| imap_code_number(&l.text, name))
            .ok_or_else(|| anyhow!("SELECT without {name}"))
    };
    let (uv, modseq) = (code(&sel, "UIDVALIDITY")?, code(&sel, "HIGHESTMODSEQ")?);
    let f = c.cmd("UID FETCH 1:* (UID)").await?;
    let uids: Vec<u64> = f
        .lines
        .iter()
        .filter_map(|l| imap_fetch_uid(&l.text))
        .collect();
    ensure!(
        uids.len() as u64 == o.big_msgs - st.big_expunged,
        "cache: {} UIDs, {} expected",
        uids.len(),
        o.big_msgs - st.big_expunged
    );
    c.logout().await?;
    // 2. 1% changes elsewhere.
    st.resync_round += 1;
    let round = st.resync_round;
    let offset = (round * 37 % 100) as usize;
    let picked: Vec<u64> = uids.iter().skip(offset).step_by(100).copied().collect();
    let (mut flagged, mut expunged) = (Vec::new(), Vec::new());
    for (j, u) in picked.iter().enumerate() {
        if j % 4 == 3 {
            expunged.push(*u);
        } else {
            flagged.push(*u);
        }
    }
    let mut w = Imap::login(addr, &user, &o.password).await?;
    w.cmd("SELECT INBOX").await?;
    if !flagged.is_empty() {
        w.cmd(&format!(
            "UID STORE {} +FLAGS.SILENT ($resync{round})",
            uid_set(&flagged)
        ))
        .await?;
    }
    if !expunged.is_empty() {
        let set = uid_set(&expunged);
        w.cmd(&format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"))
            .await?;
        w.cmd(&format!("UID EXPUNGE {set}")).await?;
    }
    w.logout().await?;
    st.big_expunged += expunged.len() as u64;
    // 3. The QRESYNC resync, measured.
    let mut r = Imap::login(addr, &user, &o.password).await?;
    let (in0, out0) = r.bytes();
    let t0 = Instant::now();
    r.cmd("ENABLE QRESYNC").await?;
    let sel = r
        .cmd(&format!("SELECT INBOX (QRESYNC ({uv} {modseq}))"))
        .await?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let (in1, out1) = r.bytes();
    let vanished: std::collections::HashSet<u64> = sel
        .lines
        .iter()
        .filter_map(|l| imap_vanished(&l.text))
        .flatten()
        .collect();
    let fetched: std::collections::HashSet<u64> = sel
        .lines
        .iter()
        .filter_map(|l| imap_fetch_uid(&l.text))
        .collect();
    let exists = sel.lines.iter().find_map(|l| imap_exists(&l.text));
    let left = uids.len() - expunged.len();
    ensure!(
        exists == Some(left as u64),
        "EXISTS {exists:?}, {left} expected"
    );
    ensure!(
        expunged.iter().all(|u| vanished.contains(u)),
        "VANISHED (EARLIER) misses expunged UIDs ({} of {})",
        expunged.iter().filter(|u| vanished.contains(u)).count(),
        expunged.len()
    );
    let gone: std::collections::HashSet<u64> = expunged.iter().copied().collect();
    ensure!(
        uids.iter()
            .all(|u| gone.contains(u) || !vanished.contains(u)),
        "VANISHED (EARLIER) names a present message"
    );
    ensure!(
        flagged.iter().all(|u| fetched.contains(u)),
        "FETCH misses changed UIDs ({} of {})",
        flagged.iter().filter(|u| fetched.contains(u)).count(),
        flagged.len()
    );
    ensure!(
        !expunged.iter().any(|u| fetched.contains(u)),
        "FETCH of an expunged UID"
    );
    r.logout().await?;
    let mut out = vec![
        info("changed msgs", picked.len() as f64),
        m("QRESYNC ms", ms, false),
        m(
            "QRESYNC KiB",
            ((in1 - in0) + (out1 - out0)) as f64 / 1024.0,
            false,
        ),
    ];
    // 4. The same without QRESYNC.
    let mut f = Imap::login(addr, &user, &o.password).await?;
    let (in0, out0) = f.bytes();
    let t0 = Instant::now();
    f.cmd("SELECT INBOX").await?;
    let all = f.cmd("UID FETCH 1:* (FLAGS)").await?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let (in1, out1) = f.bytes();
    let n = all.lines.iter().filter(|l| is_fetch(&l.text)).count();
    ensure!(n == left, "UID FETCH 1:* FLAGS: {n} of {left}");
    f.logout().await?;
    out.push(m("full FLAGS ms", ms, false));
    out.push(m(
        "full FLAGS KiB",
        ((in1 - in0) + (out1 - out0)) as f64 / 1024.0,
        false,
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn uid_sets() {
        assert_eq!(super::uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(super::uid_set(&[]), "");
        assert_eq!(
            crate::client::imap_seq_set(&super::uid_set(&[4, 9, 10])),
            Some(vec![4, 9, 10])
        );
        assert_eq!(super::imap_sort(b"* SORT 3 1 2\r\n"), Some(vec![3, 1, 2]));
        assert_eq!(super::imap_sort(b"* SORT\r\n"), Some(vec![]));
        assert_eq!(
            super::imap_thread(b"* THREAD (1 2)(3 (4)(5))((6)(7))\r\n"),
            (vec![1, 2, 3, 4, 5, 6, 7], 3)
        );
    }
}

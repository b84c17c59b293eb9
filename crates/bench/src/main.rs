//! `letterbox-bench`: the workload generator of the Letterbox vs Dovecot benchmark
//! (issue 8). `bench/run` sets up both servers and calls `letterbox-bench run`; this
//! binary only talks to servers that are already running, over loopback.
//!
//! It runs each workload against every target in turn (alternating, the order flipped
//! every repetition), takes medians and prints a Markdown table with the ratio of the
//! first target (Letterbox) to the second (Dovecot). A workload that loses or corrupts a
//! message, or meets a command the server refuses, shows FAIL for that server and the
//! reason below the table.

mod attachments;
mod client;
mod corpus;
mod maildir;
mod sys;
mod workloads;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::time::Duration;
use workloads::{Metric, Opts, State, Target};

#[derive(Parser)]
#[command(
    version,
    about = "Letterbox vs Dovecot benchmark workloads (see bench/run)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print N free loopback TCP ports, one a line.
    FreePorts { n: usize },
    /// Print an Argon2id hash of PASSWORD with Letterbox's own parameters (19 MiB, 2
    /// passes), in Dovecot's `{ARGON2ID}` form: both servers get the same one.
    Hash { password: String },
    /// One client process of the POP3 workload (started by `run` with --pop3-procs > 1):
    /// prints `ready`, waits for a line on stdin, downloads the INBOX of every user
    /// u with u % PROCS == INDEX over CLIENTS connections, prints `OCTETS MESSAGES`.
    #[command(hide = true)]
    Pop3Worker(Pop3WorkerArgs),
    /// Write the big mailbox's messages (b0..b<MSGS-1>, those the APPEND fill sends) as a
    /// Maildir in DIR, for `bench/run --big-fill import`; prints `MESSAGES OCTETS`.
    BigMaildir {
        #[arg(long)]
        msgs: u64,
        dir: std::path::PathBuf,
    },
    /// Run the workloads against the targets and print the table.
    #[command(args_override_self = true)]
    Run(RunArgs),
}

#[derive(clap::Args)]
struct Pop3WorkerArgs {
    #[arg(long)]
    addr: std::net::SocketAddr,
    #[arg(long)]
    users: u64,
    #[arg(long)]
    domain: String,
    #[arg(long)]
    password: String,
    #[arg(long)]
    corpus_msgs: u64,
    #[arg(long)]
    index: u64,
    #[arg(long)]
    procs: u64,
    #[arg(long)]
    clients: usize,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum BigFill {
    Append,
    Import,
}

#[derive(clap::Args)]
struct RunArgs {
    /// A server: `name=Letterbox,lmtp=IP:PORT,smtp=...,pop3=...,imap=...,pid=PID,data=DIR`
    /// (give Letterbox first, Dovecot second: the default ratio is first/second). Several
    /// nodes of one store: `lmtp=A+B,smtp=A+B,imap=A+B,pid=PA+PB` (clients spread round
    /// robin; IDLE sessions on the last node, their deliveries on the first); `db=PID`:
    /// the shared database server, whose CPU is reported apart.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Workloads, in the order run (`storage` also delivers the corpus `pop3`/`imap` read).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "storage,delivery,pop3,imap,big,resync,idle"
    )]
    workloads: Vec<String>,
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Users user1@DOMAIN..userN@DOMAIN (and big@DOMAIN), all with --password.
    #[arg(long, default_value_t = 100)]
    users: u64,
    #[arg(long, default_value = "example.com")]
    domain: String,
    #[arg(long, default_value = "bench-Secret1")]
    password: String,
    /// Delivery sessions (LMTP/SMTP connections) at once.
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// 5 KB messages delivered per delivery run (per protocol).
    #[arg(long, default_value_t = 2000)]
    deliver_msgs: u64,
    /// Deliveries per second at most, over all sessions (0: as fast as the server
    /// takes them). Issue 13: the unfiltered workload at rspamd's rate, to tell the
    /// filter's own cost from the batching a slower rate loses.
    #[arg(long, default_value_t = 0.0)]
    deliver_rate: f64,
    /// Corpus messages per user (2 KB..200 KB, some multipart).
    #[arg(long, default_value_t = 20)]
    corpus_msgs: u64,
    /// Recipients per LMTP transaction for the corpus (storage workload). 1: every user's
    /// copy arrives on its own, so the figure is the storage format; more lets Dovecot
    /// hard-link one file into the recipients' Maildirs.
    #[arg(long, default_value_t = 1)]
    storage_rcpts: usize,
    /// POP3 download connections (over all client processes).
    #[arg(long, default_value_t = 20)]
    pop3_clients: usize,
    /// Client processes the POP3 download connections are spread over (one process
    /// alone can be the bottleneck of the download figure).
    #[arg(long, default_value_t = 2)]
    pop3_procs: usize,
    #[arg(long, default_value_t = 10)]
    imap_clients: usize,
    /// Seconds each IMAP mixed run lasts.
    #[arg(long, default_value_t = 10)]
    imap_secs: u64,
    /// Messages in the big mailbox (the figure is 100000; `resync` uses it too).
    #[arg(long, default_value_t = 10000)]
    big_msgs: u64,
    #[arg(long, default_value_t = 8)]
    big_writers: usize,
    /// How the big mailbox is filled: `append` (here, over IMAP, by --big-writers
    /// connections: the APPEND msgs/s row) or `import` (by bench/run before the servers
    /// start, from `big-maildir`'s Maildir: here the box is only checked, no APPEND row).
    #[arg(long, value_enum, default_value = "append")]
    big_fill: BigFill,
    /// Connections held in IDLE (the figure is 5000).
    #[arg(long, default_value_t = 2000)]
    idle: usize,
    /// Deliveries to user 1 timed until its IDLE sessions see them (p50/p99 over all of
    /// them and every session).
    #[arg(long, default_value_t = 20)]
    idle_pushes: usize,
    /// IDLE sessions logging in at once (the warm-up does twice this many logins).
    #[arg(long, default_value_t = 32)]
    idle_concurrency: usize,
    /// Ratio columns, `I/J` of targets numbered from 1 in the order given (repeatable;
    /// default `1/2` when there are two targets or more), e.g. `--ratio 3/2` for the
    /// two-node cluster over one node.
    #[arg(long = "ratio")]
    ratios: Vec<String>,
    /// Longest a single workload run may take, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::FreePorts { n } => {
            // Hold them all open so the same port is not printed twice.
            let ls: Vec<_> = (0..n)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
                .collect::<Result<_, _>>()?;
            for l in &ls {
                println!("{}", l.local_addr()?.port());
            }
            Ok(())
        }
        Cmd::Hash { password } => {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            let h = argon2::Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
            println!("{{ARGON2ID}}{h}");
            Ok(())
        }
        Cmd::BigMaildir { msgs, dir } => {
            let octets = maildir::write_big(&dir, msgs)?;
            println!("{msgs} {octets}");
            Ok(())
        }
        Cmd::Pop3Worker(w) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(pop3_worker(w)),
        Cmd::Run(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run(a)),
    }
}

async fn pop3_worker(w: Pop3WorkerArgs) -> Result<()> {
    use tokio::io::AsyncBufReadExt;
    let o = Opts {
        users: w.users,
        domain: w.domain,
        password: w.password,
        corpus_msgs: w.corpus_msgs,
        ..Opts::default()
    };
    let users: Vec<u64> = (0..w.users).filter(|u| u % w.procs == w.index).collect();
    println!("ready");
    let mut go = String::new();
    tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut go)
        .await?;
    match workloads::pop3_download(w.addr, &o, users, w.clients).await {
        Ok((b, n)) => println!("{b} {n}"),
        Err(e) => println!("error: {e:#}"),
    }
    Ok(())
}

/// What one workload run produced.
type Outcome = Result<Vec<Metric>, String>;

async fn one(w: &str, t: &Target, o: &Opts, st: &mut State) -> Outcome {
    let f = async {
        match w {
            "storage" => workloads::storage(t, o, st).await,
            "delivery" => {
                let mut v = workloads::delivery(t, o, st, true).await?;
                match workloads::delivery(t, o, st, false).await {
                    Ok(s) => v.extend(s),
                    // Dovecot has no SMTP delivery listener: n/a rather than FAIL.
                    Err(e) if t.smtp.is_none() => eprintln!("  {}: SMTP skipped: {e}", t.name),
                    Err(e) => return Err(e.context("SMTP")),
                }
                Ok(v)
            }
            "pop3" => workloads::pop3(t, o, st).await,
            "imap" => workloads::imap_mixed(t, o, st).await,
            "big" => workloads::big(t, o, st).await,
            "resync" => workloads::resync(t, o, st).await,
            "idle" => workloads::idle(t, o, st).await,
            "attachments" => attachments::run(t, o, st).await,
            other => bail!("unknown workload {other:?}"),
        }
    };
    match tokio::time::timeout(Duration::from_secs(o_timeout()), f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!("timed out after {} s", o_timeout())),
    }
}

static TIMEOUT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
fn o_timeout() -> u64 {
    *TIMEOUT.get().unwrap_or(&1800)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

async fn run(a: RunArgs) -> Result<()> {
    TIMEOUT.set(a.timeout).ok();
    let targets: Vec<Target> = a
        .targets
        .iter()
        .map(|s| Target::parse(s))
        .collect::<Result<_>>()?;
    let o = Opts {
        users: a.users,
        domain: a.domain,
        password: a.password,
        sessions: a.sessions,
        deliver_msgs: a.deliver_msgs,
        deliver_rate: a.deliver_rate,
        corpus_msgs: a.corpus_msgs,
        storage_rcpts: a.storage_rcpts,
        pop3_clients: a.pop3_clients,
        pop3_procs: a.pop3_procs,
        imap_clients: a.imap_clients,
        imap_secs: a.imap_secs,
        big_msgs: a.big_msgs,
        big_writers: a.big_writers,
        big_imported: a.big_fill == BigFill::Import,
        idle: a.idle,
        idle_pushes: a.idle_pushes,
        idle_concurrency: a.idle_concurrency,
    };
    let mut states: Vec<State> = targets.iter().map(|_| State::default()).collect();
    // (workload, metric) -> per target: values, or the failure.
    let mut rows: Vec<(String, String, Option<bool>)> = Vec::new();
    let mut values: BTreeMap<(String, String, usize), Vec<f64>> = BTreeMap::new();
    let mut failures: BTreeMap<(String, usize), String> = BTreeMap::new();
    // One command of a workload wrong (e.g. a search's answer): that cell FAILs.
    let mut metric_failures: BTreeMap<(String, String, usize), String> = BTreeMap::new();
    for w in &a.workloads {
        // Storage is deterministic and is the corpus set-up: once.
        let reps = if w == "storage" || w == "attachments" { 1 } else { a.reps };
        for rep in 0..reps {
            let mut order: Vec<usize> = (0..targets.len()).collect();
            if rep % 2 == 1 {
                order.reverse();
            }
            for &ti in &order {
                let t = &targets[ti];
                if failures.contains_key(&(w.clone(), ti)) {
                    continue;
                }
                eprintln!("[{w}] rep {}/{reps} {}", rep + 1, t.name);
                let start = std::time::Instant::now();
                match one(w, t, &o, &mut states[ti]).await {
                    Ok(ms) => {
                        for mt in ms {
                            let key = (w.clone(), mt.name.clone());
                            if !rows.iter().any(|r| (&r.0, &r.1) == (&key.0, &key.1)) {
                                rows.push((key.0.clone(), key.1.clone(), mt.higher_better));
                            }
                            if let Some(e) = mt.fail {
                                eprintln!("  {} = FAIL: {e}", mt.name);
                                metric_failures.entry((key.0, key.1, ti)).or_insert(e);
                                continue;
                            }
                            eprintln!("  {} = {}", mt.name, fmt(mt.value));
                            values.entry((key.0, key.1, ti)).or_default().push(mt.value);
                        }
                    }
                    Err(e) => {
                        eprintln!("  FAIL: {e}");
                        failures.insert((w.clone(), ti), e);
                    }
                }
                eprintln!("  ({:.1} s)", start.elapsed().as_secs_f64());
            }
        }
        // A workload that failed everywhere still gets a row.
        if !rows.iter().any(|r| &r.0 == w) {
            rows.push((w.clone(), "-".into(), None));
        }
    }

    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let mut ratios: Vec<(usize, usize)> = Vec::new();
    for r in &a.ratios {
        let (i, j) = r
            .split_once('/')
            .and_then(|(i, j)| Some((i.trim().parse::<usize>().ok()?, j.trim().parse::<usize>().ok()?)))
            .filter(|&(i, j)| (1..=targets.len()).contains(&i) && (1..=targets.len()).contains(&j))
            .ok_or_else(|| anyhow::anyhow!("--ratio {r:?}: want I/J, targets numbered 1..={}", targets.len()))?;
        ratios.push((i - 1, j - 1));
    }
    if a.ratios.is_empty() && targets.len() >= 2 {
        ratios.push((0, 1));
    }
    let mut out = String::new();
    out.push_str(&format!(
        "| workload | metric | better | {} median |",
        names.join(" median | ")
    ));
    for &(i, j) in &ratios {
        out.push_str(&format!(" ratio {}/{} |", names[i], names[j]));
    }
    out.push('\n');
    out.push_str(&"|---".repeat(3 + targets.len() + ratios.len()));
    out.push_str("|\n");
    for (w, metric, higher) in &rows {
        let mut cells = Vec::new();
        let mut meds = Vec::new();
        for ti in 0..targets.len() {
            let v = values.get_mut(&(w.clone(), metric.clone(), ti));
            let cell = if failures.contains_key(&(w.clone(), ti))
                || metric_failures.contains_key(&(w.clone(), metric.clone(), ti))
            {
                meds.push(None);
                "FAIL".to_string()
            } else if let Some(v) = v {
                let md = median(v);
                meds.push(Some(md));
                fmt(md)
            } else {
                meds.push(None);
                "n/a".to_string()
            };
            cells.push(cell);
        }
        let better = match higher {
            None => "",
            Some(true) => "higher",
            Some(false) => "lower",
        };
        out.push_str(&format!(
            "| {w} | {metric} | {better} | {} |",
            cells.join(" | ")
        ));
        for &(i, j) in &ratios {
            let ratio = match (meds[i], meds[j]) {
                (Some(x), Some(y)) if y != 0.0 => format!("{:.2}", x / y),
                _ => "-".into(),
            };
            out.push_str(&format!(" {ratio} |"));
        }
        out.push('\n');
    }
    println!(
        "\n{} repetitions (storage once), medians; users {}, corpus {} msgs/user ({} rcpt/transaction), \
         delivery {} msgs, IMAP mixed {} clients x {} s, big mailbox {} msgs ({}), IDLE {} conns, {} pushes\n",
        a.reps, o.users, o.corpus_msgs, o.storage_rcpts, o.deliver_msgs, o.imap_clients, o.imap_secs, o.big_msgs,
        if o.big_imported { "imported" } else { "APPENDed" }, o.idle,
        o.idle_pushes
    );
    println!("{out}");
    if !failures.is_empty() || !metric_failures.is_empty() {
        println!("Failures:\n");
        for ((w, ti), e) in &failures {
            println!("- {w} on {}: {e}", targets[*ti].name);
        }
        for ((w, metric, ti), e) in &metric_failures {
            println!("- {w} {metric} on {}: {e}", targets[*ti].name);
        }
    }
    Ok(())
}

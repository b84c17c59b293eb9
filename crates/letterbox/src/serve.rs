//! `letterbox serve`: binds the listeners of `[listen]`, accepts connections within the
//! connection limits (a refused client is told so in its protocol's words, see
//! [`Service::busy`]), and hands each to its protocol's [`Service`]. The per-address
//! limits count each service apart (`[limits.SERVICE]`) and never refuse `[limits]
//! trusted_networks`, so that a webmail, an office behind NAT and the local MTA can share
//! one address (see [`Limits`]). Also runs the store's
//! periodic maintenance (blob garbage collection, the POP3 retention sweep, Trash and
//! Junk expiry), the first run `[store] maintenance_delay` after the start.
//!
//! Before it accepts the first connection, it runs the reads LOGIN and SELECT make once
//! against the store ([`letterbox_store::warm_up`]: no user's data, nothing changed), so
//! that the first client after a start does not pay for first-time work (statements
//! parsed, code paged in, the write-ahead log started with its fsync).
//! Once the listeners are up, IMAP's shared mailbox indexes are preloaded in the
//! background from the copies the store keeps (`[imap] preload_index_messages`,
//! `letterbox_imap::session::index::preload`), so that the first SELECT of a big
//! mailbox after a start does not read them.

use crate::admin::open_store;
use anyhow::{Context as _, Result};
use letterbox_config::Config;
use letterbox_proto::tls::Tls;
use letterbox_proto::{Context, Peer, Service};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How often blob garbage collection and the retention sweep run.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3600);
/// How long a refusal for the connection limits may take to write.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// The protocol services this build has, by listener name. Protocol crates register
/// here (one line each).
fn services(
    ctx: &Context,
    imap: &Arc<letterbox_imap::ImapService>,
) -> Vec<Arc<dyn Service>> {
    vec![
        letterbox_pop3::Pop3Service::new(ctx.clone()),
        letterbox_smtp::smtp(ctx.clone()),
        letterbox_smtp::lmtp(ctx.clone()),
        letterbox_smtp::submission(ctx.clone()),
        imap.clone(),
        letterbox_web::WebService::new(ctx.clone()),
        letterbox_managesieve::service(ctx.clone()),
    ]
}

pub fn run(config: Config, path: Option<PathBuf>) -> Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .context("config key `log.level` is not a valid filter")?;
    // The PostgreSQL client logs every statement's parameters at debug level: message
    // bodies, password hashes, tokens. Never below info, unless the filter asks for it
    // by name.
    let filter = match "tokio_postgres=info".parse() {
        Ok(cap) if !config.log.level.contains("tokio_postgres") => filter.add_directive(cap),
        _ => filter,
    };
    // Terminal colours only on a terminal: a log file or the journal gets plain text
    // (so that `grep 'block=ip:'` finds what the log names).
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, path))
}

/// How often serve looks for changes other processes committed to its data.
const OTHER_PROCESS_POLL: std::time::Duration = std::time::Duration::from_millis(500);

async fn serve(config: Config, path: Option<PathBuf>) -> Result<ExitCode> {
    match &path {
        Some(p) => tracing::info!("configuration from {}", p.display()),
        None => tracing::info!("no configuration file: built-in defaults"),
    }
    let store = open_store(&config)?;
    // Mail that `letterbox deliver` (another process) stores while we run reaches IDLE
    // sessions within this interval; our own deliveries reach them at once.
    store.watch_other_processes(OTHER_PROCESS_POLL)?;
    let config = Arc::new(config);
    let tls = Tls::load(&config).map_err(|e| anyhow::anyhow!(e))?;
    let ctx = Context::new(store.clone(), config.clone()).with_tls(tls.clone());
    let imap = Arc::new(letterbox_imap::ImapService::new(ctx.clone()));
    let by_name: HashMap<&'static str, Arc<dyn Service>> =
        services(&ctx, &imap).into_iter().map(|s| (s.name(), s)).collect();

    let limits = Arc::new(Limits {
        total: Semaphore::new(config.limits.max_connections as usize),
        counts: Mutex::new(HashMap::new()),
        config: config.clone(),
    });
    let l = &config.listen;
    let wanted: [(&'static str, &Vec<SocketAddr>); 11] = [
        ("smtp", &l.smtp),
        ("lmtp", &l.lmtp),
        ("submission", &l.submission),
        ("submissions", &l.submissions),
        ("imap", &l.imap),
        ("imaps", &l.imaps),
        ("pop3", &l.pop3),
        ("pop3s", &l.pop3s),
        ("http", &l.http),
        ("https", &l.https),
        ("managesieve", &l.managesieve),
    ];
    let mut bound = Vec::new();
    for (name, addrs) in wanted {
        if addrs.is_empty() {
            continue;
        }
        // Implicit-TLS listeners serve the same protocol inside TLS (RFC 8314).
        let (base, implicit_tls) = match name {
            "imaps" => ("imap", true),
            "pop3s" => ("pop3", true),
            "submissions" => ("submission", true),
            "https" => ("http", true),
            other => (other, false),
        };
        let Some(service) = by_name.get(base) else {
            tracing::warn!("listener `{name}` is configured but not available in this version; not listening on it");
            continue;
        };
        for addr in addrs {
            let listener = TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen for {name} on {addr} (config key `listen.{name}`)")
            })?;
            tracing::info!("listening for {name} on {addr}");
            bound.push((
                listener,
                service.clone(),
                implicit_tls.then(|| tls.clone()),
                name,
            ));
        }
    }
    let unix_auth = bind_auth(&ctx, &config, &mut bound).await?;
    // Ports are bound: root is no longer needed.
    crate::privileges::drop_for_serve(&config)?;
    if bound.is_empty() {
        tracing::warn!("no listener is active");
    }
    // Listeners are bound (clients wait in the backlog): the first-time costs are paid
    // here, not by the first LOGIN and SELECT.
    if let Err(e) = store.run(letterbox_store::warm_up).await {
        tracing::warn!("store warm-up failed (the first client pays it): {e}");
    }
    let imap_listens = bound.iter().any(|b| b.1.name() == "imap");
    for (listener, service, tls, name) in bound {
        tokio::spawn(accept_loop(listener, service, limits.clone(), tls, name));
    }
    // Clients are served from here on; the shared IMAP indexes fill in the background
    // (`[imap] preload_index_messages`): a SELECT meanwhile reads as it would have.
    if imap_listens {
        tokio::spawn(async move { imap.preload().await });
    }
    for (listener, service) in unix_auth {
        tokio::spawn(letterbox_authd::serve_unix(listener, service));
    }
    tokio::spawn(warnings(store.clone(), config.clone()));
    tokio::spawn(letterbox_web::maintenance(store.clone()));
    // The outbound queue's scheduler (issue 12).
    match letterbox_queue::Queue::new(store.clone(), config.clone()) {
        Ok(q) => {
            tokio::spawn(q.run());
        }
        Err(e) => anyhow::bail!("outbound delivery cannot start: {e}"),
    }
    // The maintenance jobs start a little after the server (`[store]
    // maintenance_delay`), so that they do not compete with the first clients.
    let first_run = tokio::time::Instant::now() + Duration::from_secs(config.store.maintenance_delay.0);
    tokio::spawn(attachment_policies(
        store.clone(),
        config.attachments.policy_interval.0,
        first_run,
    ));
    tokio::spawn(maintenance(store.clone(), first_run));

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => tracing::error!("SIGHUP: TLS reload failed, keeping the old certificate: {e}"),
            },
        }
    }
    // Every acknowledged write is already durable; sessions in flight have
    // acknowledged nothing they have not stored.
    tracing::info!("shutting down");
    // Leave no write-ahead log behind (its pages are all in the database already).
    if let Err(e) = store.run(|s| s.close_log()).await {
        tracing::warn!("shutdown: WAL not emptied: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The connection limits (`[limits]`): `max_connections` for all services together,
/// and per service (`[limits.SERVICE]`) a total and a per-address count. Trusted
/// networks (`[limits] trusted_networks`) are never refused for their address's count,
/// and delivery (SMTP, LMTP) from them is never refused for any count.
type Bound = Vec<(TcpListener, Arc<dyn Service>, Option<Arc<Tls>>, &'static str)>;

/// Binds the `[listen] auth` listeners (Dovecot's auth protocol, `letterbox_authd`):
/// TCP ones join `bound` (served within the connection limits like the others), UNIX
/// sockets are returned. A socket file left by an earlier run is replaced, unless a
/// process still answers on it; the socket gets `[authd] socket_mode` and, when set
/// and we are root, `[authd] socket_group`.
async fn bind_auth(
    ctx: &Context,
    config: &Config,
    bound: &mut Bound,
) -> Result<Vec<(tokio::net::UnixListener, Arc<letterbox_authd::AuthService>)>> {
    use letterbox_config::AuthAddr;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mut unix = Vec::new();
    if config.listen.auth.is_empty() {
        return Ok(unix);
    }
    let service = letterbox_authd::AuthService::new(ctx.clone());
    for addr in &config.listen.auth {
        match addr {
            AuthAddr::Tcp(a) => {
                let listener = TcpListener::bind(a).await.with_context(|| {
                    format!("cannot listen for auth on {a} (config key `listen.auth`)")
                })?;
                tracing::info!("listening for auth on {a}");
                bound.push((listener, service.clone() as Arc<dyn Service>, None, "auth"));
            }
            AuthAddr::Unix(path) => {
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    if !meta.file_type().is_socket() {
                        anyhow::bail!(
                            "cannot listen for auth on {}: a file that is not a socket is there (config key `listen.auth`)",
                            path.display()
                        );
                    }
                    if std::os::unix::net::UnixStream::connect(path).is_ok() {
                        anyhow::bail!(
                            "cannot listen for auth on {}: another process is listening there (config key `listen.auth`)",
                            path.display()
                        );
                    }
                    let _ = std::fs::remove_file(path);
                }
                let listener = tokio::net::UnixListener::bind(path).with_context(|| {
                    format!(
                        "cannot listen for auth on {} (config key `listen.auth`)",
                        path.display()
                    )
                })?;
                let mode = config.authd.mode().map_err(|e| anyhow::anyhow!(e))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("cannot set the mode of {}", path.display()))?;
                if !config.authd.socket_group.is_empty() {
                    crate::privileges::chgrp(path, &config.authd.socket_group).with_context(
                        || format!("config key `authd.socket_group`: {}", path.display()),
                    )?;
                }
                tracing::info!("listening for auth on {}", path.display());
                unix.push((listener, service.clone()));
            }
        }
    }
    Ok(unix)
}

struct Limits {
    total: Semaphore,
    /// Open connections by (service, address) and by (service, None): the service total.
    counts: Mutex<HashMap<(&'static str, Option<IpAddr>), u32>>,
    config: Arc<Config>,
}

/// What a connection holds of the limits, given back when the session ends.
struct Slot {
    limits: Arc<Limits>,
    /// It took a place in `max_connections`.
    total: bool,
    /// The count keys it incremented.
    keys: Vec<(&'static str, Option<IpAddr>)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.limits.counts.lock().unwrap_or_else(|e| e.into_inner());
        for key in &self.keys {
            if let Some(n) = m.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    m.remove(key);
                }
            }
        }
        drop(m);
        if self.total {
            self.limits.total.add_permits(1);
        }
    }
}

impl Limits {
    /// Takes a place for a connection of `service` from `addr`, or names the limit
    /// (its config key) that refuses it.
    fn admit(self: &Arc<Self>, service: &'static str, addr: IpAddr) -> Result<Slot, String> {
        let limits = &self.config.limits;
        let trusted = limits.is_trusted(addr);
        let mut slot = Slot {
            limits: self.clone(),
            total: false,
            keys: Vec::new(),
        };
        // A trusted MTA handing over mail is never turned away for a count: refusing it
        // only delays mail that is already on its way.
        if trusted && matches!(service, "smtp" | "lmtp") {
            return Ok(slot);
        }
        let Ok(permit) = self.total.try_acquire() else {
            return Err("limits.max_connections".into());
        };
        permit.forget();
        slot.total = true;
        let svc = limits.service(service);
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(max) = svc.max_connections {
            let n = m.entry((service, None)).or_insert(0);
            if *n >= max {
                return Err(format!("limits.{service}.max_connections"));
            }
            *n += 1;
            slot.keys.push((service, None));
        }
        if !trusted {
            let max = svc
                .max_connections_per_ip
                .unwrap_or(limits.max_connections_per_ip);
            let key = (service, Some(letterbox_proto::client_net(addr)));
            let n = m.entry(key).or_insert(0);
            if *n >= max {
                return Err(match svc.max_connections_per_ip {
                    Some(_) => format!("limits.{service}.max_connections_per_ip"),
                    None => "limits.max_connections_per_ip".into(),
                });
            }
            *n += 1;
            slot.keys.push(key);
        }
        Ok(slot)
    }
}

async fn accept_loop(
    listener: TcpListener,
    service: Arc<dyn Service>,
    limits: Arc<Limits>,
    tls: Option<Arc<Tls>>,
    listener_name: &'static str,
) {
    let metrics = letterbox_proto::metrics::metrics();
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!("{}: accept failed: {e}", service.name());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let local = stream.local_addr().unwrap_or(addr);
        let slot = match limits.admit(service.name(), addr.ip()) {
            Ok(slot) => slot,
            Err(key) => {
                tracing::warn!("{}: refusing {addr}: {key} reached", service.name());
                metrics.refused(listener_name);
                refuse(stream, service.as_ref(), tls.is_some());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let tls = tls.clone();
        let active = metrics.connection(listener_name);
        tokio::spawn(async move {
            let _slot = slot;
            let _active = active;
            let (stream, tls_on): (letterbox_proto::BoxStream, bool) = match tls {
                None => (Box::new(stream), false),
                Some(tls) => match tls.accept(Box::new(stream)).await {
                    Ok(s) => (s, true),
                    Err(e) => {
                        tracing::debug!(
                            "{}: TLS handshake with {addr} failed: {e}",
                            service.name()
                        );
                        return;
                    }
                },
            };
            service
                .serve(
                    stream,
                    Peer {
                        addr,
                        local,
                        tls: tls_on,
                    },
                )
                .await;
        });
    }
}

/// Tells a client refused for the connection limits why, in its protocol's words
/// ([`Service::busy`]: SMTP `421 4.7.0`, POP3 `-ERR [SYS/TEMP]`, IMAP `* BYE`), then
/// closes. The write is bounded by [`BUSY_TIMEOUT`], so a refused client holds nothing
/// for long; on implicit-TLS listeners the connection is closed at once (a handshake
/// would cost more than the refused session is worth).
fn refuse(stream: TcpStream, service: &dyn Service, implicit_tls: bool) {
    let message = service.busy();
    if implicit_tls || message.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(BUSY_TIMEOUT, async {
            stream.write_all(message).await?;
            stream.shutdown().await
        })
        .await;
    });
}

/// Delivers quota warnings left pending by crossings that did not deliver their own
/// (IMAP APPEND and COPY), every `[quota] warning_interval` seconds.
async fn warnings(store: letterbox_store::Store, config: Arc<Config>) {
    let mut tick = tokio::time::interval(Duration::from_secs(config.quota.warning_interval.max(1)));
    loop {
        tick.tick().await;
        let pending = match store.run(|s| s.pending_warnings()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("quota warnings: cannot list pending ones: {e}");
                continue;
            }
        };
        for account in pending {
            if let Err(e) = letterbox_smtp::warning::deliver_pending(&store, &config, account).await
            {
                tracing::error!("quota warning for account #{account} not delivered: {e}");
            }
        }
    }
}

async fn maintenance(store: letterbox_store::Store, first_run: tokio::time::Instant) {
    let mut tick = tokio::time::interval_at(first_run, MAINTENANCE_INTERVAL);
    loop {
        tick.tick().await;
        match store
            .run(|s| s.sweep_retention(letterbox_store::now()))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!("retention: expunged {n} message(s) retrieved by POP3"),
            Err(e) => tracing::error!("retention sweep failed: {e}"),
        }
        match store.run(|s| s.expire(letterbox_store::now())).await {
            Ok(expired) => {
                for e in expired {
                    tracing::info!(
                        "expire: {} {}: expunged {} message(s), {} octets",
                        e.address,
                        e.mailbox,
                        e.messages,
                        e.bytes
                    );
                }
            }
            Err(e) => tracing::error!("expiry failed: {e}"),
        }
        match store.run(|s| s.gc()).await {
            Ok(r) if r.blobs_removed + r.orphan_files_removed + r.objects_deleted > 0 => {
                tracing::info!(
                    "gc: removed {} blob(s), {} orphan file(s), deleted {} object(s)",
                    r.blobs_removed,
                    r.orphan_files_removed,
                    r.objects_deleted
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!("blob gc failed: {e}"),
        }
    }
}

/// Automatic attachment removal (issue 15, `letterbox_store::strip`): every
/// `[attachments] policy_interval` (a day), as recorded in the store so that restarts
/// neither repeat nor skip a run, every account's policy in force is applied, each
/// replaced message logged here and in the account's space log; the space log is
/// trimmed to the usage history's length at the same time.
async fn attachment_policies(
    store: letterbox_store::Store,
    interval: u64,
    first_run: tokio::time::Instant,
) {
    let interval = interval.max(1);
    let mut tick = tokio::time::interval_at(
        first_run,
        Duration::from_secs(interval).min(MAINTENANCE_INTERVAL),
    );
    loop {
        tick.tick().await;
        let now = letterbox_store::now();
        let due = store
            .run(move |s| s.maintenance_due("attachment-policies", now, interval as i64))
            .await;
        match due {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!("attachment policies: {e}");
                continue;
            }
        }
        let r = store
            .run(move |s| {
                letterbox_store::strip::run_policies(s, now, &mut |acct, step| {
                    use letterbox_store::strip::Step;
                    match step {
                        Step::Stripped { mailbox, uid, new_uid: Some(n), removed, freed } => tracing::info!(
                            "attachments: policy: {} {mailbox} uid {uid} -> {n}: removed {} part(s), freed {freed} octets",
                            acct.address,
                            removed.len()
                        ),
                        Step::Refused { mailbox, uid } => tracing::info!(
                            "attachments: policy: {} {mailbox} uid {uid}: signed or encrypted, left as it is",
                            acct.address
                        ),
                        _ => {}
                    }
                })
            })
            .await;
        match r {
            Ok((0, _)) => {}
            Ok((n, freed)) => tracing::info!("attachments: policies stripped {n} message(s), freed {freed} octets"),
            Err(e) => tracing::error!("attachment policies failed: {e}"),
        }
        let before = now - letterbox_store::web::USAGE_HISTORY_DAYS * 86_400;
        if let Err(e) = store.run(move |s| s.space_log_purge(before)).await {
            tracing::error!("space log purge failed: {e}");
        }
    }
}

//! In-process metrics for `/metrics` (issue 14), in the Prometheus text exposition
//! format, version 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats).
//!
//! Plain atomics rather than the `prometheus-client` or `metrics` crates: the set is
//! small and fixed (a few counter families, one histogram family, gauges read from the
//! store when scraped), every label value is a `&'static str` we choose (listener,
//! protocol and command names, never client input, so no label can explode or need
//! escaping), and writing the 0.0.4 text ourselves keeps exactly the format Prometheus
//! documents (`prometheus-client` writes OpenMetrics, with its `# EOF` and `_created`
//! conventions) without two more dependencies. An increment is one atomic add after a
//! read-locked map lookup.
//!
//! One process-wide instance, [`metrics()`], so that any crate can count without
//! threading a handle through every call (as the `metrics` crate's global recorder does).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `letterbox_connections_total` | counter | `listener` |
//! | `letterbox_connections_active` | gauge | `listener` |
//! | `letterbox_connections_refused_total` | counter | `listener` (connection limits) |
//! | `letterbox_logins_total` | counter | `protocol`, `result` (`ok`, `failed`, `blocked`, `unavailable`) |
//! | `letterbox_deliveries_total` | counter | `protocol` (one per recipient stored) |
//! | `letterbox_bounces_total` | counter | `protocol`, `reason`: recipients or messages refused with a permanent 5xx (the sending MTA bounces them) |
//! | `letterbox_quota_refusals_total` | counter | `protocol` (SMTP/LMTP `552 5.2.2`, IMAP `NO [OVERQUOTA]`) |
//! | `letterbox_command_duration_seconds` | histogram | `protocol`, `command` |
//! | `letterbox_queue_messages` | gauge | none; messages in the outbound queue, read at each scrape by the portal ([`Metrics::set_queue_size`]) |
//! | `letterbox_store_*` | gauges | read from the store at each scrape ([`render`]) |

use letterbox_store::StoreStats;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds (`+Inf` is implied).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

type Labels = [&'static str; 2];

/// Values by label set, created on first use.
struct Family<T> {
    names: [&'static str; 2],
    map: RwLock<BTreeMap<Labels, Arc<T>>>,
}

impl<T: Default> Family<T> {
    const fn new(names: [&'static str; 2]) -> Self {
        Family {
            names,
            map: RwLock::new(BTreeMap::new()),
        }
    }
    fn get(&self, labels: Labels) -> Arc<T> {
        if let Some(v) = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&labels)
        {
            return v.clone();
        }
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(labels)
            .or_default()
            .clone()
    }
    fn snapshot(&self) -> Vec<(Labels, Arc<T>)> {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
    fn label_text(&self, labels: Labels, extra: Option<(&str, &str)>) -> String {
        let mut parts: Vec<String> = self
            .names
            .iter()
            .zip(labels)
            .filter(|(n, _)| !n.is_empty())
            .map(|(n, v)| format!("{n}=\"{v}\""))
            .collect();
        if let Some((n, v)) = extra {
            parts.push(format!("{n}=\"{v}\""));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", parts.join(","))
        }
    }
}

/// A latency histogram: cumulative bucket counts are computed when rendering.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }
}

/// The process's metrics. See the module documentation for the list.
pub struct Metrics {
    connections: Family<AtomicU64>,
    active: Family<AtomicI64>,
    refused: Family<AtomicU64>,
    logins: Family<AtomicU64>,
    deliveries: Family<AtomicU64>,
    bounces: Family<AtomicU64>,
    quota_refusals: Family<AtomicU64>,
    latency: Family<Histogram>,
    queue_size: AtomicI64,
    queue_known: AtomicBool,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    connections: Family::new(["listener", ""]),
    active: Family::new(["listener", ""]),
    refused: Family::new(["listener", ""]),
    logins: Family::new(["protocol", "result"]),
    deliveries: Family::new(["protocol", ""]),
    bounces: Family::new(["protocol", "reason"]),
    quota_refusals: Family::new(["protocol", ""]),
    latency: Family::new(["protocol", "command"]),
    queue_size: AtomicI64::new(0),
    queue_known: AtomicBool::new(false),
});

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Counts a connection as active until dropped.
pub struct ActiveConnection(Arc<AtomicI64>);

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A connection accepted on a `[listen]` listener (`imap`, `imaps`, `smtp`...); it
    /// counts as active while the returned guard lives.
    pub fn connection(&self, listener: &'static str) -> ActiveConnection {
        self.connections
            .get([listener, ""])
            .fetch_add(1, Ordering::Relaxed);
        let g = self.active.get([listener, ""]);
        g.fetch_add(1, Ordering::Relaxed);
        ActiveConnection(g)
    }
    /// A connection refused for the connection limits.
    pub fn refused(&self, listener: &'static str) {
        self.refused
            .get([listener, ""])
            .fetch_add(1, Ordering::Relaxed);
    }
    /// A login attempt's outcome: `ok`, `failed` or `blocked`.
    pub fn login(&self, protocol: &'static str, result: &'static str) {
        self.logins
            .get([protocol, result])
            .fetch_add(1, Ordering::Relaxed);
    }
    /// Messages stored for `n` recipients.
    pub fn delivered(&self, protocol: &'static str, n: u64) {
        self.deliveries
            .get([protocol, ""])
            .fetch_add(n, Ordering::Relaxed);
    }
    /// A recipient or message refused for good (`reason`: `no_such_user`,
    /// `not_local`, `quota`, `size`...).
    pub fn bounced(&self, protocol: &'static str, reason: &'static str) {
        self.bounces
            .get([protocol, reason])
            .fetch_add(1, Ordering::Relaxed);
    }
    /// A message refused because a mailbox is full.
    pub fn quota_refused(&self, protocol: &'static str) {
        self.quota_refusals
            .get([protocol, ""])
            .fetch_add(1, Ordering::Relaxed);
    }
    /// How long one command took, from its line read to its reply written.
    pub fn command(&self, protocol: &'static str, command: &'static str, took: Duration) {
        self.latency.get([protocol, command]).observe(took);
    }
    /// The outbound queue's size, set by whoever runs the queue; until it is first set
    /// the gauge is not exported (there is no queue).
    pub fn set_queue_size(&self, n: i64) {
        self.queue_size.store(n, Ordering::Relaxed);
        self.queue_known.store(true, Ordering::Relaxed);
    }

    /// The value of a counter, for tests and the portal (`None` if never counted).
    pub fn counter(&self, name: &str, labels: [&'static str; 2]) -> Option<u64> {
        let f = match name {
            "connections" => &self.connections,
            "refused" => &self.refused,
            "logins" => &self.logins,
            "deliveries" => &self.deliveries,
            "bounces" => &self.bounces,
            "quota_refusals" => &self.quota_refusals,
            _ => return None,
        };
        let m = f.map.read().unwrap_or_else(|e| e.into_inner());
        m.get(&labels).map(|v| v.load(Ordering::Relaxed))
    }
}

/// A command's label: the verb as one of `known` (upper case, as listed there), else
/// `OTHER`, so that what clients send never becomes a label of its own.
pub fn command_label(verb: &str, known: &[&'static str]) -> &'static str {
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(verb))
        .copied()
        .unwrap_or("OTHER")
}

fn counter_family(out: &mut String, name: &str, help: &str, f: &Family<AtomicU64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, v) in f.snapshot() {
        let _ = writeln!(
            out,
            "{name}{} {}",
            f.label_text(labels, None),
            v.load(Ordering::Relaxed)
        );
    }
}

fn gauge(out: &mut String, name: &str, help: &str, v: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

/// The metrics in the Prometheus text format (`text/plain; version=0.0.4`), with the
/// store's sizes as gauges.
pub fn render(stats: Option<&StoreStats>) -> String {
    let m = metrics();
    let mut out = String::with_capacity(8192);
    counter_family(
        &mut out,
        "letterbox_connections_total",
        "Connections accepted, by listener.",
        &m.connections,
    );
    let _ = writeln!(
        out,
        "# HELP letterbox_connections_active Connections open now, by listener.\n# TYPE letterbox_connections_active gauge"
    );
    for (labels, v) in m.active.snapshot() {
        let _ = writeln!(
            out,
            "letterbox_connections_active{} {}",
            m.active.label_text(labels, None),
            v.load(Ordering::Relaxed)
        );
    }
    counter_family(
        &mut out,
        "letterbox_connections_refused_total",
        "Connections refused for the connection limits, by listener.",
        &m.refused,
    );
    counter_family(
        &mut out,
        "letterbox_logins_total",
        "Login attempts by protocol and result (ok, failed, blocked).",
        &m.logins,
    );
    counter_family(
        &mut out,
        "letterbox_deliveries_total",
        "Messages stored for a recipient, by protocol.",
        &m.deliveries,
    );
    counter_family(
        &mut out,
        "letterbox_bounces_total",
        "Recipients or messages refused with a permanent error, by protocol and reason.",
        &m.bounces,
    );
    counter_family(
        &mut out,
        "letterbox_quota_refusals_total",
        "Messages refused because a mailbox was full, by protocol.",
        &m.quota_refusals,
    );
    let name = "letterbox_command_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from a command's line to its reply, by protocol and command.\n# TYPE {name} histogram"
    );
    for (labels, h) in m.latency.snapshot() {
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += h.buckets[i].load(Ordering::Relaxed);
            let le = bound.to_string();
            let _ = writeln!(
                out,
                "{name}_bucket{} {cumulative}",
                m.latency.label_text(labels, Some(("le", &le)))
            );
        }
        let count = h.count.load(Ordering::Relaxed);
        let l = m.latency.label_text(labels, None);
        let _ = writeln!(
            out,
            "{name}_bucket{} {count}",
            m.latency.label_text(labels, Some(("le", "+Inf")))
        );
        let sum = h.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{l} {sum}\n{name}_count{l} {count}");
    }
    if m.queue_known.load(Ordering::Relaxed) {
        gauge(
            &mut out,
            "letterbox_queue_messages",
            "Messages in the outbound queue.",
            m.queue_size.load(Ordering::Relaxed),
        );
    }
    if let Some(s) = stats {
        gauge(
            &mut out,
            "letterbox_store_accounts",
            "Accounts.",
            s.accounts,
        );
        gauge(
            &mut out,
            "letterbox_store_messages",
            "Messages in all mailboxes.",
            s.messages,
        );
        gauge(
            &mut out,
            "letterbox_store_usage_bytes",
            "Sum of the accounts' quota usage (message sizes as clients see them).",
            s.usage_bytes,
        );
        gauge(
            &mut out,
            "letterbox_store_blobs",
            "Distinct message bodies stored (deduplicated).",
            s.blobs,
        );
        gauge(
            &mut out,
            "letterbox_store_blob_bytes",
            "Uncompressed octets of the distinct message bodies.",
            s.blob_bytes,
        );
        gauge(
            &mut out,
            "letterbox_store_database_bytes",
            "Size of the database files (store.db and its WAL).",
            s.database_bytes,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = metrics();
        m.command("test", "NOOP", Duration::from_micros(500));
        m.command("test", "NOOP", Duration::from_millis(30));
        m.command("test", "NOOP", Duration::from_secs(60));
        m.login("test", "ok");
        let text = render(None);
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix} missing in\n{text}"))
                .to_string()
        };
        let h = "letterbox_command_duration_seconds";
        assert_eq!(
            line(&format!(
                "{h}_bucket{{protocol=\"test\",command=\"NOOP\",le=\"0.001\"}}"
            )),
            format!("{h}_bucket{{protocol=\"test\",command=\"NOOP\",le=\"0.001\"}} 1")
        );
        assert!(line(&format!(
            "{h}_bucket{{protocol=\"test\",command=\"NOOP\",le=\"0.05\"}}"
        ))
        .ends_with(" 2"));
        assert!(line(&format!(
            "{h}_bucket{{protocol=\"test\",command=\"NOOP\",le=\"10\"}}"
        ))
        .ends_with(" 2"));
        assert!(line(&format!(
            "{h}_bucket{{protocol=\"test\",command=\"NOOP\",le=\"+Inf\"}}"
        ))
        .ends_with(" 3"));
        assert!(line(&format!("{h}_count{{protocol=\"test\",command=\"NOOP\"}}")).ends_with(" 3"));
        assert!(line("letterbox_logins_total{protocol=\"test\",result=\"ok\"}").ends_with(" 1"));
        assert!(!text.contains("letterbox_queue_messages"));
    }
}

//! Inbound filtering (issue 13), one file per job:
//! - [`auth`]: SPF, DKIM, ARC and DMARC of received mail (`mail-auth`), the
//!   `Authentication-Results` header, and DMARC's reject/quarantine;
//! - [`sieve`]: users' Sieve scripts (RFC 5228 and extensions) decide folders, flags and
//!   vacation replies, per recipient;
//! - [`rspamd`]: spam scanning through rspamd's HTTP protocol (`/checkv2`) and learning
//!   (`/learnspam`, `/learnham`) when users move mail into or out of Junk;
//! - [`redirect`]: the copy a Sieve `redirect` sends to another domain, and its loop
//!   control (RFC 5228 4.2).
//!
//! The SMTP/LMTP session calls [`Filter::scan`] once per message at the end of DATA (a
//! reject or temporary failure is answered there), then [`sieve::Engine::run`] once per
//! recipient, and hands the resulting copies to the store (`Backend::deliver_to`). The
//! headers a scan adds go into each recipient's stored prefix, above the trace headers
//! the store keeps per recipient, so the shared body blob stays deduplicated. Scripts
//! read the message as the delivery parsed it, once for them and the store
//! (`letterbox_message::parse_shared`): this crate never parses a message at delivery.
//!
//! One [`Filter`] per configuration ([`Filter::shared`]): every listener of a server
//! shares its compiled-script cache and its rspamd client.

pub mod auth;
pub mod http;
pub mod rspamd;
pub mod sieve;
pub mod redirect;

use letterbox_config::{Config, ScannerDown};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

/// The transaction as the filters see it.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Queue id (logs, rspamd's `Queue-Id`).
    pub id: String,
    /// Reverse-path; empty for the null sender.
    pub sender: String,
    pub helo: String,
    pub ip: IpAddr,
    pub rcpts: Vec<String>,
    /// The client authenticated (submission): no spam or authenticity checks.
    pub authenticated: bool,
}

/// What the message-level checks decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Permanent refusal at the end of DATA (5xx).
    Reject { code: u16, esc: &'static str, text: String },
    /// Temporary refusal (4xx): the sender retries.
    Tempfail { code: u16, esc: &'static str, text: String },
}

/// The result of [`Filter::scan`].
#[derive(Debug, Clone)]
pub struct Scan {
    pub verdict: Verdict,
    /// Header lines to prepend to every recipient's copy (CRLF-terminated).
    pub headers: Vec<u8>,
    /// File into the Junk folder unless a Sieve script decides otherwise.
    pub junk: bool,
    /// rspamd's score on RFC 5235's scale (1 clean .. 10 spam), for `spamtest`.
    pub spamtest: Option<u32>,
    /// The message to store instead of the one received (a forged
    /// `Authentication-Results` removed); `None`: unchanged.
    pub body: Option<Vec<u8>>,
}

impl Scan {
    fn accept() -> Scan {
        Scan {
            verdict: Verdict::Accept,
            headers: Vec::new(),
            junk: false,
            spamtest: None,
            body: None,
        }
    }
}

/// The server's filters, built from the configuration.
pub struct Filter {
    config: Arc<Config>,
    sieve: sieve::Engine,
    rspamd: Option<rspamd::Client>,
    auth: Option<auth::Checker>,
}

type Registry = Mutex<Vec<(Weak<Config>, Arc<Filter>)>>;
static REGISTRY: Registry = Mutex::new(Vec::new());

impl Filter {
    pub fn new(config: Arc<Config>) -> Filter {
        let f = &config.filter;
        let rspamd = (!f.rspamd.is_empty()).then(|| rspamd::Client::new(f));
        let auth = if f.check_auth {
            match auth::Checker::new(&config) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!("filter.check_auth: {e}; SPF/DKIM/DMARC checks are off");
                    None
                }
            }
        } else {
            None
        };
        Filter {
            sieve: sieve::Engine::new(f, &config.hostname),
            rspamd,
            auth,
            config,
        }
    }

    /// The filter of this configuration (one per `Arc<Config>`, made on first use), so
    /// that the SMTP, LMTP and IMAP services of one server share caches and clients.
    pub fn shared(config: &Arc<Config>) -> Arc<Filter> {
        let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        reg.retain(|(w, _)| w.strong_count() > 0);
        if let Some((_, f)) = reg
            .iter()
            .find(|(w, _)| w.upgrade().is_some_and(|c| Arc::ptr_eq(&c, config)))
        {
            return f.clone();
        }
        let f = Arc::new(Filter::new(config.clone()));
        reg.push((Arc::downgrade(config), f.clone()));
        f
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn sieve(&self) -> &sieve::Engine {
        &self.sieve
    }

    pub fn rspamd(&self) -> Option<&rspamd::Client> {
        self.rspamd.as_ref()
    }

    /// The folder spam goes to.
    pub fn junk_folder(&self) -> &str {
        &self.config.filter.junk_folder
    }

    /// Whether a user's folder is the Junk folder (learning).
    pub fn is_junk(&self, name: &str) -> bool {
        name == self.config.filter.junk_folder
    }

    /// Message-level checks of received mail: SPF/DKIM/ARC/DMARC, then spam scanning.
    /// Authenticated submissions pass unchecked.
    pub async fn scan(&self, env: &Envelope, body: &[u8]) -> Scan {
        let mut scan = Scan::accept();
        if env.authenticated {
            return scan;
        }
        if let Some(checker) = &self.auth {
            checker.check(&self.config, env, body, &mut scan).await;
            if scan.verdict != Verdict::Accept {
                return scan;
            }
        }
        if let Some(client) = &self.rspamd {
            if body.len() as u64 > self.config.filter.rspamd_max_size.0 {
                scan.headers
                    .extend_from_slice(b"X-Spam-Status: Unscanned (too large)\r\n");
                return scan;
            }
            match client.check(env, body).await {
                Ok(r) => r.apply(&mut scan),
                Err(e) => match self.config.filter.rspamd_down {
                    ScannerDown::Accept => {
                        tracing::warn!(id = %env.id, "rspamd unavailable, message accepted unscanned: {e}");
                        scan.headers
                            .extend_from_slice(b"X-Spam-Status: Unscanned (scanner unavailable)\r\n");
                    }
                    ScannerDown::Tempfail => {
                        tracing::warn!(id = %env.id, "rspamd unavailable, message deferred: {e}");
                        scan.verdict = Verdict::Tempfail {
                            code: 451,
                            esc: "4.7.1",
                            text: "Spam scanner unavailable, try again later".into(),
                        };
                    }
                },
            }
        }
        scan
    }
}

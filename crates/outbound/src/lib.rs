//! Outbound delivery: getting one message to the recipients of one destination domain
//! (the queue, `letterbox-queue`, decides when and with what).
//!
//! Routing (RFC 5321 5.1): the domain's MX records in preference order (equal preferences
//! in the order the resolver gave); no MX record at all means the domain itself (the
//! "implicit MX", its A/AAAA records); a domain that does not exist is a permanent
//! failure; a null MX (RFC 7505: one MX of preference 0 and exchange `.`) is a permanent
//! failure at once (`556 5.1.10`). Each host's addresses are tried in turn (AAAA and A as
//! the resolver returns them); a host that cannot be reached, or refuses at the greeting
//! or EHLO, passes the turn to the next. Once a transaction has started, its replies are
//! the outcome of this attempt. With `[outbound] relay` every message goes to the
//! smarthost instead (`smtp://`: STARTTLS when offered, validated; `smtps://`: implicit
//! TLS, RFC 8314), authenticating with AUTH PLAIN when `relay_user` is set (never over
//! plaintext unless the relay is on loopback).
//!
//! TLS: STARTTLS whenever offered, with any certificate (opportunistic, RFC 7435; see
//! [`tls`]); a domain with an MTA-STS `enforce` policy ([`mta_sts`]) only through MX hosts
//! the policy names and over TLS validated for the MX host name, else a temporary failure
//! (RFC 8461 5: the message stays queued). DANE (RFC 7672, [`dane`]): an MX host with a
//! DNSSEC-validated TLSA RRset gets mail only over TLS whose certificate matches it, else a
//! temporary failure; DANE takes precedence over MTA-STS for that host.
//!
//! DNS through hickory-resolver: `[outbound] dns = "ip:port"` (UDP and TCP) or the
//! system's `/etc/resolv.conf`.
//!
//! Internationalised domains (RFC 5890/5891, IDNA2008 as UTS #46 maps it, the store's
//! `letterbox_store::idn`): a recipient's domain is routed by its A-label (the MX, A and
//! AAAA lookups, MTA-STS and DANE all use `xn--...`), whatever form the sender gave it
//! in, and MAIL FROM / RCPT TO carry the A-label domain ([`wire_address`]), so that a
//! server without SMTPUTF8 never sees UTF-8 in a domain. Only a non-ASCII local part or a
//! header with UTF-8 (RFC 6532) makes a message need SMTPUTF8 (RFC 6531 3.2: without it
//! at the server, that message bounces, see [`client`]).

pub mod client;
pub mod dane;
pub mod mta_sts;
pub mod tls;

use client::{Conn, HostError};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use letterbox_config::Config;
use letterbox_proto::BoxStream;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// `domain` as it goes on the wire and to the DNS: lower-case, U-labels as A-labels
/// (`bücher.example` gives `xn--bcher-kva.example`); a name IDNA refuses, or an address
/// literal, lower-cased as it is.
pub fn wire_domain(domain: &str) -> String {
    if domain.starts_with('[') {
        return domain.to_ascii_lowercase();
    }
    letterbox_store::idn::a_label(domain).unwrap_or_else(|| domain.to_ascii_lowercase())
}

/// `address` as MAIL FROM / RCPT TO carry it: the local part as given (RFC 5321 2.4: it
/// is the receiving host's to interpret), the domain as [`wire_domain`] gives it. An
/// address literal, an ASCII domain, or a name without `@` (the null sender), is
/// unchanged.
pub fn wire_address(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) if !domain.is_ascii() && !domain.starts_with('[') => {
            match letterbox_store::idn::a_label(domain) {
                Some(d) => format!("{local}@{d}"),
                None => address.to_string(),
            }
        }
        _ => address.to_string(),
    }
}

/// One message for the recipients of one destination.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// Reverse-path, empty for the null sender.
    pub sender: &'a str,
    pub rcpts: Vec<Rcpt<'a>>,
    pub body: &'a [u8],
    pub smtputf8: bool,
    pub body_8bit: bool,
    pub ret_full: bool,
    pub envid: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct Rcpt<'a> {
    pub address: &'a str,
    pub orcpt: Option<&'a str>,
    /// RFC 3461 NOTIFY bits (`letterbox_store::queue::NOTIFY_*`), 0 when not given.
    pub notify: u8,
}

/// One recipient's outcome, with the remote reply (or our reason) as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    Delivered(String),
    /// Try again later (4xx, connection trouble, DNS trouble).
    Temp(String),
    /// Bounce (5xx, null MX, unknown domain, a message the remote cannot take).
    Perm(String),
}

/// Where a destination's mail goes.
#[derive(Debug, Clone)]
struct Hop {
    host: String,
    /// Fixed addresses (a relay given as an IP) or `None` to resolve `host`.
    ip: Option<IpAddr>,
}

/// The outbound client: resolver, TLS configurations, MTA-STS cache. One per server.
pub struct Outbound {
    config: Arc<Config>,
    resolver: TokioResolver,
    tls: tls::TlsClients,
    sts: mta_sts::Cache,
    relay: Option<Relay>,
    /// `None`: DANE off (`[outbound] dane = false`, or no resolver on loopback).
    dane: Option<dane::Dane>,
}

#[derive(Debug, Clone)]
struct Relay {
    host: String,
    port: u16,
    implicit_tls: bool,
    user: Option<String>,
    password: Option<String>,
}

impl Outbound {
    pub fn new(config: Arc<Config>) -> Result<Outbound, String> {
        let o = &config.outbound;
        let resolver = match o.dns {
            Some(addr) => {
                let mut udp = ConnectionConfig::new(ProtocolConfig::Udp);
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::new(ProtocolConfig::Tcp);
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                let rc = ResolverConfig::from_parts(None, vec![], vec![ns]);
                TokioResolver::builder_with_config(rc, TokioRuntimeProvider::default())
            }
            None => TokioResolver::builder_tokio().map_err(|e| format!("system resolver: {e}"))?,
        };
        let mut builder = resolver;
        builder.options_mut().attempts = 2;
        builder.options_mut().timeout = Duration::from_secs(5);
        let resolver = builder.build().map_err(|e| format!("resolver: {e}"))?;
        let tls = tls::TlsClients::new(o.tls_ca_file.as_deref())?;
        let relay = match &o.relay {
            None => None,
            Some(url) => {
                let (implicit_tls, hp) = match url.strip_prefix("smtps://") {
                    Some(hp) => (true, hp),
                    None => (false, url.strip_prefix("smtp://").unwrap_or(url)),
                };
                let (host, port) = hp
                    .rsplit_once(':')
                    .and_then(|(h, p)| {
                        Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?))
                    })
                    .ok_or_else(|| format!("outbound.relay: malformed {url}"))?;
                let password = match (&o.relay_password, &o.relay_password_file) {
                    (Some(p), _) => Some(p.clone()),
                    (None, Some(f)) => Some(
                        std::fs::read_to_string(f)
                            .map_err(|e| {
                                format!("outbound.relay_password_file {}: {e}", f.display())
                            })?
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_string(),
                    ),
                    (None, None) => None,
                };
                Some(Relay {
                    host,
                    port,
                    implicit_tls,
                    user: o.relay_user.clone(),
                    password,
                })
            }
        };
        let dane = if o.dane && relay.is_none() {
            match dane::Dane::new(o.dns, Duration::from_secs(5)) {
                Ok(d) => Some(d),
                Err(why) => {
                    tracing::warn!("DANE (RFC 7672) is off: {why}");
                    None
                }
            }
        } else {
            None
        };
        Ok(Outbound {
            config,
            resolver,
            tls,
            sts: mta_sts::Cache::default(),
            relay,
            dane,
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.outbound.timeout.0.max(1))
    }

    /// Delivers `env` to its recipients, all of domain `domain`. One result per
    /// recipient, in order. Never panics; every failure is a result.
    pub async fn deliver(&self, domain: &str, env: &Envelope<'_>) -> Vec<RcptResult> {
        let n = env.rcpts.len();
        if let Some(relay) = self.relay.clone() {
            return self.via_relay(&relay, env).await;
        }
        // RFC 5891 5: the DNS is asked for the A-label, never for UTF-8.
        let domain = wire_domain(domain.trim_end_matches('.'));
        let hops = match self.route(&domain).await {
            Ok(h) => h,
            Err(r) => return vec![r; n],
        };
        let policy = if self.config.outbound.mta_sts {
            let fetch = mta_sts::Fetch {
                resolver: &self.resolver,
                tls: self.tls.validated.clone(),
                port: self.config.outbound.mta_sts_port,
                timeout: Duration::from_secs(self.config.outbound.connect_timeout.0.max(1) * 2),
            };
            self.sts.policy(&domain, &fetch).await
        } else {
            None
        };
        let enforce = policy.filter(|p| p.mode == mta_sts::Mode::Enforce);
        // RFC 7672 2.2.1: TLSA records are looked up only under a secure MX RRset.
        let dane = match &self.dane {
            Some(d) => match d.mx_secure(&domain).await {
                Ok(true) => Some(d),
                Ok(false) => None,
                Err(e) => {
                    tracing::info!(domain, "DANE: MX security lookup failed: {e}");
                    return vec![
                        RcptResult::Temp(format!(
                            "451 4.4.3 DNSSEC status of {domain} unknown (DANE): {e}"
                        ));
                        n
                    ];
                }
            },
            None => None,
        };
        let mut last = String::from("no MX host could be reached");
        for hop in hops {
            let tlsa = match dane {
                Some(d) => match d.host_policy(&hop.host, self.config.outbound.port).await {
                    Ok(dane::HostPolicy::Dane(records)) => Some(records),
                    Ok(dane::HostPolicy::None) => None,
                    Err(e) => {
                        // RFC 7672 2.2: a failed TLSA lookup makes the host unusable.
                        last = format!("{}: DANE TLSA lookup failed: {e}", hop.host);
                        tracing::info!(domain, host = %hop.host, "{last}");
                        continue;
                    }
                },
                None => None,
            };
            if let (Some(p), None) = (&enforce, &tlsa) {
                if !p.mx_matches(&hop.host) {
                    last = format!(
                        "MX host {} is not allowed by the domain's MTA-STS policy",
                        hop.host
                    );
                    tracing::info!(domain, host = %hop.host, "MTA-STS: MX not in policy, skipped");
                    continue;
                }
            }
            let addrs = match hop.ip {
                Some(ip) => vec![ip],
                None => match self
                    .resolver
                    .lookup_ip(format!("{}.", hop.host.trim_end_matches('.')))
                    .await
                {
                    Ok(l) => l.iter().collect(),
                    Err(e) => {
                        last = format!("{}: address lookup failed: {e}", hop.host);
                        continue;
                    }
                },
            };
            for ip in addrs {
                let addr = SocketAddr::new(ip, self.config.outbound.port);
                let need = match &tlsa {
                    Some(records) => Security::Dane(records),
                    None if enforce.is_some() => Security::MtaSts,
                    None => Security::Opportunistic,
                };
                match self.session(&hop.host, addr, need, None, env).await {
                    Ok(results) => return results,
                    Err(e) => {
                        tracing::info!(domain, host = %hop.host, %addr, "delivery attempt: {}", e.text);
                        last = format!("{} [{addr}]: {}", hop.host, e.text);
                    }
                }
            }
        }
        vec![RcptResult::Temp(format!("451 4.4.1 {last}")); n]
    }

    async fn via_relay(&self, relay: &Relay, env: &Envelope<'_>) -> Vec<RcptResult> {
        let n = env.rcpts.len();
        let ips: Vec<IpAddr> = match relay.host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match self.resolver.lookup_ip(format!("{}.", relay.host)).await {
                Ok(l) => l.iter().collect(),
                Err(e) => {
                    return vec![
                        RcptResult::Temp(format!(
                            "451 4.4.3 relay {}: address lookup failed: {e}",
                            relay.host
                        ));
                        n
                    ]
                }
            },
        };
        let mut last = String::new();
        for ip in ips {
            let addr = SocketAddr::new(ip, relay.port);
            match self
                .session(&relay.host, addr, Security::Opportunistic, Some(relay), env)
                .await
            {
                Ok(r) => return r,
                Err(e) => last = format!("relay {} [{addr}]: {}", relay.host, e.text),
            }
        }
        vec![RcptResult::Temp(format!("451 4.4.1 {last}")); n]
    }

    /// RFC 5321 5.1 routing for `domain`.
    async fn route(&self, domain: &str) -> Result<Vec<Hop>, RcptResult> {
        if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            let ip = lit.strip_prefix("IPv6:").unwrap_or(lit);
            return match ip.parse::<IpAddr>() {
                Ok(ip) => Ok(vec![Hop {
                    host: ip.to_string(),
                    ip: Some(ip),
                }]),
                Err(_) => Err(RcptResult::Perm(format!(
                    "501 5.1.2 malformed address literal [{lit}]"
                ))),
            };
        }
        match self.resolver.mx_lookup(format!("{domain}.")).await {
            Ok(mx) => {
                let mut v: Vec<(u16, String)> = mx
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        hickory_resolver::proto::rr::RData::MX(m) => {
                            // The A-label form as the DNS has it: `to_utf8` would
                            // decode Punycode, and TLS (SNI), MTA-STS and DANE
                            // need the host's ASCII name.
                            Some((m.preference, m.exchange.to_ascii()))
                        }
                        _ => None,
                    })
                    .collect();
                if v.is_empty() {
                    return Ok(vec![Hop {
                        host: domain.to_string(),
                        ip: None,
                    }]);
                }
                // RFC 7505 3: a null MX is the only MX, "." with preference 0.
                if v.iter().any(|(_, h)| h == "." || h.is_empty()) {
                    return Err(RcptResult::Perm(format!(
                        "556 5.1.10 Domain {domain} does not accept mail (null MX, RFC 7505)"
                    )));
                }
                v.sort_by_key(|(p, _)| *p);
                Ok(v.into_iter()
                    .map(|(_, h)| Hop {
                        host: h.trim_end_matches('.').to_string(),
                        ip: None,
                    })
                    .collect())
            }
            Err(e) if e.is_nx_domain() => Err(RcptResult::Perm(format!(
                "550 5.1.2 Domain {domain} does not exist"
            ))),
            Err(e) if e.is_no_records_found() => Ok(vec![Hop {
                host: domain.to_string(),
                ip: None,
            }]),
            Err(e) => Err(RcptResult::Temp(format!(
                "451 4.4.3 DNS lookup of {domain} failed: {e}"
            ))),
        }
    }

    /// One connection: greeting, EHLO, STARTTLS, (AUTH), the transaction, QUIT.
    async fn session(
        &self,
        host: &str,
        addr: SocketAddr,
        security: Security<'_>,
        relay: Option<&Relay>,
        env: &Envelope<'_>,
    ) -> Result<Vec<RcptResult>, HostError> {
        let connect = Duration::from_secs(self.config.outbound.connect_timeout.0.max(1));
        let tcp = match tokio::time::timeout(connect, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(HostError {
                    text: format!("connect: {e}"),
                    permanent: false,
                })
            }
            Err(_) => {
                return Err(HostError {
                    text: "connect: timed out".into(),
                    permanent: false,
                })
            }
        };
        let _ = tcp.set_nodelay(true);
        let require_tls = !matches!(security, Security::Opportunistic);
        let helo = self.config.hostname.clone();
        let validated_relay = relay.is_some();
        let mut conn = if relay.is_some_and(|r| r.implicit_tls) {
            let s = self.handshake(Box::new(tcp), host, Verify::WebPki).await?;
            Conn::new(s, self.timeout(), true)
        } else {
            Conn::new(Box::new(tcp), self.timeout(), false)
        };
        conn.hello(&helo, true).await?;
        if !conn.tls && conn.caps.starttls {
            conn.send(b"STARTTLS\r\n").await.map_err(io_err)?;
            let r = conn.reply().await.map_err(io_err)?;
            if r.code == 220 && !conn.has_buffered() {
                let verify = match security {
                    Security::Dane(records) => Verify::Dane(records),
                    Security::MtaSts => Verify::WebPki,
                    Security::Opportunistic if validated_relay => Verify::WebPki,
                    Security::Opportunistic => Verify::Any,
                };
                let stream = conn.into_stream();
                let s = self.handshake(stream, host, verify).await?;
                conn = Conn::new(s, self.timeout(), true);
                conn.hello(&helo, false).await?;
            } else if require_tls {
                return Err(HostError {
                    text: format!("STARTTLS refused: {}", r.text()),
                    permanent: false,
                });
            }
        }
        if require_tls && !conn.tls {
            let text = match security {
                Security::Dane(_) => "the host's DANE TLSA records (RFC 7672) require TLS and the host does not offer STARTTLS",
                _ => "the domain's MTA-STS policy (enforce) requires TLS and the host does not offer STARTTLS",
            };
            return Err(HostError {
                text: text.into(),
                permanent: false,
            });
        }
        if let Some(r) = relay {
            if let (Some(user), Some(pw)) = (&r.user, &r.password) {
                if !conn.tls && !addr.ip().is_loopback() {
                    return Err(HostError {
                        text: "relay offers no TLS: credentials not sent in plaintext".into(),
                        permanent: false,
                    });
                }
                conn.auth_plain(user, pw).await?;
            }
        }
        let results = conn.transaction(env).await;
        conn.quit().await;
        Ok(results)
    }

    async fn handshake(
        &self,
        stream: BoxStream,
        host: &str,
        verify: Verify<'_>,
    ) -> Result<BoxStream, HostError> {
        let name = tls::server_name(host).ok_or_else(|| HostError {
            text: format!("cannot use {host} as a TLS server name"),
            permanent: false,
        })?;
        let cfg = match verify {
            Verify::WebPki => self.tls.validated.clone(),
            Verify::Any => self.tls.opportunistic.clone(),
            Verify::Dane(records) => self.tls.dane(records.to_vec()).map_err(|e| HostError {
                text: format!("TLS configuration for DANE: {e}"),
                permanent: false,
            })?,
        };
        let hs = tokio_rustls::TlsConnector::from(cfg).connect(name, stream);
        match tokio::time::timeout(self.timeout(), hs).await {
            Ok(Ok(s)) => Ok(Box::new(s)),
            Ok(Err(e)) => Err(HostError {
                text: format!(
                    "TLS handshake failed{}: {e}",
                    match verify {
                        Verify::WebPki => " (validated TLS required)",
                        Verify::Dane(_) =>
                            " (DANE: the certificate must match the host's TLSA records)",
                        Verify::Any => "",
                    }
                ),
                permanent: false,
            }),
            Err(_) => Err(HostError {
                text: "TLS handshake timed out".into(),
                permanent: false,
            }),
        }
    }
}

/// What one connection's TLS must be.
#[derive(Debug, Clone, Copy)]
enum Security<'a> {
    /// STARTTLS when offered, any certificate.
    Opportunistic,
    /// MTA-STS `enforce`: TLS validated for the MX host name.
    MtaSts,
    /// DANE: TLS whose certificate matches these TLSA records.
    Dane(&'a [dane::Tlsa]),
}

/// How a handshake checks the certificate.
#[derive(Debug, Clone, Copy)]
enum Verify<'a> {
    Any,
    WebPki,
    Dane(&'a [dane::Tlsa]),
}

fn io_err(e: std::io::Error) -> HostError {
    HostError {
        text: format!("connection failed: {e}"),
        permanent: false,
    }
}

#[cfg(test)]
mod tests {
    use super::{wire_address, wire_domain};

    #[test]
    fn wire_forms() {
        assert_eq!(wire_domain("Bücher.Example"), "xn--bcher-kva.example");
        assert_eq!(
            wire_domain("XN--BCHER-KVA.example"),
            "xn--bcher-kva.example"
        );
        assert_eq!(wire_domain("[127.0.0.1]"), "[127.0.0.1]");
        // The local part is the remote host's: kept as given, case and UTF-8 included.
        assert_eq!(
            wire_address("Jösé@BÜCHER.example"),
            "Jösé@xn--bcher-kva.example"
        );
        assert_eq!(wire_address("User@Example.COM"), "User@Example.COM");
        assert_eq!(wire_address(""), "");
        // A name IDNA refuses is left as it is (submission refused it already).
        assert_eq!(wire_address("x@a\u{2488}b.example"), "x@a\u{2488}b.example");
    }
}

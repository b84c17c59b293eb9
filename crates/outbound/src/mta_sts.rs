//! MTA-STS (RFC 8461): a domain that publishes `_mta-sts.DOMAIN TXT "v=STSv1; id=..."`
//! and a policy at `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` with `mode: enforce`
//! gets mail only over TLS validated against the trust roots, and only through MX hosts
//! its `mx:` patterns name (RFC 8461 4.1, 4.2, 5). `testing` policies are fetched but
//! change nothing (TLS-RPT is not implemented). A policy is cached in memory for its
//! `max_age` (capped at a day here) and fetched again when the TXT id changes (3.3).
//! When the TXT record exists but no policy can be fetched and none is cached, delivery
//! goes on as if the domain had none (RFC 8461 5).
//!
//! The HTTPS fetch is a minimal HTTP/1.1 GET over rustls (validated, SNI
//! `mta-sts.DOMAIN`), body at most 64 KiB (RFC 8461 3.3), `Content-Length` or chunked.

use hickory_resolver::TokioResolver;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_POLICY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub mx: Vec<String>,
    pub max_age: u64,
}

impl Policy {
    /// RFC 8461 4.1: `mx.example.com` or `*.example.com` (one leftmost label).
    pub fn mx_matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| {
            let p = p.to_ascii_lowercase();
            match p.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
                None => p == host,
            }
        })
    }
}

pub fn parse_policy(text: &str) -> Option<Policy> {
    let mut version = false;
    let mut mode = None;
    let mut mx = Vec::new();
    let mut max_age = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "version" => version = v == "STSv1",
            "mode" => {
                mode = match v {
                    "enforce" => Some(Mode::Enforce),
                    "testing" => Some(Mode::Testing),
                    "none" => Some(Mode::None),
                    _ => None,
                }
            }
            "mx" => mx.push(v.to_string()),
            "max_age" => max_age = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    let mode = mode?;
    if !version || max_age.is_none() || (mode != Mode::None && mx.is_empty()) {
        return None;
    }
    Some(Policy {
        mode,
        mx,
        max_age: max_age.unwrap_or(0),
    })
}

struct Cached {
    id: String,
    policy: Policy,
    until: Instant,
}

#[derive(Default)]
pub struct Cache {
    map: Mutex<HashMap<String, Cached>>,
}

/// What the fetcher needs from the outside.
pub struct Fetch<'a> {
    pub resolver: &'a TokioResolver,
    pub tls: Arc<rustls::ClientConfig>,
    pub port: u16,
    pub timeout: Duration,
}

impl Cache {
    /// The policy of `domain`, or `None` when it has none (or none could be had).
    pub async fn policy(&self, domain: &str, f: &Fetch<'_>) -> Option<Policy> {
        let id = txt_id(f.resolver, domain).await;
        let cached = {
            let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.get(domain)
                .filter(|c| c.until > Instant::now())
                .map(|c| (c.id.clone(), c.policy.clone()))
        };
        let Some(id) = id else {
            // RFC 8461 5.1: a cached policy stays in force while valid, even when the
            // TXT record has gone.
            return cached.map(|(_, p)| p);
        };
        if let Some((cid, p)) = &cached {
            if *cid == id {
                return Some(p.clone());
            }
        }
        match fetch(domain, f).await {
            Ok(p) => {
                let ttl = Duration::from_secs(p.max_age.min(86_400));
                self.map.lock().unwrap_or_else(|e| e.into_inner()).insert(
                    domain.to_string(),
                    Cached {
                        id,
                        policy: p.clone(),
                        until: Instant::now() + ttl,
                    },
                );
                Some(p)
            }
            Err(e) => {
                tracing::info!(domain, "MTA-STS policy not fetched: {e}");
                cached.map(|(_, p)| p)
            }
        }
    }
}

async fn txt_id(resolver: &TokioResolver, domain: &str) -> Option<String> {
    let name = format!("_mta-sts.{domain}.");
    let txt = resolver.txt_lookup(name).await.ok()?;
    let mut ids = txt.answers().iter().filter_map(|r| {
        let hickory_resolver::proto::rr::RData::TXT(t) = &r.data else {
            return None;
        };
        let s: String = t
            .txt_data
            .iter()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .collect();
        if !s.starts_with("v=STSv1") {
            return None;
        }
        s.split(';')
            .find_map(|kv| kv.trim().strip_prefix("id=").map(|v| v.trim().to_string()))
    });
    // RFC 8461 3.1: more than one STSv1 record means none.
    let first = ids.next()?;
    if ids.next().is_some() {
        return None;
    }
    Some(first)
}

async fn fetch(domain: &str, f: &Fetch<'_>) -> Result<Policy, String> {
    let host = format!("mta-sts.{domain}");
    let ips = f
        .resolver
        .lookup_ip(format!("{host}."))
        .await
        .map_err(|e| format!("{host}: {e}"))?;
    let ip = ips
        .iter()
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let name = crate::tls::server_name(&host).ok_or("bad host name")?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect((ip, f.port))
            .await
            .map_err(|e| format!("{host}: {e}"))?;
        let mut tls = tokio_rustls::TlsConnector::from(f.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{host}: TLS: {e}"))?;
        let req = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Letterbox\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        // Many HTTPS servers close without TLS close_notify after `Connection: close`;
        // the body's length is checked against Content-Length below instead.
        match (&mut tls)
            .take((MAX_POLICY + 8192) as u64)
            .read_to_end(&mut buf)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e.to_string()),
        }
        Ok::<Vec<u8>, String>(buf)
    };
    let buf = tokio::time::timeout(f.timeout, work)
        .await
        .map_err(|_| format!("{host}: timed out"))??;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let raw = &buf[split + 4..];
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("HTTP status: {status}"));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let body = if chunked {
        String::from_utf8_lossy(&dechunk(raw)).into_owned()
    } else {
        let raw = match length {
            Some(n) => raw.get(..n).ok_or("policy truncated")?,
            None => raw,
        };
        String::from_utf8_lossy(raw).into_owned()
    };
    if body.len() > MAX_POLICY {
        return Err("policy larger than 64 KiB".into());
    }
    parse_policy(&body).ok_or_else(|| "malformed policy".to_string())
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        let rest = &s[eol + 2..];
        let Some(chunk) = rest.get(..n).filter(|_| n > 0) else {
            break;
        };
        out.extend_from_slice(chunk);
        s = &rest[n..];
        s = s.strip_prefix(b"\r\n").unwrap_or(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let p = parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert!(p.mx_matches("MX1.example.com."));
        assert!(p.mx_matches("a.example.net"));
        assert!(!p.mx_matches("a.b.example.net"));
        assert!(!p.mx_matches("example.net"));
        assert!(parse_policy("version: STSv1\nmode: enforce\nmax_age: 1\n").is_none());
        assert_eq!(dechunk(b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"), b"helloabc");
    }
}

//! Authenticity of received mail, with the `mail-auth` crate (Stalwart's):
//! - SPF (RFC 7208) of the MAIL FROM identity (of the HELO identity for the null sender,
//!   RFC 7208 2.4);
//! - DKIM signatures (RFC 6376), every one of them;
//! - ARC chains (RFC 8617);
//! - DMARC (RFC 7489) of the RFC 5322.From domain, from the SPF and DKIM results.
//!
//! The results go into one `Authentication-Results` header (RFC 8601) with our
//! authserv-id (`[filter] authserv_id`, by default `hostname`), prepended to every
//! recipient's copy. An `Authentication-Results` the message already carries with our
//! authserv-id is a forgery (RFC 8601 5: a border MTA removes them) and is removed from
//! the stored message; others (a relay's) stay.
//!
//! A DKIM body hash that does not match is reported as `dkim=fail (body hash did not
//! verify)` (RFC 6376 6.1.3 PERMFAIL; mail-auth itself says `neutral`).
//!
//! DMARC: a message that fails DMARC for a domain whose policy is `p=reject` gets what
//! `[filter] dmarc_reject` says (default `550 5.7.1` at the end of DATA), `p=quarantine`
//! what `[filter] dmarc_quarantine` says (default: into the Junk folder); `report` only
//! records the result in the header. A temporary DNS failure never rejects.
//!
//! DNS goes to `[filter] dns` (`ip:port`, UDP then TCP) or, when empty, to the system's
//! resolvers (`/etc/resolv.conf`); `[filter] dns_timeout` bounds each query.

use crate::{Envelope, Scan, Verdict};
use letterbox_config::{Config, DmarcAction};
use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator,
    dmarc::verify::DmarcParameters, spf::verify::SpfParameters,
};
use std::net::SocketAddr;
use std::time::Duration;

pub struct Checker {
    resolver: MessageAuthenticator,
    authserv_id: String,
}

impl Checker {
    pub fn new(config: &Config) -> Result<Checker, String> {
        let f = &config.filter;
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(f.dns_timeout.max(1));
        opts.attempts = 2;
        let resolver = if f.dns.is_empty() {
            let (cfg, mut sys) = mail_auth::hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?;
            sys.timeout = opts.timeout;
            MessageAuthenticator::new(cfg, sys)
        } else {
            let addr: SocketAddr = f
                .dns
                .parse()
                .map_err(|_| format!("filter.dns: '{}' is not ip:port", f.dns))?;
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            MessageAuthenticator::new(ResolverConfig::from_parts(None, vec![], vec![ns]), opts)
        }
        .map_err(|e| format!("cannot set up the DNS resolver: {e}"))?;
        let authserv_id = if f.authserv_id.is_empty() {
            config.hostname.clone()
        } else {
            f.authserv_id.clone()
        };
        Ok(Checker {
            resolver,
            authserv_id,
        })
    }

    /// Runs SPF, DKIM, ARC and DMARC; adds the header, the verdict and the Junk mark to
    /// `scan`; removes forged `Authentication-Results` (the new body in `scan.body`).
    pub async fn check(&self, config: &Config, env: &Envelope, body: &[u8], scan: &mut Scan) {
        let f = &config.filter;
        let Some(msg) = AuthenticatedMessage::parse(body) else {
            // Not a parsable message: say so, decide nothing.
            scan.headers.extend_from_slice(
                format!("Authentication-Results: {}; none\r\n", self.authserv_id).as_bytes(),
            );
            return;
        };
        let dkim = self.resolver.verify_dkim(&msg).await;
        let arc = self.resolver.verify_arc(&msg).await;
        let helo = if env.helo.is_empty() {
            "unknown"
        } else {
            env.helo.as_str()
        };
        let helo = helo.trim_start_matches('[').trim_end_matches(']');
        let spf = if env.sender.is_empty() {
            self.resolver
                .verify_spf(SpfParameters::verify_ehlo(env.ip, helo, &config.hostname))
                .await
        } else {
            self.resolver
                .verify_spf(SpfParameters::verify_mail_from(
                    env.ip,
                    helo,
                    &config.hostname,
                    &env.sender,
                ))
                .await
        };
        let mail_from_domain = env
            .sender
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or(helo);
        let dmarc = self
            .resolver
            .verify_dmarc(DmarcParameters::new(&msg, &dkim, mail_from_domain, &spf))
            .await;
        let header_from = msg.from().to_string();
        let ar = AuthenticationResults::new(&self.authserv_id)
            .with_spf_mailfrom_result(&spf, env.ip, &env.sender, helo)
            .with_dkim_results(&dkim, &header_from)
            .with_arc_result(&arc, env.ip)
            .with_dmarc_result(&dmarc);
        // RFC 6376 3.7/6.1.3: a body hash that does not match is PERMFAIL, which RFC 8601
        // 2.7.1 reports as dkim=fail; mail-auth says "neutral" for it.
        let mut text = ar
            .to_string()
            .replace("dkim=neutral (body hash did not verify)", "dkim=fail (body hash did not verify)");
        if text == self.authserv_id {
            text.push_str("; none");
        }
        // DMARC fails (RFC 7489 6.6.2) when the domain has a policy and no aligned
        // identifier passed; a DNS error is not a failure. mail-auth leaves both results
        // at "none" when SPF failed and nothing was signed: that is a failure too, and
        // the header says so.
        let passed = *dmarc.spf_result() == DmarcResult::Pass
            || *dmarc.dkim_result() == DmarcResult::Pass;
        let dns_error = |r: &DmarcResult| {
            matches!(r, DmarcResult::TempError(_) | DmarcResult::PermError(_))
        };
        let enforced = matches!(dmarc.policy(), Policy::Reject | Policy::Quarantine);
        let failed = enforced
            && !passed
            && !dns_error(dmarc.spf_result())
            && !dns_error(dmarc.dkim_result());
        if failed {
            text = text.replace("dmarc=none ", "dmarc=fail ");
        }
        scan.headers
            .extend_from_slice(format!("Authentication-Results: {text}\r\n").as_bytes());

        if failed {
            let action = match dmarc.policy() {
                Policy::Reject => Some(f.dmarc_reject),
                Policy::Quarantine => Some(f.dmarc_quarantine),
                _ => None,
            };
            let domain = dmarc.domain().to_string();
            match action {
                Some(DmarcAction::Reject) => {
                    tracing::info!(id = %env.id, domain = %domain, "DMARC: fails, domain asks for reject");
                    scan.verdict = Verdict::Reject {
                        code: 550,
                        esc: "5.7.1",
                        text: format!("Message rejected: DMARC policy of {domain} (RFC 7489)"),
                    };
                }
                Some(DmarcAction::Quarantine) => {
                    tracing::info!(id = %env.id, domain = %domain, "DMARC: fails, message goes to Junk");
                    scan.junk = true;
                }
                Some(DmarcAction::Report) => {
                    tracing::info!(id = %env.id, domain = %domain, "DMARC: fails (report only)");
                }
                None => {}
            }
        }
        if let Some(stripped) = strip_forged(body, &self.authserv_id) {
            tracing::info!(id = %env.id, "removed a forged Authentication-Results header");
            scan.body = Some(stripped);
        }
    }
}

/// The message without the `Authentication-Results` fields that carry our authserv-id,
/// or `None` when there is none.
pub fn strip_forged(body: &[u8], authserv_id: &str) -> Option<Vec<u8>> {
    let header_end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(body.len());
    // Header fields: a line and its continuation lines (starting with space or tab).
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0;
    while pos < header_end {
        let mut end = match body[pos..header_end].windows(2).position(|w| w == b"\r\n") {
            Some(p) => pos + p + 2,
            None => header_end,
        };
        while end < header_end && matches!(body[end], b' ' | b'\t') {
            end = match body[end..header_end].windows(2).position(|w| w == b"\r\n") {
                Some(p) => end + p + 2,
                None => header_end,
            };
        }
        fields.push((pos, end));
        pos = end;
    }
    let forged = |f: &[u8]| -> bool {
        let Some(colon) = f.iter().position(|&b| b == b':') else {
            return false;
        };
        if !f[..colon].trim_ascii().eq_ignore_ascii_case(b"Authentication-Results") {
            return false;
        }
        let value = String::from_utf8_lossy(&f[colon + 1..]);
        let value = strip_comments(&value);
        let id = value
            .split(';')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("");
        id.eq_ignore_ascii_case(authserv_id)
    };
    if !fields.iter().any(|&(a, b)| forged(&body[a..b])) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    for &(a, b) in &fields {
        if !forged(&body[a..b]) {
            out.extend_from_slice(&body[a..b]);
        }
    }
    out.extend_from_slice(&body[header_end..]);
    Some(out)
}

/// RFC 5322 comments removed (the authserv-id may be preceded by CFWS).
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0u32;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_results_are_removed() {
        let m = b"Authentication-Results: (x) MAIL.example.com;\r\n dkim=pass\r\nAuthentication-Results: relay.example.net; spf=pass\r\nSubject: hi\r\n\r\nAuthentication-Results: mail.example.com; body\r\n";
        let out = strip_forged(m, "mail.example.com").unwrap();
        assert_eq!(
            out,
            b"Authentication-Results: relay.example.net; spf=pass\r\nSubject: hi\r\n\r\nAuthentication-Results: mail.example.com; body\r\n"
        );
        assert!(strip_forged(b"Subject: x\r\n\r\nbody", "mail.example.com").is_none());
        assert!(strip_forged(b"Authentication-Results: mail.example.com.evil; x\r\n\r\n", "mail.example.com").is_none());
    }
}

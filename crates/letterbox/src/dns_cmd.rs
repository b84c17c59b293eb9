//! `letterbox domain dns DOMAIN`: every DNS record the operator should publish for a
//! local domain, in zone-file syntax (RFC 1035 5.1), ready to paste:
//!
//! - MX (RFC 5321 5.1) to `hostname`, and A/AAAA for `hostname` when `[listen] smtp`
//!   names specific public addresses;
//! - SPF (RFC 7208): `v=spf1 mx -all`, the MX hosts send the domain's mail;
//! - DKIM (RFC 6376 3.6.1, RFC 8463): the records of the active and published keys
//!   (`letterbox domain dkim`);
//! - DMARC (RFC 7489): `p=quarantine`, aggregate reports to postmaster;
//! - MTA-STS (RFC 8461): the `_mta-sts` TXT record and the policy to serve at
//!   `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`, in `testing` mode to start with;
//! - TLS-RPT (RFC 8460): reports to postmaster;
//! - SRV records (RFC 6186, RFC 8314) for the mail-access and submission listeners
//!   configured in `[listen]`, with their ports;
//! - the `autoconfig` (Thunderbird) and `autodiscover` (Outlook) names, as CNAMEs to
//!   `hostname`.

use anyhow::Result;
use clap::Args;
use letterbox_config::Config;
use letterbox_dkim::RECORD_TTL as TTL;
use letterbox_store::{DkimState, Store};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

/// Every DNS record to publish for the domain, in zone-file syntax.
#[derive(Args)]
pub struct DnsArgs {
    pub domain: String,
}

/// An MTA-STS policy's `max_age` (RFC 8461 3.2): one week, what the RFC's examples use.
const MTA_STS_MAX_AGE: u64 = 604_800;

/// A stable policy id (RFC 8461 3.1: 1 to 32 letters and digits, changed whenever the
/// policy changes): FNV-1a of the policy text.
fn policy_id(policy: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in policy.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn txt(name: &str, value: &str) -> String {
    letterbox_dkim::zone_txt(name, value)
}

pub fn run(store: &Store, config: &Config, domain: &str, out: &mut impl Write) -> Result<()> {
    let domain = letterbox_store::validate_domain(domain)?;
    // NotFound ("domain x does not exist") for a domain that is not local.
    let keys = store.dkim_keys(&domain)?;
    let host = config.hostname.trim_end_matches('.').to_ascii_lowercase();
    let d = format!("{domain}.");
    let h = format!("{host}.");
    writeln!(out, "; DNS records for {domain} (letterbox domain dns)")?;
    writeln!(out, "{d} {TTL} IN MX 10 {h}")?;
    let public: Vec<IpAddr> = {
        let mut v: Vec<IpAddr> = config
            .listen
            .smtp
            .iter()
            .map(SocketAddr::ip)
            .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
            .collect();
        v.dedup();
        v
    };
    if public.is_empty() {
        writeln!(
            out,
            "; {h} needs A/AAAA records with this server's addresses (and PTR records naming it)"
        )?;
    }
    for ip in public {
        match ip {
            IpAddr::V4(a) => writeln!(out, "{h} {TTL} IN A {a}")?,
            IpAddr::V6(a) => writeln!(out, "{h} {TTL} IN AAAA {a}")?,
        }
    }
    writeln!(out, "{}", txt(&d, "v=spf1 mx -all"))?;
    if let Some(relay) = &config.outbound.relay {
        writeln!(
            out,
            "; mail leaves through [outbound] relay {relay}: add that relay's own SPF \
             mechanism (include:... or ip4:/ip6:) before -all"
        )?;
    }
    let dkim: Vec<_> = keys
        .iter()
        .filter(|k| k.state != DkimState::Retired)
        .collect();
    if dkim.is_empty() {
        writeln!(out, "; no DKIM key yet: letterbox domain dkim {domain}")?;
    }
    for k in dkim {
        writeln!(
            out,
            "; DKIM {} ({}, {})",
            k.selector,
            k.algorithm.as_str(),
            k.state.as_str()
        )?;
        writeln!(
            out,
            "{}",
            txt(&letterbox_dkim::record_name(k), &letterbox_dkim::record(k))
        )?;
    }
    writeln!(
        out,
        "{}",
        txt(
            &format!("_dmarc.{d}"),
            &format!("v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}")
        )
    )?;
    let policy = format!("version: STSv1\nmode: testing\nmx: {host}\nmax_age: {MTA_STS_MAX_AGE}\n");
    writeln!(
        out,
        "{}",
        txt(
            &format!("_mta-sts.{d}"),
            &format!("v=STSv1; id={}", policy_id(&policy))
        )
    )?;
    writeln!(out, "mta-sts.{d} {TTL} IN CNAME {h}")?;
    writeln!(
        out,
        "; MTA-STS policy to serve at https://mta-sts.{domain}/.well-known/mta-sts.txt \
         (a certificate valid for mta-sts.{domain}); mode: enforce once TLS reports are clean:"
    )?;
    for line in policy.lines() {
        writeln!(out, ";   {line}")?;
    }
    writeln!(
        out,
        "{}",
        txt(
            &format!("_smtp._tls.{d}"),
            &format!("v=TLSRPTv1; rua=mailto:postmaster@{domain}")
        )
    )?;
    let l = &config.listen;
    let services: [(&str, &Vec<SocketAddr>); 6] = [
        ("submission", &l.submission),
        ("submissions", &l.submissions),
        ("imap", &l.imap),
        ("imaps", &l.imaps),
        ("pop3", &l.pop3),
        ("pop3s", &l.pop3s),
    ];
    for (name, addrs) in services {
        if let Some(a) = addrs.first() {
            writeln!(out, "_{name}._tcp.{d} {TTL} IN SRV 0 1 {} {h}", a.port())?;
        }
    }
    writeln!(out, "autoconfig.{d} {TTL} IN CNAME {h}")?;
    writeln!(out, "autodiscover.{d} {TTL} IN CNAME {h}")?;
    Ok(())
}

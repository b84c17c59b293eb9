//! TLS to PostgreSQL (issue 17), with rustls as everywhere else in Letterbox.
//!
//! The URL says what libpq's would (PostgreSQL manual, "Connection Strings" and "SSL
//! Support", 34.1.2 and 34.19):
//! - `sslmode=require`, `verify-ca` or `verify-full`: TLS, and the server's certificate
//!   is always verified, chain and host name, against the system's trust roots or
//!   against `sslrootcert=/path/ca.pem` (PEM; it then replaces the system roots, as in
//!   libpq). Unlike libpq's `require`, an unverified certificate is never accepted: a
//!   mail store's connection carries password hashes and mail, and an attacker in the
//!   path could otherwise read it all.
//! - `sslmode=disable`, `prefer` or nothing: plaintext, as before this module. libpq's
//!   `prefer` would try TLS without verifying anything, which protects nothing against an
//!   active attacker, so Letterbox does not pretend: ask for `require` to get TLS.
//!
//! rust-postgres parses the rest of the URL itself; it knows neither `sslrootcert` nor
//! the `verify-*` modes, so [`parse`] takes them out first. Both the URL form
//! (`postgres://u@host/db?sslmode=require&sslrootcert=/etc/letterbox/pg-ca.pem`) and the
//! key=value form (`host=... sslmode=require sslrootcert=...`) are accepted.

use crate::{Error, Result};
use r2d2_postgres::postgres::config::SslMode;
use r2d2_postgres::postgres::Config;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector every connection to PostgreSQL goes through (plaintext unless the URL
/// asked for TLS, see the module doc).
pub(crate) type Tls = MakeRustlsConnect;

/// Parses a `[store] url` into rust-postgres' config and the TLS connector it asks for.
pub(crate) fn parse(url: &str) -> Result<(Config, Tls)> {
    let (rest, mode, rootcert) = split_tls_options(url)?;
    let mut config: Config = rest
        .parse()
        .map_err(|e| Error::Invalid(format!("[store] url: {e}")))?;
    let tls = match mode.as_deref() {
        Some("require" | "verify-ca" | "verify-full") => {
            config.ssl_mode(SslMode::Require);
            connector(rootcert.as_deref())?
        }
        Some("disable" | "prefer") | None => {
            config.ssl_mode(SslMode::Disable);
            // Never used for a handshake (the mode is disable), but one type for both.
            connector_with(RootCertStore::empty())
        }
        Some(other) => {
            return Err(Error::Invalid(format!(
                "[store] url: sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            )))
        }
    };
    if rootcert.is_some() && !matches!(mode.as_deref(), Some("require" | "verify-ca" | "verify-full")) {
        return Err(Error::Invalid(
            "[store] url: sslrootcert is given but sslmode does not ask for TLS (say sslmode=verify-full)".into(),
        ));
    }
    Ok((config, tls))
}

/// Takes `sslmode` and `sslrootcert` out of the URL (either form); returns the rest.
fn split_tls_options(url: &str) -> Result<(String, Option<String>, Option<String>)> {
    let mut mode = None;
    let mut rootcert = None;
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => mode = Some(percent_decode(v)?),
                "sslrootcert" => rootcert = Some(percent_decode(v)?),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, mode, rootcert));
    }
    // key=value form; values with spaces would be quoted, which these two never need.
    let mut kept = Vec::new();
    for token in url.split_whitespace() {
        match token.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.trim_matches('\'').to_string()),
            Some(("sslrootcert", v)) => rootcert = Some(v.trim_matches('\'').to_string()),
            _ => kept.push(token),
        }
    }
    Ok((kept.join(" "), mode, rootcert))
}

fn percent_decode(s: &str) -> Result<String> {
    let bad = || Error::Invalid(format!("[store] url: bad percent-encoding in `{s}`"));
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// A verifying connector: trust `rootcert`'s certificates, or the system's roots.
fn connector(rootcert: Option<&str>) -> Result<Tls> {
    let mut roots = RootCertStore::empty();
    match rootcert {
        Some(path) => {
            let what = |e: &dyn std::fmt::Display| {
                Error::Invalid(format!("[store] url: sslrootcert {path}: {e}"))
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| what(&e))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| what(&e))?;
            if certs.is_empty() {
                return Err(what(&"no certificate in it"));
            }
            for c in certs {
                roots.add(c).map_err(|e| what(&e))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(Error::Invalid(
                    "[store] url: sslmode asks for TLS but the system has no trust roots; name the server's CA with sslrootcert=".into(),
                ));
            }
        }
    }
    Ok(connector_with(roots))
}

fn connector_with(roots: RootCertStore) -> Tls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_come_out_of_the_url() {
        let (rest, mode, root) = split_tls_options(
            "postgres://u@db.example:5432/mail?connect_timeout=5&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u@db.example:5432/mail?connect_timeout=5");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));

        let (rest, mode, root) =
            split_tls_options("host=db user=u sslmode=require sslrootcert=/ca.pem dbname=m").unwrap();
        assert_eq!(rest, "host=db user=u dbname=m");
        assert_eq!(mode.as_deref(), Some("require"));
        assert_eq!(root.as_deref(), Some("/ca.pem"));

        let (rest, mode, root) = split_tls_options("postgres://u@h/db").unwrap();
        assert_eq!((rest.as_str(), mode, root), ("postgres://u@h/db", None, None));
    }

    #[test]
    fn bad_tls_settings_are_config_errors() {
        for url in [
            "postgres://u@h/db?sslmode=allow",
            "postgres://u@h/db?sslrootcert=/x.pem",
            "postgres://u@h/db?sslmode=require&sslrootcert=/nonexistent/ca.pem",
            "postgres://u@h/db?sslmode=require&sslrootcert=%zz",
        ] {
            match parse(url) {
                Err(Error::Invalid(m)) => assert!(m.starts_with("[store] url"), "{url}: {m}"),
                Err(e) => panic!("{url}: {e}"),
                Ok(_) => panic!("{url} accepted"),
            }
        }
        let (c, _) = parse("postgres://u@h/db").unwrap();
        assert_eq!(c.get_ssl_mode(), SslMode::Disable);
        let (c, _) = parse("postgres://u@h/db?sslmode=prefer").unwrap();
        assert_eq!(c.get_ssl_mode(), SslMode::Disable);
    }
}

//! TLS for every listener, with rustls (TLS 1.2 and 1.3 only, the `ring` provider).
//!
//! The certificate chain and key come from `[tls] cert` / `key` (PEM). Without them a
//! self-signed certificate for `hostname` is generated into `data_dir/tls/` on first
//! start and reused afterwards (with a warning: clients will complain, as they should).
//! [`Tls::reload`] re-reads the files (SIGHUP): new handshakes use the new certificate,
//! sessions already running keep theirs. A reload that fails keeps the old certificate.
//!
//! Sessions upgrade a plain stream with [`Tls::accept`] (implicit TLS on `imaps`, `pop3s`,
//! `submissions`; STARTTLS/STLS in the protocols). A STARTTLS caller must drop whatever
//! it had buffered from the plaintext stream before the upgrade (RFC 3207 section 4.2,
//! RFC 2595 section 3.1, RFC 9051 section 6.2.1): pipelined plaintext is never executed.

use crate::BoxStream;
use letterbox_config::Config;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

enum Source {
    Files { cert: PathBuf, key: PathBuf },
    SelfSigned { cert: PathBuf, key: PathBuf },
}

/// The server's TLS configuration, swappable at run time.
pub struct Tls {
    current: RwLock<Arc<ServerConfig>>,
    source: Source,
    handshake_timeout: Duration,
}

impl Tls {
    /// Loads the configured certificate, or creates/reuses the self-signed one.
    pub fn load(config: &Config) -> Result<Arc<Tls>, String> {
        let source = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => Source::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => {
                let dir = config.data_dir.join("tls");
                let (cert, key) = (
                    dir.join("selfsigned-cert.pem"),
                    dir.join("selfsigned-key.pem"),
                );
                if !cert.exists() || !key.exists() {
                    generate_self_signed(&config.hostname, &dir, &cert, &key)?;
                    tracing::warn!(
                        "no [tls] cert/key configured: generated a self-signed certificate for {} in {}; \
                         clients will warn until you configure a real one",
                        config.hostname,
                        dir.display()
                    );
                } else {
                    tracing::warn!(
                        "no [tls] cert/key configured: using the self-signed certificate in {}",
                        dir.display()
                    );
                }
                Source::SelfSigned { cert, key }
            }
        };
        let server = build(&source)?;
        Ok(Arc::new(Tls {
            current: RwLock::new(server),
            source,
            handshake_timeout: Duration::from_secs(config.limits.timeout_unauthenticated.max(1)),
        }))
    }

    /// Re-reads the certificate and key; on error the old ones stay in force.
    pub fn reload(&self) -> Result<(), String> {
        let server = build(&self.source)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = server;
        Ok(())
    }

    fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Performs the server side of a TLS handshake (bounded by the pre-login time-out).
    pub async fn accept(&self, stream: BoxStream) -> std::io::Result<BoxStream> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config());
        match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(s)) => Ok(Box::new(s)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

fn build(source: &Source) -> Result<Arc<ServerConfig>, String> {
    let (cert, key) = match source {
        Source::Files { cert, key } | Source::SelfSigned { cert, key } => (cert, key),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls.cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls.cert {}: no certificate in the file",
            cert.display()
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls.key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls: certificate and key do not fit: {e}"))?;
    server.ignore_client_order = true;
    Ok(Arc::new(server))
}

fn generate_self_signed(hostname: &str, dir: &Path, cert: &Path, key: &Path) -> Result<(), String> {
    let ck = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .map_err(|e| format!("cannot generate a self-signed certificate: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write_private(key, ck.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(cert, ck.cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_generated_once_and_reloadable() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            hostname: "mail.example.com".into(),
            ..Config::default()
        };
        let tls = Tls::load(&config).unwrap();
        let cert = dir.path().join("tls/selfsigned-cert.pem");
        let first = std::fs::read(&cert).unwrap();
        drop(tls);
        let tls = Tls::load(&config).unwrap();
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            first,
            "reused, not regenerated"
        );
        tls.reload().unwrap();
        // Configured files that are not PEM are a clear error naming the key.
        std::fs::write(dir.path().join("bad.pem"), "not pem").unwrap();
        config.tls.cert = Some(dir.path().join("bad.pem"));
        config.tls.key = Some(dir.path().join("bad.pem"));
        let err = Tls::load(&config).err().unwrap();
        assert!(err.starts_with("tls.cert"), "{err}");
    }
}

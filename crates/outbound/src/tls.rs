//! TLS for outbound connections (rustls, `ring` provider, TLS 1.2/1.3).
//!
//! - Opportunistic (RFC 3207 STARTTLS when offered, RFC 7435 "opportunistic security"):
//!   any certificate is accepted, since the alternative is plaintext; the handshake's
//!   signatures are still checked. This is what Postfix does by default
//!   (`smtp_tls_security_level = may`).
//! - Validated (MTA-STS `enforce`, RFC 8461 4.2; the smarthost): the chain must lead to a
//!   trust root (the system's store, plus `[outbound] tls_ca_file`) and name the host.
//! - DANE (RFC 7672): the certificate must match the host's TLSA records
//!   ([`crate::dane::DaneVerifier`]).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

/// The two client configurations.
pub struct TlsClients {
    pub opportunistic: Arc<ClientConfig>,
    pub validated: Arc<ClientConfig>,
    provider: Arc<CryptoProvider>,
}

impl TlsClients {
    pub fn new(ca_file: Option<&std::path::Path>) -> Result<TlsClients, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for c in native.certs {
            let _ = roots.add(c);
        }
        if let Some(path) = ca_file {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("outbound.tls_ca_file {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("outbound.tls_ca_file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "outbound.tls_ca_file {}: no certificate found",
                    path.display()
                ));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("outbound.tls_ca_file {}: {e}", path.display()))?;
            }
        }
        let validated = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let opportunistic = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider.clone())))
            .with_no_client_auth();
        Ok(TlsClients {
            opportunistic: Arc::new(opportunistic),
            validated: Arc::new(validated),
            provider,
        })
    }

    /// A configuration checking the certificate against TLSA records (RFC 7672 3).
    pub fn dane(&self, records: Vec<crate::dane::Tlsa>) -> Result<Arc<ClientConfig>, String> {
        let verifier = crate::dane::DaneVerifier::new(records, self.provider.clone());
        let cfg = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Arc::new(cfg))
    }
}

/// The server name for SNI and validation: a host name, or an IP address.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.trim_end_matches('.').to_string()).ok()
}

/// Accepts any certificate (opportunistic TLS), checking only the handshake signatures.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

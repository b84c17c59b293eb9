//! DANE for SMTP (RFC 7672, with RFC 6698 TLSA records and the RFC 7671 guidance).
//!
//! DANE is only as good as the DNSSEC validation behind it. Like Postfix
//! (`smtp_dns_support_level = dnssec`), Letterbox does not validate signatures itself: it
//! trusts the AD ("authentic data") bit of a validating resolver, and only of a resolver on
//! loopback (`[outbound] dns`, or the first `nameserver` of `/etc/resolv.conf`), since the
//! bit travels unprotected over a network. With any other resolver DANE is off (logged
//! once at start). Queries for DANE are sent by this module, not through hickory's
//! resolver, so the AD bit of the very answer is seen: RD, AD (RFC 6840 5.7) and EDNS DO set,
//! UDP with TCP when truncated.
//!
//! The rules applied (RFC 7672 2.2):
//! - the MX RRset of the destination must be secure (AD set), else the MX host names
//!   could be forged and no TLSA record is looked up (opportunistic TLS as before). With no
//!   MX at all, a secure denial lets the domain itself be the TLSA base name (2.2.1);
//! - for each MX host whose A (or AAAA) RRset is secure (2.2.2), `_PORT._tcp.HOST` TLSA
//!   is looked up. A secure answer with records
//!   makes TLS mandatory for that host: no STARTTLS, or a certificate no usable record
//!   matches, is a temporary failure of that host (the next MX is tried, then the message
//!   stays queued): never plaintext (2.2, 3.1). A lookup that fails (SERVFAIL, timeout,
//!   malformed) also makes the host unusable (2.2: a failure is not a denial). An insecure
//!   answer, NXDOMAIN or NODATA: no DANE for that host;
//! - usable records (3.1.3): DANE-EE(3) and DANE-TA(2), selector 0 (certificate) or 1
//!   (SubjectPublicKeyInfo), matching 0 (full), 1 (SHA2-256), 2 (SHA2-512). PKIX-TA(0) and
//!   PKIX-EE(1) are not usable for SMTP. A secure RRset with no usable record still makes
//!   TLS mandatory, without authentication (3.1.3);
//! - DANE-EE(3): the server's own certificate or key matches; names and dates are not
//!   checked (3.1.1). DANE-TA(2): a certificate the server sends matches, and the chain
//!   from it to the server's certificate is valid for the MX host name (3.1.2, 3.2);
//! - a host with DANE is not also held to the domain's MTA-STS policy (RFC 8461 2: DANE
//!   takes precedence).
//!
//! Not done: following CNAMEs of the MX host name to a TLSA base name (2.2.3); the host
//! name as given in the MX record is the base name.

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256, Sha512};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers kept in the cache at most (oldest dropped first).
const CACHE_ENTRIES: usize = 4096;
/// Longest an answer is cached, whatever its TTL.
const CACHE_MAX_TTL: u32 = 300;
/// The EDNS UDP payload size asked for (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;
/// DANE queries in flight at once: many deliveries starting together for the same
/// domains wait for the first answer (then cached) instead of all asking.
const MAX_QUERIES: usize = 8;

/// One TLSA record (RFC 6698 2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// RFC 7672 3.1.3: only DANE-TA(2) and DANE-EE(3) with known selector and matching.
    pub fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2
    }

    /// Whether this record's association data matches `cert` (DER).
    pub fn matches(&self, cert: &[u8]) -> bool {
        let subject = match self.selector {
            0 => cert,
            1 => match spki(cert) {
                Some(s) => s,
                None => return false,
            },
            _ => return false,
        };
        match self.matching {
            0 => subject == self.data.as_slice(),
            1 => Sha256::digest(subject).as_slice() == self.data.as_slice(),
            2 => Sha512::digest(subject).as_slice() == self.data.as_slice(),
            _ => false,
        }
    }
}

/// What the TLSA lookup for one MX host says.
#[derive(Debug, Clone)]
pub enum HostPolicy {
    /// No secure TLSA RRset: opportunistic TLS (or MTA-STS) as without DANE.
    None,
    /// A secure TLSA RRset: TLS is mandatory; the certificate must match one of these
    /// usable records (none usable: TLS without authentication, RFC 7672 3.1.3).
    Dane(Vec<Tlsa>),
}

/// A DNS answer as DANE needs it: the response code, the AD bit, the records.
#[derive(Debug, Clone)]
struct Answer {
    rcode: ResponseCode,
    secure: bool,
    records: Vec<RData>,
}

/// The DANE resolver: a validating resolver on loopback whose AD bit is trusted.
pub struct Dane {
    server: SocketAddr,
    timeout: Duration,
    cache: Mutex<HashMap<(String, u16), (Instant, Answer)>>,
    queries: tokio::sync::Semaphore,
}

impl Dane {
    /// `None` (with the reason, for the log) when DANE cannot be done safely.
    pub fn new(server: Option<SocketAddr>, timeout: Duration) -> Result<Dane, String> {
        let server = match server {
            Some(s) => s,
            None => {
                system_resolver().ok_or("no resolver in /etc/resolv.conf to trust the AD bit of")?
            }
        };
        if !server.ip().is_loopback() {
            return Err(format!(
                "the resolver {server} is not on loopback, so its AD bit (DNSSEC validated) cannot be trusted"
            ));
        }
        Ok(Dane {
            server,
            timeout,
            cache: Mutex::new(HashMap::new()),
            queries: tokio::sync::Semaphore::new(MAX_QUERIES),
        })
    }

    /// Whether the MX RRset (or its denial) of `domain` is DNSSEC-validated.
    /// `Err` when the lookup failed.
    pub async fn mx_secure(&self, domain: &str) -> Result<bool, String> {
        let a = self.query(domain, RecordType::MX).await?;
        Ok(a.secure && matches!(a.rcode, ResponseCode::NoError))
    }

    /// The TLSA policy for `host` on `port` (RFC 7672 2.2, 3).
    pub async fn host_policy(&self, host: &str, port: u16) -> Result<HostPolicy, String> {
        // 2.2.2: only a host whose address records are secure has its TLSA looked up
        // (an MX host in an unsigned zone, whose servers may even fail TLSA queries, is
        // reached as without DANE).
        let mut addr_secure = false;
        for t in [RecordType::A, RecordType::AAAA] {
            let a = self.query(host, t).await?;
            if a.secure && a.rcode == ResponseCode::NoError && !a.records.is_empty() {
                addr_secure = true;
                break;
            }
        }
        if !addr_secure {
            return Ok(HostPolicy::None);
        }
        let name = format!("_{port}._tcp.{}", host.trim_end_matches('.'));
        let a = self.query(&name, RecordType::TLSA).await?;
        match a.rcode {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            other => return Err(format!("TLSA lookup of {name}: {other}")),
        }
        if !a.secure {
            return Ok(HostPolicy::None);
        }
        let records: Vec<Tlsa> = a
            .records
            .iter()
            .filter_map(|r| match r {
                RData::TLSA(t) => Some(Tlsa {
                    usage: t.cert_usage.into(),
                    selector: t.selector.into(),
                    matching: t.matching.into(),
                    data: t.cert_data.clone(),
                }),
                _ => None,
            })
            .collect();
        if records.is_empty() {
            return Ok(HostPolicy::None);
        }
        Ok(HostPolicy::Dane(
            records.into_iter().filter(Tlsa::usable).collect(),
        ))
    }

    async fn query(&self, name: &str, rtype: RecordType) -> Result<Answer, String> {
        let key = (name.to_ascii_lowercase(), u16::from(rtype));
        if let Some(a) = self.cached(&key) {
            return Ok(a);
        }
        let _permit = self.queries.acquire().await;
        if let Some(a) = self.cached(&key) {
            return Ok(a);
        }
        let mut last = String::new();
        for _ in 0..2 {
            match tokio::time::timeout(self.timeout, self.ask(name, rtype)).await {
                Ok(Ok(a)) => {
                    if a.rcode == ResponseCode::NoError || a.rcode == ResponseCode::NXDomain {
                        self.remember(key, &a);
                    }
                    return Ok(a);
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = format!("DNS query for {name} {rtype} timed out"),
            }
        }
        Err(last)
    }

    fn cached(&self, key: &(String, u16)) -> Option<Answer> {
        let c = self.cache.lock().ok()?;
        let (until, a) = c.get(key)?;
        (*until > Instant::now()).then(|| a.clone())
    }

    fn remember(&self, key: (String, u16), a: &Answer) {
        let ttl = a.records.is_empty().then_some(60).unwrap_or(CACHE_MAX_TTL);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_ENTRIES {
                let now = Instant::now();
                c.retain(|_, (until, _)| *until > now);
                if c.len() >= CACHE_ENTRIES {
                    c.clear();
                }
            }
            c.insert(
                key,
                (Instant::now() + Duration::from_secs(ttl.into()), a.clone()),
            );
        }
    }

    /// One query: UDP, then TCP if the answer was truncated.
    async fn ask(&self, name: &str, rtype: RecordType) -> Result<Answer, String> {
        let qname = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
            .map_err(|e| format!("bad DNS name {name}: {e}"))?;
        let mut msg = Message::new(rand_id(), MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        msg.metadata.authentic_data = true;
        msg.add_query(Query::query(qname.clone(), rtype));
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        edns.set_dnssec_ok(true);
        msg.set_edns(edns);
        let wire = msg.to_vec().map_err(|e| format!("DNS query: {e}"))?;
        let bind: SocketAddr = if self.server.is_ipv4() {
            "0.0.0.0:0".parse().map_err(|_| "bind")?
        } else {
            "[::]:0".parse().map_err(|_| "bind")?
        };
        let sock = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| format!("DNS socket: {e}"))?;
        sock.connect(self.server)
            .await
            .map_err(|e| format!("DNS {}: {e}", self.server))?;
        sock.send(&wire)
            .await
            .map_err(|e| format!("DNS {}: {e}", self.server))?;
        let mut buf = vec![0u8; 65535];
        let reply = loop {
            let n = sock
                .recv(&mut buf)
                .await
                .map_err(|e| format!("DNS {}: {e}", self.server))?;
            match Message::from_vec(&buf[..n]) {
                Ok(m) if m.metadata.id == msg.metadata.id && same_query(&m, &qname, rtype) => {
                    break m
                }
                _ => continue, // not the answer to this query: keep waiting (the timeout ends it)
            }
        };
        let reply = if reply.metadata.truncation {
            self.ask_tcp(&wire, msg.metadata.id, &qname, rtype).await?
        } else {
            reply
        };
        Ok(answer_of(reply, rtype))
    }

    async fn ask_tcp(
        &self,
        wire: &[u8],
        id: u16,
        qname: &Name,
        rtype: RecordType,
    ) -> Result<Message, String> {
        let err = |e: std::io::Error| format!("DNS {} (TCP): {e}", self.server);
        let mut s = tokio::net::TcpStream::connect(self.server)
            .await
            .map_err(err)?;
        let len = u16::try_from(wire.len()).map_err(|_| "DNS query too long")?;
        let mut out = len.to_be_bytes().to_vec();
        out.extend_from_slice(wire);
        s.write_all(&out).await.map_err(err)?;
        let mut l = [0u8; 2];
        s.read_exact(&mut l).await.map_err(err)?;
        let mut buf = vec![0u8; u16::from_be_bytes(l) as usize];
        s.read_exact(&mut buf).await.map_err(err)?;
        let m = Message::from_vec(&buf).map_err(|e| format!("DNS answer malformed: {e}"))?;
        if m.metadata.id != id || !same_query(&m, qname, rtype) {
            return Err("DNS answer (TCP) does not match the query".into());
        }
        Ok(m)
    }
}

fn same_query(m: &Message, qname: &Name, rtype: RecordType) -> bool {
    m.metadata.message_type == MessageType::Response
        && m.queries
            .first()
            .is_some_and(|q| q.name().eq_case(qname) || q.name() == qname)
        && m.queries.first().is_some_and(|q| q.query_type() == rtype)
}

fn answer_of(m: Message, rtype: RecordType) -> Answer {
    Answer {
        rcode: m.metadata.response_code,
        secure: m.metadata.authentic_data,
        records: m
            .answers
            .into_iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| r.data)
            .collect(),
    }
}

fn rand_id() -> u16 {
    rand::random()
}

/// The first `nameserver` of /etc/resolv.conf (port 53).
fn system_resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next())
            .flatten()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// One DER TLV at the start of `b`: (tag, the whole TLV, its content).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    Some((tag, b.get(..end)?, b.get(hdr..end)?))
}

/// The DER SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 4.1), or `None`.
pub fn spki(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, _, c) = tlv(cert)? else {
        return None;
    };
    let (0x30, _, tbs) = tlv(c)? else {
        return None;
    };
    let mut rest = tbs;
    let mut field = 0;
    loop {
        let (tag, whole, _) = tlv(rest)?;
        rest = &rest[whole.len()..];
        if field == 0 && tag == 0xa0 {
            continue; // [0] version
        }
        // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
        if field == 5 {
            return (tag == 0x30).then_some(whole);
        }
        field += 1;
    }
}

/// The certificate check of a connection under DANE (RFC 7672 3).
#[derive(Debug)]
pub struct DaneVerifier {
    records: Vec<Tlsa>,
    provider: Arc<CryptoProvider>,
}

impl DaneVerifier {
    pub fn new(records: Vec<Tlsa>, provider: Arc<CryptoProvider>) -> DaneVerifier {
        DaneVerifier { records, provider }
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.records.is_empty() {
            // A secure TLSA RRset without usable records: TLS, unauthenticated (3.1.3).
            return Ok(ServerCertVerified::assertion());
        }
        for r in &self.records {
            match r.usage {
                3 if r.matches(end_entity) => return Ok(ServerCertVerified::assertion()),
                2 => {
                    for ta in intermediates.iter().filter(|c| r.matches(c)) {
                        let mut roots = RootCertStore::empty();
                        if roots.add(ta.clone()).is_err() {
                            continue;
                        }
                        let Ok(v) = WebPkiServerVerifier::builder_with_provider(
                            Arc::new(roots),
                            self.provider.clone(),
                        )
                        .build() else {
                            continue;
                        };
                        if v.verify_server_cert(
                            end_entity,
                            intermediates,
                            server_name,
                            ocsp_response,
                            now,
                        )
                        .is_ok()
                        {
                            return Ok(ServerCertVerified::assertion());
                        }
                    }
                }
                _ => {}
            }
        }
        Err(rustls::Error::General(
            "DANE: the server's certificate matches none of its TLSA records".into(),
        ))
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_are_bounded() {
        assert_eq!(tlv(&[0x30, 0x82, 0xff]), None);
        assert_eq!(tlv(&[0x30, 0x05, 1, 2]), None);
        assert_eq!(spki(&[]), None);
        assert_eq!(spki(&[0x30, 0x00]), None);
    }

    #[test]
    fn spki_of_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["mx.example".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let der = cert.der();
        assert_eq!(spki(der), Some(key.public_key_der().as_slice()));
        let rec = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: Sha256::digest(key.public_key_der()).to_vec(),
        };
        assert!(rec.usable() && rec.matches(der));
        let full = Tlsa {
            usage: 3,
            selector: 0,
            matching: 2,
            data: Sha512::digest(der).to_vec(),
        };
        assert!(full.matches(der));
        let other = Tlsa {
            data: vec![0; 32],
            ..rec.clone()
        };
        assert!(!other.matches(der));
        assert!(!Tlsa { usage: 1, ..rec }.usable());
    }
}

//! DKIM signing of outgoing mail: RFC 6376 (DomainKeys Identified Mail), with Ed25519
//! (RFC 8463, `ed25519-sha256`) and RSA-2048 (`rsa-sha256`, RFC 8301's minimum is 1024,
//! 2048 what every large receiver asks for) keys, through the `mail-auth` crate.
//!
//! - [`Signer`]: what the submission path calls for each message it enqueues. When the
//!   message's From domain (RFC 5322 From, the identity DMARC aligns with) has active
//!   keys, it returns one `DKIM-Signature` field per active key (an Ed25519 and an RSA
//!   signature: receivers that do not know Ed25519 yet, and RFC 8463 says some do not,
//!   ignore that one and check the RSA one), relaxed/relaxed canonicalization
//!   (RFC 6376 3.4.2, 3.4.4: survives the re-folding and whitespace changes relays do).
//! - The header fields signed are those of [`SIGNED_HEADERS`] the message has; the ones
//!   of [`OVERSIGNED_HEADERS`] are listed once more (RFC 6376 5.4.2, 8.15), so that a
//!   second From (or a Subject, Reply-To added on the way) breaks the signature instead
//!   of being shown to the reader under our signature.
//! - Keys come from the store ([`letterbox_store::dkim`]); parsed keys are cached and
//!   reloaded when the store's key-set version moves, so `letterbox domain dkim
//!   --activate` takes effect on the next message, without a restart.
//! - [`generate_pair`], [`record`], [`zone_txt`]: what `letterbox domain dkim` uses to
//!   make keys and print their DNS TXT records (RFC 6376 3.6.1; `k=ed25519` per
//!   RFC 8463 4.2, whose `p=` is the raw 32-octet key; `k=rsa`, whose `p=` is the
//!   SubjectPublicKeyInfo DER, as verifiers such as dkimpy and OpenDKIM parse it).

use base64::Engine;
use letterbox_store::{DkimAlgorithm, DkimKey, DkimState, Error, Result, Store};
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Header fields signed when present, in this order.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Content-ID",
    "Content-Description",
    "Content-Language",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Header fields listed once more than the message has them (oversigned), so that
/// none can be added after signing without breaking the signature.
pub const OVERSIGNED_HEADERS: &[&str] = &["From", "Subject", "Reply-To"];

/// The RSA key size `letterbox domain dkim` makes.
pub const RSA_BITS: usize = 2048;

enum KeySigner {
    Ed25519(DkimSigner<Ed25519Key, Done>),
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
}

/// An active key, parsed once (ring checks an RSA key when parsing it, which costs
/// milliseconds). The `h=` list varies per message: it is set in the signer's template
/// under the lock before each signature.
struct Loaded {
    selector: String,
    signer: Mutex<KeySigner>,
}

#[derive(Default)]
struct Cache {
    version: Option<i64>,
    by_domain: HashMap<String, Arc<Vec<Loaded>>>,
}

/// Signs outgoing mail with the From domain's active keys (see the module docs).
/// Cheap to share: keep one per server. Its methods block (one store read per message
/// to check the key set); async callers run them on the blocking pool.
pub struct Signer {
    store: Store,
    cache: Mutex<Cache>,
}

impl Signer {
    pub fn new(store: Store) -> Signer {
        Signer {
            store,
            cache: Mutex::default(),
        }
    }

    /// The `DKIM-Signature` header field(s), CRLF-terminated, to prepend to `message`
    /// when its From domain is a local domain with active keys; `None` otherwise (no
    /// From, a From of another domain, a domain without keys). Errors are the store's
    /// only: a key that cannot sign is logged and skipped, never a reason to refuse mail.
    pub fn sign(&self, message: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(domain) = from_domain(message) else {
            return Ok(None);
        };
        self.sign_as(message, &[domain])
    }

    /// For mail Letterbox writes itself (DSNs and delay notices, from
    /// `MAILER-DAEMON@hostname`): signed by the From domain when it has active keys,
    /// else by the nearest parent domain that has (`mail.example.com` is signed
    /// `d=example.com`): DMARC's relaxed alignment (RFC 7489 3.1.1) accepts a parent
    /// domain of the From domain, and the host name itself rarely has keys.
    pub fn sign_generated(&self, message: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(domain) = from_domain(message) else {
            return Ok(None);
        };
        let mut candidates = vec![domain.clone()];
        let mut rest = domain.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if parent.contains('.') {
                candidates.push(parent.to_string());
            }
            rest = parent;
        }
        self.sign_as(message, &candidates)
    }

    /// Signs with the keys of the first of `domains` that has active keys.
    fn sign_as(&self, message: &[u8], domains: &[String]) -> Result<Option<Vec<u8>>> {
        let (domain, keys) = {
            let version = self.store.dkim_version()?;
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.version != Some(version) {
                let all = self.store.active_dkim_keys()?;
                cache.by_domain = load(all);
                cache.version = Some(version);
            }
            match domains
                .iter()
                .find_map(|d| cache.by_domain.get(d).map(|k| (d.clone(), k.clone())))
            {
                Some(k) => k,
                None => return Ok(None),
            }
        };
        Ok(sign_with(&domain, &keys, message))
    }
}

/// Signs with the From domain's active keys read from `backend` now, without a cache:
/// for the rare messages written inside a store task (Sieve vacation replies queued for
/// other domains), where a [`Signer`] (which holds a [`Store`]) is not at hand.
pub fn sign_uncached(
    backend: &dyn letterbox_store::Backend,
    message: &[u8],
) -> Result<Option<Vec<u8>>> {
    let Some(domain) = from_domain(message) else {
        return Ok(None);
    };
    let all = load(backend.active_dkim_keys()?);
    Ok(all
        .get(&domain)
        .and_then(|keys| sign_with(&domain, keys, message)))
}

/// One `DKIM-Signature` field per key, CRLF-terminated; `None` when no key could sign.
fn sign_with(domain: &str, keys: &[Loaded], message: &[u8]) -> Option<Vec<u8>> {
    let headers = header_list(message);
    let mut out = Vec::new();
    for k in keys.iter() {
        match sign_one(k, &headers, message) {
            Ok(h) => out.extend_from_slice(h.as_bytes()),
            Err(e) => tracing::error!(
                domain = %domain,
                selector = %k.selector,
                "DKIM signing failed, message sent without this signature: {e}"
            ),
        }
    }
    (!out.is_empty()).then_some(out)
}

fn load(keys: Vec<DkimKey>) -> HashMap<String, Arc<Vec<Loaded>>> {
    let mut m: HashMap<String, Vec<Loaded>> = HashMap::new();
    for k in keys {
        let signer = match k.algorithm {
            DkimAlgorithm::Ed25519 => Ed25519Key::from_pkcs8_der(&k.private_key).map(|key| {
                KeySigner::Ed25519(
                    DkimSigner::from_key(key)
                        .domain(&k.domain)
                        .selector(&k.selector)
                        .headers(SIGNED_HEADERS.iter().copied())
                        .header_canonicalization(Canonicalization::Relaxed)
                        .body_canonicalization(Canonicalization::Relaxed),
                )
            }),
            DkimAlgorithm::Rsa => rsa_key(&k.private_key).map(|key| {
                KeySigner::Rsa(
                    DkimSigner::from_key(key)
                        .domain(&k.domain)
                        .selector(&k.selector)
                        .headers(SIGNED_HEADERS.iter().copied())
                        .header_canonicalization(Canonicalization::Relaxed)
                        .body_canonicalization(Canonicalization::Relaxed),
                )
            }),
        };
        match signer {
            Ok(signer) => m.entry(k.domain.clone()).or_default().push(Loaded {
                selector: k.selector,
                signer: Mutex::new(signer),
            }),
            Err(e) => {
                tracing::error!(domain = %k.domain, selector = %k.selector, "unusable DKIM key, not signing with it: {e}")
            }
        }
    }
    m.into_iter().map(|(d, v)| (d, Arc::new(v))).collect()
}

fn rsa_key(pkcs1: &[u8]) -> mail_auth::Result<RsaKey<Sha256>> {
    RsaKey::<Sha256>::from_key_der(rustls_pki_types::PrivateKeyDer::Pkcs1(
        rustls_pki_types::PrivatePkcs1KeyDer::from(pkcs1),
    ))
}

fn sign_one(k: &Loaded, headers: &[String], message: &[u8]) -> mail_auth::Result<String> {
    let mut signer = k.signer.lock().unwrap_or_else(|e| e.into_inner());
    let signature = match &mut *signer {
        KeySigner::Ed25519(s) => {
            s.template.h = headers.to_vec();
            s.sign(message)?
        }
        KeySigner::Rsa(s) => {
            s.template.h = headers.to_vec();
            s.sign(message)?
        }
    };
    Ok(signature.to_header())
}

/// The names of the message's top-level header fields (unfolded, as written).
fn header_names(message: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            if let Ok(name) = std::str::from_utf8(&line[..colon]) {
                names.push(name.trim().to_string());
            }
        }
    }
    names
}

/// The `h=` list handed to mail-auth: each field of [`SIGNED_HEADERS`] the message has,
/// then [`OVERSIGNED_HEADERS`] again. mail-auth signs every instance of a listed name
/// and lists each name it did not find once more (signing its absence): a name listed
/// twice thus gets one extra, empty entry.
fn header_list(message: &[u8]) -> Vec<String> {
    let present = header_names(message);
    let mut list: Vec<String> = SIGNED_HEADERS
        .iter()
        .filter(|h| present.iter().any(|p| p.eq_ignore_ascii_case(h)))
        .map(|h| h.to_string())
        .collect();
    list.extend(OVERSIGNED_HEADERS.iter().map(|h| h.to_string()));
    list
}

/// The domain of the message's (first) From address in the store's form, the
/// lower-case A-label: a From of `bücher.example` (RFC 6532 UTF-8 header) is signed by
/// the keys of `xn--bcher-kva.example`, with that `d=` (RFC 6376 3.5, RFC 8616 4).
pub fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
    let addr = parsed.from()?.first()?.address()?;
    let (_, domain) = addr.rsplit_once('@')?;
    let d = domain.trim().trim_end_matches('.');
    let d = letterbox_store::idn::a_label(d).unwrap_or_else(|| d.to_ascii_lowercase());
    (!d.is_empty()).then_some(d)
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("DKIM key generation: {e}")))
}

/// Makes a pair of keys for `domain`: Ed25519 under selector `{stem}e` and RSA-2048
/// under `{stem}r`, both in `state`, created `now`.
pub fn generate_pair(domain: &str, stem: &str, state: DkimState, now: i64) -> Result<Vec<DkimKey>> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::EncodePublicKey;
    let ed = mail_auth::dkim::generate::DkimKeyPair::generate_ed25519().map_err(io)?;
    let rsa_pair = mail_auth::dkim::generate::DkimKeyPair::generate_rsa(RSA_BITS).map_err(io)?;
    let (rsa_private, rsa_public_pkcs1) = rsa_pair.into_inner();
    let spki = rsa::RsaPublicKey::from_pkcs1_der(&rsa_public_pkcs1)
        .map_err(io)?
        .to_public_key_der()
        .map_err(io)?
        .as_bytes()
        .to_vec();
    let (ed_private, ed_public) = ed.into_inner();
    let key = |suffix: char, algorithm, private_key, public_key| DkimKey {
        domain: domain.to_string(),
        selector: format!("{stem}{suffix}"),
        algorithm,
        private_key,
        public_key,
        created: now,
        state,
        changed: now,
    };
    Ok(vec![
        key('e', DkimAlgorithm::Ed25519, ed_private, ed_public),
        key('r', DkimAlgorithm::Rsa, rsa_private, spki),
    ])
}

/// `YYYYMMDD` (UTC) of seconds since the epoch (civil-from-days, H. Hinnant).
pub fn ymd(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}")
}

/// The stem of a new pair's selectors: `lb` and the date (`lb20261206`), with `-2`,
/// `-3`... when the domain already has a pair of that day.
pub fn next_stem(existing: &[DkimKey], now: i64) -> String {
    let base = format!("lb{}", ymd(now));
    let taken = |stem: &str| existing.iter().any(|k| pair_stem(&k.selector) == stem);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|s| !taken(s))
        .unwrap_or(base)
}

/// The pair a selector belongs to: the selector without its algorithm letter.
pub fn pair_stem(selector: &str) -> &str {
    selector
        .strip_suffix('e')
        .or_else(|| selector.strip_suffix('r'))
        .unwrap_or(selector)
}

/// The TXT record's value: `v=DKIM1; k=ed25519; p=...` (RFC 6376 3.6.1, RFC 8463 4.2).
pub fn record(key: &DkimKey) -> String {
    format!(
        "v=DKIM1; k={}; p={}",
        key.algorithm.as_str(),
        base64::engine::general_purpose::STANDARD.encode(&key.public_key)
    )
}

/// The record's owner name: `SELECTOR._domainkey.DOMAIN.`
pub fn record_name(key: &DkimKey) -> String {
    format!("{}._domainkey.{}.", key.selector, key.domain)
}

/// The TTL printed with every record (one hour: short enough for rotations and
/// corrections to spread within the day).
pub const RECORD_TTL: u32 = 3600;

/// A TXT record in zone-file syntax, with [`RECORD_TTL`]; a value longer than one character-string (255
/// octets, RFC 1035 3.3) is split into several, which DNS joins back (RFC 6376 3.6.2.2).
pub fn zone_txt(name: &str, value: &str) -> String {
    let chunks: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c).replace('"', "\\\"")))
        .collect();
    if chunks.len() <= 1 {
        format!(
            "{name} {RECORD_TTL} IN TXT {}",
            chunks.first().map_or("\"\"", |s| s.as_str())
        )
    } else {
        format!("{name} {RECORD_TTL} IN TXT ( {} )", chunks.join("\n\t"))
    }
}

#[cfg(test)]
mod tests;

//! Password hashes, in Dovecot's `{SCHEME}hash` notation so accounts migrate unchanged.
//!
//! New hashes are Argon2id (`{ARGON2ID}$argon2id$v=19$...`). Imported hashes may use
//! Dovecot's `ARGON2ID`, `ARGON2I`, `BLF-CRYPT`, `SHA512-CRYPT`, `SHA256-CRYPT`,
//! `SSHA512`, `SSHA256` and `SSHA` schemes; [`needs_rehash`] tells the caller to store an
//! Argon2id hash after the next successful login. Passwords never leave this module in
//! any form but a hash, and nothing here logs.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256, Sha512};

const SCHEMES: &[&str] = &[
    "ARGON2ID",
    "ARGON2I",
    "BLF-CRYPT",
    "SHA512-CRYPT",
    "SHA256-CRYPT",
    "SSHA512",
    "SSHA256",
    "SSHA",
];

/// Hashes a new password with Argon2id (the crate's defaults: 19 MiB, 2 passes).
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let h = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters cannot fail");
    format!("{{ARGON2ID}}{h}")
}

fn split(stored: &str) -> Option<(&str, &str)> {
    let rest = stored.strip_prefix('{')?;
    let (scheme, hash) = rest.split_once('}')?;
    Some((scheme, hash))
}

/// Checks that an imported hash is in a scheme we can verify, and well formed.
pub fn validate_import(stored: &str) -> Result<(), String> {
    let (scheme, h) = split(stored).ok_or_else(|| {
        "password hash must be in {SCHEME}hash form, e.g. {ARGON2ID}$argon2id$...".to_string()
    })?;
    let scheme_uc = scheme.to_ascii_uppercase();
    if !SCHEMES.contains(&scheme_uc.as_str()) {
        return Err(format!(
            "unsupported password scheme {{{scheme}}} (supported: {})",
            SCHEMES.join(", ")
        ));
    }
    let ok = match scheme_uc.as_str() {
        "ARGON2ID" | "ARGON2I" => PasswordHash::new(h).is_ok(),
        "BLF-CRYPT" => h.starts_with("$2") && h.len() >= 59,
        "SHA512-CRYPT" => h.starts_with("$6$"),
        "SHA256-CRYPT" => h.starts_with("$5$"),
        _ => base64::engine::general_purpose::STANDARD
            .decode(h)
            .is_ok_and(|b| b.len() > min_digest(&scheme_uc)),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("malformed {{{scheme}}} password hash"))
    }
}

fn min_digest(scheme: &str) -> usize {
    match scheme {
        "SSHA512" => 64,
        "SSHA256" => 32,
        _ => 20,
    }
}

/// Verifies a password against a stored hash of any supported scheme.
pub fn verify(password: &str, stored: &str) -> bool {
    let Some((scheme, h)) = split(stored) else {
        return false;
    };
    match scheme.to_ascii_uppercase().as_str() {
        "ARGON2ID" | "ARGON2I" => PasswordHash::new(h).is_ok_and(|ph| {
            Argon2::default()
                .verify_password(password.as_bytes(), &ph)
                .is_ok()
        }),
        "BLF-CRYPT" => bcrypt::verify(password, h).unwrap_or(false),
        "SHA512-CRYPT" => sha_crypt::sha512_check(password, h).is_ok(),
        "SHA256-CRYPT" => sha_crypt::sha256_check(password, h).is_ok(),
        s @ ("SSHA512" | "SSHA256" | "SSHA") => {
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(h) else {
                return false;
            };
            let n = min_digest(s);
            if raw.len() <= n {
                return false;
            }
            let (digest, salt) = raw.split_at(n);
            let computed: Vec<u8> = match s {
                "SSHA512" => Sha512::new()
                    .chain_update(password)
                    .chain_update(salt)
                    .finalize()
                    .to_vec(),
                "SSHA256" => Sha256::new()
                    .chain_update(password)
                    .chain_update(salt)
                    .finalize()
                    .to_vec(),
                _ => sha1(password.as_bytes(), salt).to_vec(),
            };
            constant_time_eq(&computed, digest)
        }
        _ => false,
    }
}

/// True when the stored hash is not (default-parameter) Argon2id.
pub fn needs_rehash(stored: &str) -> bool {
    !stored.starts_with("{ARGON2ID}$argon2id$")
}

/// Recently verified passwords, so that a client logging in again and again (a phone
/// polling every minute, a webmail opening a connection per request) does not pay a full
/// Argon2id check each time (tens of milliseconds and 19 MiB of a core): the same idea
/// as Dovecot's `auth_cache`.
///
/// What is kept per account is never the password: it is a BLAKE3 hash of the address
/// and password keyed with a random key drawn when the process starts (so the tag means
/// nothing outside this process and cannot be precomputed), plus a BLAKE3 of the stored
/// hash it was verified against. An entry is used only while the account's stored hash
/// is still that one (a password change, even by `letterbox user passwd` from another
/// process, makes it stale at once) and for at most the TTL (`[auth] cache_ttl`, `0`
/// turns the cache off). Failures are never cached: a wrong password always takes the
/// full check. At most [`VerifiedCache::MAX_ENTRIES`] accounts are kept.
pub struct VerifiedCache {
    key: [u8; 32],
    ttl: std::time::Duration,
    entries: std::sync::Mutex<std::collections::HashMap<String, CacheEntry>>,
}

struct CacheEntry {
    tag: [u8; 32],
    stored: [u8; 32],
    at: std::time::Instant,
}

impl VerifiedCache {
    /// Accounts kept at most; past this, expired entries go, then everything.
    pub const MAX_ENTRIES: usize = 100_000;

    pub fn new(ttl_secs: u64) -> VerifiedCache {
        VerifiedCache {
            key: rand::random(),
            ttl: std::time::Duration::from_secs(ttl_secs),
            entries: Default::default(),
        }
    }

    fn tag(&self, address: &str, password: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&(address.len() as u64).to_le_bytes());
        h.update(address.as_bytes());
        h.update(password.as_bytes());
        *h.finalize().as_bytes()
    }

    /// True when this password was verified for `address` against exactly `stored` less
    /// than the TTL ago.
    pub fn hit(&self, address: &str, password: &str, stored: &str) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let tag = self.tag(address, password);
        let stored = *blake3::hash(stored.as_bytes()).as_bytes();
        let m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        m.get(address).is_some_and(|e| {
            e.at.elapsed() < self.ttl
                && constant_time_eq(&e.tag, &tag)
                && constant_time_eq(&e.stored, &stored)
        })
    }

    /// Records a successful check of `password` against `stored`.
    pub fn insert(&self, address: &str, password: &str, stored: &str) {
        if self.ttl.is_zero() {
            return;
        }
        let entry = CacheEntry {
            tag: self.tag(address, password),
            stored: *blake3::hash(stored.as_bytes()).as_bytes(),
            at: std::time::Instant::now(),
        };
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= Self::MAX_ENTRIES && !m.contains_key(address) {
            m.retain(|_, e| e.at.elapsed() < self.ttl);
            if m.len() >= Self::MAX_ENTRIES {
                m.clear();
            }
        }
        m.insert(address.to_string(), entry);
    }

    /// Forgets an account's entry (a failed check: the password may have changed).
    pub fn forget(&self, address: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(address);
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-1 for `{SSHA}` (legacy imports only), per FIPS 180-4.
fn sha1(data: &[u8], salt: &[u8]) -> [u8; 20] {
    let mut msg = Vec::with_capacity(data.len() + salt.len() + 72);
    msg.extend_from_slice(data);
    msg.extend_from_slice(salt);
    let bit_len = (msg.len() as u64) * 8;
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_roundtrip() {
        let h = hash("s3cret Pass");
        assert!(h.starts_with("{ARGON2ID}$argon2id$"));
        assert!(verify("s3cret Pass", &h));
        assert!(!verify("s3cret pass", &h));
        assert!(!needs_rehash(&h));
        assert!(validate_import(&h).is_ok());
    }

    #[test]
    fn dovecot_schemes() {
        // The SHA-crypt specification's first test vector.
        let sha512 = "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
        assert!(verify("Hello world!", sha512));
        assert!(!verify("hello world!", sha512));
        assert!(needs_rehash(sha512));
        let bcrypt = format!("{{BLF-CRYPT}}{}", bcrypt::hash("password", 4).unwrap());
        assert!(verify("password", &bcrypt));
        assert!(validate_import(&bcrypt).is_ok());
        // {SSHA512}: base64(sha512(password + salt) + salt)
        let salt = b"saltsalt";
        let mut raw = Sha512::new()
            .chain_update("password")
            .chain_update(salt)
            .finalize()
            .to_vec();
        raw.extend_from_slice(salt);
        let ssha = format!(
            "{{SSHA512}}{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        assert!(verify("password", &ssha));
        assert!(!verify("Password", &ssha));
        // SHA-1 test vector (FIPS 180-1 "abc").
        assert_eq!(
            hex::encode(sha1(b"ab", b"c")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn verified_cache_hits_only_the_same_password_and_hash() {
        let c = VerifiedCache::new(60);
        let (a, stored) = ("a@example.com", "{ARGON2ID}$argon2id$stored-one");
        assert!(!c.hit(a, "pw", stored));
        c.insert(a, "pw", stored);
        assert!(c.hit(a, "pw", stored));
        assert!(!c.hit(a, "pw2", stored), "another password");
        assert!(!c.hit("b@example.com", "pw", stored), "another account");
        assert!(
            !c.hit(a, "pw", "{ARGON2ID}$argon2id$changed"),
            "hash changed"
        );
        // Nothing in memory is the password or a plain hash of it.
        let e = c.entries.lock().unwrap();
        let tag = e.get(a).unwrap().tag;
        assert_ne!(&tag, blake3::hash(b"pw").as_bytes());
        drop(e);
        // A second process (another key) does not recognise the tag.
        assert_ne!(VerifiedCache::new(60).tag(a, "pw"), tag);
        c.forget(a);
        assert!(!c.hit(a, "pw", stored));
        // Entries expire.
        let short = VerifiedCache {
            ttl: std::time::Duration::from_millis(20),
            ..VerifiedCache::new(1)
        };
        short.insert(a, "pw", stored);
        assert!(short.hit(a, "pw", stored));
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(!short.hit(a, "pw", stored));
        // TTL 0: off.
        let off = VerifiedCache::new(0);
        off.insert(a, "pw", stored);
        assert!(!off.hit(a, "pw", stored));
    }

    #[test]
    fn malformed_imports() {
        for bad in [
            "plain",
            "{MD5}abc",
            "{ARGON2ID}nonsense",
            "{SSHA512}!!!",
            "{SHA512-CRYPT}x",
            "{",
        ] {
            assert!(validate_import(bad).is_err(), "{bad}");
            assert!(!verify("x", bad));
        }
    }
}

//! DKIM signing keys (RFC 6376; Ed25519 per RFC 8463, RSA-SHA256), kept in the store so
//! that every backend (the embedded SQLite one, a future PostgreSQL one) holds them.
//!
//! A domain's keys are made in pairs, one Ed25519 and one RSA key, each under its own
//! selector. A key is in one of three states ([`DkimState`]):
//! - `active`: messages from the domain are signed with it;
//! - `published`: made by a rotation; its DNS record is to be published, and it signs
//!   nothing until activated, so that no message carries a signature whose record
//!   verifiers cannot find yet;
//! - `retired`: replaced by an activation; it signs nothing, and its record should stay
//!   in DNS a few days for the mail signed with it that is still in transit.
//!
//! The rules (one active set per domain, activation retires the old set in the same
//! transaction) are written here once; `sqlite.rs` only runs them in its writer.

use crate::{validate_domain, Error, Result};
use rusqlite::{params, Connection, OptionalExtension};

/// A key's algorithm, as the DNS record's `k=` and the signature's `a=` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DkimAlgorithm {
    /// `ed25519-sha256` (RFC 8463); the private key is PKCS#8 DER, the public key the
    /// raw 32 octets.
    Ed25519,
    /// `rsa-sha256`; the private key is PKCS#1 DER, the public key SubjectPublicKeyInfo
    /// DER.
    Rsa,
}

impl DkimAlgorithm {
    /// The stored name, and the record's `k=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Ed25519 => "ed25519",
            DkimAlgorithm::Rsa => "rsa",
        }
    }
    pub fn parse(s: &str) -> Option<DkimAlgorithm> {
        match s {
            "ed25519" => Some(DkimAlgorithm::Ed25519),
            "rsa" => Some(DkimAlgorithm::Rsa),
            _ => None,
        }
    }
}

/// Where a key is in its life (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DkimState {
    Active,
    Published,
    Retired,
}

impl DkimState {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimState::Active => "active",
            DkimState::Published => "published",
            DkimState::Retired => "retired",
        }
    }
    pub fn parse(s: &str) -> Option<DkimState> {
        match s {
            "active" => Some(DkimState::Active),
            "published" => Some(DkimState::Published),
            "retired" => Some(DkimState::Retired),
            _ => None,
        }
    }
}

/// One signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    /// Seconds since the epoch.
    pub created: i64,
    pub state: DkimState,
    /// When `state` last changed (seconds since the epoch).
    pub changed: i64,
}

/// Never prints the private key.
impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("created", &self.created)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A selector: RFC 6376 3.1, dot-separated labels of letters, digits and hyphens.
pub fn validate_selector(selector: &str) -> Result<String> {
    let s = selector.trim().to_ascii_lowercase();
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(s)
    } else {
        Err(Error::Invalid(format!(
            "invalid DKIM selector '{selector}'"
        )))
    }
}

fn domain_id(c: &Connection, domain: &str) -> Result<i64> {
    c.query_row("SELECT id FROM domains WHERE name = ?1", [domain], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("domain {domain}")))
}

/// Stores new keys, all of one local domain; refuses a selector the domain already has.
pub(crate) fn add_keys(c: &Connection, keys: &[DkimKey]) -> Result<()> {
    for k in keys {
        let d = validate_domain(&k.domain)?;
        let sel = validate_selector(&k.selector)?;
        let id = domain_id(c, &d)?;
        let exists: bool = c
            .query_row(
                "SELECT 1 FROM dkim_keys WHERE domain_id = ?1 AND selector = ?2",
                params![id, sel],
                |_| Ok(true),
            )
            .optional()?
            .unwrap_or(false);
        if exists {
            return Err(Error::Exists(format!("DKIM selector {sel} of {d}")));
        }
        c.execute(
            "INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key, public_key,
                                    created, state, changed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                sel,
                k.algorithm.as_str(),
                k.private_key,
                k.public_key,
                k.created,
                k.state.as_str(),
                k.changed
            ],
        )?;
    }
    Ok(())
}

const SELECT_KEYS: &str = "SELECT d.name, k.selector, k.algorithm, k.private_key, k.public_key,
        k.created, k.state, k.changed
   FROM dkim_keys k JOIN domains d ON d.id = k.domain_id";

fn key_from_row(r: &rusqlite::Row) -> rusqlite::Result<DkimKey> {
    let bad = |i: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown DKIM {what}").into(),
        )
    };
    let alg: String = r.get(2)?;
    let state: String = r.get(6)?;
    Ok(DkimKey {
        domain: r.get(0)?,
        selector: r.get(1)?,
        algorithm: DkimAlgorithm::parse(&alg).ok_or_else(|| bad(2, format!("algorithm {alg}")))?,
        private_key: r.get(3)?,
        public_key: r.get(4)?,
        created: r.get(5)?,
        state: DkimState::parse(&state).ok_or_else(|| bad(6, format!("state {state}")))?,
        changed: r.get(7)?,
    })
}

/// A local domain's keys, oldest first (Ed25519 before RSA within a pair). `NotFound`
/// when the domain is not local.
pub(crate) fn keys(c: &Connection, domain: &str) -> Result<Vec<DkimKey>> {
    let d = validate_domain(domain)?;
    let id = domain_id(c, &d)?;
    let mut st = c.prepare_cached(&format!(
        "{SELECT_KEYS} WHERE k.domain_id = ?1 ORDER BY k.created, k.selector"
    ))?;
    let v = st
        .query_map([id], key_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Every domain's active keys (what a signer loads).
pub(crate) fn active_keys(c: &Connection) -> Result<Vec<DkimKey>> {
    let mut st = c.prepare_cached(&format!(
        "{SELECT_KEYS} WHERE k.state = 'active' ORDER BY d.name, k.created, k.selector"
    ))?;
    let v = st
        .query_map([], key_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Makes the given keys of a domain the active ones and retires the keys active before
/// (all in the caller's transaction). Each selector must exist and not be retired.
/// Returns the selectors retired.
pub(crate) fn activate(
    c: &Connection,
    domain: &str,
    selectors: &[String],
    now: i64,
) -> Result<Vec<String>> {
    let d = validate_domain(domain)?;
    let id = domain_id(c, &d)?;
    if selectors.is_empty() {
        return Err(Error::Invalid("no DKIM selector to activate".into()));
    }
    let mut wanted = Vec::new();
    for s in selectors {
        let sel = validate_selector(s)?;
        let state: Option<String> = c
            .query_row(
                "SELECT state FROM dkim_keys WHERE domain_id = ?1 AND selector = ?2",
                params![id, sel],
                |r| r.get(0),
            )
            .optional()?;
        match state.as_deref().and_then(DkimState::parse) {
            None => return Err(Error::NotFound(format!("DKIM selector {sel} of {d}"))),
            Some(DkimState::Retired) => {
                return Err(Error::Refused(format!(
                    "DKIM selector {sel} of {d} is retired; make a new pair with --rotate"
                )))
            }
            Some(_) => wanted.push(sel),
        }
    }
    let mut retired = Vec::new();
    {
        let mut st = c.prepare(
            "SELECT selector FROM dkim_keys WHERE domain_id = ?1 AND state = 'active'
             ORDER BY selector",
        )?;
        for sel in st.query_map([id], |r| r.get::<_, String>(0))? {
            let sel = sel?;
            if !wanted.contains(&sel) {
                retired.push(sel);
            }
        }
    }
    for sel in &retired {
        c.execute(
            "UPDATE dkim_keys SET state = 'retired', changed = ?3
             WHERE domain_id = ?1 AND selector = ?2",
            params![id, sel, now],
        )?;
    }
    for sel in &wanted {
        c.execute(
            "UPDATE dkim_keys SET state = 'active', changed = ?3
             WHERE domain_id = ?1 AND selector = ?2 AND state <> 'active'",
            params![id, sel, now],
        )?;
    }
    Ok(retired)
}

/// A number that changes whenever any domain's key set changes.
pub(crate) fn version(c: &Connection) -> Result<i64> {
    Ok(c.query_row(
        "SELECT value FROM meta WHERE key = 'dkim_version'",
        [],
        |r| r.get(0),
    )
    .optional()?
    .unwrap_or(0))
}

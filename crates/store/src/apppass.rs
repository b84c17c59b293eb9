//! Application passwords: per-account secrets for mail programs that cannot do the
//! account's own login (phones, clients without OAuth), each usable for one set of
//! protocols (IMAP, POP3, SMTP submission) and revocable on its own (issue 14), as
//! Google's and Apple's app-specific passwords and Fastmail's app passwords are.
//!
//! - Generated here, 20 characters from a 32-letter alphabet without look-alikes
//!   (`abcdefghijkmnpqrstuvwxyz23456789`), shown grouped by four with dashes
//!   (`abcd-efgh-ijkm-npqr-stuv`): 100 random bits. Dashes, spaces and case are ignored
//!   when one is typed back. It is shown once and stored only as a hash.
//! - Stored hashed under the account password policy ([`crate::password::hash`],
//!   Argon2id). The first four characters (the *selector*, 20 of the 100 bits) are also
//!   kept in clear, so that a login verifies at most the app passwords that share them
//!   (almost always one) instead of running Argon2id once per app password of the
//!   account: a wrong password costs what it costs without app passwords.
//! - A successful check is remembered like an account password's
//!   ([`crate::password::VerifiedCache`], `[auth] cache_ttl`) under the account address
//!   and the app password's row; removing the row ends it at once (the cached path reads
//!   the row first).
//! - Removing an account removes its app passwords (`ON DELETE CASCADE`).

use crate::sqlite::{get_account, SqliteBackend};
use crate::*;
use rusqlite::{params, OptionalExtension};

/// A protocol an application password may be used for, and what a login went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Imap,
    Pop3,
    /// SMTP submission (AUTH on `submission`/`submissions`).
    Smtp,
    /// The web portal: account password only, never an application password.
    Web,
}

impl Protocol {
    /// The name in the CLI, the API and the login history.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
            Protocol::Smtp => "smtp",
            Protocol::Web => "web",
        }
    }
    fn bit(self) -> u8 {
        match self {
            Protocol::Imap => 1,
            Protocol::Pop3 => 2,
            Protocol::Smtp => 4,
            Protocol::Web => 0,
        }
    }
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "imap" => Protocol::Imap,
            "pop3" => Protocol::Pop3,
            "smtp" | "submission" => Protocol::Smtp,
            "web" => Protocol::Web,
            _ => return None,
        })
    }
}

/// The protocols an application password is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protocols(u8);

impl Protocols {
    pub const ALL_MAIL: [Protocol; 3] = [Protocol::Imap, Protocol::Pop3, Protocol::Smtp];

    /// The stored form (bit 1 IMAP, 2 POP3, 4 SMTP).
    pub fn bits(self) -> u8 {
        self.0
    }
    pub(crate) fn from_bits(bits: u8) -> Protocols {
        Protocols(bits & 7)
    }
    pub fn contains(self, p: Protocol) -> bool {
        p.bit() != 0 && self.0 & p.bit() != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The names, in the order IMAP, POP3, SMTP.
    pub fn names(self) -> Vec<&'static str> {
        Self::ALL_MAIL
            .into_iter()
            .filter(|p| self.contains(*p))
            .map(Protocol::as_str)
            .collect()
    }
    /// From names: a comma-separated list (`imap,pop3,smtp`).
    pub fn parse_list(s: &str) -> Result<Protocols> {
        let names: Vec<&str> = s.split(',').filter(|p| !p.trim().is_empty()).collect();
        Self::from_names(&names)
    }
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Protocols> {
        let mut bits = 0;
        for n in names {
            match Protocol::parse(n.as_ref()) {
                Some(p) if p != Protocol::Web => bits |= p.bit(),
                _ => return Err(Error::Invalid(format!(
                    "unknown protocol '{}' for an application password (known: imap, pop3, smtp)",
                    n.as_ref().trim()
                ))),
            }
        }
        if bits == 0 {
            return Err(Error::Invalid(
                "an application password needs at least one protocol (imap, pop3, smtp)".into(),
            ));
        }
        Ok(Protocols(bits))
    }
}

/// An application password as listed (never the password itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub name: String,
    pub protocols: Protocols,
    /// Seconds since the epoch.
    pub created: i64,
    pub last_used: Option<i64>,
}

/// Most application passwords one account may have.
pub const MAX_PER_ACCOUNT: i64 = 50;
/// Longest name, in characters.
pub const MAX_NAME: usize = 64;

const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
const LEN: usize = 20;
pub(crate) const SELECTOR_LEN: usize = 4;

/// Generates a new password and returns (shown form, canonical form).
pub(crate) fn generate() -> (String, String) {
    use rand::RngCore;
    let mut raw = [0u8; LEN];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let canonical: String = raw
        .iter()
        .map(|b| ALPHABET[(b & 31) as usize] as char)
        .collect();
    let shown = canonical
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-");
    (shown, canonical)
}

/// The canonical form of a typed app password (dashes and spaces dropped, lower case),
/// or `None` when it cannot be one (so the login goes straight to the account password).
pub fn canonical(password: &str) -> Option<String> {
    let c: String = password
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (c.len() == LEN && c.bytes().all(|b| ALPHABET.contains(&b))).then_some(c)
}

pub(crate) fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "invalid application password name (1 to {MAX_NAME} printable characters)"
        )));
    }
    Ok(n.to_string())
}

pub(crate) fn cache_key(address: &str, id: i64) -> String {
    format!("{address}\0app#{id}")
}

impl SqliteBackend {
    pub(crate) fn app_password_add(
        &self,
        address: &str,
        name: &str,
        protocols: Protocols,
    ) -> Result<String> {
        let a = normalize_address(address);
        let name = check_name(name)?;
        if protocols.is_empty() {
            return Err(Error::Invalid(
                "an application password needs at least one protocol".into(),
            ));
        }
        let (shown, canonical) = generate();
        let hash = password::hash(&canonical);
        let selector = canonical[..SELECTOR_LEN].to_string();
        self.write(move |ctx| {
            let acct = get_account(&ctx.tx, &a)?;
            let n: i64 = ctx.tx.query_row(
                "SELECT count(*) FROM app_passwords WHERE account_id = ?1",
                [acct.id],
                |r| r.get(0),
            )?;
            if n >= MAX_PER_ACCOUNT {
                return Err(Error::Refused(format!(
                    "{a} already has {MAX_PER_ACCOUNT} application passwords; remove one first"
                )));
            }
            let exists = ctx
                .tx
                .query_row(
                    "SELECT 1 FROM app_passwords WHERE account_id = ?1 AND name = ?2",
                    params![acct.id, name],
                    |_| Ok(()),
                )
                .optional()?;
            if exists.is_some() {
                return Err(Error::Exists(format!(
                    "application password '{name}' of {a}"
                )));
            }
            ctx.tx.execute(
                "INSERT INTO app_passwords (account_id, name, selector, hash, protocols, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![acct.id, name, selector, hash, protocols.0, now()],
            )?;
            Ok(())
        })?;
        Ok(shown)
    }

    pub(crate) fn app_password_list(&self, address: &str) -> Result<Vec<AppPassword>> {
        let a = normalize_address(address);
        self.read(|c| {
            let acct = get_account(c, &a)?;
            let mut st = c.prepare_cached(
                "SELECT name, protocols, created, last_used FROM app_passwords
                 WHERE account_id = ?1 ORDER BY name",
            )?;
            let v = st
                .query_map([acct.id], |r| {
                    Ok(AppPassword {
                        name: r.get(0)?,
                        protocols: Protocols(r.get(1)?),
                        created: r.get(2)?,
                        last_used: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    pub(crate) fn app_password_remove(&self, address: &str, name: &str) -> Result<()> {
        let a = normalize_address(address);
        let name = name.trim().to_string();
        let a2 = a.clone();
        let id = self.write(move |ctx| {
            let acct = get_account(&ctx.tx, &a2)?;
            let id: Option<i64> = ctx
                .tx
                .query_row(
                    "DELETE FROM app_passwords WHERE account_id = ?1 AND name = ?2 RETURNING id",
                    params![acct.id, name],
                    |r| r.get(0),
                )
                .optional()?;
            id.ok_or_else(|| Error::NotFound(format!("application password '{name}' of {a2}")))
        })?;
        self.auth_cache.forget(&cache_key(&a, id));
        Ok(())
    }

    /// Checks `password` as an application password of `address` good for `protocol`.
    /// With `cached_only`, only the verified cache is asked (no hashing). Returns the
    /// account and the app password's name.
    pub(crate) fn app_password_check(
        &self,
        address: &str,
        password: &str,
        protocol: Protocol,
        cached_only: bool,
    ) -> Result<Option<(Account, String)>> {
        let Some(canon) = canonical(password) else {
            return Ok(None);
        };
        let a = normalize_address(address);
        let selector = canon[..SELECTOR_LEN].to_string();
        let found = self.read(|c| {
            let Some(acct) = get_account(c, &a).map(Some).or_else(|e| match e {
                Error::NotFound(_) => Ok(None),
                e => Err(e),
            })?
            else {
                return Ok(None);
            };
            let mut st = c.prepare_cached(
                "SELECT id, name, hash, protocols FROM app_passwords
                 WHERE account_id = ?1 AND selector = ?2",
            )?;
            let rows = st
                .query_map(params![acct.id, selector], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        Protocols(r.get(3)?),
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((acct, rows)))
        })?;
        let Some((acct, rows)) = found else {
            return Ok(None);
        };
        let rows = rows.into_iter().map(|(id, name, hash, p)| Candidate { id, name, hash, protocols: p });
        Ok(check_candidates(&self.auth_cache, &a, &canon, protocol, cached_only, rows)
            .map(|name| (self.effective(acct), name)))
    }
}

/// One stored application password whose selector matches a typed one.
pub(crate) struct Candidate {
    pub id: i64,
    pub name: String,
    pub hash: String,
    pub protocols: Protocols,
}

/// The check every backend runs over the candidates its query found for `address`
/// (normalised) and the canonical password `canon`: the name of the one it is, for
/// `protocol`, from the verified cache or (unless `cached_only`) by hashing.
pub(crate) fn check_candidates(
    cache: &password::VerifiedCache,
    address: &str,
    canon: &str,
    protocol: Protocol,
    cached_only: bool,
    candidates: impl IntoIterator<Item = Candidate>,
) -> Option<String> {
    for c in candidates {
        if !c.protocols.contains(protocol) {
            continue;
        }
        let key = cache_key(address, c.id);
        if cache.hit(&key, canon, &c.hash) {
            return Some(c.name);
        }
        if cached_only {
            continue;
        }
        if password::verify(canon, &c.hash) {
            cache.insert(&key, canon, &c.hash);
            return Some(c.name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_canonical_and_grouped() {
        let (shown, canon) = generate();
        assert_eq!(shown.len(), 24);
        assert_eq!(shown.matches('-').count(), 4);
        assert_eq!(canonical(&shown).as_deref(), Some(canon.as_str()));
        assert_eq!(
            canonical(&shown.to_uppercase().replace('-', " ")).as_deref(),
            Some(canon.as_str())
        );
        assert_ne!(generate().1, canon);
        assert_eq!(canonical("hunter2"), None);
        assert_eq!(
            canonical("0000-0000-0000-0000-0000"),
            None,
            "0 is not in the alphabet"
        );
    }

    #[test]
    fn protocol_lists() {
        let p = Protocols::parse_list("imap,smtp").unwrap();
        assert!(p.contains(Protocol::Imap) && p.contains(Protocol::Smtp));
        assert!(!p.contains(Protocol::Pop3) && !p.contains(Protocol::Web));
        assert_eq!(p.names(), ["imap", "smtp"]);
        assert!(Protocols::parse_list("").is_err());
        assert!(Protocols::parse_list("imap,web").is_err());
        assert!(Protocols::parse_list("ftp").is_err());
    }
}

#[cfg(test)]
mod store_tests {
    use crate::*;

    #[test]
    fn app_passwords_login_history_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        s.add_domain("example.com").unwrap();
        let hash = format!("{{BLF-CRYPT}}{}", bcrypt::hash("pw", 4).unwrap());
        let acct = s
            .add_account("a@example.com", &hash, QuotaLimit::Default)
            .unwrap();
        let imap = Protocols::parse_list("imap").unwrap();
        let pw = s.add_app_password("a@example.com", "phone", imap).unwrap();
        assert!(matches!(
            s.add_app_password("a@example.com", "phone", imap),
            Err(Error::Exists(_))
        ));
        let ok = |p: &str, proto, cached| {
            s.authenticate_app_password("A@example.com", p, proto, cached)
                .unwrap()
                .map(|(a, n)| (a.id, n))
        };
        assert_eq!(ok(&pw, Protocol::Imap, true), None, "not verified yet");
        assert_eq!(
            ok(&pw, Protocol::Imap, false),
            Some((acct.id, "phone".into()))
        );
        assert_eq!(
            ok(&pw, Protocol::Imap, true),
            Some((acct.id, "phone".into()))
        );
        assert_eq!(
            ok(&pw.to_uppercase(), Protocol::Imap, false),
            Some((acct.id, "phone".into()))
        );
        assert_eq!(ok(&pw, Protocol::Pop3, false), None);
        assert_eq!(ok(&pw, Protocol::Web, false), None);
        assert_eq!(ok("pw", Protocol::Imap, false), None);
        // The account password is not an app password, and the reverse.
        assert!(s.authenticate("a@example.com", &pw).unwrap().is_none());
        let listed = s.list_app_passwords("a@example.com").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].protocols.names(), ["imap"]);
        s.remove_app_password("a@example.com", "phone").unwrap();
        assert_eq!(
            ok(&pw, Protocol::Imap, true),
            None,
            "revoked: not even cached"
        );
        assert_eq!(ok(&pw, Protocol::Imap, false), None);
        assert!(matches!(
            s.remove_app_password("a@example.com", "phone"),
            Err(Error::NotFound(_))
        ));

        // Login history, bounded.
        for i in 0..5 {
            let rec = LoginRecord {
                at: 1000 + i,
                remote: "192.0.2.1".into(),
                protocol: "imap".into(),
                app_password: None,
            };
            s.record_login(acct.id, rec, 3).unwrap();
        }
        let logins = s.recent_logins("a@example.com").unwrap();
        assert_eq!(
            logins.iter().map(|l| l.at).collect::<Vec<_>>(),
            [1004, 1003, 1002]
        );

        // API tokens.
        let t = s.add_api_token("backup").unwrap();
        assert!(t.starts_with("lbx_"));
        assert_eq!(s.check_api_token(&t).unwrap().as_deref(), Some("backup"));
        assert_eq!(s.check_api_token(&format!("{t}x")).unwrap(), None);
        let mut wrong = t.clone();
        wrong.pop();
        wrong.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(s.check_api_token(&wrong).unwrap(), None);
        s.remove_api_token("backup").unwrap();
        assert_eq!(s.check_api_token(&t).unwrap(), None);

        // Removing the account removes its app passwords and history.
        s.add_app_password("a@example.com", "mail", imap).unwrap();
        s.remove_account("a@example.com", true).unwrap();
        let st = s.stats().unwrap();
        assert_eq!(st.accounts, 0);
        let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
        for t in ["app_passwords", "login_history"] {
            let n: i64 = c
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 0, "{t}");
        }
    }
}

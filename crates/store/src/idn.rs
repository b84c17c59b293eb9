//! Internationalised domain names: one stored form, the lower-case A-label.
//!
//! A domain may be written with U-labels (`exämple.com`) or with their A-labels
//! (`xn--exmple-cua.com`, RFC 5890 2.3.2.1): IDNA2008 (RFC 5890, RFC 5891 4 and 5)
//! makes them the same name. Every domain the store is given (`domain add`, `user add`,
//! `alias add`, SMTP/LMTP RCPT and MAIL, submission, IMAP/POP3/ManageSieve login
//! names, portal logins, Sieve redirect targets: all of them go through
//! [`crate::normalize_address`] / [`crate::validate_domain`]) is mapped with UTS #46
//! (Unicode IDNA Compatibility Processing: case folding and NFC, then
//! Punycode, RFC 3492) with the STD3 rules (letters, digits, hyphens) and no hyphen
//! first or last in a label, and compared and stored as that A-label form. A name that
//! UTS #46 refuses (an `xn--` label that is not valid Punycode, a disallowed code
//! point) is not a valid domain. Local parts are left as they are (RFC 6531 allows
//! UTF-8 there; only ASCII letters are matched case-insensitively, as before).
//!
//! Stores made before this change may hold U-label domains: [`migrate_sqlite`] and
//! [`migrate_pg`] rewrite them once (SQLite: `meta.schema_version` 2; PostgreSQL:
//! migration 135), in the transaction that opens the store, and refuse, changing
//! nothing, when two stored names would become one.

use crate::{Error, Result};
use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// Whether `s` has a label that may be an A-label (`xn--`, any case).
fn has_ace_prefix(s: &str) -> bool {
    s.as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"xn--"))
}

/// `domain` in its one stored form: lower-case, U-labels as A-labels (UTS #46
/// ToASCII, STD3 rules). `None` when it is not a valid name under UTS #46 (the length
/// and LDH rules are [`crate::validate_domain`]'s).
pub fn a_label(domain: &str) -> Option<String> {
    if domain.is_ascii() && !has_ace_prefix(domain) {
        // Nothing for IDNA to map: no need to run it on every lookup.
        return Some(domain.to_ascii_lowercase());
    }
    Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Ignore,
        )
        .ok()
        .map(|c| c.into_owned())
}

/// An address with its domain in the stored form ([`a_label`]) and its ASCII letters
/// lower-cased; `None` when its domain is not a valid name. `@domain` (a catch-all) is
/// an address with an empty local part; an address literal (`[...]`) is not mapped.
pub(crate) fn address(address: &str) -> Option<String> {
    if address.is_ascii() && !has_ace_prefix(address) {
        return Some(address.to_ascii_lowercase());
    }
    match address.rsplit_once('@') {
        Some((_, d)) if d.starts_with('[') => Some(address.to_ascii_lowercase()),
        Some((local, domain)) => {
            a_label(domain).map(|d| format!("{}@{d}", local.to_ascii_lowercase()))
        }
        // A name without a domain (a login name): nothing to map.
        None => Some(address.to_ascii_lowercase()),
    }
}

/// The text columns that hold domains, addresses or `@domain` (a value with an `@` is
/// an address, `''` is "every domain" in `web_admins.domain`, anything else a domain),
/// the same on both backends. Each is part of a unique key, so a rewrite that would
/// make two rows one is refused. `quota_requests.address` (an audit trail) and the
/// outbound queue (remote addresses) are left as written.
const COLUMNS: &[(&str, &str)] = &[
    ("domains", "name"),
    ("accounts", "address"),
    ("aliases", "address"),
    ("aliases", "target"),
    ("web_admins", "address"),
    ("web_admins", "domain"),
    ("expire_policy", "scope"),
    ("strip_policy", "scope"),
    ("domain_counts", "domain"),
];

/// Columns whose distinct values are each one entry (an alias address names one
/// alias; `aliases.target` and `web_admins.address` repeat across rows, and their rows
/// are kept apart by the unique key, whose violation is reported by the update).
fn is_entry(table: &str, column: &str) -> bool {
    !matches!(
        (table, column),
        ("aliases", "target")
            | ("web_admins", "address")
            | ("web_admins", "domain")
            | ("domain_counts", "domain")
    )
}

/// The stored form of one column value, when it differs.
fn rewritten(v: &str) -> Option<String> {
    if v.is_empty() || (v.is_ascii() && !has_ace_prefix(v)) {
        return None;
    }
    let new = if v.contains('@') {
        address(v)
    } else {
        a_label(v)
    };
    match new {
        Some(n) if n != v => Some(n),
        Some(_) => None,
        None => {
            tracing::warn!(
                "store: '{v}' is not a valid internationalised domain name (UTS #46); left as stored"
            );
            None
        }
    }
}

/// The rewrites of one column (old, new) given its distinct values, or the collision
/// that forbids them.
fn plan(table: &str, column: &str, values: &[String]) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for v in values {
        if let Some(n) = rewritten(v) {
            if is_entry(table, column) {
                if values.contains(&n) {
                    return Err(collision(table, column, v, &n, &n));
                }
                if let Some((other, _)) = out.iter().find(|(_, m)| *m == n) {
                    return Err(collision(table, column, v, &n, other));
                }
            }
            out.push((v.clone(), n));
        }
    }
    Ok(out)
}

fn collision(table: &str, column: &str, old: &str, new: &str, other: &str) -> Error {
    let with = match other == new {
        true => "which is already stored".to_string(),
        false => format!("as does '{other}'"),
    };
    Error::Refused(format!(
        "cannot store internationalised domain names as A-labels (RFC 5891): {table}.{column} '{old}' would become '{new}', {with}; remove one of the two (with the letterbox release before this one), then start again (nothing was changed)"
    ))
}

/// Rewrites the embedded store's U-label domains (see the module doc) in `tx`, once:
/// `meta.schema_version` goes from 1 to 2.
pub(crate) fn migrate_sqlite(tx: &rusqlite::Transaction) -> Result<()> {
    let version: i64 = tx.query_row(
        "SELECT value FROM meta WHERE key = 'schema_version'",
        [],
        |r| r.get(0),
    )?;
    if version >= 2 {
        return Ok(());
    }
    let mut n = 0;
    for (table, column) in COLUMNS {
        let values: Vec<String> = tx
            .prepare(&format!("SELECT DISTINCT {column} FROM {table}"))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for (old, new) in plan(table, column, &values)? {
            tx.execute(
                &format!("UPDATE {table} SET {column} = ?1 WHERE {column} = ?2"),
                [&new, &old],
            )
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation) => {
                    collision(table, column, &old, &new, &new)
                }
                _ => e.into(),
            })?;
            n += 1;
        }
    }
    if n > 0 {
        tracing::info!("store: {n} internationalised domain name(s) rewritten as A-labels");
    }
    tx.execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'", [])?;
    Ok(())
}

/// The same on PostgreSQL, in migration 135's transaction.
pub(crate) fn migrate_pg(tx: &mut r2d2_postgres::postgres::Transaction) -> Result<()> {
    let mut n = 0;
    for (table, column) in COLUMNS {
        let values: Vec<String> = tx
            .query(&format!("SELECT DISTINCT {column} FROM {table}"), &[])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (old, new) in plan(table, column, &values)? {
            tx.execute(
                &format!("UPDATE {table} SET {column} = $1 WHERE {column} = $2"),
                &[&new, &old],
            )
            .map_err(|e| match crate::pg::pg_err(e) {
                Error::Exists(_) => collision(table, column, &old, &new, &new),
                e => e,
            })?;
            n += 1;
        }
    }
    if n > 0 {
        tracing::info!("store: {n} internationalised domain name(s) rewritten as A-labels");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_form() {
        assert_eq!(a_label("exämple.com").unwrap(), "xn--exmple-cua.com");
        assert_eq!(a_label("EXÄMPLE.COM").unwrap(), "xn--exmple-cua.com");
        assert_eq!(a_label("XN--EXMPLE-CUA.com").unwrap(), "xn--exmple-cua.com");
        assert_eq!(a_label("Example.COM").unwrap(), "example.com");
        // Not Punycode, a disallowed code point, an underscore (STD3).
        assert!(a_label("xn--a.com").is_none());
        assert!(a_label("ex\u{2028}ample.com").is_none());
        assert_eq!(address("Ü@Exämple.com").unwrap(), "Ü@xn--exmple-cua.com");
        assert_eq!(address("@exämple.com").unwrap(), "@xn--exmple-cua.com");
        assert_eq!(address("A@B.C").unwrap(), "a@b.c");
        assert_eq!(address("Bób").unwrap(), "bób");
    }

    /// Rows as a store made before A-labels holds them (`idn` the U-label domain, `a`
    /// an address there), in SQL both backends take.
    fn old_rows(domain: &str) -> String {
        format!(
            "INSERT INTO domains (name) VALUES ('{domain}');
             INSERT INTO accounts (address, domain_id, password_hash, created)
                 SELECT 'x@{domain}', id, 'h', 0 FROM domains WHERE name = '{domain}';
             INSERT INTO aliases (address, target) VALUES ('@{domain}', 'x@{domain}');"
        )
    }

    fn check_rewritten(s: &crate::Store) {
        assert!(s
            .list_domains()
            .unwrap()
            .contains(&"xn--exmple-cua.com".to_string()));
        assert!(!s
            .list_domains()
            .unwrap()
            .contains(&"exämple.com".to_string()));
        assert_eq!(
            s.account("x@exämple.com").unwrap().address,
            "x@xn--exmple-cua.com"
        );
        assert_eq!(
            s.list_aliases(None).unwrap(),
            vec![(
                "@xn--exmple-cua.com".to_string(),
                vec!["x@xn--exmple-cua.com".to_string()]
            )]
        );
        assert!(matches!(
            s.resolve("anyone@xn--exmple-cua.com").unwrap(),
            crate::Resolved::Accounts(_)
        ));
    }

    #[test]
    fn sqlite_store_rewritten_once_or_refused() {
        use crate::{Store, StoreOptions};
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        drop(Store::open_embedded(dir.path(), StoreOptions::default()).unwrap());
        let old = |sql: &str| {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.execute_batch(sql).unwrap();
            c.execute("UPDATE meta SET value = 1 WHERE key = 'schema_version'", [])
                .unwrap();
        };
        old(&old_rows("exämple.com"));
        let s = Store::open_embedded(dir.path(), StoreOptions::default()).unwrap();
        check_rewritten(&s);
        drop(s);
        // Both forms of one name: refused, nothing changed, refused again next time.
        old(&old_rows("EXÄMPLE.com")
            .replace("'x@", "'y@")
            .replace("'@EX", "'z@EX"));
        for _ in 0..2 {
            let e = Store::open_embedded(dir.path(), StoreOptions::default())
                .err()
                .unwrap();
            assert!(
                e.to_string().contains("would become 'xn--exmple-cua.com'"),
                "{e}"
            );
        }
        let c = rusqlite::Connection::open(&db).unwrap();
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM accounts WHERE address = 'y@EXÄMPLE.com'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        let v: i64 = c
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, 1);
    }

    #[test]
    fn postgres_store_rewritten_once_or_refused() {
        use crate::pg::{self, testing};
        let url = testing::fresh_database();
        pg::migrate_url(&url).unwrap();
        let old = |sql: &str| {
            pg::blocking(|| {
                let mut c = pg::connect(&url).unwrap();
                c.batch_execute(sql).unwrap();
                c.batch_execute("DELETE FROM schema_version WHERE version = 135")
                    .unwrap();
            })
        };
        old(&old_rows("exämple.com"));
        let dir = tempfile::tempdir().unwrap();
        let s = crate::Store::open_postgres(&url, dir.path(), 2, Default::default()).unwrap();
        check_rewritten(&s);
        drop(s);
        old(&old_rows("EXÄMPLE.com")
            .replace("'x@", "'y@")
            .replace("'@EX", "'z@EX"));
        let e = pg::migrate_url(&url).unwrap_err();
        assert!(
            e.to_string().contains("would become 'xn--exmple-cua.com'"),
            "{e}"
        );
        let n: i64 = pg::blocking(|| {
            pg::connect(&url)
                .unwrap()
                .query_one(
                    "SELECT count(*) FROM accounts WHERE address = 'y@EXÄMPLE.com'",
                    &[],
                )
                .unwrap()
                .get(0)
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn collisions_refused() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            plan("domains", "name", &v(&["exämple.com", "other.org"])).unwrap(),
            vec![("exämple.com".to_string(), "xn--exmple-cua.com".to_string())]
        );
        assert!(plan(
            "domains",
            "name",
            &v(&["exämple.com", "xn--exmple-cua.com"])
        )
        .is_err());
        assert!(plan(
            "accounts",
            "address",
            &v(&["a@exämple.com", "a@EXÄMPLE.com"])
        )
        .is_err());
        // Targets repeat across aliases: no entry of their own.
        assert_eq!(
            plan(
                "aliases",
                "target",
                &v(&["a@exämple.com", "a@xn--exmple-cua.com"])
            )
            .unwrap()
            .len(),
            1
        );
    }
}

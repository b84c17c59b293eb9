//! Aliases and recipient resolution on PostgreSQL (the same rules as the embedded
//! store: `user+tag`, aliases followed recursively, the domain's catch-all).

use super::rows;
use crate::*;
use r2d2_postgres::postgres::GenericClient;
use std::collections::HashSet;

/// Alias chains are followed this deep.
const MAX_ALIAS_DEPTH: usize = 8;

pub(crate) fn alias_address(address: &str) -> Result<String> {
    let a = normalize_address(address);
    if let Some(domain) = a.strip_prefix('@') {
        return Ok(format!("@{}", validate_domain(domain)?));
    }
    let (l, d) = validate_address(&a)?;
    Ok(format!("{l}@{d}"))
}

pub(crate) fn targets(c: &mut impl GenericClient, address: &str) -> Result<Vec<String>> {
    Ok(c.query(
        "SELECT target FROM aliases WHERE address = $1 ORDER BY target",
        &[&address],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

pub(crate) fn list(
    c: &mut impl GenericClient,
    filter: Option<&str>,
) -> Result<Vec<(String, Vec<String>)>> {
    let rs = c.query(
        "SELECT address, target FROM aliases WHERE $1::TEXT IS NULL OR address = $1
         ORDER BY address COLLATE \"C\", target COLLATE \"C\"",
        &[&filter],
    )?;
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in rs {
        let (a, t): (String, String) = (r.get(0), r.get(1));
        match out.last_mut() {
            Some((la, lt)) if *la == a => lt.push(t),
            _ => out.push((a, vec![t])),
        }
    }
    if out.is_empty() {
        if let Some(f) = filter {
            return Err(Error::NotFound(format!("alias {f}")));
        }
    }
    Ok(out)
}

fn expand(
    c: &mut impl GenericClient,
    address: &str,
    depth: usize,
    seen: &mut HashSet<String>,
    out: &mut Vec<Account>,
    opts: &StoreOptions,
) -> Result<()> {
    if depth > MAX_ALIAS_DEPTH || !seen.insert(address.to_string()) {
        return Ok(());
    }
    if let Ok(a) = rows::account_by_address(c, address, opts) {
        if !out.iter().any(|r| r.id == a.id) {
            out.push(a);
        }
        return Ok(());
    }
    for t in targets(c, address)? {
        expand(c, &t, depth + 1, seen, out, opts)?;
    }
    Ok(())
}

pub(crate) fn resolve(
    c: &mut impl GenericClient,
    address: &str,
    opts: &StoreOptions,
) -> Result<Resolved> {
    let a = normalize_address(address);
    let Some((local, domain)) = a.rsplit_once('@') else {
        return Ok(Resolved::NotLocal);
    };
    if c.query_opt("SELECT 1 FROM domains WHERE name = $1", &[&domain])?
        .is_none()
    {
        return Ok(Resolved::NotLocal);
    }
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let mut candidates = vec![format!("{local}@{domain}")];
    if let Some((b, _)) = local.split_once('+') {
        candidates.push(format!("{b}@{domain}"));
    }
    for cand in candidates {
        expand(c, &cand, 0, &mut seen, &mut found, opts)?;
        if !found.is_empty() {
            return Ok(Resolved::Accounts(found));
        }
    }
    for t in targets(c, &format!("@{domain}"))? {
        expand(c, &t, 1, &mut seen, &mut found, opts)?;
    }
    Ok(if found.is_empty() {
        Resolved::NoSuchUser
    } else {
        Resolved::Accounts(found)
    })
}

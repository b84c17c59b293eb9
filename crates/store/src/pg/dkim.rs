//! DKIM signing keys (issue 12; RFC 6376, RFC 8463) on PostgreSQL (issue 17), with the
//! rules of `dkim.rs` (one active set per domain; activation retires the set active
//! before in the same transaction). Activation locks the domain's key rows (`FOR
//! UPDATE`) so that two nodes activating at once leave one active set, and every change
//! moves `dkim_version` (a statement trigger, migration 103).

use crate::dkim::{validate_selector, DkimAlgorithm, DkimKey, DkimState};
use crate::{validate_domain, Error, Result};
use postgres::GenericClient;

fn domain_id(c: &mut impl GenericClient, domain: &str) -> Result<i64> {
    Ok(c
        .query_opt("SELECT id FROM domains WHERE name = $1", &[&domain])?
        .ok_or_else(|| Error::NotFound(format!("domain {domain}")))?
        .get(0))
}

/// [`crate::Backend::add_dkim_keys`]: all or none.
pub(crate) fn add_keys(c: &mut impl GenericClient, keys: &[DkimKey]) -> Result<()> {
    let mut tx = c.transaction()?;
    for k in keys {
        let d = validate_domain(&k.domain)?;
        let sel = validate_selector(&k.selector)?;
        let id = domain_id(&mut tx, &d)?;
        let n = tx.execute(
            "INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key, public_key,
                                    created, state, changed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                &id,
                &sel,
                &k.algorithm.as_str(),
                &k.private_key,
                &k.public_key,
                &k.created,
                &k.state.as_str(),
                &k.changed,
            ],
        )?;
        if n == 0 {
            return Err(Error::Exists(format!("DKIM selector {sel} of {d}")));
        }
    }
    tx.commit()?;
    Ok(())
}

const SELECT_KEYS: &str = "SELECT d.name, k.selector, k.algorithm, k.private_key, k.public_key,
        k.created, k.state, k.changed
   FROM dkim_keys k JOIN domains d ON d.id = k.domain_id";

fn key_from_row(r: &postgres::Row) -> Result<DkimKey> {
    let alg: String = r.get(2);
    let state: String = r.get(6);
    Ok(DkimKey {
        domain: r.get(0),
        selector: r.get(1),
        algorithm: DkimAlgorithm::parse(&alg)
            .ok_or_else(|| Error::Invalid(format!("unknown DKIM algorithm {alg} in the store")))?,
        private_key: r.get(3),
        public_key: r.get(4),
        created: r.get(5),
        state: DkimState::parse(&state)
            .ok_or_else(|| Error::Invalid(format!("unknown DKIM state {state} in the store")))?,
        changed: r.get(7),
    })
}

pub(crate) fn keys(c: &mut impl GenericClient, domain: &str) -> Result<Vec<DkimKey>> {
    let d = validate_domain(domain)?;
    let id = domain_id(c, &d)?;
    c.query(
        &format!("{SELECT_KEYS} WHERE k.domain_id = $1 ORDER BY k.created, k.selector"),
        &[&id],
    )?
    .iter()
    .map(key_from_row)
    .collect()
}

pub(crate) fn active_keys(c: &mut impl GenericClient) -> Result<Vec<DkimKey>> {
    c.query(
        &format!("{SELECT_KEYS} WHERE k.state = 'active' ORDER BY d.name, k.created, k.selector"),
        &[],
    )?
    .iter()
    .map(key_from_row)
    .collect()
}

/// [`crate::Backend::activate_dkim_keys`]: returns the selectors retired.
pub(crate) fn activate(
    c: &mut impl GenericClient,
    domain: &str,
    selectors: &[String],
    now: i64,
) -> Result<Vec<String>> {
    let d = validate_domain(domain)?;
    if selectors.is_empty() {
        return Err(Error::Invalid("no DKIM selector to activate".into()));
    }
    let mut tx = c.transaction()?;
    let id = domain_id(&mut tx, &d)?;
    let states: Vec<(String, String)> = tx
        .query(
            "SELECT selector, state FROM dkim_keys WHERE domain_id = $1 ORDER BY selector FOR UPDATE",
            &[&id],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut wanted = Vec::new();
    for s in selectors {
        let sel = validate_selector(s)?;
        let state = states.iter().find(|(x, _)| *x == sel).map(|(_, st)| st.as_str());
        match state.and_then(DkimState::parse) {
            None => return Err(Error::NotFound(format!("DKIM selector {sel} of {d}"))),
            Some(DkimState::Retired) => {
                return Err(Error::Refused(format!(
                    "DKIM selector {sel} of {d} is retired; make a new pair with --rotate"
                )))
            }
            Some(_) => wanted.push(sel),
        }
    }
    let retired: Vec<String> = states
        .iter()
        .filter(|(sel, st)| st == "active" && !wanted.contains(sel))
        .map(|(sel, _)| sel.clone())
        .collect();
    tx.execute(
        "UPDATE dkim_keys SET state = 'retired', changed = $3
         WHERE domain_id = $1 AND selector = ANY($2)",
        &[&id, &retired, &now],
    )?;
    tx.execute(
        "UPDATE dkim_keys SET state = 'active', changed = $3
         WHERE domain_id = $1 AND selector = ANY($2) AND state <> 'active'",
        &[&id, &wanted, &now],
    )?;
    tx.commit()?;
    Ok(retired)
}

pub(crate) fn version(c: &mut impl GenericClient) -> Result<i64> {
    Ok(c
        .query_opt("SELECT value FROM dkim_version", &[])?
        .map(|r| r.get(0))
        .unwrap_or(0))
}

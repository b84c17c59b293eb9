//! `letterbox domain dkim DOMAIN [--rotate | --activate SELECTOR | --list]`: a domain's
//! DKIM keys (RFC 6376, RFC 8463), made and printed as the TXT records to publish.
//!
//! Rotation without a gap: `--rotate` makes a new pair in the `published` state (it
//! signs nothing yet), the operator publishes its records and waits until they are
//! visible, then `--activate` switches signing to it and retires the old pair, whose
//! records stay published a few days for the mail already signed with them. The
//! running server sees each change with its next message (`letterbox_dkim::Signer`).

use anyhow::{bail, Result};
use clap::Args;
use letterbox_dkim as dkim;
use letterbox_store::{DkimKey, DkimState, Store};
use std::io::{Read, Write};

/// DKIM keys: make them (Ed25519 and RSA-2048) and print their DNS records; rotate,
/// activate, list, sign.
#[derive(Args)]
pub struct DkimArgs {
    domain: String,
    /// Make a new pair, published but not yet signing (activate it once its records are
    /// visible in DNS).
    #[arg(long, conflicts_with_all = ["activate", "list"])]
    rotate: bool,
    /// Sign with this pair from now on (a selector of it, or their common stem) and
    /// retire the pair that signed before.
    #[arg(long, value_name = "SELECTOR", conflicts_with = "list")]
    activate: Option<String>,
    /// The domain's keys: selector, algorithm, state, created, last change.
    #[arg(long)]
    list: bool,
    /// Sign the message on standard input (its From must be of DOMAIN) as the server
    /// signs outgoing mail, and write it, signed, to standard output.
    #[arg(long, conflicts_with_all = ["rotate", "activate", "list"])]
    sign: bool,
}

fn print_records(out: &mut impl Write, keys: &[&DkimKey]) -> Result<()> {
    for k in keys {
        writeln!(
            out,
            "; {} ({}, {}, created {})",
            k.selector,
            k.algorithm.as_str(),
            k.state.as_str(),
            crate::admin::utc(k.created)
        )?;
        writeln!(
            out,
            "{}",
            dkim::zone_txt(&dkim::record_name(k), &dkim::record(k))
        )?;
    }
    Ok(())
}

pub fn run(store: &Store, args: &DkimArgs, out: &mut impl Write) -> Result<()> {
    let domain = letterbox_store::validate_domain(&args.domain)?;
    // NotFound ("domain x does not exist") for a domain that is not local.
    let keys = store.dkim_keys(&domain)?;
    let now = letterbox_store::now();
    if args.list {
        for k in &keys {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                k.selector,
                k.algorithm.as_str(),
                k.state.as_str(),
                crate::admin::utc(k.created),
                crate::admin::utc(k.changed)
            )?;
        }
        return Ok(());
    }
    if args.sign {
        let mut message = Vec::new();
        std::io::stdin().read_to_end(&mut message)?;
        let message = letterbox_message::to_crlf(&message);
        match dkim::from_domain(&message) {
            Some(d) if d == domain => {}
            Some(d) => bail!("the message's From domain is {d}, not {domain}"),
            None => bail!("the message has no From address"),
        }
        let Some(headers) = dkim::Signer::new(store.clone()).sign(&message)? else {
            bail!("{domain} has no active DKIM key (letterbox domain dkim {domain})");
        };
        out.write_all(&headers)?;
        out.write_all(&message)?;
        return Ok(());
    }
    if let Some(which) = &args.activate {
        let which = which.trim().to_ascii_lowercase();
        let stem = if keys.iter().any(|k| k.selector == which) {
            dkim::pair_stem(&which).to_string()
        } else {
            which.clone()
        };
        let pair: Vec<String> = keys
            .iter()
            .filter(|k| dkim::pair_stem(&k.selector) == stem)
            .map(|k| k.selector.clone())
            .collect();
        if pair.is_empty() {
            bail!("{domain} has no DKIM key with selector {which} (see --list)");
        }
        let retired = store.activate_dkim_keys(&domain, &pair)?;
        writeln!(
            out,
            "; {domain} is signed with {} from now on.",
            pair.join(" and ")
        )?;
        if !retired.is_empty() {
            writeln!(
                out,
                "; Retired: {}. Keep their records published a few days (mail signed with them \
                 may still be in queues or in transit), then remove them:",
                retired.join(", ")
            )?;
            for sel in &retired {
                writeln!(out, ";   {sel}._domainkey.{domain}. IN TXT")?;
            }
        }
        return Ok(());
    }
    let has_active = keys.iter().any(|k| k.state == DkimState::Active);
    if args.rotate || keys.is_empty() {
        // The first pair signs at once; a rotation's waits for --activate (a domain
        // without active keys has nothing to overlap with, so its new pair signs at once).
        let state = if has_active {
            DkimState::Published
        } else {
            DkimState::Active
        };
        let stem = dkim::next_stem(&keys, now);
        let pair = dkim::generate_pair(&domain, &stem, state, now)?;
        store.add_dkim_keys(pair.clone())?;
        writeln!(
            out,
            "; DKIM records of {domain}: publish these TXT records."
        )?;
        print_records(out, &pair.iter().collect::<Vec<_>>())?;
        if state == DkimState::Published {
            writeln!(
                out,
                "; Not signing with them yet. Once they are visible in DNS (wait at least \
                 the TTL of your zone), switch: letterbox domain dkim {domain} --activate {stem}"
            )?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "; DKIM records of {domain} (it has keys already; --rotate makes new ones)."
    )?;
    let shown: Vec<&DkimKey> = keys
        .iter()
        .filter(|k| k.state != DkimState::Retired)
        .collect();
    print_records(out, &shown)?;
    Ok(())
}

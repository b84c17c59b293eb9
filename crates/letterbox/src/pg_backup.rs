//! `letterbox backup DEST` and `letterbox restore SRC` with `[store] backend =
//! "postgres"` (issue 17). The work is the store's (`letterbox_store::pg`'s
//! `backup.rs`: one snapshot, the embedded backup format); this file only opens the
//! store, maps outcomes to exit codes and prints the summary (standard output).
//!
//! Exit codes (sysexits.h), as `letterbox migrate --to`'s: 0 done; 64 (EX_USAGE) a
//! wrong `[store] url` or no backup in SRC; 65 (EX_DATAERR) the restore target holds
//! other data; 75 (EX_TEMPFAIL) PostgreSQL or the object store unreachable (run again:
//! a backup starts afresh, a restore resumes); 1 anything else.

use anyhow::Result;
use letterbox_config::Config;
use letterbox_store::{Error, Store};
use std::path::Path;
use std::process::ExitCode;

const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_TEMPFAIL: u8 = 75;

fn fail(code: u8, msg: &str) -> Result<ExitCode> {
    eprintln!("letterbox: {msg}");
    Ok(ExitCode::from(code))
}

/// Opens the configured PostgreSQL store, or says why not with its exit code.
fn open(config: &Config) -> std::result::Result<Store, Result<ExitCode>> {
    let Some(url) = &config.store.url else {
        return Err(fail(EX_USAGE, "[store] backend = \"postgres\" needs [store] url"));
    };
    Store::open_postgres(
        url,
        &config.data_dir,
        config.store.pool_size,
        crate::admin::store_options(config),
    )
    .map_err(|e| match e {
        Error::Unavailable(e) => fail(EX_TEMPFAIL, &format!("PostgreSQL unreachable: {e}")),
        Error::Invalid(e) => fail(EX_USAGE, &e),
        e => fail(1, &format!("cannot open the PostgreSQL store: {e}")),
    })
}

/// `letterbox backup DEST` on PostgreSQL.
pub fn backup(config: &Config, dest: &Path) -> Result<ExitCode> {
    let store = match open(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let r = match store.backup(dest) {
        Ok(r) => r,
        Err(Error::Unavailable(e)) => {
            return fail(EX_TEMPFAIL, &format!("backup stopped: {e}; run it again"))
        }
        Err(e @ Error::Refused(_)) => return fail(EX_TEMPFAIL, &e.to_string()),
        Err(e) => return fail(1, &format!("backup failed: {e}")),
    };
    println!(
        "backup in {}: database {} bytes, {} blob files ({} copied now)",
        dest.display(),
        r.db_bytes,
        r.blob_files,
        r.copied
    );
    Ok(ExitCode::SUCCESS)
}

/// `letterbox restore SRC` on PostgreSQL: into an empty database, then verified as
/// `check --deep` does.
pub fn restore(config: &Config, src: &Path) -> Result<ExitCode> {
    if !src.join("store.db").is_file() {
        return fail(
            EX_USAGE,
            &format!("{} holds no backup (no store.db)", src.display()),
        );
    }
    let store = match open(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut progress = |line: &str| eprintln!("restore: {line}");
    let report = match letterbox_store::pg::restore_into(
        src,
        &*store,
        crate::admin::store_options(config),
        &mut progress,
    ) {
        Ok(r) => r,
        Err(Error::Refused(e)) => {
            return fail(
                EX_DATAERR,
                &format!("{e} (restore only into an empty PostgreSQL database)"),
            )
        }
        Err(Error::Unavailable(e)) => {
            return fail(EX_TEMPFAIL, &format!("{e}; run the same command again to resume"))
        }
        Err(Error::Invalid(e)) => return fail(EX_USAGE, &e),
        Err(e) => {
            return fail(
                1,
                &format!("restore stopped: {e}; run the same command again to resume"),
            )
        }
    };
    let problems = store.check(true)?;
    for p in &problems {
        eprintln!("letterbox: {p}");
    }
    if !problems.is_empty() {
        return fail(
            1,
            &format!("the restored store has {} problem(s)", problems.len()),
        );
    }
    println!(
        "restored {} into PostgreSQL: {} accounts, {} mailboxes, {} messages ({} octets){}; check --deep: ok",
        src.display(),
        report.accounts,
        report.mailboxes,
        report.copied,
        report.bytes,
        if report.resumed {
            format!(", {} already there (resumed)", report.skipped)
        } else {
            String::new()
        },
    );
    Ok(ExitCode::SUCCESS)
}

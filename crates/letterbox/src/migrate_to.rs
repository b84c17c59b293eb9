//! `letterbox migrate`: without arguments, applies the configured store's schema
//! (`admin::migrate_schema`); with `--to postgres://...`, moves the configured embedded
//! store (the data directory's SQLite database and blob files) into a PostgreSQL
//! cluster, large bodies into `--blobs s3://...` (issue 17). The work and its rules are
//! the store's (`letterbox_store::transfer`); this file only opens both stores, maps
//! outcomes to exit codes and prints progress (standard error) and the summary
//! (standard output).
//!
//! Exit codes (sysexits.h): 0 done; 64 (EX_USAGE) a wrong URL or no embedded store to
//! move; 65 (EX_DATAERR) the target holds other data; 75 (EX_TEMPFAIL) PostgreSQL or
//! the object store unreachable (run again: it resumes); 1 anything else.

use anyhow::Result;
use clap::Args;
use letterbox_config::{Config, StoreBackend};
use letterbox_store::{transfer, Error, Store};
use std::process::ExitCode;

#[derive(Args)]
pub struct MigrateArgs {
    /// Move the configured embedded store into this PostgreSQL database
    /// (postgres://USER@HOST:PORT/DB); resumable: run it again after an interruption.
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// With --to: the S3-compatible object store for large bodies
    /// (s3://BUCKET?endpoint=...; credentials from [blobs]); default: [blobs] url, else
    /// blob files under the data directory.
    #[arg(long, value_name = "URL")]
    blobs: Option<String>,
}

const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_TEMPFAIL: u8 = 75;

fn fail(code: u8, msg: &str) -> Result<ExitCode> {
    eprintln!("letterbox: {msg}");
    Ok(ExitCode::from(code))
}

pub fn run(config: &Config, args: MigrateArgs) -> Result<ExitCode> {
    let Some(to) = args.to else {
        if args.blobs.is_some() {
            return fail(EX_USAGE, "--blobs goes with --to");
        }
        return crate::admin::migrate_schema(config);
    };
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return fail(EX_USAGE, "--to takes a postgres://... URL");
    }
    if let Some(b) = &args.blobs {
        if !b.starts_with("s3://") {
            return fail(EX_USAGE, "--blobs takes an s3://BUCKET?endpoint=... URL");
        }
    }
    if config.store.backend == StoreBackend::Postgres {
        return fail(
            EX_USAGE,
            "the configured store is PostgreSQL already; --to moves an embedded store (run it with the embedded configuration)",
        );
    }
    if !config.data_dir.join("store.db").is_file() {
        return fail(
            EX_USAGE,
            &format!("{} holds no embedded store to move", config.data_dir.display()),
        );
    }
    let source = Store::open_embedded(&config.data_dir, crate::admin::store_options(config))?;
    let mut target_config = config.clone();
    if args.blobs.is_some() {
        target_config.blobs.url = args.blobs;
    }
    let target = match Store::open_postgres(
        &to,
        &config.data_dir,
        config.store.pool_size,
        crate::admin::store_options(&target_config),
    ) {
        Ok(t) => t,
        Err(Error::Unavailable(e)) => return fail(EX_TEMPFAIL, &format!("PostgreSQL unreachable: {e}")),
        Err(Error::Invalid(e)) => return fail(EX_USAGE, &e),
        Err(e) => return fail(1, &format!("cannot open the target: {e}")),
    };
    let name = std::fs::canonicalize(&config.data_dir)
        .unwrap_or_else(|_| config.data_dir.clone())
        .display()
        .to_string();
    let mut progress = |line: &str| eprintln!("migrate: {line}");
    let report = match transfer::transfer(&*source, &*target, &name, &mut progress) {
        Ok(r) => r,
        Err(Error::Refused(e)) => return fail(EX_DATAERR, &e),
        Err(Error::Unavailable(e)) => {
            return fail(EX_TEMPFAIL, &format!("{e}; run the same command again to resume"))
        }
        Err(e) => return fail(1, &format!("migration stopped: {e}; run the same command again to resume")),
    };
    let problems = target.check(false)?;
    for p in &problems {
        eprintln!("letterbox: target: {p}");
    }
    println!(
        "{} {} accounts, {} mailboxes: {} messages copied ({} octets), {} already there; {} queue entries",
        if report.resumed { "resumed:" } else { "migrated:" },
        report.accounts,
        report.mailboxes,
        report.copied,
        report.bytes,
        report.skipped,
        report.queued,
    );
    if !problems.is_empty() {
        return fail(1, "the target does not pass `check`");
    }
    Ok(ExitCode::SUCCESS)
}

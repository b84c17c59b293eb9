//! `letterbox sieve list|get|put|activate|deactivate|remove ADDRESS [NAME]`: an account's
//! Sieve scripts (issue 13), the same ones ManageSieve manages. `put` reads the script
//! from standard input and refuses one that does not compile, with its line and column.

use anyhow::{bail, Result};
use clap::Subcommand;
use letterbox_config::Config;
use letterbox_store::Store;
use std::io::{Read, Write};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum SieveCmd {
    /// The account's scripts: name, size in octets, and `active` for the active one.
    List { address: String },
    /// Print a script.
    Get { address: String, name: String },
    /// Store a script read from standard input (replacing one of that name).
    Put {
        address: String,
        name: String,
        /// Also make it the active script.
        #[arg(long)]
        activate: bool,
    },
    /// Make a script the active one (the one run at delivery).
    Activate { address: String, name: String },
    /// Run no script for the account.
    Deactivate { address: String },
    /// Remove a script (the active one is deactivated first).
    Remove { address: String, name: String },
}

pub fn run(store: &Store, config: &Config, cmd: SieveCmd) -> Result<ExitCode> {
    let out = &mut std::io::stdout().lock();
    match cmd {
        SieveCmd::List { address } => {
            let a = store.account(&address)?;
            for s in store.sieve_list(a.id)? {
                let name = s.name.escape_debug();
                if s.active {
                    writeln!(out, "{name}\t{}\tactive", s.size)?;
                } else {
                    writeln!(out, "{name}\t{}", s.size)?;
                }
            }
        }
        SieveCmd::Get { address, name } => {
            let a = store.account(&address)?;
            out.write_all(&store.sieve_get(a.id, &name)?)?;
        }
        SieveCmd::Put {
            address,
            name,
            activate,
        } => {
            let a = store.account(&address)?;
            let max = config.filter.sieve_max_script_size.0;
            let mut script = Vec::new();
            std::io::stdin().take(max + 1).read_to_end(&mut script)?;
            let engine = letterbox_filter::sieve::Engine::new(&config.filter, &config.hostname);
            if let Err(e) = engine.check(&script) {
                bail!("script '{name}' refused: {e}");
            }
            store.sieve_put(a.id, &name, script, Some(config.filter.sieve_max_scripts))?;
            if activate {
                store.sieve_activate(a.id, Some(&name))?;
            }
        }
        SieveCmd::Activate { address, name } => {
            let a = store.account(&address)?;
            store.sieve_activate(a.id, Some(&name))?;
        }
        SieveCmd::Deactivate { address } => {
            let a = store.account(&address)?;
            store.sieve_activate(a.id, None)?;
        }
        SieveCmd::Remove { address, name } => {
            let a = store.account(&address)?;
            if store.sieve_list(a.id)?.iter().any(|s| s.name == name && s.active) {
                store.sieve_activate(a.id, None)?;
            }
            store.sieve_delete(a.id, &name)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

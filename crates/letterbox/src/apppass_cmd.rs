//! `letterbox user app-password add|list|remove`: application passwords (issue 14, see
//! `letterbox_store::apppass`). `add` prints the generated password once; it is stored
//! only as a hash.

use anyhow::Result;
use clap::Subcommand;
use letterbox_store::{Protocols, Store};
use std::io::Write;

#[derive(Subcommand)]
pub enum AppPasswordCmd {
    /// Create an application password and print it (once).
    Add {
        address: String,
        name: String,
        /// What it may be used for: a comma-separated list of imap, pop3, smtp.
        #[arg(long, value_name = "LIST")]
        protocols: String,
    },
    /// Name, protocols, created, last used.
    List { address: String },
    /// Revoke it: it stops working at once.
    Remove { address: String, name: String },
}

pub fn run(store: &Store, cmd: AppPasswordCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        AppPasswordCmd::Add {
            address,
            name,
            protocols,
        } => {
            let protocols = Protocols::parse_list(&protocols)?;
            let password = store.add_app_password(&address, &name, protocols)?;
            writeln!(out, "{password}")?;
        }
        AppPasswordCmd::List { address } => {
            for p in store.list_app_passwords(&address)? {
                let name = letterbox_proto::auth::loggable(&p.name);
                let used = p.last_used.map_or("never".into(), crate::admin::utc);
                writeln!(
                    out,
                    "{name}\t{}\t{}\t{used}",
                    p.protocols.names().join(","),
                    crate::admin::utc(p.created)
                )?;
            }
        }
        AppPasswordCmd::Remove { address, name } => store.remove_app_password(&address, &name)?,
    }
    Ok(())
}

//! `letterbox admin token add|list|remove`: API tokens for scripts (issue 14, see
//! `letterbox_store::apitokens`). A token carries operator rights on the portal's
//! `/api/` (`Authorization: Bearer TOKEN`); `add` prints it once, the store keeps a hash.

use anyhow::Result;
use clap::Subcommand;
use letterbox_store::Store;
use std::io::Write;

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it (once).
    Add { name: String },
    /// Name, created, last used.
    List,
    /// Revoke a token: refused at once.
    Remove { name: String },
}

pub fn run(store: &Store, cmd: TokenCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        TokenCmd::Add { name } => writeln!(out, "{}", store.add_api_token(&name)?)?,
        TokenCmd::List => {
            for t in store.list_api_tokens()? {
                let used = t.last_used.map_or("never".into(), crate::admin::utc);
                let name = letterbox_proto::auth::loggable(&t.name);
                writeln!(out, "{name}\t{}\t{used}", crate::admin::utc(t.created))?;
            }
        }
        TokenCmd::Remove { name } => store.remove_api_token(&name)?,
    }
    Ok(())
}

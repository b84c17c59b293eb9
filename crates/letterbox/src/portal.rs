//! The portal's command-line side: `letterbox admin add|remove|list` (operators and
//! domain admins) and `letterbox quota requests|approve|deny` (the quota request queue,
//! the same decisions as the portal's, through `letterbox_web::api::requests`).

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use letterbox_config::{ByteSize, Config};
use letterbox_store::web::{Decision, RequestStatus};
use letterbox_store::Store;
use std::io::Write;

#[derive(Subcommand)]
pub enum AdminCmd {
    /// Make an account an operator (every domain), or with --domain a domain admin.
    Add {
        address: String,
        /// Limit the account to this domain (repeat the command for more domains).
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
    },
    /// Take operator rights away (one domain's with --domain, else all).
    Remove {
        address: String,
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
    },
    /// Operators and domain admins: ADDRESS<TAB>all|DOMAIN.
    List,
    /// API tokens for scripts (operator rights on /api/, `Authorization: Bearer`).
    #[command(subcommand)]
    Token(crate::token_cmd::TokenCmd),
}

pub fn admin(cmd: AdminCmd, store: &Store, out: &mut dyn Write) -> Result<()> {
    let web = store.web();
    match cmd {
        AdminCmd::Add { address, domain } => web.admin_add(&address, domain.as_deref())?,
        AdminCmd::Remove { address, domain } => {
            web.admin_remove(&address, domain.as_deref())?;
        }
        AdminCmd::List => {
            for g in web.admin_list()? {
                writeln!(
                    out,
                    "{}\t{}",
                    g.address,
                    g.domain.as_deref().unwrap_or("all")
                )?;
            }
        }
        AdminCmd::Token(c) => crate::token_cmd::run(store, c, out)?,
    }
    Ok(())
}

/// Who decides from the command line, for the audit trail: `cli:USER`.
fn cli_user() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `quota requests [--all]`: ID, address, size asked, status, created, reason (and the
/// decision: by whom, when, size granted or the denial's reason).
pub fn requests(store: &Store, all: bool, out: &mut dyn Write) -> Result<()> {
    for r in store.web().quota_requests(all)? {
        let mut line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            r.id,
            r.address,
            ByteSize(r.size),
            r.status.as_str(),
            crate::admin::utc(r.created),
            r.reason.replace(['\t', '\n', '\r'], " ")
        );
        if r.status != RequestStatus::Pending {
            line.push_str(&format!(
                "\t{} {}",
                r.decided_by.as_deref().unwrap_or("?"),
                r.decided_at.map(crate::admin::utc).unwrap_or_default()
            ));
            if let Some(g) = r.granted_size {
                line.push_str(&format!("\tgranted {}", ByteSize(g)));
            }
            if let Some(n) = &r.note {
                line.push_str(&format!("\t{}", n.replace(['\t', '\n', '\r'], " ")));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `quota approve ID [SIZE]`.
pub fn approve(
    store: &Store,
    config: &Config,
    id: i64,
    size: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    let size = match size {
        Some(s) => s.parse::<ByteSize>().map_err(|e| anyhow!(e))?.0,
        None => store.web().quota_request(id)?.size,
    };
    decide(store, config, id, Decision::Approve(size), out)
}

/// `quota deny ID REASON`.
pub fn deny(
    store: &Store,
    config: &Config,
    id: i64,
    reason: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let reason = reason.join(" ");
    if reason.trim().is_empty() {
        bail!("give the user a reason for the denial");
    }
    decide(store, config, id, Decision::Deny(reason), out)
}

fn decide(store: &Store, config: &Config, id: i64, d: Decision, out: &mut dyn Write) -> Result<()> {
    let r = runtime()?
        .block_on(letterbox_web::api::requests::decide(
            store,
            config,
            id,
            &cli_user(),
            d,
        ))
        .map_err(|e| anyhow!(e.message))?;
    match r.granted_size {
        Some(g) => writeln!(
            out,
            "request #{} of {} approved: quota {}",
            r.id,
            r.address,
            ByteSize(g)
        )?,
        None => writeln!(out, "request #{} of {} denied", r.id, r.address)?,
    }
    Ok(())
}

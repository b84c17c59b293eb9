//! Moving mail in and out of Letterbox (issue 16), one file per format:
//! - [`maildir`]: a Dovecot Maildir home imported with its identities kept (UIDVALIDITY,
//!   UIDs, UIDNEXT, flags, keywords, internal dates, subscriptions, POP3 UIDLs), so that
//!   IMAP and POP3 clients download nothing again after the move.
//! - [`mbox`]: mboxrd files in and out, flags in `Status:`/`X-Status:`/`X-Keywords:`.
//! - [`imap`]: any IMAP server's account pulled over the protocol, UIDVALIDITY and UIDs
//!   kept (they are visible over IMAP), flags, keywords, dates, folders, subscriptions.
//! - [`export`]: an account out to a Maildir++ home or mbox files, streamed.
//!
//! Importers only call the store ([`letterbox_store::Backend`]'s import API,
//! `crates/store/src/import.rs`): the UID, MODSEQ and quota rules live there. Every
//! importer is restartable (each message is stored once per source key), reports
//! progress and a summary, and reports and skips what it cannot read instead of
//! stopping.

pub mod dovecot_modseq;
pub mod export;
pub mod imap;
pub mod maildir;
pub mod mbox;

use std::fmt;

/// Errors that stop an import (a broken message only gets skipped).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] letterbox_store::Error),
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    /// `import imap`: the source could not be reached (connection, TLS).
    #[error("{0}")]
    Connect(String),
    /// `import imap`: the source refused the login.
    #[error("{0}")]
    Auth(String),
    /// `import imap`: the source broke the session (closed, timed out, misbehaved).
    #[error("{0}")]
    Remote(String),
    /// `import imap`: a command answered `NO` or `BAD` (status, text).
    #[error("{status} {text}")]
    Rejected { status: String, text: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &std::path::Path, err: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        err,
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Folders read from the source.
    pub folders: u64,
    /// Messages stored by this run.
    pub messages: u64,
    /// Octets of the messages stored by this run (as stored: CRLF line ends).
    pub bytes: u64,
    /// Messages an earlier run had stored already.
    pub already: u64,
    /// Messages stored with a new UID (no UID in the source, or a merge into a mailbox
    /// with mail under another UIDVALIDITY): clients download these again.
    pub new_uids: u64,
    /// What was skipped, and why.
    pub skipped: Vec<(String, String)>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} folders, {} messages imported ({} bytes), {} already imported, {} with new UIDs, {} skipped",
            self.folders,
            self.messages,
            self.bytes,
            self.already,
            self.new_uids,
            self.skipped.len()
        )?;
        for (what, why) in &self.skipped {
            write!(f, "\nskipped {what}: {why}")?;
        }
        Ok(())
    }
}

/// Where progress lines go (the CLI prints them to standard error).
pub type Progress<'a> = &'a mut dyn FnMut(&str);

/// Bare LF line ends made CRLF (as stored mail has, and as Dovecot serves Maildir files
/// written with LF); CRLF already there is kept.
pub fn to_crlf(data: &[u8]) -> Vec<u8> {
    let extra = data.iter().filter(|&&b| b == b'\n').count();
    let mut out = Vec::with_capacity(data.len() + extra);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// The special-use attribute that a folder's well-known name implies (as mail clients
/// and Dovecot's example configuration name them).
pub fn special_use_of(name: &str) -> Option<letterbox_store::SpecialUse> {
    use letterbox_store::SpecialUse::*;
    Some(match name.to_ascii_lowercase().as_str() {
        "sent" | "sent messages" | "sent items" | "sent mail" => Sent,
        "drafts" | "draft" => Drafts,
        "trash" | "deleted messages" | "deleted items" | "deleted" => Trash,
        "junk" | "spam" | "junk e-mail" | "junk email" => Junk,
        "archive" | "archives" => Archive,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf() {
        assert_eq!(to_crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc");
        assert_eq!(to_crlf(b""), b"");
    }
}

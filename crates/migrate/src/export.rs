//! `letterbox export ADDRESS --format maildir|mbox DEST`: an account's mail in a form
//! other programs read, the folder tree kept, each message streamed from the store to
//! its file (never a whole message list's octets in memory).
//!
//! - `maildir`: a Dovecot-style Maildir++ home (INBOX in `DEST/cur`, folders as
//!   `.A.B`, names in modified UTF-7, RFC 3501 5.1.3), flags in the file names,
//!   keywords in `dovecot-keywords` (the first 26 of a folder; more are left out, as
//!   Maildir cannot say them), the internal date as mtime, and a `dovecot-uidlist`
//!   with the UIDVALIDITY, UIDNEXT and UIDs, so that Dovecot (or `letterbox import
//!   maildir`) serves the same UIDs; `subscriptions` as Dovecot 2.3 writes it.
//! - `mbox`: one mboxrd file per folder (`mbox.rs`), `DEST/INBOX.mbox`,
//!   `DEST/Lists/rust.mbox`.
//!
//! The store's octets are written as they are (CRLF) into Maildir files; mbox files get
//! LF line ends, as mbox readers expect.

use crate::{io_err, Result};
use letterbox_store::{Account, Backend, Flags, DELIMITER};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Maildir,
    Mbox,
}

/// What an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub folders: u64,
    pub messages: u64,
    pub bytes: u64,
}

/// A name level safe as a path component.
fn safe_level(l: &str) -> String {
    if l == "." || l == ".." {
        return "_".repeat(l.len());
    }
    l.replace(['/', '\0'], "_")
}

fn create_file(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| io_err(p, e))?;
    }
    let f = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    Ok(std::io::BufWriter::with_capacity(64 * 1024, f))
}

pub fn export(
    store: &dyn Backend,
    account: &Account,
    format: Format,
    dest: &Path,
    progress: crate::Progress,
) -> Result<ExportSummary> {
    std::fs::create_dir_all(dest).map_err(|e| io_err(dest, e))?;
    let mut summary = ExportSummary::default();
    let mailboxes = store.list_mailboxes(account.id)?;
    for mb in &mailboxes {
        let metas = store.list_messages(mb.id, false)?;
        progress(&format!("{}: {} messages", mb.name, metas.len()));
        summary.folders += 1;
        match format {
            Format::Mbox => {
                let rel: PathBuf = mb.name.split(DELIMITER).map(safe_level).collect();
                let path = dest.join(format!("{}.mbox", rel.display()));
                let mut out = create_file(&path)?;
                for m in &metas {
                    let mut r = match store.open_message(mb.id, m.uid) {
                        Ok(r) => r,
                        Err(letterbox_store::Error::NotFound(_)) => continue, // expunged meanwhile
                        Err(e) => return Err(e.into()),
                    };
                    crate::mbox::write_message(
                        &mut out,
                        &mut r,
                        m.internal_date,
                        m.flags,
                        &m.keywords,
                    )
                    .map_err(|e| io_err(&path, e))?;
                    summary.messages += 1;
                    summary.bytes += m.size;
                }
                out.flush().map_err(|e| io_err(&path, e))?;
            }
            Format::Maildir => {
                let dir = if mb.name == "INBOX" {
                    dest.to_path_buf()
                } else {
                    let levels: Vec<String> = mb
                        .name
                        .split(DELIMITER)
                        .map(|l| safe_level(&letterbox_imap::utf7::encode(l)).replace('.', "_"))
                        .collect();
                    dest.join(format!(".{}", levels.join(".")))
                };
                for sub in ["cur", "new", "tmp"] {
                    let d = dir.join(sub);
                    std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
                }
                let mut kw_index: HashMap<String, u8> = HashMap::new();
                let mut uidlist = format!("3 V{} N{}\n", mb.uidvalidity, mb.uidnext);
                for m in &metas {
                    let mut info = String::new();
                    for (f, c) in [
                        (Flags::DRAFT, 'D'),
                        (Flags::FLAGGED, 'F'),
                        (Flags::ANSWERED, 'R'),
                        (Flags::SEEN, 'S'),
                        (Flags::DELETED, 'T'),
                    ] {
                        if m.flags.contains(f) {
                            info.push(c);
                        }
                    }
                    let mut letters = Vec::new();
                    for k in &m.keywords {
                        let next = kw_index.len() as u8;
                        let i = *kw_index.entry(k.clone()).or_insert(next);
                        if i < 26 {
                            letters.push((b'a' + i) as char);
                        }
                    }
                    letters.sort();
                    info.extend(letters);
                    let base = format!(
                        "{}.M{}U{}.letterbox,S={}",
                        m.internal_date, m.uid, mb.uidvalidity, m.size
                    );
                    let name = format!("{base}:2,{info}");
                    let path = dir.join("cur").join(&name);
                    let mut r = match store.open_message(mb.id, m.uid) {
                        Ok(r) => r,
                        Err(letterbox_store::Error::NotFound(_)) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    let mut out = create_file(&path)?;
                    std::io::copy(&mut r, &mut out).map_err(|e| io_err(&path, e))?;
                    let f = out
                        .into_inner()
                        .map_err(|e| io_err(&path, e.into_error()))?;
                    let t = std::time::UNIX_EPOCH
                        + std::time::Duration::from_secs(m.internal_date.max(0) as u64);
                    let _ = f.set_modified(t);
                    uidlist.push_str(&format!("{} :{name}\n", m.uid));
                    summary.messages += 1;
                    summary.bytes += m.size;
                }
                std::fs::write(dir.join("dovecot-uidlist"), uidlist)
                    .map_err(|e| io_err(&dir, e))?;
                let mut kws: Vec<(u8, String)> =
                    kw_index.into_iter().map(|(k, i)| (i, k)).collect();
                kws.sort();
                let text: String = kws
                    .iter()
                    .filter(|(i, _)| *i < 26)
                    .map(|(i, k)| format!("{i} {k}\n"))
                    .collect();
                if !text.is_empty() {
                    std::fs::write(dir.join("dovecot-keywords"), text)
                        .map_err(|e| io_err(&dir, e))?;
                }
            }
        }
    }
    if format == Format::Maildir {
        let subs = store.subscriptions(account.id)?;
        let mut text = String::from("V\t2\n\n");
        for s in subs {
            text.push_str(&s.replace(DELIMITER, "\t"));
            text.push('\n');
        }
        std::fs::write(dest.join("subscriptions"), text).map_err(|e| io_err(dest, e))?;
    }
    Ok(summary)
}

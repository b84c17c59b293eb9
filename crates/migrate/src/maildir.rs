//! `letterbox import maildir`: a Dovecot Maildir home with its identities kept.
//!
//! Formats read (Dovecot 2.3 as Debian ships it; the Maildir format is D. J. Bernstein's,
//! https://cr.yp.to/proto/maildir.html, the `Maildir++` folder layout Sam Varshavchik's):
//! - Folders: the home itself is INBOX; `Maildir++` folders are `.A.B` directories
//!   (hierarchy `.`, names in IMAP modified UTF-7, RFC 3501 5.1.3), or with
//!   [`Layout::Fs`] (Dovecot's `LAYOUT=fs`) nested directories `A/B`.
//! - Messages: files in `cur/` and `new/`; the info after `:2,` gives the flags
//!   (`S` \Seen, `R` \Answered, `F` \Flagged, `T` \Deleted, `D` \Draft) and the keywords
//!   (`a`..`z`, the index of a line of the folder's `dovecot-keywords`).
//! - `dovecot-uidlist` (Dovecot's "Maildir: dovecot-uidlist" documentation): header
//!   `3 V<uidvalidity> N<uidnext> ...` (version 3; version 1 is `1 <uidvalidity>
//!   <uidnext>`), then one line per message: `<uid> [<field>...] :<file name>`, with the
//!   fields `P<uidl>` (the POP3 UIDL recorded for it), `W<vsize>`, `S<size>`, `G<guid>`.
//! - The internal date is the file's mtime, as Dovecot's Maildir takes it.
//! - `subscriptions`: one name a line; Dovecot 2.3's version 2 file (`V\t2` then a blank
//!   line) separates hierarchy levels with a tab.
//!
//! POP3 UIDLs: Dovecot serves the `P` field when the uidlist records one, otherwise
//! `pop3_uidl_format` expanded (default `%08Xu%08Xv`: UID then UIDVALIDITY in hex,
//! which Dovecot prints in lower case); the same is stored for each INBOX message so that POP3 UIDL answers as before.
//!
//! Identities: a folder keeps its UIDVALIDITY and UIDNEXT and each message its UID
//! (RFC 9051 2.3.1.1), so an IMAP client's cache stays valid. A message that is in no
//! uidlist (still in `new/`, never seen by Dovecot) gets the next UID, as Dovecot would
//! give it. Folders with a well-known special-use name (`Sent Messages`, `Spam`...) go
//! into the account's special-use folder (`Sent`, `Junk`...).
//!
//! MODSEQs: the folder's HIGHESTMODSEQ is bounded from its `dovecot.index.log` files
//! ([`crate::dovecot_modseq`]) and the mailbox's raised above it before any message
//! goes in, so a CONDSTORE/QRESYNC client resuming with what it cached from Dovecot
//! gets every message's flags again and misses no later change (RFC 7162 3.2.5).
//!
//! Restart: each message is keyed by folder, UIDVALIDITY and UID (or its file name when it
//! has no UID), so a rerun stores what an interrupted run did not, and nothing twice.

use crate::{io_err, special_use_of, to_crlf, Error, Progress, Result, Summary};
use letterbox_store::{Account, Backend, Flags, ImportMessage, Imported, NewMessage, DELIMITER};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How folders are laid out under the home.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// `.A.B` directories (Dovecot's default for Maildir).
    #[default]
    MaildirPlusPlus,
    /// `A/B` directories (`LAYOUT=fs`).
    Fs,
}

/// Options of `letterbox import maildir`.
#[derive(Debug, Clone)]
pub struct Options {
    pub merge: bool,
    pub layout: Layout,
    /// Dovecot's `pop3_uidl_format` of the source server.
    pub pop3_uidl_format: String,
    /// `[limits]`-style cap on one message's size; larger files are skipped.
    pub max_message_size: u64,
    /// `[import] threads`: messages stored at once (they share the commits' fsyncs).
    pub threads: usize,
}

/// Dovecot's default `pop3_uidl_format`.
pub const DEFAULT_POP3_UIDL_FORMAT: &str = "%08Xu%08Xv";

/// Progress is reported every this many messages within a folder.
const PROGRESS_EVERY: u64 = 1000;

/// One source folder.
struct Folder {
    /// The name in the source, `/`-separated, decoded.
    source_name: String,
    path: PathBuf,
}

/// One line of `dovecot-uidlist`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct UidEntry {
    uid: u32,
    pop3_uidl: Option<String>,
}

#[derive(Debug, Default)]
struct UidList {
    uidvalidity: u32,
    uidnext: u32,
    /// By base file name (up to the `:`).
    entries: HashMap<String, UidEntry>,
}

/// Imports the Maildir home `dir` into `account`.
pub fn import(
    store: &dyn Backend,
    account: &Account,
    dir: &Path,
    opts: &Options,
    progress: Progress,
) -> Result<Summary> {
    check_uidl_format(&opts.pop3_uidl_format)?;
    let home = dir.canonicalize().map_err(|e| io_err(dir, e))?;
    if !home.join("cur").is_dir() && !home.join("new").is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a Maildir (no cur/ or new/)",
            home.display()
        )));
    }
    let source = format!("maildir:{}", home.display());
    let start = store.import_begin(account.id, &source, opts.merge)?;
    progress(&format!(
        "importing {} into {} ({start:?})",
        home.display(),
        account.address
    ));
    let folders = list_folders(&home, opts.layout)?;
    let mailboxes = store.list_mailboxes(account.id)?;
    let mut summary = Summary::default();
    let mut names: HashMap<String, String> = HashMap::new();
    for folder in &folders {
        let target = target_name(&folder.source_name, &mailboxes);
        names.insert(folder.source_name.clone(), target.clone());
        if let Err(e) = import_folder(
            store,
            account,
            folder,
            &target,
            opts,
            &mut summary,
            progress,
        ) {
            // A folder that cannot be made (a name the store refuses) is skipped whole.
            progress(&format!("{}: skipped: {e}", folder.source_name));
            summary
                .skipped
                .push((format!("folder {}", folder.source_name), e.to_string()));
        }
    }
    let replace = start != letterbox_store::ImportStart::Merge;
    import_subscriptions(store, account, &home, &names, replace, &mut summary)?;
    store.import_finish(account.id, &source)?;
    Ok(summary)
}

/// The store name for a source folder: the account's special-use folder for a
/// well-known name, otherwise the same name.
pub(crate) fn target_name(source: &str, mailboxes: &[letterbox_store::Mailbox]) -> String {
    if source.eq_ignore_ascii_case("INBOX") {
        return "INBOX".into();
    }
    if mailboxes.iter().any(|m| m.name == source) {
        return source.to_string();
    }
    if let Some(su) = special_use_of(source) {
        if let Some(m) = mailboxes.iter().find(|m| m.special_use == Some(su)) {
            return m.name.clone();
        }
    }
    source.to_string()
}

fn list_folders(home: &Path, layout: Layout) -> Result<Vec<Folder>> {
    let mut out = vec![Folder {
        source_name: "INBOX".into(),
        path: home.to_path_buf(),
    }];
    match layout {
        Layout::MaildirPlusPlus => {
            let mut dirs = Vec::new();
            for e in std::fs::read_dir(home).map_err(|e| io_err(home, e))? {
                let e = e.map_err(|e| io_err(home, e))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(raw) = name.strip_prefix('.') else {
                    continue;
                };
                if raw.is_empty() || raw == "." || !e.path().is_dir() {
                    continue;
                }
                if !e.path().join("cur").is_dir() && !e.path().join("new").is_dir() {
                    continue;
                }
                let decoded: Vec<String> = raw
                    .split('.')
                    .map(|l| {
                        letterbox_imap::utf7::decode(l.as_bytes()).unwrap_or_else(|| l.to_string())
                    })
                    .collect();
                dirs.push(Folder {
                    source_name: decoded.join(&DELIMITER.to_string()),
                    path: e.path(),
                });
            }
            dirs.sort_by(|a, b| a.source_name.cmp(&b.source_name));
            out.extend(dirs);
        }
        Layout::Fs => {
            let mut dirs = Vec::new();
            walk_fs(home, &mut Vec::new(), &mut dirs)?;
            dirs.sort_by(|a, b| a.source_name.cmp(&b.source_name));
            out.extend(dirs);
        }
    }
    Ok(out)
}

/// Directories below `dir` that are folders (`LAYOUT=fs`), depth first.
fn walk_fs(dir: &Path, prefix: &mut Vec<String>, out: &mut Vec<Folder>) -> Result<()> {
    const MAX_DEPTH: usize = 32;
    if prefix.len() >= MAX_DEPTH {
        return Ok(());
    }
    for e in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let e = e.map_err(|e| io_err(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if matches!(name.as_str(), "cur" | "new" | "tmp") || name.starts_with('.') {
            continue;
        }
        let path = e.path();
        if !path.is_dir() {
            continue;
        }
        let level = letterbox_imap::utf7::decode(name.as_bytes()).unwrap_or(name);
        prefix.push(level);
        if path.join("cur").is_dir() || path.join("new").is_dir() {
            out.push(Folder {
                source_name: prefix.join(&DELIMITER.to_string()),
                path: path.clone(),
            });
        }
        walk_fs(&path, prefix, out)?;
        prefix.pop();
    }
    Ok(())
}

fn parse_uidlist(text: &str) -> UidList {
    let mut list = UidList::default();
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return list;
    };
    let mut h = header.split(' ');
    let version = h.next().unwrap_or("");
    if version == "1" {
        list.uidvalidity = h.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        list.uidnext = h.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    } else {
        for f in h {
            if let Some(v) = f.strip_prefix('V') {
                list.uidvalidity = v.parse().unwrap_or(0);
            } else if let Some(n) = f.strip_prefix('N') {
                list.uidnext = n.parse().unwrap_or(0);
            }
        }
    }
    for line in lines {
        let mut parts = line.splitn(2, ' ');
        let Some(uid) = parts.next().and_then(|u| u.parse::<u32>().ok()) else {
            continue;
        };
        if uid == 0 {
            continue;
        }
        let rest = parts.next().unwrap_or("");
        let mut entry = UidEntry {
            uid,
            pop3_uidl: None,
        };
        let file = if version == "1" {
            Some(rest.trim())
        } else {
            // Fields, then `:` and the file name (which may itself hold `:2,...`).
            let mut file = None;
            let mut pos = 0;
            for tok in rest.split(' ') {
                if let Some(f) = tok.strip_prefix(':') {
                    let start = pos + 1;
                    file = Some(rest.get(start..).unwrap_or(f));
                    break;
                }
                if let Some(u) = tok.strip_prefix('P') {
                    if !u.is_empty() {
                        entry.pop3_uidl = Some(u.to_string());
                    }
                }
                pos += tok.len() + 1;
            }
            file
        };
        if let Some(f) = file.filter(|f| !f.is_empty()) {
            list.entries.insert(base_name(f).to_string(), entry);
        }
    }
    list
}

/// A Maildir file name without its info (`:2,...`).
fn base_name(file: &str) -> &str {
    file.split(':').next().unwrap_or(file)
}

/// Flags and keyword letters of a file name's info.
fn parse_info(file: &str, keywords: &HashMap<u8, String>) -> (Flags, Vec<String>) {
    let mut flags = Flags::default();
    let mut kw = Vec::new();
    if let Some((_, info)) = file.split_once(":2,") {
        for c in info.bytes() {
            match c {
                b'S' => flags = flags.union(Flags::SEEN),
                b'R' => flags = flags.union(Flags::ANSWERED),
                b'F' => flags = flags.union(Flags::FLAGGED),
                b'T' => flags = flags.union(Flags::DELETED),
                b'D' => flags = flags.union(Flags::DRAFT),
                b'a'..=b'z' => {
                    if let Some(k) = keywords.get(&(c - b'a')) {
                        kw.push(k.clone());
                    }
                }
                _ => {}
            }
        }
    }
    (flags, kw)
}

fn parse_keywords(text: &str) -> HashMap<u8, String> {
    text.lines()
        .filter_map(|l| {
            let (i, name) = l.split_once(' ')?;
            let i: u8 = i.parse().ok()?;
            (i < 26 && !name.is_empty()).then(|| (i, name.to_string()))
        })
        .collect()
}

/// Checks that a `pop3_uidl_format` uses only what this importer can expand.
fn check_uidl_format(fmt: &str) -> Result<()> {
    expand_uidl(fmt, 1, 1, "x").map(|_| ())
}

/// Expands Dovecot's `pop3_uidl_format`: `%u` UID, `%v` UIDVALIDITY, `%g` GUID (the
/// Maildir base name), `%%`; each with an optional `0`, width and `X`/`x` (hex), as
/// Dovecot's `var_expand` reads `%08Xu`.
pub(crate) fn expand_uidl(fmt: &str, uid: u32, uidvalidity: u32, guid: &str) -> Result<String> {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut zero = false;
        let mut width = 0usize;
        let mut hex = None;
        if chars.peek() == Some(&'0') {
            zero = true;
            chars.next();
        }
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = width * 10 + d as usize;
            chars.next();
            if width > 64 {
                return Err(Error::Invalid("pop3_uidl_format: width too large".into()));
            }
        }
        if let Some(&x) = chars.peek() {
            if x == 'X' || x == 'x' {
                hex = Some(x == 'X');
                chars.next();
            }
        }
        let v: String = match chars.next() {
            Some('%') => "%".into(),
            Some('u') => num(uid, hex),
            Some('v') => num(uidvalidity, hex),
            Some('g') => guid.to_string(),
            other => {
                return Err(Error::Invalid(format!(
                    "pop3_uidl_format: unsupported variable %{} (supported: %u %v %g)",
                    other.map(String::from).unwrap_or_default()
                )))
            }
        };
        let pad = if zero { '0' } else { ' ' };
        for _ in v.chars().count()..width {
            out.push(pad);
        }
        out.push_str(&v);
    }
    Ok(out)
}

/// Dovecot's `var_expand` prints `X` in lower-case hex (`%llx`, lib/var-expand.c), so
/// `%08Xu%08Xv` gives `000000016b15c5eb`, as its POP3 server answers (checked against
/// Dovecot 2.3 in tests/migrate).
fn num(n: u32, hex: Option<bool>) -> String {
    match hex {
        Some(_) => format!("{n:x}"),
        None => n.to_string(),
    }
}

/// A message file found in `cur/` or `new/`.
struct Found {
    path: PathBuf,
    file: String,
    entry: Option<UidEntry>,
}

fn import_folder(
    store: &dyn Backend,
    account: &Account,
    folder: &Folder,
    target: &str,
    opts: &Options,
    summary: &mut Summary,
    progress: Progress,
) -> Result<()> {
    let uidlist = match std::fs::read(folder.path.join("dovecot-uidlist")) {
        Ok(t) => parse_uidlist(&String::from_utf8_lossy(&t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => UidList::default(),
        Err(e) => return Err(io_err(&folder.path.join("dovecot-uidlist"), e)),
    };
    let keywords = match std::fs::read(folder.path.join("dovecot-keywords")) {
        Ok(t) => parse_keywords(&String::from_utf8_lossy(&t)),
        Err(_) => HashMap::new(),
    };
    let (uidvalidity, known) = if uidlist.uidvalidity != 0 {
        (uidlist.uidvalidity, true)
    } else {
        // No uidlist: Dovecot never indexed the folder, no client has UIDs for it.
        (
            letterbox_store::now().clamp(1, u32::MAX as i64) as u32,
            false,
        )
    };
    let im = store.import_mailbox(account.id, target, uidvalidity)?;
    if known && im.keeps_uids {
        // Clients of the source cached mod-sequences under this UIDVALIDITY: every
        // imported message's is above what they can hold (see `dovecot_modseq`).
        if let Some(floor) = crate::dovecot_modseq::modseq_bound(&folder.path) {
            store.import_modseq_floor(im.mailbox.id, floor)?;
        }
    }
    summary.folders += 1;
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        let d = folder.path.join(sub);
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&d, e)),
        };
        for e in rd {
            let e = e.map_err(|e| io_err(&d, e))?;
            let file = e.file_name().to_string_lossy().into_owned();
            if file.starts_with('.') {
                continue;
            }
            let entry = uidlist.entries.get(base_name(&file)).cloned();
            files.push(Found {
                path: e.path(),
                file,
                entry,
            });
        }
    }
    // Messages with their UID first, ascending; then the unknown ones, which take
    // UIDs from the source's UIDNEXT on, as Dovecot would have given them.
    files.sort_by(|a, b| match (&a.entry, &b.entry) {
        (Some(x), Some(y)) => x.uid.cmp(&y.uid),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.file.cmp(&b.file),
    });
    progress(&format!(
        "{} -> {}: {} messages (UIDVALIDITY {}{})",
        folder.source_name,
        im.mailbox.name,
        files.len(),
        im.mailbox.uidvalidity,
        if im.keeps_uids {
            ""
        } else {
            ", new UIDs: merged into a mailbox with mail"
        }
    ));
    let is_inbox = im.mailbox.name == "INBOX";
    let ctx = One {
        store,
        im: &im,
        folder,
        keywords: &keywords,
        known,
        uidvalidity,
        is_inbox,
        opts,
    };
    // Messages with their UID from the uidlist go in parallel: each is its own durable
    // write, and the store's writer commits the writes that wait together under one
    // fsync, so `[import] threads` of them share it. Their order does not matter, each
    // names its UID. The others take the next UIDs in turn, so they go one by one.
    let split = files
        .iter()
        .position(|f| f.entry.is_none() || !known)
        .unwrap_or(files.len());
    let (with_uid, rest) = files.split_at(split);
    let mut done = 0u64;
    let mut tally =
        |o: Outcome, summary: &mut Summary, progress: &mut dyn FnMut(&str)| -> Result<()> {
            match o {
                Outcome::Stored { size, new_uid } => {
                    summary.messages += 1;
                    summary.bytes += size;
                    summary.new_uids += u64::from(new_uid);
                }
                Outcome::Already => summary.already += 1,
                Outcome::Skipped(what, why) => {
                    progress(&format!("skipped {what}: {why}"));
                    summary.skipped.push((what, why));
                }
                Outcome::Fatal(e) => return Err(e),
            }
            done += 1;
            if done.is_multiple_of(PROGRESS_EVERY) {
                progress(&format!("{}: {done} messages", folder.source_name));
            }
            Ok(())
        };
    let threads = opts.threads.max(1);
    if threads == 1 || with_uid.len() < 2 {
        for f in with_uid {
            tally(ctx.run(f), summary, progress)?;
        }
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (tx, rx) = std::sync::mpsc::channel::<Outcome>();
        let mut result = Ok(());
        std::thread::scope(|scope| {
            for _ in 0..threads.min(with_uid.len()) {
                let tx = tx.clone();
                let (next, stop, ctx) = (&next, &stop, &ctx);
                scope.spawn(move || loop {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(f) = with_uid.get(i) else { break };
                    if tx.send(ctx.run(f)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            for o in rx {
                if result.is_ok() {
                    if let Err(e) = tally(o, summary, progress) {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                        result = Err(e);
                    }
                }
            }
        });
        result?;
    }
    let mut uidnext_set = false;
    for f in rest {
        if !uidnext_set {
            store.import_finish_mailbox(im.mailbox.id, uidlist.uidnext.max(1))?;
            uidnext_set = true;
        }
        tally(ctx.run(f), summary, progress)?;
    }
    if !uidnext_set {
        store.import_finish_mailbox(im.mailbox.id, uidlist.uidnext.max(1))?;
    }
    Ok(())
}

/// What became of one message file.
enum Outcome {
    Stored { size: u64, new_uid: bool },
    Already,
    Skipped(String, String),
    Fatal(Error),
}

/// What importing one file of a folder needs.
struct One<'a> {
    store: &'a dyn Backend,
    im: &'a letterbox_store::ImportMailbox,
    folder: &'a Folder,
    keywords: &'a HashMap<u8, String>,
    known: bool,
    uidvalidity: u32,
    is_inbox: bool,
    opts: &'a Options,
}

impl One<'_> {
    fn run(&self, f: &Found) -> Outcome {
        let what = format!("{}/{}", self.folder.source_name, f.file);
        let data = match read_message(&f.path, self.opts.max_message_size) {
            Ok(d) => d,
            Err(why) => return Outcome::Skipped(what, why),
        };
        let (flags, kw) = parse_info(&f.file, self.keywords);
        let internal_date = std::fs::metadata(&f.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
            .unwrap_or_else(letterbox_store::now);
        let base = base_name(&f.file).to_string();
        let (key, uid, uidl) = match (&f.entry, self.known) {
            (Some(e), true) => {
                let uidl = match &e.pop3_uidl {
                    Some(u) => Some(u.clone()),
                    None => match expand_uidl(
                        &self.opts.pop3_uidl_format,
                        e.uid,
                        self.uidvalidity,
                        &base,
                    ) {
                        Ok(u) => Some(u),
                        Err(e) => return Outcome::Fatal(e),
                    },
                };
                (
                    format!(
                        "maildir:{}:{}:{}",
                        self.folder.source_name, self.uidvalidity, e.uid
                    ),
                    self.im.keeps_uids.then_some(e.uid),
                    uidl,
                )
            }
            _ => (
                format!("maildir:{}:file:{}", self.folder.source_name, base),
                None,
                None,
            ),
        };
        // The UIDL only where POP3 looks, and only when the UID it was made of is kept
        // or the source recorded it.
        let uidl = uidl.filter(|_| {
            self.is_inbox
                && (uid.is_some() || f.entry.as_ref().is_some_and(|e| e.pop3_uidl.is_some()))
        });
        let size = data.len() as u64;
        let msg = ImportMessage {
            key,
            uid,
            message: NewMessage {
                prefix: Vec::new(),
                body: Arc::new(data),
                flags,
                keywords: kw,
                internal_date,
            },
            pop3_uidl: uidl,
        };
        match self.store.import_message(self.im.mailbox.id, msg) {
            Ok(Imported::Stored { uid: got, .. }) => Outcome::Stored {
                size,
                new_uid: uid != Some(got),
            },
            Ok(Imported::AlreadyImported) => Outcome::Already,
            Err(e @ (letterbox_store::Error::Invalid(_) | letterbox_store::Error::Refused(_))) => {
                Outcome::Skipped(what, e.to_string())
            }
            Err(e) => Outcome::Fatal(e.into()),
        }
    }
}

/// A message file's octets with CRLF line ends, or why it is skipped.
fn read_message(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > max {
        return Err(format!("larger than the limit of {max} bytes"));
    }
    let data = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    if data.is_empty() {
        return Err("empty file".into());
    }
    Ok(to_crlf(&data))
}

fn import_subscriptions(
    store: &dyn Backend,
    account: &Account,
    home: &Path,
    names: &HashMap<String, String>,
    replace: bool,
    summary: &mut Summary,
) -> Result<()> {
    let path = home.join("subscriptions");
    let text = match std::fs::read(&path) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(&path, e)),
    };
    let mut lines: Vec<&str> = text.lines().collect();
    let v2 = lines.first().is_some_and(|l| l.starts_with("V\t"));
    if v2 {
        lines.remove(0);
    }
    let mut wanted = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let source = if v2 {
            line.replace('\t', &DELIMITER.to_string())
        } else if names.contains_key(line) {
            line.to_string()
        } else {
            // A version 1 file writes the namespace separator, `.` by default.
            line.replace('.', &DELIMITER.to_string())
        };
        let name = names.get(&source).cloned().unwrap_or(source);
        if let Err(e) = store.subscribe(account.id, &name) {
            summary
                .skipped
                .push((format!("subscription {name}"), e.to_string()));
        }
        wanted.push(name);
    }
    // Into an account without mail of its own, the subscriptions become the source's:
    // the defaults a new account gets subscribed are dropped unless the user had them.
    if replace {
        for name in store.subscriptions(account.id)? {
            if !wanted.contains(&name) {
                store.unsubscribe(account.id, &name)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uidlist_v3() {
        let l = parse_uidlist(
            "3 V1700000000 N7 G0123\n1 :1700000001.M1P2.host,S=10,W=12:2,S\n5 P0000abcd W12 :1700000002.M3.host\n",
        );
        assert_eq!(l.uidvalidity, 1700000000);
        assert_eq!(l.uidnext, 7);
        assert_eq!(l.entries["1700000001.M1P2.host,S=10,W=12"].uid, 1);
        let e = &l.entries["1700000002.M3.host"];
        assert_eq!((e.uid, e.pop3_uidl.as_deref()), (5, Some("0000abcd")));
    }

    #[test]
    fn uidlist_v1_and_junk() {
        let l = parse_uidlist("1 42 9\n3 file.a\nnonsense\n0 zero\n");
        assert_eq!((l.uidvalidity, l.uidnext), (42, 9));
        assert_eq!(l.entries["file.a"].uid, 3);
        assert_eq!(l.entries.len(), 1);
        assert_eq!(parse_uidlist("").entries.len(), 0);
    }

    #[test]
    fn info_flags_and_keywords() {
        let kw = parse_keywords("0 $Forwarded\n1 project\n");
        let (f, k) = parse_info("x:2,FRSTab", &kw);
        assert_eq!(
            f,
            Flags::SEEN
                .union(Flags::ANSWERED)
                .union(Flags::FLAGGED)
                .union(Flags::DELETED)
        );
        assert_eq!(k, vec!["$Forwarded".to_string(), "project".to_string()]);
        assert_eq!(parse_info("x", &kw).0, Flags::default());
    }

    #[test]
    fn uidl_format() {
        assert_eq!(
            expand_uidl(DEFAULT_POP3_UIDL_FORMAT, 1, 0x65a1b2c3, "g").unwrap(),
            "0000000165a1b2c3"
        );
        assert_eq!(
            expand_uidl("%v.%u-%g%%", 10, 7, "abc").unwrap(),
            "7.10-abc%"
        );
        assert_eq!(expand_uidl("%08xu", 255, 0, "").unwrap(), "000000ff");
        assert!(expand_uidl("%m", 1, 1, "").is_err());
    }
}

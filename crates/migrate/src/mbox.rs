//! mbox, the mboxrd variant (`letterbox import mbox`, `letterbox export --format mbox`).
//!
//! Format: RFC 4155 (application/mbox) and the mboxrd quoting of
//! https://www.loc.gov/preservation/digital/formats/fdd/fdd000385.shtml: each message
//! starts with a `From sender asctime-date` line; a body line matching `^>*From ` gets
//! one more `>` on writing and loses one on reading, so any content survives. Lines end
//! with LF in the file and CRLF in the store.
//!
//! Flags travel in the headers mutt, Thunderbird and Dovecot's mbox use: `Status:` (`R`
//! \Seen, `O` not new), `X-Status:` (`A` \Answered, `F` \Flagged, `T` \Draft, `D`
//! \Deleted) and Dovecot's `X-Keywords:` (space-separated keywords). On import they are
//! read and removed from the top-level header, as Dovecot hides them, so that an export
//! followed by an import gives the stored octets back. The `From_` line's date is the
//! internal date.
//!
//! Variants read ([`Variant`]; the names are those of the qmail `mbox(5)` page and
//! RFC 4155's appendix):
//! - `mboxrd` (the default): every `>*From ` body line loses one `>`;
//! - `mboxo`: only `>From ` loses its `>` (`>>From ` stays as it is);
//! - `mboxcl2`: each message's `Content-Length:` header gives its body's length, and
//!   body lines are not quoted (Solaris mail, mutt's `mbox_type` with it);
//! - `mboxcl`: `Content-Length:` as mboxcl2, and `>From ` lines quoted as mboxo.
//!
//! A `Content-Length:` is trusted only when what follows the body is the end of the
//! file, or a `From ` line with or without one blank line before it; otherwise that
//! message is read as if it had none (up to the next `From ` line), as mutt does.

use crate::{io_err, to_crlf, Progress, Result, Summary};
use letterbox_store::{Account, Backend, Flags, ImportMessage, Imported, NewMessage};
use std::io::{BufRead, Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;

/// How messages are delimited and quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    #[default]
    Mboxrd,
    Mboxo,
    Mboxcl,
    Mboxcl2,
}

impl Variant {
    fn content_length(self) -> bool {
        matches!(self, Variant::Mboxcl | Variant::Mboxcl2)
    }

    /// A body line with its quoting removed.
    fn unquote(self, line: &[u8]) -> &[u8] {
        match self {
            Variant::Mboxrd if is_from_quoted(line) => &line[1..],
            Variant::Mboxo | Variant::Mboxcl if line.starts_with(b">From ") => &line[1..],
            _ => line,
        }
    }
}

/// Options of `letterbox import mbox`.
#[derive(Debug, Clone)]
pub struct Options {
    pub folder: String,
    pub merge: bool,
    pub max_message_size: u64,
    pub variant: Variant,
}

/// The value of a `Content-Length:` field among header lines.
fn content_length(header: &[u8]) -> Option<u64> {
    for line in header.split(|&b| b == b'\n') {
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            return std::str::from_utf8(&line[15..]).ok()?.trim().parse().ok();
        }
    }
    None
}

pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `Mon Dec  7 10:00:00 2026` (UTC) of seconds since the epoch.
pub fn asctime(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        y
    )
}

/// The date of a `From_` line (`From sender Mon Dec  7 10:00:00 2026`), taken as UTC.
fn from_line_date(line: &str) -> Option<i64> {
    let toks: Vec<&str> = line.split_ascii_whitespace().collect();
    // Find `Mon DD HH:MM:SS YYYY` anywhere after the sender.
    for w in toks.windows(4) {
        let Some(mi) = MONTHS.iter().position(|m| *m == w[0]) else {
            continue;
        };
        let day: i64 = w[1].parse().ok()?;
        let hms: Vec<i64> = w[2].split(':').filter_map(|x| x.parse().ok()).collect();
        let year: i64 = w[3].parse().ok()?;
        if hms.len() < 2 || !(1..=31).contains(&day) {
            return None;
        }
        let days = days_from_civil(year, mi as i64 + 1, day);
        return Some(
            days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms.get(2).copied().unwrap_or(0),
        );
    }
    None
}

/// Whether a line (LF included or not) is an mboxrd-quoted `From ` line: `>*From `.
fn is_from_quoted(line: &[u8]) -> bool {
    let rest = line.iter().position(|&b| b != b'>').map(|i| &line[i..]);
    rest.is_some_and(|r| r.starts_with(b"From "))
}

/// Reads the flag headers from a message's top-level header and removes them.
fn take_flags(msg: &[u8]) -> (Vec<u8>, Flags, Vec<String>) {
    let mut flags = Flags::default();
    let mut kw = Vec::new();
    let mut out = Vec::with_capacity(msg.len());
    let mut i = 0;
    let mut in_header = true;
    let mut dropping = false;
    while i < msg.len() {
        let end = msg[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| i + p + 1)
            .unwrap_or(msg.len());
        let line = &msg[i..end];
        if in_header {
            if line == b"\n" || line == b"\r\n" {
                in_header = false;
                out.extend_from_slice(line);
            } else if dropping && (line[0] == b' ' || line[0] == b'\t') {
                // continuation of a dropped field
            } else {
                dropping = false;
                let lower = line.to_ascii_lowercase();
                let value = |n: usize| String::from_utf8_lossy(&line[n..]).trim().to_string();
                if lower.starts_with(b"status:") {
                    if value(7).contains('R') {
                        flags = flags.union(Flags::SEEN);
                    }
                    dropping = true;
                } else if lower.starts_with(b"x-status:") {
                    let v = value(9);
                    for (c, f) in [
                        ('A', Flags::ANSWERED),
                        ('F', Flags::FLAGGED),
                        ('T', Flags::DRAFT),
                        ('D', Flags::DELETED),
                    ] {
                        if v.contains(c) {
                            flags = flags.union(f);
                        }
                    }
                    dropping = true;
                } else if lower.starts_with(b"x-keywords:") {
                    kw.extend(
                        value(11)
                            .split([' ', ','])
                            .filter(|k| !k.is_empty())
                            .map(String::from),
                    );
                    dropping = true;
                } else {
                    out.extend_from_slice(line);
                }
            }
        } else {
            out.extend_from_slice(line);
        }
        i = end;
    }
    (out, flags, kw)
}

/// Imports an mbox file into one folder of `account`.
pub fn import(
    store: &dyn Backend,
    account: &Account,
    file: &Path,
    opts: &Options,
    progress: Progress,
) -> Result<Summary> {
    let path = file.canonicalize().map_err(|e| io_err(file, e))?;
    let source = format!("mbox:{}:{}", path.display(), opts.folder);
    let start = store.import_begin(account.id, &source, opts.merge)?;
    progress(&format!(
        "importing {} into {} {} ({start:?})",
        path.display(),
        account.address,
        opts.folder
    ));
    let uidvalidity = letterbox_store::now().clamp(1, u32::MAX as i64) as u32;
    let im = store.import_mailbox(account.id, &opts.folder, uidvalidity)?;
    let mut summary = Summary {
        folders: 1,
        ..Summary::default()
    };
    let f = std::fs::File::open(&path).map_err(|e| io_err(&path, e))?;
    let mut r = std::io::BufReader::new(f);
    let mut offset: u64 = 0;
    // offset, date, octets, too big
    let mut cur: Option<(u64, i64, Vec<u8>, bool)> = None;
    let mut line = Vec::new();
    // A line read ahead (after a Content-Length body), with its offset.
    let mut pending: Option<(u64, Vec<u8>)> = None;
    let finish = |cur: &mut Option<(u64, i64, Vec<u8>, bool)>,
                  exact: bool,
                  summary: &mut Summary,
                  progress: &mut dyn FnMut(&str)|
     -> Result<()> {
        if let Some((o, date, data, big)) = cur.take() {
            finish_one(
                store,
                &im.mailbox,
                &source,
                o,
                date,
                data,
                big,
                exact,
                opts,
                summary,
                progress,
            )?;
        }
        Ok(())
    };
    loop {
        let (at, n) = match pending.take() {
            Some((at, l)) => {
                line = l;
                (at, line.len())
            }
            None => {
                line.clear();
                let n = r
                    .read_until(b'\n', &mut line)
                    .map_err(|e| io_err(&path, e))?;
                let at = offset;
                offset += n as u64;
                (at, n)
            }
        };
        if n == 0 || line.starts_with(b"From ") {
            finish(&mut cur, false, &mut summary, progress)?;
            if n == 0 {
                break;
            }
            let date = from_line_date(&String::from_utf8_lossy(&line))
                .unwrap_or_else(letterbox_store::now);
            cur = Some((at, date, Vec::new(), false));
            if opts.variant.content_length() {
                // The header, then exactly Content-Length octets when they end where
                // the next message starts.
                let Some((_, _, data, big)) = cur.as_mut() else {
                    continue;
                };
                let mut header_end = false;
                while !header_end {
                    line.clear();
                    let n = r
                        .read_until(b'\n', &mut line)
                        .map_err(|e| io_err(&path, e))?;
                    if n == 0 || line.starts_with(b"From ") {
                        if n > 0 {
                            pending = Some((offset, line.clone()));
                        }
                        offset += n as u64;
                        break;
                    }
                    offset += n as u64;
                    header_end = line == b"\n" || line == b"\r\n";
                    if (data.len() + line.len()) as u64 > opts.max_message_size {
                        *big = true;
                    }
                    if !*big {
                        data.extend_from_slice(&line);
                    }
                }
                if !header_end {
                    continue;
                }
                let Some(len) = content_length(data) else {
                    continue; // no Content-Length: up to the next From_ line
                };
                let body_at = offset;
                let end = body_at.saturating_add(len);
                let mut body = Vec::new();
                let fits = len <= opts.max_message_size;
                let got = if fits {
                    (&mut r)
                        .take(len)
                        .read_to_end(&mut body)
                        .map_err(|e| io_err(&path, e))? as u64
                } else {
                    std::io::copy(&mut (&mut r).take(len), &mut std::io::sink())
                        .map_err(|e| io_err(&path, e))?
                };
                // What follows: EOF, `From `, or one blank line then EOF or `From `.
                let mut next = Vec::new();
                let mut after = end;
                let mut ok = got == len;
                let mut next_from: Option<(u64, Vec<u8>)> = None;
                if ok {
                    let n1 = r
                        .read_until(b'\n', &mut next)
                        .map_err(|e| io_err(&path, e))?;
                    after += n1 as u64;
                    if n1 == 0 {
                    } else if next.starts_with(b"From ") {
                        next_from = Some((end, std::mem::take(&mut next)));
                    } else if next == b"\n" || next == b"\r\n" {
                        let mut n2l = Vec::new();
                        let n2 = r
                            .read_until(b'\n', &mut n2l)
                            .map_err(|e| io_err(&path, e))?;
                        if n2 == 0 {
                        } else if n2l.starts_with(b"From ") {
                            next_from = Some((after, n2l));
                            after += n2 as u64;
                        } else {
                            ok = false;
                        }
                    } else {
                        ok = false;
                    }
                }
                if !ok {
                    // Not where the next message starts: read on line by line.
                    r.seek(std::io::SeekFrom::Start(body_at))
                        .map_err(|e| io_err(&path, e))?;
                    offset = body_at;
                    continue;
                }
                if !fits || *big {
                    *big = true;
                    data.clear();
                } else {
                    for l in body.split_inclusive(|&b| b == b'\n') {
                        data.extend_from_slice(opts.variant.unquote(l));
                    }
                }
                finish(&mut cur, true, &mut summary, progress)?;
                offset = after;
                if let Some((o, l)) = next_from {
                    pending = Some((o, l));
                    offset = after;
                }
            }
            continue;
        }
        let Some((_, _, data, big)) = cur.as_mut() else {
            if !line.iter().all(|b| b.is_ascii_whitespace()) && summary.skipped.is_empty() {
                summary.skipped.push((
                    format!("{}@0", path.display()),
                    "text before the first From_ line".into(),
                ));
            }
            continue;
        };
        if *big {
            continue;
        }
        let body = opts.variant.unquote(&line);
        if (data.len() + body.len()) as u64 > opts.max_message_size {
            *big = true;
            data.clear();
            continue;
        }
        data.extend_from_slice(body);
    }
    store.import_finish(account.id, &source)?;
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn finish_one(
    store: &dyn Backend,
    mailbox: &letterbox_store::Mailbox,
    source: &str,
    offset: u64,
    date: i64,
    mut data: Vec<u8>,
    big: bool,
    exact: bool,
    opts: &Options,
    summary: &mut Summary,
    progress: Progress,
) -> Result<()> {
    let what = format!("message at byte {offset}");
    if big {
        let why = format!("larger than the limit of {} bytes", opts.max_message_size);
        progress(&format!("skipped {what}: {why}"));
        summary.skipped.push((what, why));
        return Ok(());
    }
    // The line end before the next From_ line belongs to the separator (RFC 4155);
    // a Content-Length body is exact.
    if exact {
    } else if data.ends_with(b"\n\n") {
        data.pop();
    } else if data.ends_with(b"\r\n\r\n") {
        data.truncate(data.len() - 2);
    }
    if data.is_empty() {
        progress(&format!("skipped {what}: empty message"));
        summary.skipped.push((what, "empty message".into()));
        return Ok(());
    }
    let (data, flags, keywords) = take_flags(&data);
    let data = to_crlf(&data);
    let size = data.len() as u64;
    let msg = ImportMessage {
        key: format!("{source}:{offset}"),
        uid: None,
        message: NewMessage {
            prefix: Vec::new(),
            body: Arc::new(data),
            flags,
            keywords,
            internal_date: date,
        },
        pop3_uidl: None,
    };
    match store.import_message(mailbox.id, msg) {
        Ok(Imported::Stored { .. }) => {
            summary.messages += 1;
            summary.bytes += size;
            summary.new_uids += 1;
        }
        Ok(Imported::AlreadyImported) => summary.already += 1,
        Err(e @ (letterbox_store::Error::Invalid(_) | letterbox_store::Error::Refused(_))) => {
            progress(&format!("skipped {what}: {e}"));
            summary.skipped.push((what, e.to_string()));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Writes one message in mboxrd form: From_ line, flag headers, the octets with LF line
/// ends and `>`-quoted From lines, and the blank separator line. Streams `msg`.
pub fn write_message(
    out: &mut dyn Write,
    msg: &mut dyn std::io::Read,
    internal_date: i64,
    flags: Flags,
    keywords: &[String],
) -> std::io::Result<()> {
    writeln!(out, "From MAILER-DAEMON {}", asctime(internal_date))?;
    let mut status = String::from("O");
    if flags.contains(Flags::SEEN) {
        status.insert(0, 'R');
    }
    writeln!(out, "Status: {status}")?;
    let mut x = String::new();
    for (c, f) in [
        ('A', Flags::ANSWERED),
        ('F', Flags::FLAGGED),
        ('T', Flags::DRAFT),
        ('D', Flags::DELETED),
    ] {
        if flags.contains(f) {
            x.push(c);
        }
    }
    if !x.is_empty() {
        writeln!(out, "X-Status: {x}")?;
    }
    if !keywords.is_empty() {
        writeln!(out, "X-Keywords: {}", keywords.join(" "))?;
    }
    let mut r = std::io::BufReader::with_capacity(64 * 1024, msg);
    let mut line = Vec::new();
    let mut last_nl = true;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if is_from_quoted(&line) {
            out.write_all(b">")?;
        }
        let body = if line.ends_with(b"\r\n") {
            last_nl = true;
            out.write_all(&line[..line.len() - 2])?;
            out.write_all(b"\n")?;
            continue;
        } else {
            last_nl = line.ends_with(b"\n");
            &line[..]
        };
        out.write_all(body)?;
    }
    if !last_nl {
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        let t = 1_796_637_600; // 2026-12-07 10:00:00 UTC
        assert_eq!(asctime(t), "Mon Dec  7 10:00:00 2026");
        assert_eq!(from_line_date(&format!("From x@y {}", asctime(t))), Some(t));
        assert_eq!(from_line_date("From x"), None);
    }

    #[test]
    fn round_trip_of_quoting_and_flags() {
        let stored = b"Subject: a\r\n\r\nFrom here\r\n>From there\r\nend".to_vec();
        let mut out = Vec::new();
        let kw = vec!["project".to_string()];
        let flags = Flags::SEEN.union(Flags::FLAGGED);
        write_message(&mut out, &mut &stored[..], 1_796_637_600, flags, &kw).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains("\n>From here\n>>From there\nend\n\n"),
            "{text}"
        );
        // Read back the body part as import does.
        let mut body = Vec::new();
        for l in out.split_inclusive(|&b| b == b'\n').skip(1) {
            body.extend_from_slice(if is_from_quoted(l) { &l[1..] } else { l });
        }
        body.pop(); // separator
        let (msg, f, k) = take_flags(&body);
        assert_eq!((f, k), (flags, kw));
        assert_eq!(
            to_crlf(&msg),
            b"Subject: a\r\n\r\nFrom here\r\n>From there\r\nend\r\n"
        );
    }
}

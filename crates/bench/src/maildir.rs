//! The big mailbox written as a Maildir (`letterbox-bench big-maildir`), for
//! `bench/run --big-fill import`: the same `b<n>` messages the APPEND fill sends
//! ([`crate::corpus`], same seed, same sizes, a third multipart), written once, then
//! imported by `letterbox import maildir` and indexed by Dovecot in place.
//!
//! Format (D. J. Bernstein's Maildir, https://cr.yp.to/proto/maildir.html, as Dovecot 2.3
//! names what it saves itself): `cur/<time>.M<n>P1.bench,S=<size>,W=<vsize>:2,` with no
//! flags (the APPEND fill sets none). `S=` is the file's size, which Dovecot's Maildir
//! quota reads from the name; `W=` the size with CRLF line ends, the same here (the
//! generator writes CRLF). `<time>` and the file's mtime, which both servers take as the
//! internal date, are the message's own `Date:` ([`corpus::big_date_secs`]): distinct and
//! increasing with n, so Dovecot and `letterbox import maildir` give UIDs in n's order.

use crate::corpus;
use anyhow::{Context as _, Result};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// Writes `b0`..`b<msgs-1>` into the Maildir `dir` (created; `cur/`, `new/`, `tmp/`).
/// Returns the octets written.
pub fn write_big(dir: &Path, msgs: u64) -> Result<u64> {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    let mut octets = 0;
    for n in 0..msgs {
        let id = corpus::id('b', n);
        let msg = corpus::message(&id).unwrap_or_default();
        let t = corpus::big_date_secs(n);
        let path = dir
            .join("cur")
            .join(format!("{t}.M{n}P1.bench,S={0},W={0}:2,", msg.len()));
        std::fs::write(&path, &msg).with_context(|| format!("writing {}", path.display()))?;
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(t)))
            .with_context(|| format!("setting the mtime of {}", path.display()))?;
        octets += msg.len() as u64;
    }
    Ok(octets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sizes_dates_and_octets() {
        let dir =
            std::env::temp_dir().join(format!("letterbox-bench-maildir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let octets = write_big(&dir, 5).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.join("cur"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 5);
        let mut sum = 0;
        for (n, name) in names.iter().enumerate() {
            let n = n as u64;
            let want = corpus::message(&corpus::id('b', n)).unwrap();
            let t = corpus::big_date_secs(n);
            assert_eq!(
                name,
                &format!("{t}.M{n}P1.bench,S={0},W={0}:2,", want.len())
            );
            let path = dir.join("cur").join(name);
            assert_eq!(std::fs::read(&path).unwrap(), want);
            let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
            assert_eq!(mtime, UNIX_EPOCH + Duration::from_secs(t));
            sum += want.len() as u64;
        }
        assert_eq!(octets, sum);
        assert!(dir.join("new").is_dir() && dir.join("tmp").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

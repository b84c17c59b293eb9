//! Single-instance storage of large MIME parts (issue 15): the rules, written once for
//! every backend.
//!
//! A message body whose large non-text leaf parts (at least `[store] part_dedup_min`
//! octets of body each) are cut out is stored as a *skeleton* (the body without those
//! parts' octets) and a *map* naming, in order, where each part went and the BLAKE3 of
//! its octets. Each part is stored once per store under that name, however many
//! messages carry it. What is cut out is a part's body exactly as it was transmitted
//! (its encoded octets, RFC 2045 section 6: base64 lines, line ends and all, between the
//! blank line closing the part header and the CRLF before the next boundary, RFC 2046
//! section 5.1.1), so reassembly gives back the original octets byte for byte, with no
//! re-encoding: unlike Dovecot's `mail_attachment_dir`, which decodes base64 and keeps
//! the line length to encode it again, nothing depends on the encoder. The price: the
//! same file sent with a different line length or line ending is a different part
//! (WildDuck, which hashes the decoded attachment, would share it).
//!
//! Which parts: leaves whose type is not `text/*`, `message/*` or `multipart/*`
//! (attachments, images, archives), at any depth, including inside an attached
//! message/rfc822. Text stays with the message, where search reads it.
//!
//! The map is a sequence of fixed records (offset u64 LE, length u64 LE, BLAKE3 32
//! octets), offsets counted in the original body; parts neither overlap nor go back.
//! Reference counting (the backend keeps it): a part's count is the number of map
//! records naming it over all stored bodies; it changes in the transaction that stores
//! or frees a body, and a part at zero is removed by collection, as whole bodies are.

use crate::blob::BlobId;
use letterbox_message::{Part, PartKind};
use std::io::{self, Read};

/// The default of `[store] part_dedup_min`: 64 KiB. Below this a part costs more as a
/// file of its own (and a row) than it could save; most signatures, logos and small
/// images stay with their message.
pub const DEFAULT_PART_DEDUP_MIN: u64 = 64 * 1024;

/// A body is split only when its skeleton is at most this long: the skeleton lives in
/// the database (one row, compressed), and a body with megabytes of text is better kept
/// whole as a file.
pub const MAX_SKELETON: usize = 1 << 20;

/// Octets of one map record.
const RECORD: usize = 8 + 8 + 32;

/// Where one stored part sits in the original body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRef {
    pub offset: u64,
    pub len: u64,
    pub id: BlobId,
}

/// A body cut into its skeleton and its large parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub skeleton: Vec<u8>,
    pub parts: Vec<PartRef>,
}

impl Split {
    /// The octets of part `i` in the original body.
    pub fn part<'a>(&self, body: &'a [u8], i: usize) -> &'a [u8] {
        let p = &self.parts[i];
        &body[p.offset as usize..(p.offset + p.len) as usize]
    }
}

/// Whether a part's body is stored on its own.
fn shareable(p: &Part, min: u64) -> bool {
    matches!(p.kind, PartKind::Leaf)
        && !matches!(p.mime_type.as_str(), "text" | "message" | "multipart")
        && p.offset_end >= p.offset_body
        && u64::from(p.body_len()) >= min
}

fn collect(p: &Part, min: u64, out: &mut Vec<(u64, u64)>) {
    match &p.kind {
        PartKind::Leaf => {
            if shareable(p, min) {
                out.push((u64::from(p.offset_body), u64::from(p.body_len())));
            }
        }
        PartKind::Multipart(children) => children.iter().for_each(|c| collect(c, min, out)),
        PartKind::Message(_, inner) => collect(inner, min, out),
    }
}

/// Cuts `body` (whose MIME tree is `root`, offsets counted in `body`) into skeleton and
/// parts. `None` when there is nothing to share: `min` is 0 (off), no part is large
/// enough, or the skeleton would be larger than [`MAX_SKELETON`].
pub fn split(body: &[u8], root: &Part, min: u64) -> Option<Split> {
    if min == 0 || (body.len() as u64) < min {
        return None;
    }
    let mut ranges = Vec::new();
    collect(root, min, &mut ranges);
    ranges.sort_unstable();
    let mut parts = Vec::with_capacity(ranges.len());
    let mut skeleton = Vec::new();
    let mut at = 0u64;
    for (offset, len) in ranges {
        let end = offset.checked_add(len)?;
        // A parse always nests its offsets; anything else is not cut.
        if offset < at || end > body.len() as u64 || len == 0 {
            continue;
        }
        skeleton.extend_from_slice(&body[at as usize..offset as usize]);
        parts.push(PartRef {
            offset,
            len,
            id: BlobId::of(&body[offset as usize..end as usize]),
        });
        at = end;
    }
    if parts.is_empty() {
        return None;
    }
    skeleton.extend_from_slice(&body[at as usize..]);
    if skeleton.len() > MAX_SKELETON {
        return None;
    }
    Some(Split { skeleton, parts })
}

/// The stored form of a map.
pub fn encode_map(parts: &[PartRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.len() * RECORD);
    for p in parts {
        out.extend_from_slice(&p.offset.to_le_bytes());
        out.extend_from_slice(&p.len.to_le_bytes());
        out.extend_from_slice(&p.id.0);
    }
    out
}

/// Reads a stored map back. `None` if it is malformed: a partial record, or parts that
/// overlap or go back.
pub fn decode_map(bytes: &[u8]) -> Option<Vec<PartRef>> {
    if bytes.len() % RECORD != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / RECORD);
    let mut at = 0u64;
    for r in bytes.chunks_exact(RECORD) {
        let offset = u64::from_le_bytes(r[0..8].try_into().ok()?);
        let len = u64::from_le_bytes(r[8..16].try_into().ok()?);
        let id = BlobId(r[16..48].try_into().ok()?);
        if offset < at || len == 0 {
            return None;
        }
        at = offset.checked_add(len)?;
        out.push(PartRef { offset, len, id });
    }
    Some(out)
}

/// The length of the body a skeleton and map rebuild, if they fit together: every part
/// starts within what the skeleton has supplied by then.
pub fn joined_len(skeleton_len: u64, parts: &[PartRef]) -> Option<u64> {
    let mut skel = 0u64; // skeleton octets consumed
    let mut at = 0u64; // body octets produced
    for p in parts {
        let gap = p.offset.checked_sub(at)?;
        skel = skel.checked_add(gap)?;
        if skel > skeleton_len {
            return None;
        }
        at = p.offset.checked_add(p.len)?;
    }
    at.checked_add(skeleton_len - skel)
}

/// A stored part as a backend keeps it (`parts` table): its name, length and count.
pub struct PartRow {
    pub hash: Vec<u8>,
    pub size: i64,
    pub refcount: i64,
}

/// A split body as a backend keeps it (`blob_split`, with the size of its `blobs` row,
/// `None` when there is none): the skeleton as [`crate::mailpack::compress`] made it.
pub struct SplitRow {
    pub hash: Vec<u8>,
    pub skeleton: Vec<u8>,
    pub map: Vec<u8>,
    pub size: Option<i64>,
}

/// What `letterbox check` finds wrong with split bodies and parts, for every backend:
/// every map fits its skeleton and body size; each part's count is the number of map
/// records naming it, all recording its stored length; every referenced part is
/// stored in `dir` (with `deep`, read back and hashed: its octets match its name; the
/// skeletons decompress). `files`: the part files on local disk, when a part file no
/// row names is to be reported (the embedded store; a cluster's files may belong to a
/// delivery in flight on another node, which collection's grace period covers).
pub fn check(
    rows: &[PartRow],
    splits: &[SplitRow],
    dir: &crate::blob::BlobDir,
    files: Option<&std::collections::HashSet<BlobId>>,
    deep: bool,
    problems: &mut Vec<String>,
) -> crate::Result<()> {
    use std::collections::{HashMap, HashSet};
    // References the maps hold, and the length each records for the part.
    let mut named: HashMap<BlobId, (i64, u64)> = HashMap::new();
    for s in splits {
        let name = hex::encode(&s.hash);
        let Some(size) = s.size else {
            problems.push(format!("blob {name}: part map without a blob record"));
            continue;
        };
        let Some(refs) = decode_map(&s.map) else {
            problems.push(format!("blob {name}: part map is malformed"));
            continue;
        };
        let skel_len = zstd::zstd_safe::get_frame_content_size(&s.skeleton).ok().flatten();
        let fits = skel_len.and_then(|n| joined_len(n, &refs));
        if fits != Some(size as u64) {
            problems.push(format!(
                "blob {name}: skeleton and part map do not rebuild its {size} octets"
            ));
        } else if deep
            && crate::mailpack::decompress(&s.skeleton).map(|s| s.len() as u64).ok() != skel_len
        {
            problems.push(format!("blob {name}: skeleton does not decompress"));
        }
        for p in refs {
            let e = named.entry(p.id).or_insert((0, p.len));
            e.0 += 1;
            if e.1 != p.len {
                problems.push(format!(
                    "part {}: recorded as {} and as {} octets",
                    p.id.hex(),
                    e.1,
                    p.len
                ));
            }
        }
    }
    let mut known = HashSet::new();
    for row in rows {
        let Ok(arr) = <[u8; 32]>::try_from(row.hash.as_slice()) else {
            problems.push("malformed part id in the database".into());
            continue;
        };
        let (size, rc) = (row.size, row.refcount);
        let id = BlobId(arr);
        known.insert(id);
        let (refs, len) = named.remove(&id).unwrap_or((0, size as u64));
        if rc != refs {
            problems.push(format!(
                "part {}: refcount {rc} but {refs} part map record(s) name it",
                id.hex()
            ));
        }
        if len != size as u64 {
            problems.push(format!(
                "part {}: size {size} but the maps record {len} octets",
                id.hex()
            ));
        }
        if refs == 0 {
            continue;
        }
        let present = match files {
            Some(files) if dir.remote().is_none() => files.contains(&id),
            _ => dir.exists(&id)?,
        };
        if !present {
            problems.push(format!("part {}: file missing", id.hex()));
        } else if deep {
            let mut octets = Vec::new();
            let ok = dir
                .open_reader(&id)
                .and_then(|mut r| std::io::Read::read_to_end(&mut r, &mut octets))
                .is_ok();
            if !ok || BlobId::of(&octets) != id || octets.len() as u64 != size as u64 {
                problems.push(format!("part {}: content does not match its name", id.hex()));
            }
        }
    }
    for (id, (refs, _)) in named {
        problems.push(format!(
            "part {}: named by {refs} part map record(s) but not stored",
            id.hex()
        ));
    }
    if let Some(files) = files {
        let orphans = files.difference(&known).count();
        if orphans > 0 {
            problems.push(format!(
                "{orphans} part file(s) not in the database (run `letterbox gc`)"
            ));
        }
    }
    Ok(())
}

/// Opens a stored part's octets.
pub type PartOpener = Box<dyn FnMut(&BlobId) -> io::Result<Box<dyn Read + Send>> + Send>;

/// The original body, read from a skeleton and its parts: each part is opened only when
/// the reader reaches it (a partial fetch of the text opens none), and must supply
/// exactly its recorded length.
pub struct Joined {
    skeleton: Vec<u8>,
    parts: Vec<PartRef>,
    open: PartOpener,
    /// Body octets produced so far, and skeleton octets consumed.
    at: u64,
    skel: usize,
    /// The part being read: its index, reader and octets still due.
    current: Option<(usize, Box<dyn Read + Send>, u64)>,
    next: usize,
}

impl Joined {
    pub fn new(skeleton: Vec<u8>, parts: Vec<PartRef>, open: PartOpener) -> io::Result<Joined> {
        if joined_len(skeleton.len() as u64, &parts).is_none() {
            return Err(io::Error::other("stored part map does not fit its skeleton"));
        }
        Ok(Joined {
            skeleton,
            parts,
            open,
            at: 0,
            skel: 0,
            current: None,
            next: 0,
        })
    }
}

impl Read for Joined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some((i, r, due)) = &mut self.current {
                if *due == 0 {
                    // The part must end here: one more octet means it is not the part
                    // the map recorded.
                    let mut probe = [0u8; 1];
                    if r.read(&mut probe)? != 0 {
                        return Err(io::Error::other(format!(
                            "stored part {} is longer than recorded",
                            self.parts[*i].id.hex()
                        )));
                    }
                    self.current = None;
                    continue;
                }
                let want = buf.len().min(usize::try_from(*due).unwrap_or(usize::MAX));
                let n = r.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("stored part {} is shorter than recorded", self.parts[*i].id.hex()),
                    ));
                }
                *due -= n as u64;
                self.at += n as u64;
                return Ok(n);
            }
            // Skeleton octets up to the next part (or the end).
            let until = match self.parts.get(self.next) {
                Some(p) => (p.offset - self.at) as usize,
                None => self.skeleton.len() - self.skel,
            };
            if until > 0 {
                let n = until.min(buf.len());
                buf[..n].copy_from_slice(&self.skeleton[self.skel..self.skel + n]);
                self.skel += n;
                self.at += n as u64;
                return Ok(n);
            }
            let Some(p) = self.parts.get(self.next) else {
                return Ok(0);
            };
            let r = (self.open)(&p.id)?;
            self.current = Some((self.next, r, p.len));
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn message(attachment: &[u8], text: &str) -> Vec<u8> {
        let mut m = format!(
            "From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\n{text}\r\n--b\r\n\
             Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        )
        .into_bytes();
        m.extend_from_slice(attachment);
        m.extend_from_slice(b"\r\n--b--\r\n");
        m
    }

    fn store(split: &Split, body: &[u8]) -> HashMap<BlobId, Vec<u8>> {
        (0..split.parts.len())
            .map(|i| (split.parts[i].id, split.part(body, i).to_vec()))
            .collect()
    }

    fn join(split: &Split, parts: HashMap<BlobId, Vec<u8>>) -> io::Result<Vec<u8>> {
        let parts = Arc::new(parts);
        let open: PartOpener = Box::new(move |id| {
            let v = parts.get(id).cloned().ok_or_else(|| io::Error::other("missing"))?;
            Ok(Box::new(io::Cursor::new(v)) as Box<dyn Read + Send>)
        });
        let mut out = Vec::new();
        Joined::new(split.skeleton.clone(), split.parts.clone(), open)?.read_to_end(&mut out)?;
        Ok(out)
    }

    fn attachment(seed: u8, n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            v.push(b'A' + ((i * 7 + seed as usize) % 26) as u8);
            if i % 76 == 75 {
                v.extend_from_slice(b"\r\n");
            }
        }
        v
    }

    #[test]
    fn split_and_join_are_byte_exact() {
        let att = attachment(1, 100_000);
        let body = message(&att, "hello");
        let parsed = letterbox_message::parse(&body);
        let s = split(&body, &parsed.root, 64 * 1024).expect("split");
        assert_eq!(s.parts.len(), 1);
        assert_eq!(s.part(&body, 0), &att[..]);
        assert_eq!(s.parts[0].id, BlobId::of(&att));
        assert_eq!(s.skeleton.len() + att.len(), body.len());
        assert_eq!(join(&s, store(&s, &body)).unwrap(), body);
        assert_eq!(joined_len(s.skeleton.len() as u64, &s.parts), Some(body.len() as u64));
        // The same attachment in another message is the same part.
        let other = message(&att, "a different text");
        let s2 = split(&other, &letterbox_message::parse(&other).root, 64 * 1024).unwrap();
        assert_eq!(s2.parts[0].id, s.parts[0].id);
        // The map survives storage.
        assert_eq!(decode_map(&encode_map(&s.parts)).unwrap(), s.parts);
    }

    #[test]
    fn small_text_and_off_are_not_split() {
        let att = attachment(2, 1000);
        let body = message(&att, "hello");
        let root = letterbox_message::parse(&body).root;
        assert!(split(&body, &root, 64 * 1024).is_none());
        assert!(split(&body, &root, 0).is_none());
        // A big text part stays with its message.
        let big_text = "x".repeat(200_000);
        let body = message(b"QUJD", &big_text);
        assert!(split(&body, &letterbox_message::parse(&body).root, 1024).is_none());
    }

    #[test]
    fn a_wrong_part_is_an_error_not_wrong_octets() {
        let att = attachment(3, 70_000);
        let body = message(&att, "hi");
        let s = split(&body, &letterbox_message::parse(&body).root, 64 * 1024).unwrap();
        let mut parts = store(&s, &body);
        parts.get_mut(&s.parts[0].id).unwrap().pop();
        assert!(join(&s, parts).is_err());
        let mut parts = store(&s, &body);
        parts.get_mut(&s.parts[0].id).unwrap().push(b'x');
        assert!(join(&s, parts).is_err());
        assert!(join(&s, HashMap::new()).is_err());
        // Maps that do not fit are refused.
        assert!(decode_map(&[0u8; 47]).is_none());
        let mut bad = s.parts.clone();
        bad[0].offset = body.len() as u64 * 2;
        assert!(joined_len(s.skeleton.len() as u64, &bad).is_none());
    }
}

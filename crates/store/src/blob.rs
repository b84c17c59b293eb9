//! Content-addressed blob files: `blobs/<first two hex digits>/<BLAKE3 hex>`, each the
//! zstd-compressed message octets. Bodies up to `[store] inline_max` are not files: the
//! same compressed octets live in the database's `blob_data` table (see `sqlite.rs`).
//!
//! Safety rule shared with the metadata store: a blob file is only ever *removed* while
//! the database write lock is held (garbage collection runs as a write job), and every
//! transaction that adds a reference checks, under that same lock, that the file exists
//! (writing it again if not). A file written outside the lock and removed by a collector
//! before its transaction is therefore rewritten, never lost, even across processes.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::s3::S3Objects;

/// The name of a blob: BLAKE3 of its uncompressed octets.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    pub fn of(bytes: &[u8]) -> BlobId {
        BlobId(*blake3::hash(bytes).as_bytes())
    }
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<BlobId> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(BlobId(out))
    }
}

impl std::fmt::Debug for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobId({})", &self.hex()[..16])
    }
}

/// zstd level: 3 is zstd's default, a good balance for mail (text compresses 3-5x).
const ZSTD_LEVEL: i32 = 3;

/// The blob store interface: put, get, test and remove compressed octets by name. Two
/// implementations: files under `root` (the layout above, unchanged since the first
/// release) and an S3-compatible object store (`s3.rs`, `[blobs] url`), where the name
/// `<root's last component>/<2 hex>/<hex>` is the object key. The third home of octets,
/// rows of the database (`[store] inline_max`), is the backend's own.
#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
    remote: Option<Arc<S3Objects>>,
}

impl BlobDir {
    pub fn open(root: PathBuf) -> io::Result<BlobDir> {
        fs::create_dir_all(root.join("tmp"))?;
        Ok(BlobDir { root, remote: None })
    }

    /// Blobs in the object store, under the key prefix of `root`'s last component.
    pub fn open_remote(root: PathBuf, remote: Arc<S3Objects>) -> BlobDir {
        BlobDir {
            root,
            remote: Some(remote),
        }
    }

    /// The object store, when blobs live there.
    pub fn remote(&self) -> Option<&Arc<S3Objects>> {
        self.remote.as_ref()
    }

    /// The object key of a blob (`blobs/ab/ab12...`).
    fn key(&self, id: &BlobId) -> String {
        let h = id.hex();
        let top = self.root.file_name().unwrap_or_default().to_string_lossy();
        format!("{top}/{}/{h}", &h[..2])
    }

    pub fn path(&self, id: &BlobId) -> PathBuf {
        let h = id.hex();
        self.root.join(&h[..2]).join(&h)
    }

    /// Whether the blob is stored (a HEAD request for an object store).
    pub fn exists(&self, id: &BlobId) -> io::Result<bool> {
        match &self.remote {
            Some(r) => r.exists(&self.key(id)),
            None => Ok(self.path(id).exists()),
        }
    }

    /// Writes the blob durably (file and directory entry fsynced) unless it exists; for
    /// an object store, uploads it (the PUT returns once the object is stored).
    pub fn put(&self, id: &BlobId, bytes: &[u8]) -> io::Result<()> {
        if let Some(r) = &self.remote {
            return r.put(&self.key(id), compress(bytes)?);
        }
        let path = self.path(id);
        if path.exists() {
            return Ok(());
        }
        let dir = path.parent().expect("blob path has a parent");
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile_in(&self.root.join("tmp"))?;
        {
            let mut enc = zstd::Encoder::new(&mut tmp.1, ZSTD_LEVEL)?;
            enc.write_all(bytes)?;
            enc.finish()?;
        }
        tmp.1.sync_all()?;
        fs::rename(&tmp.0, &path)?;
        sync_dir(dir)?;
        Ok(())
    }

    /// Opens the blob for streaming decompression.
    pub fn open_reader(&self, id: &BlobId) -> io::Result<BlobReader> {
        if let Some(r) = &self.remote {
            return BlobReader::inline(&r.get(&self.key(id))?);
        }
        let f = File::open(self.path(id))?;
        Ok(BlobReader {
            inner: Inner::File(zstd::Decoder::new(f)?),
        })
    }

    /// Removes a blob file (callers hold the database write lock).
    pub fn remove(&self, id: &BlobId) -> io::Result<()> {
        if let Some(r) = &self.remote {
            return r.delete(&self.key(id));
        }
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every blob file present, and stale temporary files (older than an hour) removed.
    /// An object store is never listed (collection works from the database's rows, see
    /// `objects.rs`): nothing is returned for it.
    pub fn scan(&self) -> io::Result<Vec<BlobId>> {
        let mut out = Vec::new();
        if self.remote.is_some() {
            return Ok(out);
        }
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "tmp" {
                for t in fs::read_dir(entry.path())? {
                    let t = t?;
                    let old = t
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|age| age.as_secs() > 3600);
                    if old {
                        let _ = fs::remove_file(t.path());
                    }
                }
                continue;
            }
            if name.len() != 2 || !entry.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(entry.path())? {
                let f = f?;
                if let Some(id) = BlobId::from_hex(&f.file_name().to_string_lossy()) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Bytes the blob files take on disk.
    pub fn disk_usage(&self) -> io::Result<u64> {
        let mut total = 0;
        for id in self.scan()? {
            total += fs::metadata(self.path(&id))?.len();
        }
        Ok(total)
    }
}

fn tempfile_in(dir: &Path) -> io::Result<(PathBuf, File)> {
    use rand::Rng;
    loop {
        let name: u64 = rand::thread_rng().gen();
        let path = dir.join(format!("{name:016x}"));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

thread_local! {
    // One zstd context per thread, reused: creating one costs more than compressing or
    // decompressing a small message.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Compresses octets as a blob is stored inline in the database: one zstd frame that
/// records its content size.
pub fn compress(bytes: &[u8]) -> io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        c.as_mut().expect("set above").compress(bytes)
    })
}

/// Decompresses what [`compress`] made.
fn decompress(data: &[u8]) -> io::Result<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(data)
        .ok()
        .flatten()
        .filter(|&n| n <= 1 << 30);
    let Some(size) = size else {
        // Not a frame of ours with its size: the streaming decoder copes with any.
        return zstd::stream::decode_all(data);
    };
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut()
            .expect("set above")
            .decompress(data, size as usize)
    })
}

/// A blob being decompressed: streamed from its file, or from the compressed octets kept
/// inline in the database (small messages, see `[store] inline_max`).
pub struct BlobReader {
    inner: Inner,
}

enum Inner {
    File(zstd::Decoder<'static, io::BufReader<File>>),
    Memory(io::Cursor<Vec<u8>>),
    /// A body stored split (`parts.rs`): skeleton and shared parts.
    Joined(crate::parts::Joined),
}

impl BlobReader {
    /// A reader of a blob stored inline: `data` as [`compress`] made it. Inline blobs are
    /// small, so they are decompressed at once.
    pub fn inline(data: &[u8]) -> io::Result<BlobReader> {
        Ok(BlobReader {
            inner: Inner::Memory(io::Cursor::new(decompress(data)?)),
        })
    }

    /// A reader of a body stored split: `skeleton` as [`crate::mailpack::compress`] made
    /// it (or [`compress`], before), and its map.
    pub fn joined(
        skeleton: &[u8],
        map: &[u8],
        open: crate::parts::PartOpener,
    ) -> io::Result<BlobReader> {
        let parts = crate::parts::decode_map(map)
            .ok_or_else(|| io::Error::other("stored part map is malformed"))?;
        Ok(BlobReader {
            inner: Inner::Joined(crate::parts::Joined::new(
                crate::mailpack::decompress(skeleton)?,
                parts,
                open,
            )?),
        })
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::File(d) => d.read(buf),
            Inner::Memory(c) => c.read(buf),
            Inner::Joined(j) => j.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn inline_roundtrip_and_foreign_frames() {
        for body in [&b""[..], b"x", &[7u8; 100_000][..]] {
            let c = super::compress(body).unwrap();
            assert_eq!(super::decompress(&c).unwrap(), body);
        }
        // A streamed frame (no content size recorded) still decompresses.
        let mut enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
        std::io::Write::write_all(&mut enc, b"streamed").unwrap();
        let framed = enc.finish().unwrap();
        assert_eq!(super::decompress(&framed).unwrap(), b"streamed");
        assert!(super::decompress(b"not zstd").is_err());
    }
}

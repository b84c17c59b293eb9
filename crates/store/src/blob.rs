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

#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    pub fn open(root: PathBuf) -> io::Result<BlobDir> {
        fs::create_dir_all(root.join("tmp"))?;
        Ok(BlobDir { root })
    }

    pub fn path(&self, id: &BlobId) -> PathBuf {
        let h = id.hex();
        self.root.join(&h[..2]).join(&h)
    }

    pub fn exists(&self, id: &BlobId) -> bool {
        self.path(id).exists()
    }

    /// Writes the blob durably (file and directory entry fsynced) unless it exists.
    pub fn put(&self, id: &BlobId, bytes: &[u8]) -> io::Result<()> {
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
        let f = File::open(self.path(id))?;
        Ok(BlobReader {
            inner: Inner::File(zstd::Decoder::new(f)?),
        })
    }

    /// Removes a blob file (callers hold the database write lock).
    pub fn remove(&self, id: &BlobId) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every blob file present, and stale temporary files (older than an hour) removed.
    pub fn scan(&self) -> io::Result<Vec<BlobId>> {
        let mut out = Vec::new();
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

    /// A reader of a body stored split: `skeleton` as [`compress`] made it, and its map.
    pub fn joined(
        skeleton: &[u8],
        map: &[u8],
        open: crate::parts::PartOpener,
    ) -> io::Result<BlobReader> {
        let parts = crate::parts::decode_map(map)
            .ok_or_else(|| io::Error::other("stored part map is malformed"))?;
        Ok(BlobReader {
            inner: Inner::Joined(crate::parts::Joined::new(decompress(skeleton)?, parts, open)?),
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

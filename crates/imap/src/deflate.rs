//! The DEFLATE layer of COMPRESS=DEFLATE (RFC 4978 section 3): raw DEFLATE (RFC 1951,
//! no zlib or gzip header) in both directions, over whatever carries the session (TCP,
//! or TLS below it).
//!
//! - Reading: the client's octets are inflated into the caller's buffer and never
//!   further, so [`crate::conn::Conn`]'s line and literal limits count the *inflated*
//!   octets, and a compression bomb costs no more memory than the same input sent
//!   uncompressed (a 16 KiB window of compressed input, the inflater's 32 KiB history).
//!   Corrupt input is an [`std::io::ErrorKind::InvalidData`] error wrapping
//!   [`CorruptInput`] (the session says BYE and ends). The end of the client's
//!   compressed stream (a final block) is the end of its input.
//! - Writing: responses are deflated as they are written; every flush (the connection
//!   flushes after each batch of responses, each IDLE push and each literal go-ahead)
//!   ends with a sync flush (`Z_SYNC_FLUSH`, an empty stored block), so the client can
//!   decode everything it was sent without waiting for more (RFC 4978 section 4).
//!   Compressed output waiting for the peer is bounded as any write is.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The compression level of responses: zlib's default (as Dovecot's
/// `imap_zlib_compress_level` 6), a fair trade of CPU against bandwidth.
pub const LEVEL: u32 = 6;

/// Compressed input read ahead of the inflater.
const INPUT_WINDOW: usize = 16 * 1024;
/// Compressed output held before a write waits for the peer to take some.
const OUTPUT_HIGH: usize = 64 * 1024;
/// The most of one write deflated at once (the rest is taken by the next write).
const WRITE_CHUNK: usize = 64 * 1024;

/// The client sent something that is not DEFLATE data.
#[derive(Debug)]
pub struct CorruptInput(pub String);

impl std::fmt::Display for CorruptInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "corrupt compressed input: {}", self.0)
    }
}

impl std::error::Error for CorruptInput {}

/// True when `e` is the error for corrupt compressed input.
pub fn is_corrupt_input(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|r| r.is::<CorruptInput>())
}

fn corrupt(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, CorruptInput(why.into()))
}

/// A stream whose both directions are raw DEFLATE.
pub struct Deflate<S> {
    inner: S,
    inflate: Decompress,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    /// The peer closed the connection.
    in_eof: bool,
    /// The client's compressed stream ended (a final block).
    in_ended: bool,
    deflate: Compress,
    /// Compressed octets not yet written to `inner`, from `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    /// Something was deflated since the last sync flush.
    unflushed: bool,
}

impl<S> Deflate<S> {
    /// Wraps `inner`; `pending` is compressed input already read from it (what a
    /// buffered reader held).
    pub fn new(inner: S, pending: &[u8], level: u32) -> Deflate<S> {
        let mut input = vec![0; INPUT_WINDOW.max(pending.len())];
        input[..pending.len()].copy_from_slice(pending);
        Deflate {
            inner,
            inflate: Decompress::new(false),
            input,
            in_start: 0,
            in_end: pending.len(),
            in_eof: false,
            in_ended: false,
            deflate: Compress::new(Compression::new(level.min(9)), false),
            out: Vec::new(),
            out_pos: 0,
            unflushed: false,
        }
    }

    /// Deflates all of `data` into `out` (with `flush`, everything it asks for).
    fn deflate(&mut self, data: &[u8], flush: FlushCompress) -> io::Result<()> {
        let start = self.deflate.total_in();
        loop {
            let used = (self.deflate.total_in() - start) as usize;
            if self.out.capacity() - self.out.len() < 1024 {
                self.out.reserve((data.len() - used) / 2 + 4096);
            }
            self.deflate
                .compress_vec(&data[used..], &mut self.out, flush)
                .map_err(io::Error::other)?;
            let used = (self.deflate.total_in() - start) as usize;
            // Done when all input is taken and the output was not cut short by space.
            if used == data.len() && self.out.len() < self.out.capacity() {
                return Ok(());
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> Deflate<S> {
    /// Writes out the compressed octets waiting.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        if self.out.capacity() > 1 << 20 {
            self.out.shrink_to(OUTPUT_HIGH);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deflate<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.in_ended {
                let (in0, out0) = (this.inflate.total_in(), this.inflate.total_out());
                let status = this
                    .inflate
                    .decompress(
                        &this.input[this.in_start..this.in_end],
                        buf.initialize_unfilled(),
                        FlushDecompress::None,
                    )
                    .map_err(|e| corrupt(e.to_string()))?;
                let used = (this.inflate.total_in() - in0) as usize;
                let made = (this.inflate.total_out() - out0) as usize;
                this.in_start += used;
                buf.advance(made);
                if status == Status::StreamEnd {
                    this.in_ended = true;
                }
                if made > 0 {
                    return Poll::Ready(Ok(()));
                }
                if used > 0 && !this.in_ended {
                    continue;
                }
            }
            if this.in_ended || this.in_eof {
                // End of input (nothing filled).
                return Poll::Ready(Ok(()));
            }
            // More compressed input is needed: make room, then read some.
            if this.in_start == this.in_end {
                this.in_start = 0;
                this.in_end = 0;
            } else if this.in_end == this.input.len() {
                this.input.copy_within(this.in_start..this.in_end, 0);
                this.in_end -= this.in_start;
                this.in_start = 0;
            }
            if this.in_end == this.input.len() {
                // A full window the inflater takes nothing of.
                return Poll::Ready(Err(corrupt("the inflater makes no progress")));
            }
            let mut rb = ReadBuf::new(&mut this.input[this.in_end..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                this.in_eof = true;
            }
            this.in_end += n;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deflate<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() - this.out_pos >= OUTPUT_HIGH {
            ready!(this.poll_drain(cx))?;
        }
        let take = data.len().min(WRITE_CHUNK);
        if take == 0 {
            return Poll::Ready(Ok(0));
        }
        this.deflate(&data[..take], FlushCompress::None)?;
        this.unflushed = true;
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.unflushed {
            this.deflate(&[], FlushCompress::Sync)?;
            this.unflushed = false;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut c = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(data.len() + 1024);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        out
    }

    fn raw_inflate(data: &[u8]) -> Vec<u8> {
        let mut d = Decompress::new(false);
        let mut out = Vec::with_capacity(1 << 20);
        d.decompress_vec(data, &mut out, FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[tokio::test]
    async fn both_directions_and_sync_flush() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut s = Deflate::new(server, b"", LEVEL);
        let (mut cr, mut cw) = tokio::io::split(client);
        cw.write_all(&raw_deflate(b"a NOOP\r\n")).await.unwrap();
        let mut got = [0u8; 8];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"a NOOP\r\n");
        s.write_all(b"a OK done\r\n").await.unwrap();
        s.flush().await.unwrap();
        // Everything written is decodable after the flush: it ends with 00 00 ff ff.
        let mut wire = vec![0u8; 4096];
        let n = cr.read(&mut wire).await.unwrap();
        assert!(wire[..n].ends_with(&[0, 0, 0xff, 0xff]));
        assert_eq!(raw_inflate(&wire[..n]), b"a OK done\r\n");
    }

    #[tokio::test]
    async fn a_bomb_inflates_only_into_the_callers_buffer() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut s = Deflate::new(server, b"", LEVEL);
        let (_cr, mut cw) = tokio::io::split(client);
        // 16 MiB of 'x' is a few KiB compressed.
        let bomb = raw_deflate(&vec![b'x'; 16 << 20]);
        assert!(bomb.len() < 64 << 10);
        cw.write_all(&bomb).await.unwrap();
        let mut small = [0u8; 100];
        let n = s.read(&mut small).await.unwrap();
        assert!(n > 0 && n <= 100);
        assert!(small[..n].iter().all(|&b| b == b'x'));
        assert!(s.input.len() == INPUT_WINDOW);
    }

    #[tokio::test]
    async fn corrupt_input_is_an_error_and_pending_input_is_kept() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let first = raw_deflate(b"a NOOP\r\n");
        let mut s = Deflate::new(server, &first, LEVEL);
        let (_cr, mut cw) = tokio::io::split(client);
        let mut got = [0u8; 8];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"a NOOP\r\n");
        // Block type 3 is reserved (RFC 1951 3.2.3).
        cw.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
        let e = s.read(&mut got).await.unwrap_err();
        assert!(is_corrupt_input(&e), "{e:?}");
    }

    #[tokio::test]
    async fn eof_and_empty_flush_blocks() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut s = Deflate::new(server, b"", LEVEL);
        let mut cw = client;
        // An empty sync-flush block yields no octets but is not the end of input.
        let mut c = Compress::new(Compression::default(), false);
        let mut wire = Vec::with_capacity(1024);
        c.compress_vec(b"", &mut wire, FlushCompress::Sync).unwrap();
        c.compress_vec(b"x\r\n", &mut wire, FlushCompress::Sync)
            .unwrap();
        cw.write_all(&wire).await.unwrap();
        drop(cw);
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"x\r\n");
    }
}

//! Compression of the small per-message records the store keeps in its database (issue
//! 15: bytes on disk per message), with a built-in zstd dictionary of mail vocabulary.
//!
//! A stored message costs a few small records: a split body's skeleton (its header and
//! text, `parts.rs`), its parse (`blob_info.structure`) and its head (`heads.rs`), a few
//! hundred octets each. zstd alone gains little on such short inputs, because most of
//! what they hold is said once per record: header field names (RFC 5322 section 3.6),
//! MIME field names and values (RFC 2045, RFC 2046, RFC 2183), date words. A *raw
//! content dictionary* (RFC 8878 section 5: octets the decoder treats as if they had
//! been decoded before the frame) lets each of those be a short back-reference instead.
//! On the skeletons of the `attachments` benchmark this takes a compressed skeleton from
//! about 400 to about 250 octets, and a head from about 270 (zstd alone) to about 210.
//!
//! The dictionary is generic mail vocabulary (no benchmark text) and is part of the
//! storage format: [`DICT`] never changes. A new vocabulary would be a new dictionary
//! with its own marker where the records are tagged (`dedup.rs`), read alongside this
//! one.
//!
//! Frames made with the dictionary carry no dictionary ID (raw content dictionaries have
//! none), and a frame made without one decodes the same with it loaded (it never refers
//! to octets before its own start), so [`decompress`] reads both.

use std::cell::RefCell;
use std::io;

/// The dictionary (version 1): MIME tokens, then header lines as mail programs write
/// them, in CRLF (the stored records hold header octets or decoded fields; both match).
pub const DICT: &[u8] = concat!(
    "multipart mixed alternative related boundary text plain html charset utf-8 UTF-8 ",
    "us-ascii iso-8859-1 application pdf octet-stream zip image jpeg png gif name ",
    "filename base64 quoted-printable 7bit 8bit attachment inline message rfc822 ",
    "delivery-status vnd.openxmlformats-officedocument.wordprocessingml.document ",
    "vnd.openxmlformats-officedocument.spreadsheetml.sheet ",
    "vnd.openxmlformats-officedocument.presentationml.presentation msword vnd.ms-excel\r\n",
    "Return-Path: <\r\n",
    "Delivered-To: \r\n",
    "Received: from \r\n",
    "\tby  with ESMTPS id \r\n",
    "\tfor <>; \r\n",
    "From: \r\n",
    "To: \r\n",
    "Cc: \r\n",
    "Reply-To: \r\n",
    "Subject: Re: \r\n",
    "Subject: Fwd: \r\n",
    "Date: \r\n",
    "Message-ID: <\r\n",
    "In-Reply-To: <\r\n",
    "References: <\r\n",
    "MIME-Version: 1.0\r\n",
    "User-Agent: \r\n",
    "X-Mailer: \r\n",
    "Content-Type: multipart/mixed; boundary=\"\r\n",
    "Content-Type: multipart/alternative; boundary=\"\r\n",
    "Content-Type: multipart/related; boundary=\"\r\n",
    "Content-Type: text/plain; charset=utf-8\r\n",
    "Content-Type: text/plain; charset=\"UTF-8\"\r\n",
    "Content-Type: text/html; charset=utf-8\r\n",
    "Content-Transfer-Encoding: quoted-printable\r\n",
    "Content-Transfer-Encoding: 7bit\r\n",
    "Content-Transfer-Encoding: 8bit\r\n",
    "Content-Transfer-Encoding: base64\r\n",
    "Content-Disposition: inline\r\n",
    "Content-Disposition: attachment; filename=\"\r\n",
    "Content-ID: <\r\n",
    "Content-Type: application/pdf; name=\"\r\n",
    "Content-Type: image/jpeg; name=\"\r\n",
    "Content-Type: image/png; name=\"\r\n",
    "Content-Type: application/octet-stream; name=\"\r\n",
    "Content-Type: application/zip; name=\"\r\n",
    "Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document; name=\"\r\n",
    "Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet; name=\"\r\n",
    "Content-Type: application/vnd.openxmlformats-officedocument.presentationml.presentation; name=\"\r\n",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun,  Jan  Feb  Mar  Apr  May  Jun  Jul  Aug  Sep  Oct  Nov  Dec  +0000\r\n",
)
.as_bytes();

/// zstd level: the records are a few hundred octets, so the level costs nothing.
const LEVEL: i32 = 19;

/// Records larger than this are not expected here; a frame claiming more is refused.
const MAX_RECORD: u64 = 1 << 24;

thread_local! {
    // One context per thread with the dictionary loaded, reused (loading it and creating
    // a context cost more than compressing a record).
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses a record with the dictionary (a zstd frame with its content size).
pub fn compress(bytes: &[u8]) -> io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::with_dictionary(LEVEL, DICT)?);
        }
        c.as_mut().expect("set above").compress(bytes)
    })
}

/// Decompresses a frame made by [`compress`] or without a dictionary. A frame without
/// its content size, or claiming more than 16 MiB, is an error.
pub fn decompress(frame: &[u8]) -> io::Result<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten()
        .filter(|&n| n <= MAX_RECORD)
        .ok_or_else(|| io::Error::other("stored record is not a zstd frame with its size"))?;
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::with_dictionary(DICT)?);
        }
        let out = d
            .as_mut()
            .expect("set above")
            .decompress(frame, size as usize)?;
        if out.len() as u64 != size {
            return Err(io::Error::other(
                "stored record is shorter than its frame says",
            ));
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_plain_frames_read_too() {
        let header = b"From: A <a@example.com>\r\nTo: b@example.com\r\nSubject: Re: plans\r\n\
                       MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n";
        let z = compress(header).unwrap();
        assert_eq!(decompress(&z).unwrap(), header);
        // The dictionary is what makes it short.
        let plain = zstd::bulk::compress(header, LEVEL).unwrap();
        assert!(z.len() + 40 < plain.len(), "{} vs {}", z.len(), plain.len());
        // Frames made without the dictionary (what was stored before) read the same.
        assert_eq!(decompress(&plain).unwrap(), header);
        assert_eq!(decompress(&compress(b"").unwrap()).unwrap(), b"");
        // Garbage is an error, not octets.
        assert!(decompress(b"not a frame").is_err());
        let mut bad = z.clone();
        bad.truncate(z.len() - 3);
        assert!(decompress(&bad).is_err());
    }

    /// The dictionary is part of the storage format: a frame stored by an earlier build
    /// must still read, so it is pinned by length and hash.
    #[test]
    fn the_dictionary_does_not_change() {
        assert_eq!(DICT.len(), 1764);
        assert_eq!(
            blake3::hash(DICT).to_hex().as_str(),
            "08284a7b24f2dcd3eed19b237e6441c7be7584127662b7f4dc58a580f40b9aba"
        );
    }
}

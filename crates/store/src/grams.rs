//! A per-message trigram filter over the search text, so that SEARCH TEXT/BODY over a
//! big mailbox reads a few hundred bytes per message and decodes the text only of the
//! messages that may match (a Bloom filter with one hash: no false negatives, a few
//! false positives that the exact comparison then drops).
//!
//! IMAP text keys match case-insensitively as substrings (RFC 9051 6.4.4). The filter
//! holds every 3-octet window of the Unicode lower case (`str::to_lowercase`) of the
//! decoded headers and of the decoded body, each on its own. A needle (already lower
//! case, as the comparison uses it) can only match where each of its own 3-octet windows
//! is present:
//!
//! - a non-ASCII needle is compared with the lower case of the text, whose windows are
//!   exactly these;
//! - an ASCII needle is compared octet by octet ignoring ASCII case; the octets it matches
//!   are ASCII, and ASCII characters keep their place (lower-cased) in the Unicode lower
//!   case of the text.
//!
//! Needles shorter than 3 octets are not filtered.
//!
//! The text is exactly what the exact comparison reads (`ParsedMessage::search_headers`
//! and `search_body`), so the filter can only drop messages that comparison would not
//! match. When what the search text holds changes (version 2: MIME part headers in the
//! body), the version changes with it: a filter of another version lets every message
//! through, and the message's first read parses it again and stores a new filter.
//!
//! Format: a version octet, the number of bits (u32, little endian), the bits.

const VERSION: u8 = 2;
/// Bits per distinct trigram: with one hash, about 22% of the bits are set, so a needle
/// of n distinct trigrams passes a message without it with probability ~0.22^n.
const BITS_PER_GRAM: usize = 4;
const MIN_BITS: usize = 64;
/// At most this many octets of bits (texts of hundreds of KiB: the filter fills up and
/// lets everything through, which is slower but still exact).
const MAX_BYTES: usize = 64 * 1024;

fn gram_hash(w: &[u8]) -> u32 {
    let v = u64::from(w[0]) | u64::from(w[1]) << 8 | u64::from(w[2]) << 16;
    (v.wrapping_add(0x5bd1_e995)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        >> 32) as u32
}

fn bit_of(h: u32, bits: u32) -> usize {
    ((u64::from(h) * u64::from(bits)) >> 32) as usize
}

/// Past this many trigrams in all, the distinct ones are not counted (that would take
/// memory in proportion): the filter gets its largest size.
const MAX_COUNTED: usize = 1 << 20;

/// Builds the filter of a message's search text (decoded headers and body).
pub fn build(headers: &str, body: &str) -> Vec<u8> {
    let texts = [headers.to_lowercase(), body.to_lowercase()];
    let windows = || texts.iter().flat_map(|t| t.as_bytes().windows(3));
    let total: usize = texts.iter().map(|t| t.len().saturating_sub(2)).sum();
    let distinct = if total <= MAX_COUNTED {
        let mut hashes: Vec<u32> = windows().map(gram_hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        hashes.len()
    } else {
        usize::MAX / BITS_PER_GRAM
    };
    let bits = (distinct * BITS_PER_GRAM).clamp(MIN_BITS, MAX_BYTES * 8);
    let bits = bits.div_ceil(8) * 8;
    let mut out = vec![0u8; 5 + bits / 8];
    out[0] = VERSION;
    out[1..5].copy_from_slice(&(bits as u32).to_le_bytes());
    for w in windows() {
        let b = bit_of(gram_hash(w), bits as u32);
        out[5 + b / 8] |= 1 << (b % 8);
    }
    out
}

/// The probes of a needle set: the hashes of every needle's trigrams. `None` when no
/// needle is long enough to be filtered.
pub fn probes(needles_lower: &[&str]) -> Option<Vec<u32>> {
    let mut v: Vec<u32> = needles_lower
        .iter()
        .flat_map(|n| n.as_bytes().windows(3).map(gram_hash))
        .collect();
    v.sort_unstable();
    v.dedup();
    (!v.is_empty()).then_some(v)
}

/// May the text behind `filter` contain every needle of `probes`? A filter of an
/// unknown version or damaged says yes.
pub fn may_contain(filter: &[u8], probes: &[u32]) -> bool {
    let Some((&VERSION, rest)) = filter.split_first() else {
        return true;
    };
    let Some((bits, set)) = rest.split_first_chunk::<4>() else {
        return true;
    };
    let bits = u32::from_le_bytes(*bits);
    if bits == 0 || set.len() * 8 < bits as usize {
        return true;
    }
    probes.iter().all(|&h| {
        let b = bit_of(h, bits);
        set[b / 8] & (1 << (b % 8)) != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(h: &str, b: &str, needle: &str) -> bool {
        let lower = needle.to_lowercase();
        match probes(&[&lower]) {
            None => true,
            Some(p) => may_contain(&build(h, b), &p),
        }
    }

    #[test]
    fn no_false_negatives() {
        let h = "Subject: Grüße aus KÖLN\nFrom: Zoë <zoe@example.org>\n";
        let b = "The needle ZanZibar is here, İstanbul and \u{212A}elvin.";
        for n in [
            "zanzibar",
            "ZANZIBAR",
            "köln",
            "KÖLN",
            "grüße",
            "zoë",
            "example.org",
            "istanbul",
            "i̇stanbul",
            "kelvin",
            "elvin",
            "ne",
            "x",
            "",
        ] {
            // Every needle the text contains (the search's own comparison) passes.
            let low = n.to_lowercase();
            let contained = h.to_lowercase().contains(&low) || b.to_lowercase().contains(&low);
            if contained {
                assert!(hit(h, b, n), "{n:?} must pass");
            }
        }
        assert!(hit(h, b, "ne"), "short needles are not filtered");
        assert!(!hit(h, b, "quebec"));
        assert!(!hit("", "", "abc"));
        // Across the header/body boundary nothing matches, and the filter need not say so.
        assert!(hit("", "", "ab"));
    }

    #[test]
    fn damaged_or_unknown_filters_let_everything_through() {
        let p = probes(&["zanzibar"]).unwrap();
        assert!(may_contain(&[], &p));
        assert!(may_contain(&[9, 1, 0, 0, 0, 0], &p));
        assert!(may_contain(&[VERSION, 0, 1, 0, 0], &p));
        assert!(!may_contain(&build("", "alpha bravo"), &p));
    }

    #[test]
    fn big_texts_get_the_largest_filter_and_still_pass_their_words() {
        let body: String = (0..200_000).map(|i| format!("w{i} ")).collect();
        let f = build("", &body);
        assert_eq!(f.len(), 5 + MAX_BYTES);
        assert!(may_contain(&f, &probes(&["w199999"]).unwrap()));
    }

    #[test]
    fn few_false_positives() {
        let body: String = (0..400).map(|i| format!("word{i} ")).collect();
        let f = build("", &body);
        let p = |s: &str| probes(&[s]).unwrap();
        assert!(may_contain(&f, &p("word399")));
        let misses = (0..1000)
            .filter(|i| may_contain(&f, &p(&format!("zq{i}xv"))))
            .count();
        assert!(misses < 20, "{misses} false positives in 1000");
    }
}

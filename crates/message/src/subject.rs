//! The base subject of RFC 5256 section 2.1 (SORT SUBJECT, THREAD): moved here from
//! IMAP's SORT so that the sort keys made at delivery (`sortkeys`, version `LBS2`) carry
//! it, made by the same function IMAP uses for messages stored before.

use crate::casemap::casemap;

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Length of `subj-blob = "[" *BLOBCHAR "]" *WSP` at the start of `s`, if there is one.
fn blob_len(s: &str) -> Option<usize> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find([']', '['])?;
    if rest.as_bytes()[close] != b']' {
        return None;
    }
    let after = &rest[close + 1..];
    let ws = after.len() - after.trim_start_matches(is_wsp).len();
    Some(1 + close + 1 + ws)
}

/// Length of `*subj-blob subj-refwd` at the start of `s` (`subj-refwd = ("re" / ("fw"
/// ["d"])) *WSP [subj-blob] ":"`), if there is one. `s` is upper case.
fn leader_len(s: &str) -> Option<usize> {
    let mut pos = 0;
    while let Some(n) = blob_len(&s[pos..]) {
        pos += n;
    }
    let rest = &s[pos..];
    let word = ["FWD", "FW", "RE"]
        .into_iter()
        .find(|w| rest.starts_with(w))?;
    let mut p = pos + word.len();
    p += s[p..].len() - s[p..].trim_start_matches(is_wsp).len();
    if let Some(n) = blob_len(&s[p..]) {
        p += n;
    }
    s[p..].starts_with(':').then_some(p + 1)
}

/// The base subject of RFC 5256 section 2.1, case-mapped, and whether the subject said
/// it was a reply or forward (a `subj-refwd` leader, a `(fwd)` trailer or a `[fwd: ...]`
/// wrapper was removed), which THREAD=REFERENCES needs.
pub fn base_subject(subject: &str) -> (String, bool) {
    // (1) Encoded words are already decoded (at delivery); case-map, turn tabs and line
    // ends into spaces, and runs of spaces into one.
    let mut s = if subject.is_ascii() {
        // What `casemap` does to ASCII, without its copy or decoding (most subjects).
        let mut v = Vec::with_capacity(subject.len());
        for &b in subject.as_bytes() {
            let b = if char::from(b).is_whitespace() { b' ' } else { b.to_ascii_uppercase() };
            if !(b == b' ' && v.last() == Some(&b' ')) {
                v.push(b);
            }
        }
        String::from_utf8(v).unwrap_or_default()
    } else {
        let mut s = String::with_capacity(subject.len());
        for c in casemap(subject).chars() {
            let c = if c.is_whitespace() { ' ' } else { c };
            if !(c == ' ' && s.ends_with(' ')) {
                s.push(c);
            }
        }
        s
    };
    let mut refwd = false;
    loop {
        // (2) Trailers: "(fwd)" and white space.
        loop {
            if let Some(t) = s.strip_suffix("(FWD)") {
                s.truncate(t.len());
                refwd = true;
            } else if s.ends_with(is_wsp) {
                s.pop();
            } else {
                break;
            }
        }
        // (3)-(5): leaders, and a leading blob when something remains after it.
        loop {
            if s.starts_with(is_wsp) {
                s.remove(0);
                continue;
            }
            if let Some(n) = leader_len(&s) {
                s.drain(..n);
                refwd = true;
                continue;
            }
            if let Some(n) = blob_len(&s) {
                if n < s.len() {
                    s.drain(..n);
                    continue;
                }
            }
            break;
        }
        // (6) "[fwd: ...]" around the whole.
        if s.starts_with("[FWD:") && s.ends_with(']') {
            s = s[5..s.len() - 1].to_string();
            refwd = true;
            continue;
        }
        return (s, refwd);
    }
}

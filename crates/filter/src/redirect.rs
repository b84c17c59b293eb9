//! Sieve `redirect` to addresses that are not local: the copy that leaves through the
//! outbound queue, and the loop control RFC 5228 4.2 asks for ("Implementations SHOULD
//! take measures to implement loop control, possibly including adding headers to the
//! message or counting Received headers").
//!
//! - **Envelope.** RFC 5228 4.2 leaves the sender to the implementation ("MAY be copied
//!   from the message being processed") except that a null sender MUST stay null, so that
//!   a bounce of the redirected copy cannot start the same redirect again. We copy the
//!   original sender, as Pigeonhole does by default (`sieve_redirect_envelope_from =
//!   sender`): a failure report goes to whoever wrote the message. The destination's SPF
//!   check then sees our address for the sender's domain: the classic forwarding problem
//!   (SRS rewrites the sender for it; not done here).
//! - **Content.** "The redirect action makes no changes to the message body or existing
//!   headers, but it may add new headers", and the count of `Received` fields "MUST be
//!   larger" than in the message as received: the copy is the message with our headers
//!   (the filter's, e.g. `Authentication-Results`) and, above them, our `Received` field
//!   (RFC 5321 4.4) and `X-Sieve-Redirected-From: <user>` (Pigeonhole's header).
//! - **Loops.** (1) The interpreter redirects nothing from a message that has
//!   `[filter] sieve_redirect_max_hops` `Received` fields or more (the hop count of
//!   RFC 5321 6.3); (2) a message that already carries `X-Sieve-Redirected-From` naming
//!   the user has been around a loop ([`looped`]): it is kept, not sent again; (3) one
//!   message (by Message-ID) goes to one address once per
//!   `sieve_redirect_duplicate_period` ([`duplicate_id`], recorded in the store like
//!   vacation's replies, as Pigeonhole's duplicate database does); (4) at most
//!   `sieve_max_redirects` per script run, and never to the user's own address (the
//!   interpreter).

/// The header Pigeonhole adds to a redirected message (and checks for loops).
pub const REDIRECTED_FROM: &str = "X-Sieve-Redirected-From";

/// The unfolded values of every `name:` field in the message's header (case-insensitive).
pub fn header_values(message: &[u8], name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in message.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(v) = current.as_mut() {
                v.push(' ');
                v.push_str(String::from_utf8_lossy(line).trim());
            }
            continue;
        }
        if let Some(v) = current.take() {
            out.push(v.trim().to_string());
        }
        if let Some(colon) = line.iter().position(|b| *b == b':') {
            if line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(name.as_bytes())
            {
                current = Some(
                    String::from_utf8_lossy(&line[colon + 1..])
                        .trim()
                        .to_string(),
                );
            }
        }
    }
    if let Some(v) = current {
        out.push(v.trim().to_string());
    }
    out
}

/// Whether the message was redirected by this user before: it came back around a loop.
pub fn looped(message: &[u8], user: &str) -> bool {
    let user = user.to_ascii_lowercase();
    header_values(message, REDIRECTED_FROM)
        .iter()
        .any(|v| v.to_ascii_lowercase().contains(&user))
}

/// The key under which "this message went to this address" is remembered; `None` for a
/// message without a Message-ID (nothing to recognise it by).
pub fn duplicate_id(message: &[u8], to: &str) -> Option<String> {
    let id = header_values(message, "Message-ID").into_iter().next()?;
    let id = id.trim();
    if id.is_empty() {
        return None;
    }
    Some(format!("redirect {} {}", id, to.to_ascii_lowercase()))
}

/// The copy that leaves: `X-Sieve-Redirected-From`, our `Received` field, then the
/// message as the script saw it (the filter's headers and the message received).
pub fn message(user: &str, received: &[u8], seen: &[u8]) -> Vec<u8> {
    let user: String = user.chars().filter(|c| !c.is_control()).collect();
    let mut out = Vec::with_capacity(seen.len() + received.len() + 64);
    out.extend_from_slice(format!("{REDIRECTED_FROM}: <{user}>\r\n").as_bytes());
    out.extend_from_slice(received);
    out.extend_from_slice(seen);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[u8] = b"Received: from a\r\n\tby b; now\r\nX-Sieve-Redirected-From: <Alice@Example.com>\r\nMessage-ID:\r\n <1@x>\r\nSubject: hi\r\n\r\nMessage-ID: <body@x>\r\n";

    #[test]
    fn headers_are_unfolded_and_stop_at_the_body() {
        assert_eq!(header_values(M, "message-id"), vec!["<1@x>".to_string()]);
        assert_eq!(
            header_values(M, "Received"),
            vec!["from a by b; now".to_string()]
        );
        assert!(header_values(M, "X-Other").is_empty());
    }

    #[test]
    fn loops_and_duplicates() {
        assert!(looped(M, "alice@example.com"));
        assert!(!looped(M, "bob@example.com"));
        assert_eq!(
            duplicate_id(M, "Bob@Remote.test").as_deref(),
            Some("redirect <1@x> bob@remote.test")
        );
        assert_eq!(
            duplicate_id(b"Subject: x\r\n\r\nMessage-ID: <no>\r\n", "b@r"),
            None
        );
    }

    #[test]
    fn the_copy_adds_headers_above_the_message() {
        let m = message(
            "alice@example.com",
            b"Received: from h\r\n",
            b"Subject: x\r\n\r\nbody\r\n",
        );
        assert_eq!(
            m,
            b"X-Sieve-Redirected-From: <alice@example.com>\r\nReceived: from h\r\nSubject: x\r\n\r\nbody\r\n".to_vec()
        );
    }
}

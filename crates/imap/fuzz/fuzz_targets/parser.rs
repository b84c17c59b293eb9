//! The IMAP command parser must never panic, whatever it is sent; it is also handed
//! the literal-marker scanner of the connection layer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = letterbox_imap::parser::parse_command(data);
    let _ = letterbox_imap::conn::trailing_literal(data);
    let _ = letterbox_imap::utf7::decode(data);
    let _ = letterbox_imap::datetime::parse_date_time(data);
});

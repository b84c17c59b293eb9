//! ENVELOPE and BODYSTRUCTURE/BODY from the structure stored at delivery (RFC 9051
//! 7.5.2); nothing is parsed here. The rendering is the message crate's, so that the
//! store can keep a message's BODYSTRUCTURE rendered at delivery with the same octets.

pub use letterbox_message::imap::{body_structure, envelope};

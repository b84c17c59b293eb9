//! A message's *searchable head* (issue 18; RFC 9051 6.4.4 header keys): what SEARCH's
//! header keys compare, one octet string scanned in place. The record is the message
//! crate's (`letterbox_message::searchable`, which documents it) so that the store makes
//! it at delivery from the one parse (`Backend::searchables_many` reads it); IMAP keeps
//! it in the process's message cache, and makes it from decoded heads for messages
//! stored without one, kept then in IMAP's own chunks (`session::cache`, kind
//! [`KIND`]).

pub use letterbox_message::searchable::{encode, in_first_part, valid, Field, Record};

/// The store's kind of chunk for these records (`Backend::save_message_cache`; 1 and 2
/// are BODYSTRUCTURE's renderings).
pub const KIND: u8 = 3;

/// The first octets of a stored chunk of these records: the record's version
/// (`letterbox_message::searchable::VERSION`; chunks of an earlier one are ignored and
/// written again).
pub const MAGIC: &[u8; 4] = letterbox_message::searchable::VERSION;

//! The store's conformance suite: every test in `tests.rs` runs once per backend listed
//! in the [`backends!`] call below, each test against a fresh, empty store opened by the
//! backend's `OPEN` function in a new temporary directory. A second backend is added by
//! one line there (`postgres => <open a fresh database>,`); its tests then run as
//! `conformance::postgres::*` beside `conformance::sqlite::*`.
//!
//! The suite meets the store through [`Store`] only, as the protocol crates do, so a test
//! that passes here holds for every backend: UIDs and MODSEQs, quota and warnings, blob
//! sharing, flags, expunge, copy/move, delivery, change feed... Tests that look at SQLite's
//! own tables and files are in `tests_sqlite.rs`.

use crate::*;
use std::path::Path;

/// Opens a fresh, empty store of one backend, keeping its files (if any) in `dir`.
pub(crate) type Open = fn(&Path, StoreOptions) -> Result<Store>;

macro_rules! backends {
    ($($name:ident => $open:expr),* $(,)?) => {$(
        pub(crate) mod $name {
            #![allow(dead_code)]
            use crate::*;
            pub(crate) const OPEN: super::Open = $open;
            include!("tests.rs");
            include!("tests_transfer.rs");
        }
    )*};
}

backends! {
    sqlite => |dir, opts| Store::open_embedded(dir, opts),
    postgres => |dir, opts| crate::pg::testing::open_fresh(dir, opts),
}

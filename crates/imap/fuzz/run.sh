#!/usr/bin/env bash
# Bounded fuzzing of the IMAP command parser (see scripts/fuzz).
#   crates/imap/fuzz/run.sh [SECONDS]      (default 60)
# `cargo +nightly fuzz run parser` works too where a nightly toolchain exists.
exec "$(dirname "$0")/../../../scripts/fuzz" "$(dirname "$0")" parser "${1:-60}"

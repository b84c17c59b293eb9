#!/usr/bin/env bash
# Bounded fuzzing of the POP3 session (every command, SASL, RETR/TOP dot-stuffing); see
# scripts/fuzz.
#   crates/pop3/fuzz/run.sh [SECONDS]      (default 60)
# `cargo +nightly fuzz run session` works too where a nightly toolchain exists.
exec "$(dirname "$0")/../../../scripts/fuzz" "$(dirname "$0")" session "${1:-60}"

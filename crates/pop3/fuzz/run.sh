#!/usr/bin/env bash
# Bounded fuzzing of the POP3 session (every command, SASL, RETR/TOP dot-stuffing) with libFuzzer, on the stable toolchain
# (coverage instrumentation through -Cpasses=sancov-module; no sanitizer, so it finds
# panics, overflows and hangs, not memory errors: the crate has no unsafe code).
#   crates/pop3/fuzz/run.sh [SECONDS]      (default 60)
# `cargo +nightly fuzz run session` works too where a nightly toolchain exists.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks" \
    CARGO_TARGET_DIR="$target_dir" cargo build --release --target "$triple" --bin session
mkdir -p corpus
cp -n seeds/* corpus/ 2>/dev/null || true
"$target_dir/$triple/release/session" -max_total_time="$secs" -max_len=4096 -timeout=10 corpus

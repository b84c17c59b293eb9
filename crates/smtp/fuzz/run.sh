#!/usr/bin/env bash
# Bounded fuzzing of the SMTP command-line handling and content readers (target
# `commands`) or of message parsing at delivery (`delivery`); see scripts/fuzz.
#   crates/smtp/fuzz/run.sh [SECONDS] [TARGET]     (default 60 commands)
# `cargo +nightly fuzz run commands` works too where a nightly toolchain exists.
target="${2:-commands}"
seeds=seeds corpus=corpus
if [ "$target" != commands ]; then seeds="seeds-$target" corpus="corpus-$target"; fi
exec "$(dirname "$0")/../../../scripts/fuzz" "$(dirname "$0")" "$target" "${1:-60}" "$seeds" "$corpus"

#!/usr/bin/env bash
# Installs what building Coinslot needs beyond the Rust toolchain. Safe to run again.
#
# Today that is nothing but a C compiler (the test wallets' SQLite is compiled from source):
# Coinslot's mint is built on the `cashu` crate and does not need cdk's gRPC signatory, so no
# `protoc` either.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found: install the Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi
if ! command -v cc >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq build-essential
    else
        echo "setup: no C compiler (cc) found: install gcc or clang" >&2
        exit 1
    fi
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

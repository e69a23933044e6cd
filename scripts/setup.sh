#!/usr/bin/env bash
# Installs what building Coinslot needs beyond the Rust toolchain. Safe to run again.
#
# - a C compiler (the test wallets' SQLite is compiled from source);
# - `protoc`, for the LND backend (cdk-lnd compiles LND's gRPC definitions at build time);
# - `curl`, which the forward-proxy test drives as a third-party client.
# deploy/Dockerfile runs this script too: one list for a developer and for the image.
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
if ! command -v protoc >/dev/null 2>&1 && [ -z "${PROTOC:-}" ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get install -y -qq protobuf-compiler >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }
    elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
        sudo apt-get install -y -qq protobuf-compiler
    else
        echo "setup: protoc not found: install the protobuf compiler (apt: protobuf-compiler, brew: protobuf) or set PROTOC" >&2
        exit 1
    fi
fi
if ! command -v curl >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get install -y -qq curl >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq curl; }
    else
        echo "setup: curl not found: the forward-proxy test needs it (apt: curl)" >&2
    fi
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

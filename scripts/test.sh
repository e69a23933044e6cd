#!/usr/bin/env bash
# Runs every test of the workspace: unit, storage conformance, and end to end (a real
# coinslotd on 127.0.0.1:0 with real cdk wallets over HTTP).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace "$@"
# Tests that drive other projects' clients and servers (the openai SDKs from PyPI and npm,
# the PyPI nostr-relay) are ignored by a plain `cargo test`, which says so; with
# COINSLOT_INTEROP=1 (.ci/run sets it where python3, node and npm exist) they run here.
if [ -n "${COINSLOT_INTEROP:-}" ]; then
    cargo test -p paid-llm --test sdk -- --ignored
    cargo test -p coinslot-tests --test interop -- --ignored
    cargo test -p coinslot-tests --test relay_front -- --ignored
fi
# Likewise the browser tests written since (chromium and chromedriver; .ci/run installs them).
if [ "${COINSLOT_BROWSER:-}" = 1 ]; then
    cargo test -p paid-search --test browser -- --ignored
fi

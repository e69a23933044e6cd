#!/usr/bin/env bash
# Runs every test of the workspace: unit, storage conformance, and end to end (a real
# coinslotd on 127.0.0.1:0 with real cdk wallets over HTTP).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace "$@"

#!/usr/bin/env bash
# Builds and runs coinslotd on http://127.0.0.1:3338 (the mint, the top-up page at /, the
# admin API) with its data in ./coinslot-data and the fake Lightning backend (no real money).
# Extra arguments go to coinslotd, e.g. `--config examples/proxy.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Built as deploy/Dockerfile builds it (tests/e2e/image.rs checks they agree).
exec cargo run --release -p coinslotd --locked -- "$@"

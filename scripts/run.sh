#!/usr/bin/env bash
# Builds and runs coinslotd: a mint on http://127.0.0.1:3338 with its data in ./coinslot-data
# and the fake Lightning backend (no real money). Extra arguments go to coinslotd.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release -p coinslotd -- "$@"

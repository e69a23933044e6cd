#!/usr/bin/env bash
# Supply chain: licenses, banned crates and sources per deny.toml (cargo-deny, installed
# once into ~/.cache/coinslot/tools). Advisories need the RustSec database from the network;
# where there is one: `bash scripts/deny.sh advisories`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$HOME/.cache/coinslot/tools"
version=0.20.2
deny="$tools/bin/cargo-deny"
if ! "$deny" --version 2>/dev/null | grep -q "$version"; then
    echo "== installing cargo-deny $version into $tools"
    cargo install --quiet --locked --root "$tools" cargo-deny --version "$version"
fi
if [ "$#" -gt 0 ]; then
    exec "$deny" check "$@"
fi
exec "$deny" check bans licenses sources

#!/usr/bin/env bash
# Runs every test of the workspace: unit, storage conformance, and end to end (a real
# coinslotd on 127.0.0.1:0 with real cdk wallets over HTTP).
#
# Tests that need something a plain machine may not have (a PostgreSQL server, Node.js and
# Python with their registries, Chromium) are #[ignore]d with what they need, so a plain
# `cargo test` lists them as ignored instead of passing them unrun. Each group below runs
# them (`--ignored`) when it is enabled, and fails if it then ran none:
#   COINSLOT_TEST_POSTGRES_URL=postgres://…   the PostgreSQL store, two instances, the crash test
#   COINSLOT_INTEROP=1                        other wallets, SDKs and relays (python3, node, npm)
#   COINSLOT_TEST_POSTGRES_TLS=1              TLS to a PostgreSQL cluster of the test's own (initdb, pg_ctl)
#   COINSLOT_TEST_LNBITS=1                    a real LNbits from PyPI as the Lightning backend (python3)
#                                             (with COINSLOT_TEST_POSTGRES_TLS=1 too: the production walk-through)
#   COINSLOT_BROWSER=1                        pages in headless Chromium (chromium, chromedriver)
#   COINSLOT_IMAGE=1                          coinslotd built as deploy/Dockerfile builds it (release)
# .ci/run enables every group the machine can run and reports what stayed skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace "$@"

# gated GROUP CARGO-TEST-ARGS...: the ignored tests those arguments select; at least one must run.
gated() {
    local group=$1
    shift
    echo "== gated ($group): cargo test $* -- --ignored"
    local out
    out="$(mktemp)"
    cargo test "$@" -- --ignored 2>&1 | tee "$out"
    local ran
    ran=$(grep -E '^test result:' "$out" \
        | awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^(passed|failed)/) n += $(i - 1) } END { print n + 0 }')
    rm -f "$out"
    if [ "$ran" -eq 0 ]; then
        echo "test.sh: the $group group is enabled but 'cargo test $*' ran no ignored test" >&2
        exit 1
    fi
}

# `--workspace --test NAME` selects every test target of that name with the features of the
# plain run above, so nothing is built again.
if [ -n "${COINSLOT_TEST_POSTGRES_URL:-}" ]; then
    gated postgres --workspace --test conformance   # coinslot-store-postgres's
    gated postgres --workspace --test postgres
    gated postgres --workspace --test crash
fi
if [ -n "${COINSLOT_INTEROP:-}" ]; then
    gated interop --workspace --test interop
    gated interop --workspace --test relay_front
    gated interop --workspace --test sdk            # paid-llm: the openai SDKs
fi
if [ "${COINSLOT_TEST_POSTGRES_TLS:-}" = 1 ]; then
    gated postgres-tls --workspace --test postgres_tls
fi
if [ "${COINSLOT_TEST_LNBITS:-}" = 1 ]; then
    gated lnbits --workspace --test lnbits
fi
if [ "${COINSLOT_TEST_LNBITS:-}" = 1 ] && [ "${COINSLOT_TEST_POSTGRES_TLS:-}" = 1 ]; then
    gated production --workspace --test production   # docs/production.md, end to end
fi
if [ "${COINSLOT_BROWSER:-}" = 1 ]; then
    gated browser --workspace --test browser        # top-up page, arcade, paid-search, dashboard
fi
if [ "${COINSLOT_IMAGE:-}" = 1 ]; then
    gated image --workspace --test image
fi

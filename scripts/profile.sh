#!/usr/bin/env bash
# Profiles the server side of a paid request or a swap under load, as BENCHMARKS.md reports:
#
#   bash scripts/profile.sh paid [seconds]   # paywall-load, one-proof tokens, 16 clients
#   bash scripts/profile.sh swap [seconds]   # coinslot-load, swaps 1→1, 16 clients
#   bash scripts/profile.sh swap-pg [seconds]   # the same on PostgreSQL ($COINSLOT_TEST_POSTGRES_URL)
#
# It builds the load binaries (release, with debug info), starts one, attaches `perf record`
# when the timed phase starts, and writes a flame graph (inferno) and the folded stacks to
# $CARGO_TARGET_DIR/profile/, then prints the CPU share of each thread kind and the hottest
# frames. Needs `perf` (Debian: linux-perf) and inferno (installed with cargo if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-paid}"
secs="${2:-4}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/coinslot/target}"
out="$CARGO_TARGET_DIR/profile"
mkdir -p "$out"

if ! command -v perf >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get install -y -qq linux-perf >/dev/null
    else
        echo "profile: perf not found (Debian: apt-get install linux-perf)" >&2
        exit 1
    fi
fi
command -v inferno-flamegraph >/dev/null 2>&1 || cargo install --locked inferno

case "$kind" in
    paid) bin=paywall-load; args=(--tokens-only); mark="tokens ready" ;;
    swap) bin=coinslot-load; args=(--swap-only); mark="swaps start" ;;
    swap-pg)
        bin=coinslot-load; mark="swaps start"
        args=(--swap-only --postgres-url "${COINSLOT_TEST_POSTGRES_URL:?set COINSLOT_TEST_POSTGRES_URL}")
        ;;
    *) echo "profile: unknown kind '$kind' (paid, swap or swap-pg)" >&2; exit 2 ;;
esac
cargo build --release -q -p coinslot-tests --bin "$bin"
log="$out/$kind.log"
"$CARGO_TARGET_DIR/release/$bin" "${args[@]}" --seconds $((secs + 3)) --concurrency 16 >"$out/$kind.out" 2>"$log" &
load=$!
for _ in $(seq 1 600); do
    grep -q "$mark" "$log" && break
    kill -0 "$load" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.2
done
pid=$(grep -o "pid [0-9]*" "$log" | head -1 | cut -d' ' -f2)
sleep 1
perf record -q -F 1999 -g --call-graph dwarf,16384 -p "$pid" -o "$out/$kind.perf" -- sleep "$secs" >/dev/null 2>&1
wait "$load"
cat "$out/$kind.out"
perf script -i "$out/$kind.perf" 2>/dev/null | inferno-collapse-perf >"$out/$kind.folded" 2>/dev/null
inferno-flamegraph <"$out/$kind.folded" >"$out/$kind.svg"
rm -f "$out/$kind.perf"
python3 - "$out/$kind.folded" <<'PY'
import collections, re, sys
threads, frames, total = collections.Counter(), collections.Counter(), 0
for line in open(sys.argv[1]):
    stack, n = line.rsplit(" ", 1)
    n = int(n)
    total += n
    parts = stack.split(";")
    thread = re.sub(r"-\d+$", "", parts[0])
    threads[thread] += n
    frames[(thread, re.sub(r"::h[0-9a-f]{16}", "", parts[-1])[:100])] += n
print("\nCPU by thread (load-client is the load generator, the rest the server):")
for name, n in threads.most_common():
    print(f"  {100 * n / total:6.2f}%  {name}")
# Self time of the server's threads by where the leaf frame lives. (Matching "sled::"
# anywhere in a stack also matched coinslot_store_sled's own frames: leaf frames only.)
kinds, server = collections.Counter(), 0
for line in open(sys.argv[1]):
    stack, n = line.rsplit(" ", 1)
    if stack.startswith("load-client"):
        continue
    n = int(n)
    server += n
    leaf = stack.split(";")[-1]
    if "secp256k1" in leaf:
        kind = "secp256k1"
    elif "::" in leaf:
        kind = re.sub(r"^[<&\s]*(dyn )?", "", leaf).split("::")[0].split(" as ")[0]
    elif re.match(r"^(__)?(mem|malloc|_int_|free|cfree|realloc|calloc|pthread|__lll|tcache|unlink|sysmalloc|malloc_consolidate)", leaf):
        kind = "libc (allocation, copies, locks)"
    else:
        kind = "kernel and the rest"
    kinds[kind] += n
print("\nserver CPU (self time) by where the leaf frame lives:")
for name, n in kinds.most_common(12):
    print(f"  {100 * n / max(server, 1):6.2f}%  {name}")
print("\nhottest frames (self time):")
for (thread, frame), n in frames.most_common(20):
    print(f"  {100 * n / total:6.2f}%  {thread:16} {frame}")
PY
echo "flame graph: $out/$kind.svg"

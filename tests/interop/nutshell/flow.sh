#!/usr/bin/env bash
# A new user's flow with Nutshell's `cashu` CLI against a running coinslotd:
# top up, send, receive in a second wallet, double receive refused, restore from the mnemonic.
# Usage: flow.sh MINT_URL   (needs `cashu` on PATH; exits non-zero on any failure)
set -euo pipefail
export MINT_URL="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
balance() { CASHU_DIR="$1" cashu -y balance | grep -o 'Balance: [0-9]* sat' | grep -o '[0-9]*' | head -1; }
fail() { echo "nutshell flow FAILED: $*" >&2; exit 1; }

CASHU_DIR="$work/alice" cashu -y invoice 100 >/dev/null
[ "$(balance "$work/alice")" = 100 ] || fail "top-up: balance is not 100"

token=$(CASHU_DIR="$work/alice" cashu -y send 21 | grep -o 'cashu[AB][A-Za-z0-9_=-]*' | head -1)
[ -n "$token" ] || fail "send printed no token"
[ "$(balance "$work/alice")" = 79 ] || fail "send: balance is not 79"

CASHU_DIR="$work/bob" cashu -y receive "$token" >/dev/null
[ "$(balance "$work/bob")" = 21 ] || fail "receive: balance is not 21"
if CASHU_DIR="$work/carol" cashu -y receive "$token" > "$work/double.log" 2>&1 \
    && ! grep -q 'already spent' "$work/double.log"; then
    fail "a spent token was received twice"
fi
grep -q '11001' "$work/double.log" || fail "double receive did not report code 11001"

mnemonic=$(CASHU_DIR="$work/bob" cashu -y info --mnemonic | tail -1 | sed 's/^ - //')
mkdir -p "$work/bob2/wallet"
CASHU_DIR="$work/bob2" cashu restore --to 2 --batch 50 <<< "$mnemonic" >/dev/null
[ "$(balance "$work/bob2")" = 21 ] || fail "restore: balance is not 21"
echo "nutshell flow ok"

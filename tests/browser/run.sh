#!/usr/bin/env bash
# The viewer in headless Chromium: installs Debian's chromium and playwright-core (no browser download)
# when missing, builds the binary, serves the sample data on 127.0.0.1:0 and runs viewer.mjs against it.
# Its last line is `N passed, N failed`; it exits non-zero when any check failed.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
npm ci --silent --no-audit --no-fund
echo "== the pixel arithmetic (node --test)"
node --test pixels.test.mjs 2>&1 | tail -n 9
(cd ../.. && cargo build --locked --quiet)
BIN=${SMART_IMAGING_BIN:-../../target/debug/smart-imaging}
LOG=../../target/browser-server.log
OUT=$(mktemp)
"$BIN" --config ../../smart-imaging.toml --listen 127.0.0.1:0 --sandbox-listen 127.0.0.1:0 > "$OUT" 2> "$LOG" &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -f "$OUT"' EXIT
for _ in $(seq 200); do grep -q '^listening on ' "$OUT" && break; sleep 0.1; done
BASE=$(sed -n 's/^listening on //p' "$OUT" | head -n 1)
[ -n "$BASE" ] || { echo "the server did not start" >&2; cat "$LOG" >&2; exit 1; }
echo "== the viewer in Chromium"
BASE="$BASE" node viewer.mjs

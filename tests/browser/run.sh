#!/usr/bin/env bash
# The viewer in headless Chromium: installs Debian's chromium and playwright-core (no browser download)
# when missing, builds the binary, serves the sample data on 127.0.0.1:0 (and again with study tokens that
# expire after a few seconds, for refresh.mjs) and runs viewer.mjs against them.
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
ROOT=$(cd ../.. && pwd)
TMP=$(mktemp -d)
# serve runs in a command substitution, a subshell: the servers' process ids go to a file the trap reads.
trap 'if [ -f "$TMP/pids" ]; then kill $(cat "$TMP/pids") 2>/dev/null || true; fi; rm -rf "$TMP"' EXIT

# Starts the binary with the configuration $1 (and the flags after it), logging to target/browser-$2.log, and
# prints the address of its `listening on` line.
serve() {
    local config=$1 name=$2
    shift 2
    "$BIN" --config "$config" --listen 127.0.0.1:0 "$@" > "$TMP/$name.out" 2> "$ROOT/target/browser-$name.log" &
    echo $! >> "$TMP/pids"
    for _ in $(seq 200); do grep -q '^listening on ' "$TMP/$name.out" && break; sleep 0.1; done
    sed -n 's/^listening on //p' "$TMP/$name.out" | head -n 1
}

BASE=$(serve "$ROOT/smart-imaging.toml" server --sandbox-listen 127.0.0.1:0)
[ -n "$BASE" ] || { echo "the server did not start" >&2; cat "$ROOT/target/browser-server.log" >&2; exit 1; }

# A second server whose study tokens expire after TTL seconds, for refresh.mjs: the demo tenant alone, on the
# repository's index (named by its absolute path, since the file is in a temporary folder).
TTL=3
cat > "$TMP/short-ttl.toml" <<END
[server]
study_token_ttl = $TTL

[images]
index = "$ROOT/data/index.toml"

[tenants.demo]
authorization.type = "mock"
authorization.patient = { id = "p1", name = "Anna Müller", identifier = [{ system = "http://hospital.example.org", value = "MRN-1001", type = "MR" }] }
images.lookup = "studies-by-context"
END
TTL_BASE=$(serve "$TMP/short-ttl.toml" short-ttl)
[ -n "$TTL_BASE" ] || { echo "the short-TTL server did not start" >&2; cat "$ROOT/target/browser-short-ttl.log" >&2; exit 1; }

echo "== the viewer in Chromium"
BASE="$BASE" TTL_BASE="$TTL_BASE" TTL="$TTL" node viewer.mjs

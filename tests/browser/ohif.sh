#!/usr/bin/env bash
# OHIF Viewer v3 (@ohif/app 3.13.2, its prebuilt dist/) opening each sample study from its Endpoint address, in
# headless Chromium: the `demo` tenant, and the `smart` tenant with a token of the built-in sandbox EHR, each in
# both enableStudyLazyLoad modes (ohif.mjs). OHIF's package is fetched once with `npm pack` into
# target/ohif/ (a re-run does not fetch it again) and served by ohif_serve.py; the server is the binary serving
# smart-imaging.toml. Everything listens on 127.0.0.1:0. Its last line is `N passed, N failed`; it exits
# non-zero when any check failed.
set -euo pipefail
cd "$(dirname "$0")"
OHIF_VERSION=3.13.2
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
npm ci --silent --no-audit --no-fund
CACHE=../../target/ohif
DIST=$CACHE/ohif-app-$OHIF_VERSION/dist
if [ ! -f "$DIST/index.html" ]; then
    mkdir -p "$CACHE"
    [ -f "$CACHE/ohif-app-$OHIF_VERSION.tgz" ] || (cd "$CACHE" && npm pack --silent "@ohif/app@$OHIF_VERSION" >/dev/null)
    rm -rf "$CACHE/ohif-app-$OHIF_VERSION" && mkdir -p "$CACHE/ohif-app-$OHIF_VERSION"
    tar -xzf "$CACHE/ohif-app-$OHIF_VERSION.tgz" -C "$CACHE/ohif-app-$OHIF_VERSION" --strip-components=1 package/dist
fi
(cd ../.. && cargo build --locked --quiet)
BIN=${SMART_IMAGING_BIN:-../../target/debug/smart-imaging}
LOG=../../target/ohif-server.log
WORK=$(mktemp -d)
"$BIN" --config ../../smart-imaging.toml --listen 127.0.0.1:0 --sandbox-listen 127.0.0.1:0 > "$WORK/server.out" 2> "$LOG" &
SERVER=$!
python3 ohif_serve.py "$DIST" "$WORK" > "$WORK/ohif.out" 2>&1 &
STATIC=$!
trap 'kill $SERVER $STATIC 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 200); do
    grep -q '^listening on ' "$WORK/server.out" && grep -q '^listening on ' "$WORK/ohif.out" && break
    sleep 0.1
done
BASE=$(sed -n 's/^listening on //p' "$WORK/server.out" | head -n 1)
SANDBOX=$(sed -n 's/^sandbox listening on \([^ ]*\).*/\1/p' "$WORK/server.out" | head -n 1)
OHIF=$(sed -n 's/^listening on //p' "$WORK/ohif.out" | head -n 1)
[ -n "$BASE" ] && [ -n "$SANDBOX" ] && [ -n "$OHIF" ] || { echo "a server did not start" >&2; cat "$LOG" "$WORK/ohif.out" >&2; exit 1; }
echo "== OHIF $OHIF_VERSION in Chromium"
BASE="$BASE" SANDBOX="$SANDBOX" OHIF="$OHIF" CONFIG_DIR="$WORK" timeout 600 node ohif.mjs

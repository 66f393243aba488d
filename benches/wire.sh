#!/usr/bin/env bash
# Retrieve and search beside nginx serving the same bytes: the 40 x 132 KB and 300 x 525 KB studies and
# one instance at 1 and 8 clients, and ImagingStudy search at 1 and 16 connections, each as a ratio to
# nginx in the same run (benches/wire.py says how). `benches/run.sh` runs it too.
#
# Usage: bash benches/wire.sh
#   BENCH_DIR     work folder (default /tmp/smart-imaging-bench-wire); a re-run reuses the dataset.
#   BIN           the smart-imaging binary to measure (default: built here with cargo build --release).
#   ANCHOR_BIN    another build to show beside it (a previous commit, say), with its ratio.
#   WIRE_SECONDS  length of each wrk run (default 5); WIRE_ROUNDS rounds, the median counts (default 3).
# Installs nginx and wrk (Debian) and pydicom (pip) when missing. Everything runs on 127.0.0.1 and every
# server it starts is stopped at the end.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/smart-imaging-bench-wire}"
mkdir -p "$BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"

missing=()
for tool in nginx wrk; do command -v "$tool" > /dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
    [[ $EUID -eq 0 ]] || { echo "install ${missing[*]} first (Debian packages)" >&2; exit 2; }
    apt-get update -qq
    # A daemon's package would start it on port 80 unless policy-rc.d forbids it.
    cleanup_policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && cleanup_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
    if [[ -n "$cleanup_policy" ]]; then rm -f /usr/sbin/policy-rc.d; fi
fi
python3 -c 'import pydicom' 2>/dev/null || python3 -m pip install --quiet 'pydicom>=3'

if [[ -z "${BIN:-}" ]]; then
    (cd "$REPO" && cargo build --release --quiet)
    mkdir -p "$BENCH_DIR/bin"
    cp "${CARGO_TARGET_DIR:-$REPO/target}/release/smart-imaging" "$BENCH_DIR/bin/smart-imaging"
    BIN="$BENCH_DIR/bin/smart-imaging"
fi
python3 "$HERE/wire_data.py" --out "$BENCH_DIR/data"
"$BIN" index "$BENCH_DIR/data/dicom" --out "$BENCH_DIR/data/index.toml" 2> "$BENCH_DIR/index.log" ||
    { cat "$BENCH_DIR/index.log" >&2; exit 1; }
# Every file once through the page cache, so that no server starts cold.
cat "$BENCH_DIR"/data/dicom/*/*/*/*.dcm > /dev/null
python3 "$HERE/wire.py" "$BIN" "$BENCH_DIR/data" "$BENCH_DIR/work" "${ANCHOR_BIN:-}"

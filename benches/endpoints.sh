#!/usr/bin/env bash
# Where a search answer puts each study's Endpoint (images.endpoints): requests per second and latency of
# ImagingStudy search, with the Endpoints as response-local Bundle entries ("bundle", the default) and
# contained in each study ("contained"), on two shapes: one patient's page (2 studies of 100 instances) and
# a page of 100 studies (10,000 instances, about 3.5 MB of JSON), each at 1 and 8 connections (wrk, 5 s).
# With ANCHOR_BIN (a release binary of an earlier commit, which has contained Endpoints only), the same
# rows for it, side by side, with the ratio.
#
# Usage: bash benches/endpoints.sh
#   BIN          the binary measured (default: this checkout's target/release/smart-imaging, built here)
#   ANCHOR_BIN   e.g. git worktree add /tmp/anchor HEAD~20 && (cd /tmp/anchor && cargo build --release)
#   BENCH_DIR    work folder (default /tmp/smart-imaging-bench-endpoints); a re-run reuses its index
#   BENCH_SECONDS  seconds per wrk run (default 5)
#
# The index is benches/index/scale.py's (500 studies; the files it names are never read by a search).
# Needs wrk (installed with apt-get when missing) and Python 3. Everything listens on 127.0.0.1.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/smart-imaging-bench-endpoints}"
SECONDS_PER_RUN="${BENCH_SECONDS:-5}"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
if [[ -z "${BIN:-}" ]]; then
    (cd "$REPO" && cargo build --release --locked --quiet)
    BIN="$REPO/target/release/smart-imaging"
fi
mkdir -p "$BENCH_DIR"
python3 "$HERE/index/scale.py" gen --studies 500 --out "$BENCH_DIR" >/dev/null

# The scale index's mock tenant `bench` (patient p1) and an open tenant `all`, each in the binary's default
# form (bundle; the anchor's only form) and, where WITH_FORMS, again as `benchc` and `allc` with contained
# Endpoints.
config() { # FILE WITH_FORMS
    local bench all='authorization = { type = "mock", ignorePatient = true }'
    bench=$(sed -n '/^\[tenants.bench\]/,$p' "$BENCH_DIR/smart-imaging.toml")
    {
        printf '[images]\nindex = "index.toml"\n\n%s\n\n[tenants.all]\n%s\nimages.lookup = "all-studies"\n' "$bench" "$all"
        if [[ "$2" == yes ]]; then
            printf '\n%s\nimages.endpoints = "contained"\n' "${bench//tenants.bench/tenants.benchc}"
            printf '\n[tenants.allc]\n%s\nimages.lookup = "all-studies"\nimages.endpoints = "contained"\n' "$all"
        fi
    } > "$1"
}

# `start` runs in a command substitution, a subshell: the servers' process ids go to a file the trap reads.
PIDS="$BENCH_DIR/pids"
: > "$PIDS"
trap 'while read -r p; do kill "$p" 2>/dev/null || true; done < "$PIDS"' EXIT

start() { # BINARY CONFIG -> prints the base URL
    local log="$BENCH_DIR/server.$RANDOM.log"
    "$1" serve --config "$2" --listen 127.0.0.1:0 > "$log.out" 2> "$log" &
    echo $! >> "$PIDS"
    for _ in $(seq 1 200); do
        if grep -q '^listening on ' "$log.out" 2>/dev/null; then
            sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$log.out" | head -n 1
            return
        fi
        sleep 0.05
    done
    echo "no listening line from $1" >&2; cat "$log" >&2; exit 1
}

run() { # LABEL URL CONNECTIONS
    local out
    out=$(wrk -t "$(( $3 < 2 ? 1 : 2 ))" -c "$3" -d "${SECONDS_PER_RUN}s" --latency "$2")
    local rps p50 p99
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    printf '%-44s %10s req/s   p50 %9s   p99 %9s\n' "$1" "$rps" "$p50" "$p99"
    echo "$rps"  > "$BENCH_DIR/last.rps"
}

config "$BENCH_DIR/forms.toml" yes
config "$BENCH_DIR/anchor.toml" no
BASE=$(start "$BIN" "$BENCH_DIR/forms.toml")
ANCHOR_BASE=""
[[ -n "${ANCHOR_BIN:-}" ]] && ANCHOR_BASE=$(start "$ANCHOR_BIN" "$BENCH_DIR/anchor.toml")

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
for shape in "one patient|bench|ImagingStudy?patient=p1" "100 studies|all|ImagingStudy?_count=100"; do
    name=${shape%%|*}; rest=${shape#*|}; tenant=${rest%%|*}; query=${rest#*|}
    for c in 1 8; do
        run "$name, $c conn, bundle" "$BASE/$tenant/fhir/$query" "$c"; bundle=$(cat "$BENCH_DIR/last.rps")
        run "$name, $c conn, contained" "$BASE/${tenant}c/fhir/$query" "$c"; contained=$(cat "$BENCH_DIR/last.rps")
        printf '%-44s %10s\n' "  bundle / contained" "$(python3 -c "print(f'{$bundle / $contained:.2f}')")"
        if [[ -n "$ANCHOR_BASE" ]]; then
            run "$name, $c conn, anchor (contained)" "$ANCHOR_BASE/$tenant/fhir/$query" "$c"; anchor=$(cat "$BENCH_DIR/last.rps")
            printf '%-44s %10s\n' "  bundle / anchor" "$(python3 -c "print(f'{$bundle / $anchor:.2f}')")"
        fi
    done
done

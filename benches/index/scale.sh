#!/usr/bin/env bash
# The index-scale benchmark (issue 14, item 2): a synthetic index of 100,000 and of 1,000,000 instances
# (studies of 2 series x 50 instances, two studies per patient), each served by the release binary; for
# each, the time from the process start to the first answered GET /healthz, VmRSS then, VmHWM (the peak),
# and the p50 and p99 of 1,000 sequential ImagingStudy searches for one patient (a mock tenant, 2 studies
# of 100 instances). With ANCHOR_BIN, the same rows for that binary, side by side, with the ratio; last, the
# goals at 1M instances and a projection to 10M instances from the per-instance costs between the sizes.
#
# Usage: bash benches/index/scale.sh
#   ANCHOR_BIN      a release binary of an earlier commit to compare with, e.g. built once with
#                   git worktree add /tmp/anchor HEAD~5 && (cd /tmp/anchor && cargo build --release)
#                   and given as ANCHOR_BIN=/tmp/anchor/target/release/smart-imaging.
#   BIN             the binary measured (default: this checkout's target/release/smart-imaging, built here).
#   BENCH_DIR       work folder (default /tmp/smart-imaging-bench-scale); a re-run reuses its indexes.
#   BENCH_RUNS      starts per binary and size; the medians are shown, the peak is the highest (default 3).
#   BENCH_SEARCHES  sequential searches per start (default 1000).
#
# The indexes name files that are not written (`studies/<study>/<series>/<instance>.dcm`): the server
# reads only the index at start and a search reads no file, so none is needed (`smart-imaging check` is
# what verifies the files). Takes about two minutes once built; touches nothing outside BENCH_DIR and
# target/. Needs Python 3 (standard library only).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/smart-imaging-bench-scale}"
RUNS="${BENCH_RUNS:-3}"
SEARCHES="${BENCH_SEARCHES:-1000}"
SCALE=(python3 "$HERE/scale.py")

if [[ -z "${BIN:-}" ]]; then
    (cd "$REPO" && cargo build --release --locked --quiet)
    BIN="$REPO/target/release/smart-imaging"
fi
mkdir -p "$BENCH_DIR"
RESULTS="$BENCH_DIR/results.jsonl"
: > "$RESULTS"

measure() { # LABEL BINARY INSTANCES FOLDER
    "${SCALE[@]}" measure --bin "$2" --dir "$4" --runs "$RUNS" --searches "$SEARCHES" |
        python3 -c 'import json, sys; r = json.load(sys.stdin); r.update(label=sys.argv[1], instances=int(sys.argv[2])); print(json.dumps(r))' "$1" "$3" \
        >> "$RESULTS"
}

for studies in 1000 10000; do
    instances=$((studies * 100))
    dir="$BENCH_DIR/$instances"
    "${SCALE[@]}" gen --studies "$studies" --out "$dir"
    echo "measuring $instances instances: $BIN" >&2
    measure this "$BIN" "$instances" "$dir"
    if [[ -n "${ANCHOR_BIN:-}" ]]; then
        echo "measuring $instances instances: $ANCHOR_BIN" >&2
        measure anchor "$ANCHOR_BIN" "$instances" "$dir"
    fi
done

echo
echo "smart-imaging index scale, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $RUNS starts each, $SEARCHES searches a start"
echo "this build: $BIN${ANCHOR_BIN:+; anchor: $ANCHOR_BIN}"
"${SCALE[@]}" table --results "$RESULTS"

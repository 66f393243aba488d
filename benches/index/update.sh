#!/usr/bin/env bash
# The incremental-index benchmark (issue 25, item 2): `smart-imaging index DIR --update` on an index of
# 1,000,000 instances (studies of 2 series x 50 instances, as in scale.sh) whose files are all there and
# unchanged, after 100 new DICOM files arrived (a series copied from the sample, each with its own SOP
# Instance UID), and again once they are gone; then on 100,000 files of which none changed. For each, the
# median and the slowest wall time of BENCH_RUNS runs (the page cache warm, as on a server that indexes
# often), and what the command printed of the last run (with SMART_IMAGING_TIMING=1: how long each phase
# took). For scale, the same for `find DIR -printf '%s %T@'`, which lists the folder with a `stat` a file and
# nothing else: the floor of an update that must look at every file; and the load average before and after,
# as other work on the machine moves every figure.
#
# Usage: bash benches/index/update.sh
#   BIN         the binary measured (default: this checkout's target/release/smart-imaging, built here).
#   BENCH_DIR   work folder (default /tmp/smart-imaging-bench-update); a re-run reuses its files. The
#               1,000,000 files are empty (an update reads no unchanged file): about 1 million inodes and
#               300 MB of index, made in a few minutes the first time.
#   BENCH_RUNS  runs of each case (default 5).
#
# Needs Python 3 (standard library only). Touches nothing outside BENCH_DIR and target/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/smart-imaging-bench-update}"
RUNS="${BENCH_RUNS:-5}"
SAMPLE="$REPO/data/dicom/mrn-1001/ct-chest/series-1/001.dcm"

if [[ -z "${BIN:-}" ]]; then
    (cd "$REPO" && cargo build --release --locked --quiet)
    BIN="$REPO/target/release/smart-imaging"
fi
mkdir -p "$BENCH_DIR"

# Prints the wall time of one run of the command in milliseconds; its stderr goes to $BENCH_DIR/last.log.
timed() {
    local start end
    start=$(date +%s%N)
    "$@" 2>"$BENCH_DIR/last.log" || { cat "$BENCH_DIR/last.log" >&2; exit 1; }
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

# Prints "median ms, slowest ms" of the numbers on stdin.
summary() {
    sort -n | awk '{ v[NR] = $1 } END { printf "median %d ms, slowest %d ms (%d runs)", v[int((NR + 1) / 2)], v[NR], NR }'
}

update() { # FOLDER
    SMART_IMAGING_TIMING=1 "$BIN" index "$1/studies" --out "$1/index.toml" --update
}

stat_walk() { # FOLDER
    find "$1/studies" -printf '%s %T@\n' >/dev/null
}

# Prints the ratio of two medians ("median X ms, ...").
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.2f", x[2] / y[2] }'
}

big="$BENCH_DIR/1000000"
small="$BENCH_DIR/100000"
python3 "$HERE/update.py" gen --studies 10000 --out "$big"
python3 "$HERE/update.py" gen --studies 1000 --out "$small"
rm -rf "$big/studies/new"
update "$big" # the index as its files are, before the runs

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
added="" dropped="" unchanged="" unchanged_big="" floor=""
for _ in $(seq "$RUNS"); do
    floor+="$(timed stat_walk "$big")"$'\n'
    python3 "$HERE/update.py" new --sample "$SAMPLE" --count 100 --out "$big/studies/new" 2>/dev/null
    added+="$(timed update "$big")"$'\n'
    added_log=$(cat "$BENCH_DIR/last.log")
    rm -rf "$big/studies/new"
    dropped+="$(timed update "$big")"$'\n'
    unchanged_big+="$(timed update "$big")"$'\n'
    unchanged+="$(timed update "$small")"$'\n'
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
added=$(printf %s "$added" | summary)
floor=$(printf %s "$floor" | summary)

echo
echo "smart-imaging index --update, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m), $BIN"
echo "load average before: $load_before; after: $load_after"
echo "1,000,000 indexed + 100 new files:       $added"
echo "1,000,000 indexed, the 100 removed:      $(printf %s "$dropped" | summary)"
echo "1,000,000 indexed, none changed:         $(printf %s "$unchanged_big" | summary)"
echo "100,000 indexed, none changed:           $(printf %s "$unchanged" | summary)"
echo "find -printf '%s %T@' over the 1,000,000: $floor"
echo "1M + 100 new / the find: $(ratio "$added" "$floor")x"
echo "goals: 1M + 100 new under 2 s; 100,000 unchanged under 1 s"
echo "the last run of 1M + 100 new printed:"
printf '%s\n' "$added_log" | sed 's/^/  /'

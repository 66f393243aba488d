#!/usr/bin/env bash
# Benchmark of `smart-imaging index` (issue 5, item 8): generates a deterministic folder of at least 2,000
# small DICOM files with pydicom, builds the release binary, and prints the indexing rate in files/s and
# MB/s beside pydicom's dcmread(stop_before_pixels=True) over the same files, with the ratio.
#
# Usage: bash benches/index/run.sh
#   BENCH_DIR     work folder (default /tmp/smart-imaging-bench-index); a re-run reuses its files.
#   BENCH_FILES   how many files (default 2000, rounded up to whole studies of 100).
#   BENCH_ROUNDS  how many times each side runs; the best round counts (default 5).
# Needs Python 3 with pydicom (pip install pydicom); touches nothing outside BENCH_DIR and target/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/smart-imaging-bench-index}"
FILES="${BENCH_FILES:-2000}"
ROUNDS="${BENCH_ROUNDS:-5}"

if ! python3 -c 'import pydicom' 2>/dev/null; then
    echo "benches/index/run.sh needs Python 3 with pydicom: pip install pydicom" >&2
    exit 2
fi
(cd "$REPO" && cargo build --release --quiet)
mkdir -p "$BENCH_DIR"
python3 "$HERE/make_files.py" "$BENCH_DIR/dicom" "$FILES"
python3 "$HERE/compare.py" "$REPO/target/release/smart-imaging" "$BENCH_DIR" "$ROUNDS"

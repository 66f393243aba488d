#!/usr/bin/env bash
# Transcoded retrieve beside as-stored retrieve of the same study (docs/api.md, Transfer syntaxes). It builds the
# release binary, writes two studies of the same images, one in implicit VR little endian and one in
# explicit VR big endian (BENCH_INSTANCES slices of 512×512 16-bit each, about 0.5 MB a slice), indexes
# them, and retrieves each study whole with wrk at 1 and at 8 clients: once as stored
# (`transfer-syntax=*`) and once transcoded (`type="application/dicom"`, Explicit VR Little Endian). It
# prints MB/s of each and the ratio transcoded / as stored; the goal is a ratio of 0.5 or more.
#
# Usage: bash benches/transcode.sh
#   BENCH_DIR        work folder (default /tmp/smart-imaging-transcode); a re-run reuses the dataset
#   BENCH_DURATION   length of each wrk run (default 10s)
#   BENCH_INSTANCES  slices per study (default 60)
#
# The server listens on 127.0.0.1 only, on a port the kernel chooses, and is stopped by the EXIT trap.
set -euo pipefail

BENCHES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCHES/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/smart-imaging-transcode}"
DURATION="${BENCH_DURATION:-10s}"
INSTANCES="${BENCH_INSTANCES:-60}"
mkdir -p "$BENCH_DIR"
log() { printf '[transcode %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v wrk >/dev/null || { log "wrk is needed: apt-get install wrk"; exit 1; }
VENV="$REPO/target/interop-venv"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REPO/tests/interop/requirements.txt"

log "building the release binary"
(cd "$REPO" && cargo build --release --locked --quiet)
BIN="$REPO/target/release/smart-imaging"

if [ ! -f "$BENCH_DIR/done-$INSTANCES" ]; then
    log "writing 2 studies of $INSTANCES slices"
    rm -rf "$BENCH_DIR/dicom" "$BENCH_DIR"/done-*
    "$VENV/bin/python" - "$BENCH_DIR/dicom" "$INSTANCES" <<'PY'
import array, os, sys
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
out, count = sys.argv[1], int(sys.argv[2])
root = "2.25.161803398874989484820458683436563811772"
base = array.array("H", ((x * 7 + (x >> 9) * 3) % 4096 for x in range(512 * 512)))
for study, (syntax, little) in enumerate([("1.2.840.10008.1.2", True), ("1.2.840.10008.1.2.2", False)], start=1):
    folder = os.path.join(out, f"study-{study}")
    os.makedirs(folder, exist_ok=True)
    for n in range(1, count + 1):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.file_meta.MediaStorageSOPInstanceUID = f"{root}.3.{study}.{n}"
        ds.file_meta.TransferSyntaxUID = syntax
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = f"{root}.3.{study}.{n}"
        ds.StudyDate, ds.Modality, ds.PatientID, ds.PatientName = "20250101", "CT", "BENCH-T", "Bench^Transcode"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{root}.1.{study}", f"{root}.2.{study}"
        ds.SeriesNumber, ds.InstanceNumber = 1, n
        ds.ImagePositionPatient, ds.PixelSpacing, ds.SliceThickness = [0, 0, n], [0.5, 0.5], 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.Rows, ds.Columns = 1, "MONOCHROME2", 512, 512
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth = -1024, 1, 40, 400
        pixels = array.array("H", base[n:] + base[:n])
        if not little:
            pixels.byteswap()
        ds.add_new(0x7FE00010, "OW", pixels.tobytes())
        ds.save_as(os.path.join(folder, f"{n:03d}.dcm"), implicit_vr=little, little_endian=little, enforce_file_format=True)
PY
    "$BIN" index "$BENCH_DIR/dicom" --out "$BENCH_DIR/index.toml" --quiet
    touch "$BENCH_DIR/done-$INSTANCES"
fi
cat >"$BENCH_DIR/smart-imaging.toml" <<'TOML'
[images]
index = "index.toml"

[tenants.open]
authorization = { type = "mock", ignorePatient = true }
images = { lookup = "all-studies" }
TOML

log "starting the server"
"$BIN" --config "$BENCH_DIR/smart-imaging.toml" --listen 127.0.0.1:0 >"$BENCH_DIR/stdout" 2>"$BENCH_DIR/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q '^listening on ' "$BENCH_DIR/stdout" && break
    sleep 0.1
done
BASE=$(sed -n 's/^listening on //p' "$BENCH_DIR/stdout")
[ -n "$BASE" ] || { log "the server did not start; see $BENCH_DIR/server.log"; exit 1; }
# study uid, then its WADO-RS address, one line each per study.
mapfile -t STUDIES < <(curl -fsS "$BASE/open/fhir/ImagingStudy" | "$VENV/bin/python" -c '
import json, sys
for e in sorted(json.load(sys.stdin)["entry"], key=lambda e: e["resource"]["id"]):
    r = e["resource"]
    print(r["contained"][0]["address"] + "/studies/" + r["id"])')

# MB/s of wrk retrieving URL with ACCEPT over CONNECTIONS connections for DURATION.
rate() {
    local url=$1 accept=$2 connections=$3 out
    out=$(wrk -t "$(( connections < 2 ? 1 : 2 ))" -c "$connections" -d "$DURATION" --timeout 60s -H "Accept: $accept" "$url")
    "$VENV/bin/python" -c '
import re, sys
text = sys.stdin.read()
value, unit = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", text).groups()
scale = dict(B=1e-6, KB=1024 / 1e6, MB=1024**2 / 1e6, GB=1024**3 / 1e6)[unit]
print("%.1f" % (float(value) * scale))' <<<"$out"
}

STORED='multipart/related; type="application/dicom"; transfer-syntax=*'
EXPLICIT='multipart/related; type="application/dicom"'
SIZE=$(du -sm "$BENCH_DIR/dicom/study-1" | cut -f1)
printf '\nmachine: %s cores, %s\n' "$(nproc)" "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
printf 'each study: %s slices of 512x512x16 bits, %s MB; wrk %s per row; MB/s of response bodies and headers\n\n' \
    "$INSTANCES" "$SIZE" "$DURATION"
printf '%-34s %8s %12s %12s %8s\n' "study" "clients" "as stored" "transcoded" "ratio"
for i in 0 1; do
    name=$([ "$i" = 0 ] && echo "implicit VR LE -> explicit VR LE" || echo "explicit VR BE -> explicit VR LE")
    for clients in 1 8; do
        stored=$(rate "${STUDIES[$i]}" "$STORED" "$clients")
        transcoded=$(rate "${STUDIES[$i]}" "$EXPLICIT" "$clients")
        ratio=$("$VENV/bin/python" -c "print(f'{$transcoded / $stored:.2f}')")
        printf '%-34s %8s %12s %12s %8s\n' "$name" "$clients" "$stored" "$transcoded" "$ratio"
    done
done

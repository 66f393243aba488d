#!/usr/bin/env bash
# The benchmark of issue 7. It installs what it needs, builds the release binary, generates a dataset of
# more than 500 MB, measures smart-imaging against nginx and Orthanc on 127.0.0.1, and prints one table,
# which it also saves to $BENCH_DIR/results.txt.
#
# Then it runs benches/wire.sh (retrieve of a 40 x 132 KB and a 300 x 525 KB study and of one instance, and
# search, each beside nginx serving the very same bytes) and benches/index/scale.sh (start-up, RSS and
# search with 100,000 and 1,000,000 instances, and a 10-million projection) with the same binary, and
# prints their tables after its own.
#
# Usage: bash benches/run.sh
#   ANCHOR_BIN      a release binary of an earlier commit: the wire and scale tables show it beside this
#                   one, with the ratio.
#   BENCH_DIR       work folder for the dataset, configurations, logs and results
#                   (default /tmp/smart-imaging-bench); a re-run reuses the dataset and Orthanc's storage.
#   BENCH_DURATION  length of each wrk run (default 10s).
#   BENCH_ROUNDS    how many times each wrk measurement is repeated; the table shows the median
#                   (default 3; the whole script then takes about 8 minutes once the dataset exists).
#   BENCH_IDLE_WAIT how long to wait, before each measured phase, for other work on the machine to stop
#                   (default 60 seconds); the table says when the cores were busy anyway.
#
# Every server runs on 127.0.0.1 only (Orthanc cannot choose its bind address: it listens on every
# interface and refuses remote clients, see its configuration below), and every server this script starts
# is stopped by the EXIT trap. Each phase is bounded in time: wrk runs for BENCH_DURATION under `timeout`,
# and every wait for a server gives up after a fixed number of seconds.
set -euo pipefail

BENCHES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCHES/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/smart-imaging-bench}"
DURATION="${BENCH_DURATION:-10s}"
ROUNDS="${BENCH_ROUNDS:-3}"
IDLE_WAIT="${BENCH_IDLE_WAIT:-60}"
mkdir -p "$BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
RUN="$BENCH_DIR/run"        # pid files of the servers this script started
LOGS="$BENCH_DIR/logs"      # server logs and raw wrk output
RESULTS="$BENCH_DIR/results.jsonl"
HELPERS=(python3 "$BENCHES/helpers.py")
mkdir -p "$RUN" "$LOGS"
rm -f "$RESULTS" "$LOGS"/wrk-*.txt

# The Accept header every DICOMweb retrieve sends: the stored transfer syntax, whatever it is.
ACCEPT='multipart/related; type="application/dicom"; transfer-syntax=*'
# The same without a transfer syntax, for servers that refuse `transfer-syntax=*` (the DICOMweb default
# is then Explicit VR Little Endian, which is how every generated file is stored, so nothing is transcoded).
ACCEPT_PLAIN='multipart/related; type="application/dicom"'
NOTES=()                    # notes printed under the table, about rows that could not be measured

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Phases are announced with their start, and each one's duration is logged when the next one begins, so
# that the log shows where the time goes.
PHASE="" PHASE_START=0 SCRIPT_START=$(date +%s)
phase() {
    local now
    now=$(date +%s)
    if [[ -n "$PHASE" ]]; then log "phase \"$PHASE\" took $((now - PHASE_START)) s"; fi
    PHASE="$1" PHASE_START=$now
    log "== $PHASE"
}

# ---------------------------------------------------------------------------------------------------------
# Process bookkeeping: every server is started in the background, its pid kept in a pid file under $RUN,
# and stopped by stop_all on exit, whether the script ends normally, fails or is interrupted.
# ---------------------------------------------------------------------------------------------------------

# Stops the server recorded as NAME: a TERM, then a KILL if it is still there after 5 seconds.
stop_server() {
    local name="$1" file="$RUN/$1.pid" pid
    [[ -f "$file" ]] || return 0
    pid="$(cat "$file")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        wait "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop_all() {
    local status=$?
    local file
    for file in "$RUN"/*.pid; do
        [[ -e "$file" ]] || continue
        stop_server "$(basename "$file" .pid)"
    done
    if [[ -n "${POLICY_RC_TEMP:-}" ]]; then rm -f /usr/sbin/policy-rc.d; fi
    exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# A previous run that was killed outright (no trap) may have left servers behind. Stop those recorded in
# our pid files, but only when the process's command line still names this work folder or our scripts,
# so that a recycled pid is never touched.
for file in "$RUN"/*.pid; do
    [[ -e "$file" ]] || continue
    pid="$(cat "$file")"
    ours() { [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -e "$BENCH_DIR" -e "$BENCHES"; }
    if ours; then
        log "stopping $(basename "$file" .pid) (pid $pid) left by an earlier run"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do ours || break; sleep 0.1; done
        if ours; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$file"
done

# Other work on the machine (a build, a test suite) skews every figure. Before a measured phase, when
# only the idle servers under test are running, check_idle samples the cores for two seconds at a time,
# waiting up to BENCH_IDLE_WAIT seconds for them to be idle; when they stay busy it goes on, and says so
# in the log and under the table.
check_idle() {
    local busy waited=0
    while true; do
        busy="$("${HELPERS[@]}" busy --seconds 2)"
        waited=$((waited + 2))
        ((busy > 15 && waited < IDLE_WAIT)) || break
        if ((waited == 2)); then log "the cores are ${busy}% busy with other work; waiting up to $IDLE_WAIT s"; fi
    done
    if ((busy > 15)); then
        log "warning: the cores were ${busy}% busy with other work just before \"$1\""
        NOTES+=("the cores were ${busy}% busy with other work just before the $1 runs, which skews those figures")
    fi
}

# Records a started server's pid under NAME.
track() { echo "$2" > "$RUN/$1.pid"; }

# Waits up to SECONDS for a line matching PATTERN in FILE, written by the process PID; prints the line.
wait_for_line() {
    local file="$1" pattern="$2" seconds="$3" pid="$4" line
    for _ in $(seq $((seconds * 10))); do
        line="$(grep -m1 -E "$pattern" "$file" 2>/dev/null || true)"
        if [[ -n "$line" ]]; then echo "$line"; return 0; fi
        kill -0 "$pid" 2>/dev/null || { log "process $pid exited; its output:"; cat "$file" >&2; return 1; }
        sleep 0.1
    done
    log "no line matching \"$pattern\" in $file after $seconds s"
    return 1
}

# Waits up to SECONDS until URL answers 2xx.
wait_for_url() {
    local url="$1" seconds="$2"
    for _ in $(seq $((seconds * 10))); do
        if curl -sf -o /dev/null --max-time 2 "$url"; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------------------------------------
phase "install packages"
# ---------------------------------------------------------------------------------------------------------
# Debian packages: nginx and wrk are required; Orthanc and its DICOMweb plugin are what users would run
# instead, and their rows say n/a (with the reason) when they cannot be installed here.
ORTHANC_NA=""
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
wanted=(nginx wrk orthanc orthanc-dicomweb curl binutils)
missing=()
for pkg in "${wanted[@]}"; do installed "$pkg" || missing+=("$pkg"); done
if ((${#missing[@]})); then
    [[ $EUID -eq 0 ]] || die "missing Debian packages (${missing[*]}); run as root or install them first"
    log "installing ${missing[*]}"
    apt-get update -qq
    available=()
    for pkg in "${missing[@]}"; do
        # apt-cache policy names a candidate version only for a package this machine's sources carry.
        if apt-cache policy "$pkg" 2>/dev/null | grep -qE 'Candidate: [^(]'; then
            available+=("$pkg")
        else
            log "Debian package $pkg is not available here"
        fi
    done
    # Installing a daemon's package would start it (nginx on port 80, Orthanc on 8042) unless
    # policy-rc.d forbids it; add a forbidding one for the install when the machine has none.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        POLICY_RC_TEMP=1
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
    fi
    if ((${#available[@]})); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${available[@]}" > "$LOGS/apt.log" 2>&1 ||
            { tail -20 "$LOGS/apt.log" >&2; die "apt-get install failed (see $LOGS/apt.log)"; }
    fi
    if [[ -n "${POLICY_RC_TEMP:-}" ]]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_TEMP=""; fi
fi
command -v nginx > /dev/null || die "nginx is not installed and could not be installed"
command -v wrk > /dev/null || die "wrk is not installed and could not be installed"
command -v curl > /dev/null || die "curl is not installed and could not be installed"
command -v strip > /dev/null || die "strip (binutils) is not installed and could not be installed"
if ! command -v Orthanc > /dev/null; then
    ORTHANC_NA="Debian package orthanc could not be installed"
fi
# The DICOMweb plugin's location differs between releases: look where the package put it.
ORTHANC_PLUGIN=""
if [[ -z "$ORTHANC_NA" ]]; then
    for candidate in /usr/share/orthanc/plugins/libOrthancDicomWeb.so \
                     $(dpkg -L orthanc-dicomweb 2>/dev/null | grep -E 'libOrthancDicomWeb\.so' || true); do
        if [[ -f "$candidate" ]]; then ORTHANC_PLUGIN="$candidate"; break; fi
    done
    [[ -n "$ORTHANC_PLUGIN" ]] || ORTHANC_NA="the DICOMweb plugin (Debian package orthanc-dicomweb) could not be installed"
fi

# pydicom writes the dataset.
if ! python3 -c 'import pydicom' 2>/dev/null; then
    log "installing pydicom"
    python3 -m pip install --quiet 'pydicom>=3' || die "pip install pydicom failed"
fi

# ---------------------------------------------------------------------------------------------------------
phase "build the release binary"
# ---------------------------------------------------------------------------------------------------------
# The compiler's output goes to a log (other people's work in progress may warn a lot); its last lines
# are shown when the build fails.
(cd "$REPO" && cargo build --release) > "$LOGS/build.log" 2>&1 ||
    { tail -40 "$LOGS/build.log" >&2; die "cargo build --release failed (see $LOGS/build.log)"; }
grep -E '^\s*Finished' "$LOGS/build.log" >&2 || true
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
[[ "$TARGET_DIR" = /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"
# Run a copy, so that a rebuild in the repository while the benchmark runs does not change the binary
# under it.
mkdir -p "$BENCH_DIR/bin"
BIN="$BENCH_DIR/bin/smart-imaging"
cp "$TARGET_DIR/release/smart-imaging" "$BIN"
cp "$BIN" "$BIN.stripped"
strip "$BIN.stripped"
"${HELPERS[@]}" record --results "$RESULTS" kind=binary \
    "unstripped=$(stat -c %s "$BIN")" "stripped=$(stat -c %s "$BIN.stripped")"
log "$("$BIN" --version): $(stat -c %s "$BIN.stripped") bytes stripped"

# ---------------------------------------------------------------------------------------------------------
phase "generate and index the dataset"
# ---------------------------------------------------------------------------------------------------------
DATA="$BENCH_DIR/data"
MANIFEST="$DATA/manifest.json"
python3 "$BENCHES/gen_dataset.py" --out "$DATA"
# The index is cheap to rebuild and must match the files, so it is always rewritten.
"$BIN" index "$DATA/dicom" --out "$DATA/index.toml" 2> "$LOGS/index.log" ||
    { cat "$LOGS/index.log" >&2; die "smart-imaging index failed"; }
tail -2 "$LOGS/index.log" >&2
STUDY_UID="$("${HELPERS[@]}" get "$MANIFEST" retrieve.study_uid)"
STUDY_INSTANCES="$("${HELPERS[@]}" get "$MANIFEST" retrieve.instances)"
SEARCH_ID="$("${HELPERS[@]}" get "$MANIFEST" search.fhir_id)"
SEARCH_MRN="$("${HELPERS[@]}" get "$MANIFEST" search.patient_id)"
SEARCH_STUDIES="$("${HELPERS[@]}" get "$MANIFEST" search.studies)"
RETR_ID="$("${HELPERS[@]}" get "$MANIFEST" retrieve.fhir_id)"
RETR_MRN="$("${HELPERS[@]}" get "$MANIFEST" retrieve.patient_id)"
DATASET_BYTES="$("${HELPERS[@]}" get "$MANIFEST" total_bytes)"
DATASET_FILES="$("${HELPERS[@]}" get "$MANIFEST" files)"
((DATASET_BYTES >= 500000000)) || die "the dataset holds only $DATASET_BYTES bytes; 500 MB are needed"

# ---------------------------------------------------------------------------------------------------------
phase "start the fake EHR and smart-imaging"
# ---------------------------------------------------------------------------------------------------------
CLIENT_ID=smart-imaging-bench
CLIENT_SECRET=bench-secret
python3 "$BENCHES/fake_ehr.py" --patient-id "$SEARCH_ID" --mrn "$SEARCH_MRN" \
    --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" > "$LOGS/fake-ehr.out" 2>&1 &
track fake-ehr $!
EHR="$(wait_for_line "$LOGS/fake-ehr.out" '^listening on ' 20 $! | sed 's/^listening on //')"
log "fake EHR at $EHR"

# A fixed study-token key, so that study tokens are tied to this work folder rather than to one process.
KEY_FILE="$BENCH_DIR/study-token.key"
[[ -s "$KEY_FILE" ]] || python3 -c 'import secrets; print(secrets.token_hex(32))' > "$KEY_FILE"

# Three tenants: `bench` mocks the search patient, `retr` mocks the patient of the retrieve study, and
# `ehr` asks the fake EHR about every token (client_secret_basic), for the same search patient.
CONFIG="$BENCH_DIR/smart-imaging.toml"
cat > "$CONFIG" <<EOF
# Written by benches/run.sh.
[server]
listen = "127.0.0.1:0"
key_file = "study-token.key"

[images]
index = "data/index.toml"

[tenants.bench]
authorization.type = "mock"
authorization.patient = { id = "$SEARCH_ID", name = "Search Bench", identifier = [{ system = "http://hospital.example.org/mrn", value = "$SEARCH_MRN", type = "MR" }] }
images.lookup = "studies-by-context"

[tenants.retr]
authorization.type = "mock"
authorization.patient = { id = "$RETR_ID", name = "Retrieve Bench", identifier = [{ system = "http://hospital.example.org/mrn", value = "$RETR_MRN", type = "MR" }] }
images.lookup = "studies-by-context"

[tenants.ehr]
authorization.type = "smart-on-fhir"
authorization.fhirBaseUrl = "$EHR/fhir"
authorization.client = { id = "$CLIENT_ID", secret = "$CLIENT_SECRET" }
images.lookup = "studies-by-context"
EOF

"$BIN" serve --config "$CONFIG" --listen 127.0.0.1:0 > "$LOGS/smart-imaging.out" 2> "$LOGS/smart-imaging.log" &
track smart-imaging $!
SI="$(wait_for_line "$LOGS/smart-imaging.out" '^listening on ' 20 $! | sed 's/^listening on //')"
log "smart-imaging at $SI"
curl -sf "$SI/healthz" > /dev/null || die "smart-imaging does not answer /healthz"

# ---------------------------------------------------------------------------------------------------------
phase "save the study as smart-imaging serves it"
# ---------------------------------------------------------------------------------------------------------
# The WADO-RS URL comes from a search, as an app would get it: the Endpoint address plus /studies/UID.
curl -sf "$SI/retr/fhir/ImagingStudy?patient=$RETR_ID" -H 'Authorization: Bearer bench' \
    -o "$BENCH_DIR/retr-bundle.json" || die "the search on tenant retr failed"
ADDRESS="$("${HELPERS[@]}" get "$BENCH_DIR/retr-bundle.json" entry.0.resource.contained.0.address)"
[[ "$("${HELPERS[@]}" get "$BENCH_DIR/retr-bundle.json" total)" == 1 ]] || die "patient $RETR_ID should have one study"
WADO="$ADDRESS/studies/$STUDY_UID"

# The response body is saved for nginx, together with its Content-Type (which names the boundary).
WWW="$BENCH_DIR/nginx/www"
mkdir -p "$WWW"
status="$(curl -s "$WADO" -H "Accept: $ACCEPT" -H 'Authorization: Bearer bench' \
    -D "$BENCH_DIR/study.headers" -o "$WWW/study" -w '%{http_code}' || true)"
[[ "$status" == 200 ]] || die "the WADO-RS retrieve answered $status: $(head -c 300 "$WWW/study")"
STUDY_TYPE="$(grep -i '^content-type:' "$BENCH_DIR/study.headers" | head -1 | sed 's/^[^:]*: *//' | tr -d '\r')"
STUDY_LENGTH="$(grep -i '^content-length:' "$BENCH_DIR/study.headers" | head -1 | sed 's/^[^:]*: *//' | tr -d '\r')"
STUDY_BYTES="$(stat -c %s "$WWW/study")"
[[ -z "$STUDY_LENGTH" || "$STUDY_LENGTH" == "$STUDY_BYTES" ]] ||
    die "Content-Length $STUDY_LENGTH but $STUDY_BYTES bytes received"
echo "$STUDY_TYPE" > "$BENCH_DIR/study.content-type"
parts="$("${HELPERS[@]}" parts "$WWW/study" "$STUDY_TYPE" || true)"
[[ "$parts" == "$STUDY_INSTANCES" ]] || die "smart-imaging's multipart holds $parts parts, not $STUDY_INSTANCES"
log "study: $STUDY_INSTANCES instances, $STUDY_BYTES bytes as $STUDY_TYPE"

# The same files one URL each, for nginx's "one request per file" row.
PATHS_FILE="$BENCH_DIR/nginx/file-paths.txt"
python3 - "$MANIFEST" > "$PATHS_FILE" <<'EOF'
import json, sys
for rel in json.load(open(sys.argv[1]))["retrieve"]["files"]:
    print("/files/" + rel.removeprefix("dicom/"))
EOF

# Read every file of the study once, so that each server starts with them in the page cache.
python3 - "$MANIFEST" "$DATA" <<'EOF'
import json, os, sys
for rel in json.load(open(sys.argv[1]))["retrieve"]["files"]:
    with open(os.path.join(sys.argv[2], rel), "rb") as f:
        while f.read(1 << 20):
            pass
EOF

# ---------------------------------------------------------------------------------------------------------
phase "start nginx"
# ---------------------------------------------------------------------------------------------------------
NGINX_PORT="$("${HELPERS[@]}" free-port)"
NGINX="http://127.0.0.1:$NGINX_PORT"
mkdir -p "$BENCH_DIR/nginx/temp" "$BENCH_DIR/nginx/logs"
# nginx's workers drop root to `nobody` unless told otherwise; serving files under a private folder (a
# BENCH_DIR under /root, say) then fails, so the workers keep the user that started the script.
NGINX_USER=""
if [[ $EUID -eq 0 ]]; then NGINX_USER="user root root;"; fi
cat > "$BENCH_DIR/nginx/nginx.conf" <<EOF
# Written by benches/run.sh: a static file server on 127.0.0.1, as fast as nginx serves files.
$NGINX_USER
daemon off;
worker_processes auto;
pid $BENCH_DIR/nginx/nginx.pid;
error_log $BENCH_DIR/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $BENCH_DIR/nginx/temp/body;
    proxy_temp_path $BENCH_DIR/nginx/temp/proxy;
    fastcgi_temp_path $BENCH_DIR/nginx/temp/fastcgi;
    uwsgi_temp_path $BENCH_DIR/nginx/temp/uwsgi;
    scgi_temp_path $BENCH_DIR/nginx/temp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WWW;
        # smart-imaging's own multipart response for the study, with its Content-Type.
        location = /study {
            types { }
            default_type '$STUDY_TYPE';
        }
        # The study's files, one request each.
        location /files/ {
            alias $DATA/dicom/;
            types { }
            default_type application/dicom;
        }
    }
}
EOF
nginx -p "$BENCH_DIR/nginx" -c "$BENCH_DIR/nginx/nginx.conf" -t > "$LOGS/nginx-test.log" 2>&1 ||
    { cat "$LOGS/nginx-test.log" >&2; die "nginx refused its configuration"; }
nginx -p "$BENCH_DIR/nginx" -c "$BENCH_DIR/nginx/nginx.conf" > "$LOGS/nginx.out" 2>&1 &
track nginx $!
wait_for_url "$NGINX/study" 20 || die "nginx did not start (see $BENCH_DIR/nginx/logs/error.log)"
got="$(curl -s -o /dev/null -w '%{size_download} %{content_type}' "$NGINX/study")"
[[ "$got" == "$STUDY_BYTES $STUDY_TYPE" ]] || die "nginx serves the saved study as \"$got\""
first_file="$(head -1 "$PATHS_FILE")"
curl -sf -o /dev/null "$NGINX$first_file" || die "nginx does not serve $first_file"

# ---------------------------------------------------------------------------------------------------------
phase "start Orthanc and store the study"
# ---------------------------------------------------------------------------------------------------------
ORTHANC=""
ORTHANC_ACCEPT="$ACCEPT"
if [[ -z "$ORTHANC_NA" ]]; then
    ORTHANC_PORT="$("${HELPERS[@]}" free-port)"
    ORTHANC="http://127.0.0.1:$ORTHANC_PORT"
    mkdir -p "$BENCH_DIR/orthanc/db"
    # Orthanc has no bind-address setting: it listens on every interface, and RemoteAccessAllowed=false
    # makes it refuse every client but the loopback. Its DICOM (DIMSE) server is turned off. Compression
    # is off both in storage and over HTTP, as it is for the other servers.
    cat > "$BENCH_DIR/orthanc/orthanc.json" <<EOF
{
  "Name": "smart-imaging-bench",
  "StorageDirectory": "$BENCH_DIR/orthanc/db",
  "IndexDirectory": "$BENCH_DIR/orthanc/db",
  "StorageCompression": false,
  "HttpPort": $ORTHANC_PORT,
  "HttpCompressionEnabled": false,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "DicomServerEnabled": false,
  "KeepAlive": true,
  "TcpNoDelay": true,
  "SaveJobs": false,
  "Plugins": ["$ORTHANC_PLUGIN"],
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": false }
}
EOF
    Orthanc "$BENCH_DIR/orthanc/orthanc.json" > "$LOGS/orthanc.log" 2>&1 &
    track orthanc $!
    if ! wait_for_url "$ORTHANC/system" 60; then
        ORTHANC_NA="Orthanc did not start within 60 s (see $LOGS/orthanc.log)"
        stop_server orthanc
    fi
fi
if [[ -z "$ORTHANC_NA" ]]; then
    # Store the study unless an earlier run already did (Orthanc's storage is kept in the work folder).
    stored="$(curl -sf -X POST "$ORTHANC/tools/lookup" -d "$STUDY_UID" | python3 -c '
import json, sys
hits = [h for h in json.load(sys.stdin) if h.get("Type") == "Study"]
print(hits[0]["ID"] if hits else "")')"
    count=0
    if [[ -n "$stored" ]]; then
        count="$(curl -sf "$ORTHANC/studies/$stored/instances" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
    fi
    if [[ "$count" != "$STUDY_INSTANCES" ]]; then
        "${HELPERS[@]}" orthanc-upload --url "$ORTHANC" --data "$DATA" --manifest "$MANIFEST" ||
            ORTHANC_NA="Orthanc refused the study's files (see the log above)"
    else
        log "Orthanc already holds the study ($count instances)"
    fi
fi
if [[ -z "$ORTHANC_NA" ]]; then
    # One retrieve before measuring, which also checks that the plugin serves the whole study and
    # brings Orthanc's copy of the files into the page cache.
    orthanc_get() {
        curl -s "$ORTHANC/dicom-web/studies/$STUDY_UID" -H "Accept: $ORTHANC_ACCEPT" \
            -D "$BENCH_DIR/orthanc-study.headers" -o "$BENCH_DIR/orthanc-study" -w '%{http_code}' || true
    }
    status="$(orthanc_get)"
    if [[ "$status" != 200 ]]; then
        log "Orthanc answered $status to transfer-syntax=*; retrying without a transfer syntax"
        ORTHANC_ACCEPT="$ACCEPT_PLAIN"
        status="$(orthanc_get)"
    fi
    orthanc_type="$(grep -i '^content-type:' "$BENCH_DIR/orthanc-study.headers" | head -1 | sed 's/^[^:]*: *//' | tr -d '\r')"
    parts="$("${HELPERS[@]}" parts "$BENCH_DIR/orthanc-study" "$orthanc_type" || true)"
    if [[ "$status" != 200 ]]; then
        ORTHANC_NA="Orthanc's DICOMweb retrieve answered $status"
    elif [[ "$parts" != "$STUDY_INSTANCES" ]]; then
        ORTHANC_NA="Orthanc's DICOMweb retrieve sent $parts parts, not $STUDY_INSTANCES"
    else
        log "Orthanc's multipart study: $(stat -c %s "$BENCH_DIR/orthanc-study") bytes in $parts parts" \
            "(smart-imaging's: $STUDY_BYTES bytes)"
        NOTES+=("Orthanc is asked with Accept: $ORTHANC_ACCEPT")
    fi
    rm -f "$BENCH_DIR/orthanc-study"
fi
if [[ -n "$ORTHANC_NA" ]]; then log "Orthanc rows will say n/a: $ORTHANC_NA"; fi

# ---------------------------------------------------------------------------------------------------------
# wrk runs. Each run prints a WRKJSON line (benches/wrk.lua's done hook) that helpers.py reads. Every
# measurement is repeated ROUNDS times, the rounds going through all the systems in turn so that a slow
# moment of the machine does not fall on one system only, and the table shows the median run with the
# range of all of them.
# ---------------------------------------------------------------------------------------------------------
WRK_SECONDS="${DURATION%s}"
ROUND=1
# run_wrk KIND SYSTEM CLIENTS THREADS MODE WRK-ARGUMENTS...: one wrk run, its output kept in $LOGS.
run_wrk() {
    local kind="$1" system="$2" clients="$3" threads="$4" mode="$5"
    shift 5
    local out="$LOGS/wrk-$kind-$system-$clients-round$ROUND.txt"
    log "wrk: $kind $system, $clients connections, $threads threads, $DURATION, round $ROUND of $ROUNDS"
    env BENCH_MODE="$mode" BENCH_PATHS="$PATHS_FILE" BENCH_THREADS="$threads" \
        BENCH_TOKEN_PREFIX="tok-$system-$clients-$ROUND-$(date +%s)-" \
        timeout $((WRK_SECONDS + 60)) \
        wrk -t "$threads" -c "$clients" -d "$DURATION" --latency --timeout 30s -s "$BENCHES/wrk.lua" "$@" \
        > "$out" 2>&1 || log "wrk exited with status $? (see $out)"
}
# record_wrk KIND SYSTEM CLIENTS [OPTION or KEY=VALUE...]: records the median of the measurement's
# rounds, with any extra values.
record_wrk() {
    local kind="$1" system="$2" clients="$3" round outputs=()
    shift 3
    for round in $(seq "$ROUNDS"); do
        outputs+=(--output "$LOGS/wrk-$kind-$system-$clients-round$round.txt")
    done
    "${HELPERS[@]}" record-wrk --results "$RESULTS" --kind "$kind" --system "$system" --clients "$clients" \
        "${outputs[@]}" "$@" >&2
}

# ---------------------------------------------------------------------------------------------------------
phase "retrieve: whole study at 1 and 8 clients, $ROUNDS rounds"
# ---------------------------------------------------------------------------------------------------------
check_idle retrieve
for ROUND in $(seq "$ROUNDS"); do
    for clients in 1 8; do
        run_wrk retrieve smart-imaging "$clients" "$clients" fixed \
            -H "Accept: $ACCEPT" -H 'Authorization: Bearer bench' "$WADO"
        run_wrk retrieve nginx-multipart "$clients" "$clients" fixed "$NGINX/study"
        run_wrk retrieve nginx-files "$clients" "$clients" cycle "$NGINX/"
        if [[ -z "$ORTHANC_NA" ]]; then
            run_wrk retrieve orthanc "$clients" "$clients" fixed \
                -H "Accept: $ORTHANC_ACCEPT" "$ORTHANC/dicom-web/studies/$STUDY_UID"
        fi
    done
done
for clients in 1 8; do
    record_wrk retrieve smart-imaging "$clients"
    record_wrk retrieve nginx-multipart "$clients"
    record_wrk retrieve nginx-files "$clients"
    if [[ -z "$ORTHANC_NA" ]]; then
        # Orthanc sends the multipart without a Content-Length and closes the connection after it, so wrk
        # reconnects for every study and counts each close as a read error, which is discounted.
        record_wrk retrieve orthanc "$clients" --close-delimited
    else
        "${HELPERS[@]}" record --results "$RESULTS" kind=retrieve system=orthanc "clients=$clients" "na=$ORTHANC_NA"
    fi
done
# nginx and Orthanc are no longer needed; stop them so that they do not compete for the cores.
stop_server orthanc
stop_server nginx

# ---------------------------------------------------------------------------------------------------------
phase "search: mock and smart-on-fhir tenants, $ROUNDS rounds"
# ---------------------------------------------------------------------------------------------------------
# First check that each search answers what it should.
SEARCH_PATH="/bench/fhir/ImagingStudy?patient=$SEARCH_ID"
EHR_SEARCH_PATH="/ehr/fhir/ImagingStudy?patient=$SEARCH_ID"
count_studies() { python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }
total="$(curl -sf "$SI$SEARCH_PATH" | count_studies)" || die "the mock search failed"
[[ "$total" == "$SEARCH_STUDIES" ]] || die "the mock search found $total studies, not $SEARCH_STUDIES"
status="$(curl -s -o /dev/null -w '%{http_code}' "$SI$EHR_SEARCH_PATH" || true)"
[[ "$status" == 401 ]] || die "the smart-on-fhir search without a token answered $status, not 401"
total="$(curl -sf "$SI$EHR_SEARCH_PATH" -H 'Authorization: Bearer tok-check' | count_studies)" ||
    die "the smart-on-fhir search failed (see $LOGS/smart-imaging.log)"
[[ "$total" == "$SEARCH_STUDIES" ]] || die "the smart-on-fhir search found $total studies, not $SEARCH_STUDIES"
introspections() { curl -sf "$EHR/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["introspect"])'; }
check_idle search

# Mock: no EHR at all. Cold: every request carries a token never seen before, so each one is
# introspected at the fake EHR. Warm: one token, introspected just before the run and then answered from
# the server's cache. The fake EHR's count of introspections during the runs is recorded with them, to
# show which is which. 16 connections are driven by 2 wrk threads, as there are 2 cores.
declare -A EHR_CALLS=()
for ROUND in $(seq "$ROUNDS"); do
    for c in 1 16; do
        threads=$((c > 1 ? 2 : 1))
        run_wrk search mock "$c" "$threads" fixed -H 'Authorization: Bearer bench' "$SI$SEARCH_PATH"
    done
    for temperature in cold warm; do
        for c in 1 16; do
            threads=$((c > 1 ? 2 : 1))
            if [[ $temperature == warm ]]; then
                curl -sf -o /dev/null "$SI$EHR_SEARCH_PATH" -H 'Authorization: Bearer tok-warm' ||
                    die "the warm-up search failed"
            fi
            before="$(introspections)"
            if [[ $temperature == cold ]]; then
                run_wrk search smart-cold "$c" "$threads" cold "$SI$EHR_SEARCH_PATH"
            else
                run_wrk search smart-warm "$c" "$threads" fixed -H 'Authorization: Bearer tok-warm' \
                    "$SI$EHR_SEARCH_PATH"
            fi
            calls=$(($(introspections) - before))
            log "fake EHR: $calls introspections during the $temperature run"
            EHR_CALLS[$temperature-$c]=$((${EHR_CALLS[$temperature-$c]:-0} + calls))
        done
    done
done
for c in 1 16; do
    record_wrk search mock "$c"
    record_wrk search smart-cold "$c" "ehr_calls=${EHR_CALLS[cold-$c]}"
    record_wrk search smart-warm "$c" "ehr_calls=${EHR_CALLS[warm-$c]}"
done
stop_server smart-imaging
stop_server fake-ehr

# ---------------------------------------------------------------------------------------------------------
phase "start-up time and memory"
# ---------------------------------------------------------------------------------------------------------
mkdir -p "$BENCH_DIR/startup"
check_idle start-up
for n in 10000 100000; do
    index="$BENCH_DIR/startup/index-$n.toml"
    [[ -s "$index" ]] || "${HELPERS[@]}" gen-index --instances "$n" --out "$index"
    cat > "$BENCH_DIR/startup/config-$n.toml" <<EOF
# Written by benches/run.sh: the server with a synthetic index of $n instances.
[server]
key_file = "../study-token.key"
[images]
index = "index-$n.toml"
[tenants.open]
authorization = { type = "mock", ignorePatient = true }
images = { lookup = "all-studies" }
EOF
    "${HELPERS[@]}" startup --bin "$BIN" --config "$BENCH_DIR/startup/config-$n.toml" --instances "$n" \
        --runs 5 --results "$RESULTS" || true
done

# ---------------------------------------------------------------------------------------------------------
phase "report"
# ---------------------------------------------------------------------------------------------------------
NOTES+=("smart-imaging, wrk, nginx, Orthanc and the fake EHR all share this machine's $(nproc) cores")
NOTES+=("each cold smart-on-fhir request waits for one introspection at the fake EHR, a threaded Python server")
notes="$(IFS='|'; echo "${NOTES[*]}")"
"${HELPERS[@]}" record --results "$RESULTS" kind=meta "date=$(date -u +%Y-%m-%dT%H:%MZ)" "cores=$(nproc)" \
    "dataset_mb=$((DATASET_BYTES / 1000000))" "dataset_files=$DATASET_FILES" \
    "study_instances=$STUDY_INSTANCES" "multipart_mb=$(python3 -c "print($STUDY_BYTES / 1e6)")" \
    "search_studies=$SEARCH_STUDIES" "duration=$DURATION" "rounds=$ROUNDS" "notes=$notes"

# ---------------------------------------------------------------------------------------------------------
phase "wire: both retrieve shapes, one instance and search beside nginx"
# ---------------------------------------------------------------------------------------------------------
check_idle wire
BIN="$BIN" ANCHOR_BIN="${ANCHOR_BIN:-}" BENCH_DIR="$BENCH_DIR/wire" bash "$BENCHES/wire.sh" > "$LOGS/wire.txt" 2>&1 ||
    { tail -20 "$LOGS/wire.txt" >&2; die "benches/wire.sh failed (see $LOGS/wire.txt)"; }

# ---------------------------------------------------------------------------------------------------------
phase "index scale: 100,000 and 1,000,000 instances"
# ---------------------------------------------------------------------------------------------------------
check_idle scale
BIN="$BIN" ANCHOR_BIN="${ANCHOR_BIN:-}" BENCH_DIR="$BENCH_DIR/scale" bash "$BENCHES/index/scale.sh" \
    > "$LOGS/scale.txt" 2>&1 || { tail -20 "$LOGS/scale.txt" >&2; die "benches/index/scale.sh failed (see $LOGS/scale.txt)"; }

log "phase \"$PHASE\" took $(($(date +%s) - PHASE_START)) s; the whole run took $(($(date +%s) - SCRIPT_START)) s"
PHASE=""
echo
"${HELPERS[@]}" table --results "$RESULTS" --out "$BENCH_DIR/results.txt"
echo
echo "Retrieve and search beside nginx serving the same bytes (benches/wire.sh):"
cat "$BENCH_DIR/wire/work/results.txt"
echo
echo "The index at scale (benches/index/scale.sh):"
sed -n '/this build/,$p' "$LOGS/scale.txt"

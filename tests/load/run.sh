#!/usr/bin/env bash
# Load test (issue 6, item 10): runs the release server for a bounded time under mixed traffic and checks it
# keeps serving without unexpected 5xx and without growing its memory.
#
# - installs wrk (Debian package) when missing, builds the release binary;
# - starts a small fake EHR (fake_ehr.py) and the server on 127.0.0.1:0 with the sample tenants (`open`,
#   `demo`, mock) plus a `smart-on-fhir` tenant `ehr` against the fake EHR;
# - writes the request mix from the server's own search answers (targets.py): searches on open, demo and
#   ehr, study and instance retrievals through the Endpoint addresses, tampered study tokens, malformed
#   Authorization headers, unknown tokens;
# - starts slow_clients.py (stalling, dribbling, not reading, reading slowly on connections of their own),
#   warms up with wrk for WARMUP seconds so that threads and allocator arenas reach their working size,
#   samples RSS ("before"), then runs wrk with mix.lua for DURATION seconds at CONNECTIONS connections and
#   samples RSS again ("after"): growth between the two is what sustained traffic leaves behind, and RSS at
#   each full minute of the run shows whether it keeps growing or levels off;
# - prints requests, statuses, p50/p99 latency, RSS before/after, the slow clients' fate, the log's
#   warnings and errors, then PASS/FAIL on "no unexpected 5xx" (a 503 saying "busy" is intended),
#   "RSS growth < 10%" (from the end of the first minute, once the working set is reached; from the end of
#   the warm-up in runs under two minutes), "still serving" and "clean shutdown".
#
# Environment: DURATION (180), WARMUP (30), CONNECTIONS (32), WRK_THREADS (2), SLOW_PER_KIND (3),
# CARGO_TARGET_DIR; KEEP=1 keeps the work folder (server log, RSS samples, wrk output).
# Exit status 0 when every check passed, 1 otherwise. Nothing leaves 127.0.0.1.

set -euo pipefail

DURATION=${DURATION:-180}
WARMUP=${WARMUP:-30}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
SLOW_PER_KIND=${SLOW_PER_KIND:-3}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/smart-imaging-load.XXXXXX")
SERVER_PID=
EHR_PID=
SAMPLER_PID=
SLOW_PID=

cleanup() {
    for pid in "$SLOW_PID" "$SAMPLER_PID" "$SERVER_PID" "$EHR_PID"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
        fi
    done
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say() { printf '==> %s\n' "$*"; }

# 1. wrk, from Debian.
if ! command -v wrk >/dev/null 2>&1; then
    say "installing wrk"
    SUDO=
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
say "$(wrk --version 2>&1 | head -n 1)"

# 2. The release binary.
say "building the release binary"
(cd "$ROOT" && cargo build --release --quiet)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/smart-imaging"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

# 3. The fake EHR.
python3 "$HERE/fake_ehr.py" --port-file "$WORK/ehr.port" --counts-file "$WORK/ehr.counts" &
EHR_PID=$!
for _ in $(seq 100); do [ -s "$WORK/ehr.port" ] && break; sleep 0.1; done
[ -s "$WORK/ehr.port" ] || { echo "the fake EHR did not start" >&2; exit 1; }
EHR_BASE="http://127.0.0.1:$(cat "$WORK/ehr.port")/fhir"

# 4. The configuration: server defaults, the sample index and tenants, and the smart-on-fhir tenant.
{
    printf '[images]\nindex = "%s"\n\n' "$ROOT/data/index.toml"
    sed -n '/^\[tenants\.open\]/,$p' "$ROOT/smart-imaging.toml"
    printf '\n[tenants.ehr]\nauthorization.type = "smart-on-fhir"\nauthorization.fhirBaseUrl = "%s"\n' "$EHR_BASE"
    printf 'authorization.client = { id = "imaging-server", secret = "load-test-secret" }\n'
    printf 'images.lookup = "studies-by-context"\n'
} > "$WORK/smart-imaging.toml"

# 5. The server.
"$BIN" --config "$WORK/smart-imaging.toml" --listen 127.0.0.1:0 > "$WORK/server.out" 2> "$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q '^listening on ' "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^listening on //p' "$WORK/server.out" | head -n 1)
[ -n "$BASE" ] || { echo "the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
ADDR=${BASE#http://}
say "server $BASE (pid $SERVER_PID), fake EHR $EHR_BASE"

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0; }

# 6. The request mix, from the server's own answers.
python3 "$HERE/targets.py" "$BASE" "$WORK/targets.lua" "$WORK/slow.json" | sed 's/^/    /'

# 7. The slow clients, for the warm-up and the run; a sampler of RSS and threads.
RSS_START=$(rss)
THREADS_START=$(threads)
(
    while kill -0 "$SERVER_PID" 2>/dev/null; do
        printf '%s %s %s\n' "$(date +%s)" "$(rss)" "$(threads)"
        sleep 1
    done
) > "$WORK/samples" &
SAMPLER_PID=$!
python3 "$HERE/slow_clients.py" "$ADDR" "$WORK/slow.json" --duration "$((WARMUP + DURATION))" \
    --per-kind "$SLOW_PER_KIND" > "$WORK/slow.txt" 2>&1 &
SLOW_PID=$!

# 8. Warm-up, then the measured run.
say "warming up ${WARMUP} s"
wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${WARMUP}s" -s "$HERE/mix.lua" "$BASE" -- "$WORK/targets.lua" > /dev/null
RSS_BEFORE=$(rss)
THREADS_BEFORE=$(threads)
say "RSS idle at start ${RSS_START} kB (${THREADS_START} threads); after the warm-up ${RSS_BEFORE} kB (${THREADS_BEFORE} threads)"
RUN_START=$(date +%s)
say "running ${DURATION} s: wrk ${CONNECTIONS} connections (${WRK_THREADS} threads) + $((SLOW_PER_KIND * 4)) slow clients"
wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 10s -s "$HERE/mix.lua" "$BASE" \
    -- "$WORK/targets.lua" > "$WORK/wrk.txt" 2>&1 || true
RSS_AFTER=$(rss)
THREADS_AFTER=$(threads)
wait "$SLOW_PID" || true
SLOW_PID=
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=

# 9. Still serving? Then a graceful stop.
ALIVE=no
if kill -0 "$SERVER_PID" 2>/dev/null && [ "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ]; then
    ALIVE=yes
fi
SHUTDOWN="not running"
if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        SHUTDOWN="still running 15 s after SIGTERM"
    else
        set +e; wait "$SERVER_PID"; CODE=$?; set -e
        SHUTDOWN="exit status $CODE after SIGTERM"
    fi
else
    set +e; wait "$SERVER_PID"; CODE=$?; set -e
    SHUTDOWN="had already exited with status $CODE"
fi
SERVER_PID=
kill "$EHR_PID" 2>/dev/null || true
wait "$EHR_PID" 2>/dev/null || true
EHR_PID=

# 10. The report.
result() { sed -n "s/^RESULT $1 //p" "$WORK/wrk.txt"; }
echo
echo "=================================== load test report ==================================="
printf 'duration            %s s measured (after %s s warm-up), %s connections, %s slow clients\n' \
    "$(result duration_s)" "$WARMUP" "$CONNECTIONS" "$((SLOW_PER_KIND * 4))"
printf 'requests            %s (%s/s)\n' "$(result requests)" "$(result rps)"
echo "responses by status:"
sed -n 's/^RESULT status \([0-9]*\) \([0-9]*\)$/    \1  \2/p' "$WORK/wrk.txt"
printf '503 "busy"          %s (intended: no worker free)\n' "$(result busy_503)"
printf 'unexpected 5xx      %s\n' "$(result unexpected_5xx)"
printf 'socket errors       %s\n' "$(result socket_errors)"
printf 'latency             %s\n' "$(result latency_ms)"
PEAK_RSS=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$WORK/samples")
PEAK_THREADS=$(awk 'BEGIN { m = 0 } $3 > m { m = $3 } END { print m }' "$WORK/samples")
GROWTH=$(awk -v b="$RSS_BEFORE" -v a="$RSS_AFTER" 'BEGIN { if (b > 0) printf "%.1f", (a - b) * 100 / b; else print "n/a" }')
printf 'RSS                 idle at start %s kB; before (after warm-up) %s kB, after %s kB (%s%%); peak %s kB\n' \
    "$RSS_START" "$RSS_BEFORE" "$RSS_AFTER" "$GROWTH" "$PEAK_RSS"
MINUTES=$(awk -v t0="$RUN_START" -v d="$DURATION" '
    { for (m = 1; m * 60 <= d; m++) if (!(m in rss) && $1 >= t0 + m * 60) { rss[m] = $2; n = m > n ? m : n } }
    END { for (m = 1; m <= n; m++) printf "%s%d min %s kB", (m > 1 ? ", " : ""), m, rss[m] }' "$WORK/samples")
printf 'RSS each minute     %s\n' "${MINUTES:-run shorter than a minute}"
# Growth while serving, once the working set is reached: from the end of the first minute to the end (or
# from the end of the warm-up, for a run shorter than two minutes).
MINUTE1=$(awk -v t0="$RUN_START" '$1 >= t0 + 60 { print $2; exit }' "$WORK/samples")
if [ "$DURATION" -ge 120 ] && [ -n "$MINUTE1" ]; then PLATEAU_FROM=$MINUTE1; PLATEAU_LABEL="minute 1"; else PLATEAU_FROM=$RSS_BEFORE; PLATEAU_LABEL="the warm-up"; fi
PLATEAU=$(awk -v b="$PLATEAU_FROM" -v a="$RSS_AFTER" 'BEGIN { if (b > 0) printf "%.1f", (a - b) * 100 / b; else print "n/a" }')
printf 'RSS growth          %s%% from %s (%s kB) to the end (%s kB)\n' "$PLATEAU" "$PLATEAU_LABEL" "$PLATEAU_FROM" "$RSS_AFTER"
printf 'threads             idle at start %s; before %s, after %s, peak %s\n' \
    "$THREADS_START" "$THREADS_BEFORE" "$THREADS_AFTER" "$PEAK_THREADS"
echo "slow clients:"
sed 's/^SLOW /    /' "$WORK/slow.txt"
if [ -s "$WORK/ehr.counts" ]; then printf 'fake EHR calls      %s\n' "$(cat "$WORK/ehr.counts")"; fi
echo "server log (warnings and errors, by message):"
grep -E '^\[[^]]* (WARN|ERROR) ' "$WORK/server.log" \
    | sed -E 's/^\[[^ ]+ //; s/\[study-token\]/T/g; s/[0-9]+ms$//; s#(GET|HEAD) /[^ ]*#\1 …#' \
    | sort | uniq -c | sort -rn | head -n 12 | sed 's/^/    /' || true
if grep -qE 'panicked|SIGBUS|stack overflow' "$WORK/server.log"; then
    echo "    (the log mentions a panic or a signal)"
fi
printf 'still serving       %s\n' "$ALIVE"
printf 'shutdown            %s\n' "$SHUTDOWN"

echo
FAIL=0
check() {
    if [ "$2" = ok ]; then printf 'PASS  %s\n' "$1"; else printf 'FAIL  %s (%s)\n' "$1" "$2"; FAIL=1; fi
}
UNEXPECTED=$(result unexpected_5xx)
check "no unexpected 5xx" "$([ "${UNEXPECTED:-x}" = 0 ] && echo ok || echo "${UNEXPECTED:-no result} unexpected")"
check "RSS growth < 10% from $PLATEAU_LABEL to the end" "$(awk -v g="$PLATEAU" 'BEGIN { print (g != "n/a" && g < 10) ? "ok" : g "%" }')"
check "still serving after the run" "$([ "$ALIVE" = yes ] && echo ok || echo "not answering /healthz")"
check "clean shutdown on SIGTERM" "$([ "$SHUTDOWN" = "exit status 0 after SIGTERM" ] && echo ok || echo "$SHUTDOWN")"
exit "$FAIL"

#!/usr/bin/env bash
# Release-profile comparison: builds the server once per profile variant (each in a target folder of its
# own under target/profile-bench/), and prints the stripped or unstripped binary size and the throughput of
# a search and of a study retrieve at 1 and 8 connections (wrk, medians of 3 runs of SECONDS each) on the
# sample data. It is how the [profile.release] settings in Cargo.toml were chosen.
#
# Environment: SECONDS_PER_RUN (5), VARIANTS (all of: default strip thin fat). Nothing leaves 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=${SECONDS_PER_RUN:-5}
VARIANTS=${VARIANTS:-"default strip thin fat"}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

# Cargo's own environment overrides of the release profile, so that Cargo.toml is not edited.
profile_env() {
    case "$1" in
        default) echo "CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16" ;;
        strip) echo "CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16" ;;
        thin) echo "CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16" ;;
        fat) echo "CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1" ;;
    esac
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

rate() { # url connections [header]: median requests/s of 3 runs
    for _ in 1 2 3; do
        if [ -n "${3:-}" ]; then
            wrk -t1 -c"$2" -d"${RUN}s" -H "$3" "$1" | awk '/Requests\/sec/ { print $2 }'
        else
            wrk -t1 -c"$2" -d"${RUN}s" "$1" | awk '/Requests\/sec/ { print $2 }'
        fi
    done | median
}

printf '%-8s %10s %14s %14s %14s %14s %9s\n' variant size search@1 search@8 retrieve@1 retrieve@8 build_s
for v in $VARIANTS; do
    dir="target/profile-bench/$v"
    start=$(date +%s)
    env $(profile_env "$v") CARGO_TARGET_DIR="$dir" cargo build --release --locked --quiet
    built=$(( $(date +%s) - start ))
    bin="$dir/release/smart-imaging"
    size=$(stat -c %s "$bin")
    "$bin" --config smart-imaging.toml --listen 127.0.0.1:0 --sandbox-listen 127.0.0.1:0 > "$dir/out" 2> "$dir/log" &
    pid=$!
    for _ in $(seq 100); do grep -q '^listening on ' "$dir/out" && break; sleep 0.1; done
    base=$(sed -n 's/^listening on //p' "$dir/out")
    search="$base/open/fhir/ImagingStudy"
    study=$(curl -fsS "$search" | jq -r '.entry[0].resource | .contained[0].address + "/studies/" + .id')
    accept='Accept: multipart/related; type="application/dicom"; transfer-syntax=*'
    printf '%-8s %10s %14s %14s %14s %14s %9s\n' "$v" "$size" "$(rate "$search" 1)" "$(rate "$search" 8)" \
        "$(rate "$study" 1 "$accept")" "$(rate "$study" 8 "$accept")" "$built"
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo "(requests/s, medians of 3 x ${RUN} s; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"

#!/usr/bin/env python3
"""Small helpers for benches/run.sh (issue 7), one subcommand each.

* ``free-port``: print a TCP port on 127.0.0.1 that was free a moment ago (for nginx and Orthanc, which
  cannot report a port chosen by the system).
* ``busy``: print how busy the cores were over the next few seconds, in percent.
* ``parts FILE CONTENT-TYPE``: print how many parts a saved multipart body holds.
* ``get FILE PATH``: print one value of a JSON file, PATH being dot-separated keys and list indexes.
* ``gen-index --instances N --out FILE``: write a synthetic index in the layout of docs/index.md.  The files it
  names do not exist: the server reads the index at start and opens files only when asked for them.
* ``startup --bin B --config C --runs N``: time from process start to the ``listening on`` line, and the
  memory it holds then (VmRSS) and at most (VmHWM); the mean of N runs is recorded.
* ``orthanc-upload --url U --data DIR --manifest M``: store the retrieve study's files in Orthanc
  through its REST API (``POST /instances``), on one kept-alive connection.
* ``record-wrk``: read the ``WRKJSON`` line that benches/wrk.lua prints and record a result.
* ``record``: record a result given as KEY=VALUE pairs (``na=why`` marks a row that could not be had).
* ``table``: render every recorded result as the one plain-text table the benchmark prints.

Results are JSON lines in one file (``--results``), appended as the benchmark goes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse

MB = 1e6  # Throughput is reported in MB/s with 1 MB = 10^6 bytes, the unit wrk and nginx docs use.


# -- results file ---------------------------------------------------------------------------------------

def append(results: str, record: dict) -> None:
    with open(results, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def load(results: str) -> list[dict]:
    if not os.path.exists(results):
        return []
    with open(results, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def parse_value(text: str):
    """KEY=VALUE values: integers and floats as numbers, anything else as text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# -- subcommands ----------------------------------------------------------------------------------------

def cmd_free_port(_args) -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
    return 0


def cpu_times() -> tuple[int, int]:
    """Busy and total jiffies of all cores, from the first line of /proc/stat."""
    with open("/proc/stat", encoding="utf-8") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def cmd_busy(args) -> int:
    """How busy the machine's cores were over the next SECONDS, in percent of all of them."""
    busy0, total0 = cpu_times()
    time.sleep(args.seconds)
    busy1, total1 = cpu_times()
    print(round(100 * (busy1 - busy0) / max(1, total1 - total0)))
    return 0


def cmd_parts(args) -> int:
    """The number of parts of a saved multipart body: its delimiters, less the closing one."""
    import mmap
    import re

    found = re.search(r'boundary="?([^";]+)"?', args.content_type)
    if not found:
        print(0)
        return 1
    delimiter = b"--" + found.group(1).encode()
    with open(args.file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        count, at = 0, data.find(delimiter)
        while at >= 0:
            count += 1
            at = data.find(delimiter, at + len(delimiter))
    print(max(0, count - 1))
    return 0


def cmd_get(args) -> int:
    with open(args.file, encoding="utf-8") as f:
        value = json.load(f)
    for key in args.path.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]
    print(value if not isinstance(value, (dict, list)) else json.dumps(value))
    return 0


def cmd_gen_index(args) -> int:
    """Studies of 4 series x 25 instances, 4 studies per patient: 10,000 instances are 100 studies."""
    per_series, per_study = 25, 100
    studies = (args.instances + per_study - 1) // per_study
    root = "2.25.1618033988749894848204586834365"
    out = []
    written = 0
    out.append("# Synthetic index for the start-up benchmark; the files it names do not exist.\n")
    out.append('written = "2025-11-28T00:00:00Z"\n')
    for s in range(1, studies + 1):
        patient = (s - 1) // 4 + 1
        out.append(
            f'\n[[study]]\nuid = "{root}.1.{s}"\npatient_id = "SYN-{patient:06d}"\n'
            f'patient_name = "Synthetic^Patient{patient}"\npatient_birth_date = "19700101"\npatient_sex = "O"\n'
            f'date = "2024{(s % 12) + 1:02d}{(s % 28) + 1:02d}"\ntime = "101500"\n'
            f'accession_number = "SYN-ACC-{s}"\nstudy_id = "{s}"\ndescription = "CT SYNTHETIC {s}"\n'
            f'referring_physician_name = "Synthetic^Referrer"\nmodalities = ["CT"]\n'
        )
        for n in range(1, per_study // per_series + 1):
            if written >= args.instances:
                break
            out.append(
                f'\n[[study.series]]\nuid = "{root}.2.{s}.{n}"\nnumber = {n}\nmodality = "CT"\n'
                f'description = "AXIAL PART {n}"\n'
            )
            for i in range(1, per_series + 1):
                if written >= args.instances:
                    break
                written += 1
                out.append(
                    f'\n[[study.series.instance]]\nuid = "{root}.3.{s}.{n}.{i}"\n'
                    f'sop_class = "1.2.840.10008.5.1.4.1.1.2"\nnumber = {i}\n'
                    f'transfer_syntax = "1.2.840.10008.1.2.1"\n'
                    f'path = "dicom/syn-{patient:06d}/study-{s}/series-{n}/{i:03d}.dcm"\n'
                    f"size = 525434\nmtime = 1764288000\npixel_data_offset = 1146\n"
                )
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(out))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {studies} studies, {written} instances, {os.path.getsize(args.out) / MB:.1f} MB")
    return 0


def read_status(pid: int) -> dict:
    """VmRSS and VmHWM of a process, in kB."""
    found = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(rest.split()[0])
    return found


def spawn(binary: str, config: str) -> subprocess.Popen:
    """The server on a free port of 127.0.0.1, its stdout piped for the `listening on` line."""
    return subprocess.Popen(
        [binary, "serve", "--config", config, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"},
    )


def wait_listening(proc: subprocess.Popen, started: float, timeout: float) -> str:
    """The address (`127.0.0.1:PORT`) of the `listening on` line of a server started at `started`."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line = b""
    while not line.startswith(b"listening on"):
        left = timeout - (time.perf_counter() - started)
        if left <= 0 or not sel.select(left):
            raise RuntimeError(f"no `listening on` line within {timeout} s")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the server exited with status {proc.wait()} before listening")
    return line.split(b"//", 1)[1].strip().decode()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 5 seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_once(binary: str, config: str, timeout: float) -> dict:
    """One start: the time to the `listening on` line and the memory then; the process is stopped after."""
    started = time.perf_counter()
    proc = spawn(binary, config)
    try:
        wait_listening(proc, started, timeout)
        elapsed = time.perf_counter() - started
        memory = read_status(proc.pid)
        return {"seconds": elapsed, "rss_kb": memory["VmRSS"], "hwm_kb": memory["VmHWM"]}
    finally:
        stop(proc)


def cmd_startup(args) -> int:
    runs = []
    try:
        for _ in range(args.runs):
            runs.append(start_once(args.bin, args.config, args.timeout))
    except RuntimeError as e:
        append(args.results, {"kind": "startup", "instances": args.instances, "na": str(e)})
        print(f"start-up with {args.instances} instances failed: {e}", file=sys.stderr)
        return 1
    record = {
        "kind": "startup",
        "instances": args.instances,
        "runs": len(runs),
        "mean_ms": statistics.mean(r["seconds"] for r in runs) * 1000,
        "min_ms": min(r["seconds"] for r in runs) * 1000,
        "max_ms": max(r["seconds"] for r in runs) * 1000,
        "rss_mb": statistics.mean(r["rss_kb"] for r in runs) * 1024 / MB,
        "hwm_mb": max(r["hwm_kb"] for r in runs) * 1024 / MB,
    }
    append(args.results, record)
    print(f"start-up with {args.instances} instances: {record['mean_ms']:.0f} ms "
          f"(min {record['min_ms']:.0f}, max {record['max_ms']:.0f}), RSS {record['rss_mb']:.1f} MB, "
          f"peak {record['hwm_mb']:.1f} MB")
    return 0


def cmd_orthanc_upload(args) -> int:
    with open(args.manifest, encoding="utf-8") as f:
        files = json.load(f)["retrieve"]["files"]
    url = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    stored = 0
    for rel in files:
        with open(os.path.join(args.data, rel), "rb") as f:
            body = f.read()
        conn.request("POST", "/instances", body=body, headers={"Content-Type": "application/dicom"})
        resp = conn.getresponse()
        answer = resp.read()
        if resp.status != 200:
            print(f"Orthanc refused {rel}: {resp.status} {answer[:200]!r}", file=sys.stderr)
            return 1
        stored += 1
    conn.close()
    print(f"stored {stored} instances in Orthanc")
    return 0


def read_wrk(path: str, clients: int, close_delimited: bool) -> dict | None:
    """One wrk run's figures from the WRKJSON line of its output, or None when it printed none."""
    summary = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("WRKJSON "):
                summary = json.loads(line[len("WRKJSON "):])
    if summary is None or summary["duration_us"] <= 0:
        return None
    seconds = summary["duration_us"] / 1e6
    read_errors = summary["read_errors"]
    if close_delimited:
        # A server that ends each response by closing the connection (no Content-Length, as Orthanc
        # does for multipart) makes wrk count one read error per response: those are not failures.
        read_errors = max(0, read_errors - summary["requests"] - clients)
    errors = sum(summary[k] for k in ("connect_errors", "write_errors", "status_errors")) + read_errors
    return {
        "seconds": seconds,
        "requests": summary["requests"],
        "bytes": summary["bytes"],
        "rps": summary["requests"] / seconds,
        "mbps": summary["bytes"] / seconds / MB,
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "errors": errors,
    }


def cmd_record_wrk(args) -> int:
    """Records the median of one measurement's runs (by throughput), with the range of the others."""
    record = {"kind": args.kind, "system": args.system, "clients": args.clients}
    runs = [read_wrk(path, args.clients, args.close_delimited) for path in args.output]
    good = [r for r in runs if r is not None]
    if not good:
        record["na"] = f"wrk printed no summary (see {args.output[0]})"
    else:
        rate = "mbps" if args.kind == "retrieve" else "rps"
        good.sort(key=lambda r: r[rate])
        record.update(good[(len(good) - 1) // 2])
        record.update({
            "runs": len(good),
            "rate_min": good[0][rate],
            "rate_max": good[-1][rate],
            "errors": sum(r["errors"] for r in good),
        })
        if len(good) < len(runs):
            record["failed_runs"] = len(runs) - len(good)
        if record["bytes"] == 0:
            # A whole-study retrieve may not complete within a short run; its bytes still count.
            record["na"] = "nothing was received within the run"
    for pair in args.extra or []:
        key, _, value = pair.partition("=")
        record[key] = parse_value(value)
    append(args.results, record)
    shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in record.items()}
    print(f"recorded {json.dumps(shown)}")
    return 0


def cmd_record(args) -> int:
    record = {}
    for pair in args.pairs:
        key, _, value = pair.partition("=")
        record[key] = parse_value(value)
    append(args.results, record)
    return 0


# -- the table ------------------------------------------------------------------------------------------

def find(records: list[dict], **match) -> dict | None:
    """The last record with every given key equal (a re-run within one results file wins)."""
    hit = None
    for r in records:
        if all(r.get(k) == v for k, v in match.items()):
            hit = r
    return hit


def fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def spread(r: dict, form: str) -> str:
    """The range of a measurement's repeated runs, after its median: " [1,100-1,300]"."""
    if r.get("runs", 1) < 2:
        return ""
    return f" [{form.format(r['rate_min'])}-{form.format(r['rate_max'])}]"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def cmd_table(args) -> int:
    records = load(args.results)
    rows: list[tuple[str, str, str, str]] = []
    notes: list[str] = []
    missing: dict[str, list[str]] = {}  # why a row is n/a -> the rows it applies to
    context = [""]  # the current section's short name, for the n/a notes

    def section(title: str, short: str) -> None:
        rows.append(("", "", "", ""))
        rows.append((title, "", "", ""))
        context[0] = short

    def unavailable(r: dict | None) -> str | None:
        if r is None:
            return "not measured"
        return r.get("na")

    def note_na(label: str, why: str) -> None:
        missing.setdefault(why, []).append(f"{context[0]}, {label}")

    meta = find(records, kind="meta") or {}

    # 1. Whole-study retrieve.
    systems = [
        ("smart-imaging", "smart-imaging WADO-RS"),
        ("nginx-multipart", "nginx, saved multipart (sendfile)"),
        ("nginx-files", "nginx, one request per file"),
        ("orthanc", "Orthanc DICOMweb plugin"),
    ]
    section("1. WADO-RS whole-study retrieve (MB/s, 1 MB = 10^6 bytes)", "retrieve")
    for clients in (1, 8):
        got = {}
        for key, label in systems:
            r = find(records, kind="retrieve", system=key, clients=clients)
            name = f"  {clients} client{'s' if clients > 1 else ''}: {label}"
            why = unavailable(r)
            if why:
                rows.append((name, "n/a", "", "n/a"))
                note_na(name.strip(), why)
                continue
            got[key] = r
            value = f"{r['mbps']:,.1f} MB/s"
            if key == "nginx-files":
                value += f" ({r['rps']:,.0f} files/s)"
            else:
                value += f" ({r['rps']:.2f} studies/s)"
            value += spread(r, "{:,.0f}")
            if r["errors"]:
                value += f", {r['errors']} errors"
            rows.append((name, value, "", "ERRORS" if r["errors"] else ""))
        si = got.get("smart-imaging")
        for key, label, target in (("nginx-multipart", "nginx (saved multipart)", 0.8), ("orthanc", "Orthanc", None)):
            name = f"  {clients} client{'s' if clients > 1 else ''}: smart-imaging / {label}"
            other = got.get(key)
            if si is None or other is None or other["mbps"] <= 0:
                rows.append((name, "n/a", f">= {target:.2f}x" if target else "", "n/a"))
                continue
            ratio = si["mbps"] / other["mbps"]
            ok = ratio >= target if target else None
            rows.append((name, f"{ratio:.2f}x", f">= {target:.2f}x" if target else "",
                         verdict(ok) if target else ""))

    # 2 and 3. Search.
    def search_row(label: str, r: dict | None, target: str = "", ok: bool | None = None, extra: str = ""):
        why = unavailable(r)
        if why:
            rows.append((label, "n/a", target, "n/a"))
            note_na(label.strip(), why)
            return
        value = f"{fmt_int(r['rps'])} req/s{spread(r, '{:,.0f}')}, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms{extra}"
        if r["errors"]:
            value += f", {r['errors']} errors"
            ok = False if ok is not None else None
        result = verdict(ok) if ok is not None else ("ERRORS" if r["errors"] else "")
        rows.append((label, value, target, result))

    section(f"2. ImagingStudy search, mock tenant ({meta.get('search_studies', 10)} studies of one patient)",
            "mock search")
    mock = {c: find(records, kind="search", system="mock", clients=c) for c in (1, 16)}
    search_row("  1 connection", mock[1])
    m16 = mock[16]
    search_row("  16 connections", m16, ">= 10,000 req/s",
               (m16["rps"] >= 10000) if m16 and not m16.get("na") else None)

    section("3. The same search, smart-on-fhir tenant with a local fake EHR", "smart-on-fhir search")
    for c in (1, 16):
        conn = f"{c} connection{'s' if c > 1 else ''}"
        cold = find(records, kind="search", system="smart-cold", clients=c)
        search_row(f"  {conn}, cold (new token each request)", cold)
    for c in (1, 16):
        conn = f"{c} connection{'s' if c > 1 else ''}"
        warm = find(records, kind="search", system="smart-warm", clients=c)
        base = mock[c]
        ok, extra = None, ""
        if warm and not warm.get("na") and base and not base.get("na") and base["rps"] > 0:
            share = warm["rps"] / base["rps"]
            ok, extra = share >= 0.9, f" ({share:.2f}x mock)"
        search_row(f"  {conn}, warm (one cached token)", warm, ">= 0.90x mock", ok, extra)
        if warm and warm.get("ehr_calls") not in (None, 0):
            notes.append(f"warm run at {conn} still made {warm['ehr_calls']} EHR calls")

    section("4. Start-up (process start to `listening on`, mean of 5) and memory", "start-up")
    for n in (10000, 100000):
        r = find(records, kind="startup", instances=n)
        label = f"  index of {n:,} instances"
        why = unavailable(r)
        if why:
            rows.append((label + ": time", "n/a", "", "n/a"))
            note_na(label.strip(), why)
            continue
        big = n == 100000
        rows.append((label + ": time", f"{r['mean_ms']:,.0f} ms (min {r['min_ms']:,.0f}, max {r['max_ms']:,.0f})",
                     "< 1,000 ms" if big else "", verdict(r["mean_ms"] < 1000) if big else ""))
        rows.append((label + ": RSS after start", f"{r['rss_mb']:.1f} MB",
                     "< 100 MB" if big else "", verdict(r["rss_mb"] < 100) if big else ""))
        rows.append((label + ": peak RSS (VmHWM)", f"{r['hwm_mb']:.1f} MB", "", ""))

    section("5. Release binary", "binary")
    b = find(records, kind="binary")
    if b:
        rows.append(("  size, stripped", f"{fmt_int(b['stripped'])} bytes ({b['stripped'] / 2**20:.2f} MiB)", "", ""))
        rows.append(("  size, as built", f"{fmt_int(b['unstripped'])} bytes ({b['unstripped'] / 2**20:.2f} MiB)", "", ""))
    else:
        rows.append(("  size, stripped", "n/a", "", "n/a"))

    # Render: a header, aligned columns, notes.
    header = ("Measurement", "Value", "Target", "Result")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]

    def line(r) -> str:
        return "  ".join(r[i].ljust(widths[i]) for i in range(4)).rstrip()

    out = ["smart-imaging benchmark"]
    if meta:
        out.append(f"{meta.get('date', '')}, {meta.get('cores', '?')} cores; dataset "
                   f"{meta.get('dataset_mb', 0):,.0f} MB in {meta.get('dataset_files', 0):,} files; retrieve study "
                   f"{meta.get('study_instances', 0)} instances, {meta.get('multipart_mb', 0):,.1f} MB as multipart")
        out.append(f"Each wrk figure is the median of {meta.get('rounds', 1)} runs of {meta.get('duration', '?')}, "
                   f"[min-max] of the runs after it.")
    out.append("")
    out.append(line(header))
    out.append("  ".join("-" * w for w in widths))
    for r in rows[1:]:
        out.append(line(r))
    passed = sum(1 for r in rows if r[3] == "PASS")
    failed = sum(1 for r in rows if r[3] == "FAIL")
    out.append("")
    out.append(f"Targets met: {passed} of {passed + failed}.")
    for why, labels in missing.items():
        out.append(f"Note: n/a because {why}: {'; '.join(labels)}")
    for n in notes:
        out.append(f"Note: {n}")
    for n in (meta.get("notes") or "").split("|"):
        if n:
            out.append(f"Note: {n}")
    text = "\n".join(out) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    sys.stdout.write(text)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("free-port")

    p = sub.add_parser("busy")
    p.add_argument("--seconds", type=float, default=2)

    p = sub.add_parser("parts")
    p.add_argument("file")
    p.add_argument("content_type")

    p = sub.add_parser("get")
    p.add_argument("file")
    p.add_argument("path")

    p = sub.add_parser("gen-index")
    p.add_argument("--instances", type=int, required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("startup")
    p.add_argument("--bin", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--instances", type=int, required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--results", required=True)

    p = sub.add_parser("orthanc-upload")
    p.add_argument("--url", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--manifest", required=True)

    p = sub.add_parser("record-wrk")
    p.add_argument("--results", required=True)
    p.add_argument("--kind", required=True)
    p.add_argument("--system", required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--output", required=True, action="append",
                   help="a file holding one run's wrk output; repeat it for repeated runs")
    p.add_argument("--close-delimited", action="store_true",
                   help="the server closes the connection after each response; do not count that as an error")
    p.add_argument("extra", nargs="*", help="more KEY=VALUE pairs for the record")

    p = sub.add_parser("record")
    p.add_argument("--results", required=True)
    p.add_argument("pairs", nargs="+")

    p = sub.add_parser("table")
    p.add_argument("--results", required=True)
    p.add_argument("--out")

    args = parser.parse_args()
    handler = {
        "free-port": cmd_free_port,
        "busy": cmd_busy,
        "parts": cmd_parts,
        "get": cmd_get,
        "gen-index": cmd_gen_index,
        "startup": cmd_startup,
        "orthanc-upload": cmd_orthanc_upload,
        "record-wrk": cmd_record_wrk,
        "record": cmd_record,
        "table": cmd_table,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())

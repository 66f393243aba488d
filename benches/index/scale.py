#!/usr/bin/env python3
"""The index-scale benchmark's two halves (benches/index/scale.sh runs them).

* ``gen --studies N --out DIR``: writes DIR/index.toml, a synthetic index in the layout `smart-imaging index`
  writes, of N studies x 2 series x 50 instances (two studies per patient), and DIR/smart-imaging.toml, a
  mock tenant ``bench`` whose patient ``p1`` is the patient in the middle of the index. The files the index
  names (``studies/<study>/<series>/<instance>.dcm``) are not written: the server reads only the index at
  start (it opens a file when it is asked for it, and `smart-imaging check` is what verifies them), and an
  ImagingStudy search reads no file. UIDs look like a vendor's (an organisation root, counters and a
  per-study number), about 45 to 60 characters; nothing depends on the clock or on random numbers, so the
  same N gives the same bytes. A DIR already written for the same N by the same script is kept as it is.
* ``measure --bin B --dir DIR --runs R --searches S``: starts B on DIR's configuration R times and prints one
  JSON line: the median time from the process start to the first answered ``GET /healthz`` (ready), VmRSS
  then and after the searches, VmHWM (peak), and the p50 and p99 of S sequential searches for patient p1 on
  one kept-alive connection, after one first (cold) search that is timed apart.
* ``table --results FILE``: prints the measured rows (one JSON line each, as ``measure`` printed them with
  ``label`` and ``instances`` added) side by side with the anchor build and the ratio, the goals at 1M
  instances, and a projection to 10M instances from the per-instance costs between the two sizes.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import helpers  # noqa: E402  (benches/helpers.py: starting and stopping the server, its memory)

ROOT = "1.2.826.0.1.3680043.10.1077"
SERIES, INSTANCES = 2, 50
CT, MR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT, JPEG2000 = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"


def tail(*parts: int) -> int:
    """A stable per-object number, standing for the timestamp or serial a vendor puts in its UIDs."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return 100_000_000 + int.from_bytes(digest, "little") % 900_000_000


def study_text(s: int) -> str:
    patient = (s + 1) // 2
    ct = s % 2 == 1
    modality, sop = ("CT", CT) if ct else ("MR", MR)
    syntax = JPEG2000 if s % 5 == 0 else EXPLICIT
    out = [
        f'\n[[study]]\nuid = "{ROOT}.1.{s}.{tail(s)}"\npatient_id = "MRN-{patient:06d}"\n'
        f'patient_name = "Synthetic^Patient^{patient}"\npatient_birth_date = "19700412"\npatient_sex = "F"\n'
        f'date = "2024{s % 12 + 1:02d}{s % 28 + 1:02d}"\ntime = "093000"\naccession_number = "ACC-{s:07d}"\n'
        f'study_id = "{s}"\ndescription = "{modality} SYNTHETIC STUDY"\n'
        f'referring_physician_name = "Smith^John"\nmodalities = ["{modality}"]\n'
    ]
    for se in range(1, SERIES + 1):
        out.append(
            f'\n[[study.series]]\nuid = "{ROOT}.2.{s}.{se}.{tail(s, se)}"\nnumber = {se}\n'
            f'modality = "{modality}"\ndescription = "AXIAL {se * 2} MM"\n'
        )
        base = tail(s, se, 0)
        for i in range(1, INSTANCES + 1):
            out.append(
                f'\n[[study.series.instance]]\nuid = "{ROOT}.3.{s}.{se}.{base}.{i}"\nsop_class = "{sop}"\n'
                f'number = {i}\ntransfer_syntax = "{syntax}"\npath = "studies/{s}/{se}/{i}.dcm"\n'
                f"size = {525_000 + (s * 7 + i * 13) % 4096}\nmtime = {1_764_288_000 + s}\n"
                f"pixel_data_offset = {1146 + (i % 3) * 2}\n"
            )
    return "".join(out)


def config_text(studies: int) -> str:
    patient = max(1, (studies + 1) // 4)  # the middle one of the (studies + 1) // 2 patients
    return (
        "# Written by benches/index/scale.py: a mock tenant whose patient p1 owns two of the synthetic studies.\n"
        '[images]\nindex = "index.toml"\n\n[tenants.bench]\nauthorization.type = "mock"\n'
        "authorization.ignorePatient = false\n"
        f'authorization.patient = {{ id = "p1", identifier = [{{ value = "MRN-{patient:06d}", type = "MR" }}] }}\n'
        'images.lookup = "studies-by-context"\n'
    )


def cmd_gen(args) -> int:
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = f"{args.studies} studies\n{hashlib.sha256(pathlib.Path(__file__).read_bytes()).hexdigest()}\n"
    stamp = out / "made-by"
    if stamp.exists() and stamp.read_text() == recipe:
        print(f"{out}: already holds {args.studies * SERIES * INSTANCES} instances", file=sys.stderr)
        return 0
    tmp = out / "index.toml.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("# Written by benches/index/scale.py; the files it names do not exist.\n")
        f.write('written = "2025-11-28T00:00:00Z"\n')
        for s in range(1, args.studies + 1):
            f.write(study_text(s))
    os.replace(tmp, out / "index.toml")
    (out / "smart-imaging.toml").write_text(config_text(args.studies))
    stamp.write_text(recipe)
    size = (out / "index.toml").stat().st_size
    print(f"{out}: wrote {args.studies * SERIES * INSTANCES} instances, {size / 1e6:.0f} MB", file=sys.stderr)
    return 0


def get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {body[:200]!r}")
    return body


def run_once(binary: str, config: str, searches: int, timeout: float) -> dict:
    """One start: ready time and memory, then the searches; the process is stopped after."""
    started = time.perf_counter()
    proc = helpers.spawn(binary, config)
    try:
        conn = http.client.HTTPConnection(helpers.wait_listening(proc, started, timeout), timeout=timeout)
        get(conn, "/healthz")
        ready = time.perf_counter() - started
        at_ready = helpers.read_status(proc.pid)
        path = "/bench/fhir/ImagingStudy?patient=p1"
        t = time.perf_counter()
        body = get(conn, path)
        first = time.perf_counter() - t
        total = json.loads(body)["total"]
        times = []
        for _ in range(searches):
            t = time.perf_counter()
            get(conn, path)
            times.append(time.perf_counter() - t)
        after = helpers.read_status(proc.pid)
        times.sort()
        return {
            "ready_ms": ready * 1000,
            "rss_mb": at_ready["VmRSS"] / 1000,
            "rss_after_mb": after["VmRSS"] / 1000,
            "hwm_mb": after["VmHWM"] / 1000,
            "first_search_ms": first * 1000,
            "p50_ms": times[len(times) // 2] * 1000,
            "p99_ms": times[min(len(times) - 1, len(times) * 99 // 100)] * 1000,
            "studies_found": total,
        }
    finally:
        helpers.stop(proc)


def cmd_measure(args) -> int:
    config = str(pathlib.Path(args.dir) / "smart-imaging.toml")
    runs = [run_once(args.bin, config, args.searches, args.timeout) for _ in range(args.runs)]
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    # The peak is the worst run's, not a median.
    median["hwm_mb"] = max(r["hwm_mb"] for r in runs)
    median["ready_min_ms"] = min(r["ready_ms"] for r in runs)
    median["ready_max_ms"] = max(r["ready_ms"] for r in runs)
    median["runs"] = len(runs)
    print(json.dumps(median))
    return 0


GOALS = {  # at 1,000,000 instances
    "ready_ms": ("<", 1000),
    "rss_mb": ("<", 150),
    "hwm_mb": ("<", 250),
    "p50_ms": ("<", 1),
}
ROWS = [
    ("ready_ms", "ready (first /healthz answered)", "ms", "{:,.0f}"),
    ("rss_mb", "RSS when ready (VmRSS)", "MB", "{:,.1f}"),
    ("hwm_mb", "peak RSS (VmHWM)", "MB", "{:,.1f}"),
    ("rss_after_mb", "RSS after the searches", "MB", "{:,.1f}"),
    ("first_search_ms", "first search (cold)", "ms", "{:.2f}"),
    ("p50_ms", "search, one patient, p50", "ms", "{:.3f}"),
    ("p99_ms", "search, one patient, p99", "ms", "{:.3f}"),
]


def cmd_table(args) -> int:
    with open(args.results, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    by = {(r["label"], r["instances"]): r for r in records}
    sizes = sorted({r["instances"] for r in records})
    anchored = any(r["label"] == "anchor" for r in records)
    head = ["", "this build"] + (["anchor", "this / anchor"] if anchored else [])
    lines = [head]
    for n in sizes:
        lines.append([f"{n:,} instances"] + [""] * (len(head) - 1))
        for key, name, unit, form in ROWS:
            row = [f"  {name}, {unit}"]
            this, anchor = by.get(("this", n)), by.get(("anchor", n))
            row.append(form.format(this[key]) if this else "n/a")
            if anchored:
                row.append(form.format(anchor[key]) if anchor else "n/a")
                ratio = this[key] / anchor[key] if this and anchor and anchor[key] else None
                row.append(f"{ratio:.2f}x" if ratio is not None else "n/a")
            lines.append(row)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    for r in lines:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))

    big = by.get(("this", 1_000_000))
    if big:
        print("\ngoals at 1,000,000 instances (this build):")
        for key, (op, limit) in GOALS.items():
            name, unit = next((n, u) for k, n, u, _ in ROWS if k == key)
            ok = big[key] < limit
            print(f"  {name}: {big[key]:,.3g} {unit} {op} {limit:,} {unit}: {'PASS' if ok else 'FAIL'}")

    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        print(f"\nprojection to 10,000,000 instances from the costs per instance between {small:,} and {large:,}:")
        for label in ("this", "anchor"):
            a, b = by.get((label, small)), by.get((label, large))
            if not a or not b:
                continue
            extra = large - small
            per = {k: (b[k] - a[k]) / extra for k in ("ready_ms", "rss_mb", "hwm_mb")}
            at = {k: b[k] + per[k] * (10_000_000 - large) for k in per}
            print(f"  {label + ' build':12s} {per['rss_mb'] * 1e6:6.1f} bytes/instance resident "
                  f"({per['hwm_mb'] * 1e6:.1f} at the peak), {per['ready_ms'] * 1e3:.2f} µs/instance of start-up: "
                  f"10M instances ready in {at['ready_ms'] / 1000:.1f} s, RSS {at['rss_mb'] / 1000:.2f} GB, "
                  f"peak {at['hwm_mb'] / 1000:.2f} GB")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("gen")
    gen.add_argument("--studies", type=int, required=True)
    gen.add_argument("--out", required=True)
    gen.set_defaults(run=cmd_gen)
    measure = sub.add_parser("measure")
    measure.add_argument("--bin", required=True)
    measure.add_argument("--dir", required=True)
    measure.add_argument("--runs", type=int, default=3)
    measure.add_argument("--searches", type=int, default=1000)
    measure.add_argument("--timeout", type=float, default=120.0)
    measure.set_defaults(run=cmd_measure)
    table = sub.add_parser("table")
    table.add_argument("--results", required=True)
    table.set_defaults(run=cmd_table)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Time the study search at an Endpoint address (`GET {address}/studies?…`) on a study of 300 instances.

It writes an index of one study (3 series of 100 instances; the files themselves are not needed, since the
study search reads only the index), serves it with the binary given on an `open` tenant on 127.0.0.1:0, and
times OHIF's first request over one kept-alive connection, then with `If-None-Match` (a 304).

Usage::

    cargo build --release && python3 benches/qido_study.py target/release/smart-imaging
"""

import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = "2.25.4242"
RUNS = 2000


def index_text(series=3, per_series=100):
    lines = ['written = "2026-01-01T00:00:00Z"', "", "[[study]]", f'uid = "{ROOT}.1"', 'patient_id = "BENCH"',
             'patient_name = "Bench^Patient"', 'patient_birth_date = "19700101"', 'patient_sex = "O"',
             'date = "20240105"', 'time = "093000"', 'accession_number = "A1"', 'description = "BENCH"',
             'modalities = ["CT"]']
    for s in range(1, series + 1):
        lines += ["", "[[study.series]]", f'uid = "{ROOT}.2.{s}"', f"number = {s}", 'modality = "CT"']
        for i in range(1, per_series + 1):
            lines += ["", "[[study.series.instance]]", f'uid = "{ROOT}.3.{s}.{i}"',
                      'sop_class = "1.2.840.10008.5.1.4.1.1.2"', f"number = {i}",
                      'transfer_syntax = "1.2.840.10008.1.2.1"', f'path = "s{s}/{i}.dcm"', "size = 525000",
                      "mtime = 1764288000"]
    return "\n".join(lines) + "\n"


def timed(conn, path, headers):
    start = time.perf_counter()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    return time.perf_counter() - start, resp, body


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "index.toml").write_text(index_text())
        Path(tmp, "c.toml").write_text('[images]\nindex = "index.toml"\n\n[tenants.open]\n'
                                       'authorization = { type = "mock", ignorePatient = true }\n'
                                       'images = { lookup = "all-studies" }\n')
        server = subprocess.Popen([binary, "--config", f"{tmp}/c.toml", "--listen", "127.0.0.1:0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            base = next(l for l in server.stdout if l.startswith("listening on")).split()[2]
            host = urllib.parse.urlsplit(base).netloc
            conn = http.client.HTTPConnection(host, timeout=10)
            _, resp, body = timed(conn, "/open/fhir/ImagingStudy", {})
            address = urllib.parse.urlsplit(json.loads(body)["entry"][0]["resource"]["contained"][0]["address"]).path
            query = ("limit=101&offset=0&fuzzymatching=false&includefield=00081030,00080060,00080090,00100030"
                     f"&StudyInstanceUID={ROOT}.1")
            path = f"{address}/studies?{query}"
            _, resp, body = timed(conn, path, {})
            found = json.loads(body)
            assert resp.status == 200 and len(found) == 1, (resp.status, body[:200])
            assert found[0]["00201208"]["Value"] == [300], found[0]["00201208"]
            etag = resp.getheader("ETag")
            for name, headers, status in [("200", {}, 200), ("304 (If-None-Match)", {"If-None-Match": etag}, 304)]:
                times = []
                for _ in range(RUNS):
                    t, resp, _ = timed(conn, path, headers)
                    assert resp.status == status, resp.status
                    times.append(t)
                times.sort()
                print(f"study search, 300 instances, {name}: median {statistics.median(times) * 1e6:.0f} µs, "
                      f"p99 {times[int(len(times) * 0.99)] * 1e6:.0f} µs over {RUNS} requests on one connection")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What an unauthenticated attacker can make the server hold, measured against release binaries.

Usage: python3 benches/attack.py BIN [ANCHOR_BIN]

Each binary serves the repository's own configuration (its sandbox EHR included) on 127.0.0.1 port 0, and
for the imaging listener and the sandbox's it prints:

* ``lines``: two connections each send a request line of LINE_MIB MiB (default 1024) without an end, as
  fast as the server takes them: the bytes each got through before the server closed it (or all of them),
  the growth of the process's VmRSS at its peak and once they are gone, and the slowest ``/healthz`` asked
  meanwhile;
* ``burst``: 100 keep-alive connections opened back to back, each sending one request: the median and the
  slowest answer, and how many got none within 40 s.

Nothing leaves 127.0.0.1; every run is bounded in time, and every server is stopped at the end.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINE_MIB = int(os.environ.get("LINE_MIB", "1024"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(binary: str):
    proc = subprocess.Popen(
        [binary, "serve", "--config", os.path.join(ROOT, "smart-imaging.toml"), "--listen", "127.0.0.1:0",
         "--sandbox-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    imaging = sandbox = None
    deadline = time.time() + 60
    while (imaging is None or sandbox is None) and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("listening on http://"):
            imaging = line.split("http://")[1].split()[0]
        elif line.startswith("sandbox listening on http://"):
            sandbox = line.split("http://")[1].split()[0]
    if imaging is None or sandbox is None:
        proc.kill()
        sys.exit(f"{binary} did not start")
    addr = lambda a: (a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1]))
    return proc, addr(imaging), addr(sandbox)


def ask(addr, path: str, timeout: float = 10.0) -> float | None:
    """Seconds to the status line of GET path on a new connection; None without one."""
    started = time.time()
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            if s.recv(12).startswith(b"HTTP/1.1"):
                return time.time() - started
    except OSError:
        pass
    return None


def endless_line(addr, total: int, out: list, at: int) -> None:
    sent = 0
    chunk = b"a" * (1 << 20)
    try:
        with socket.create_connection(addr, timeout=30) as s:
            s.sendall(b"GET /healthz?a=")
            while sent < total:
                sent += s.send(chunk)
            out[at] = (sent, False)
            return
    except OSError:
        pass
    out[at] = (sent, True)


def lines(pid: int, addr, health_addr, health_path: str) -> str:
    before = rss_kib(pid)
    out = [None, None]
    floods = [threading.Thread(target=endless_line, args=(addr, LINE_MIB << 20, out, n)) for n in range(2)]
    for t in floods:
        t.start()
    peak, slowest = before, 0.0
    deadline = time.time() + 120
    while any(t.is_alive() for t in floods) and time.time() < deadline:
        peak = max(peak, rss_kib(pid))
        took = ask(health_addr, health_path)
        slowest = max(slowest, took if took is not None else float("inf"))
        time.sleep(0.05)
    for t in floods:
        t.join(timeout=5)
    time.sleep(1)
    after = rss_kib(pid)
    sent = ", ".join(f"{s / (1 << 20):.1f} MiB {'closed' if closed else 'all taken'}" for s, closed in
                     [o or (0, False) for o in out])
    return (f"{sent}; VmRSS peak +{(peak - before) / 1024:.0f} MiB, after +{(after - before) / 1024:.0f} MiB; "
            f"slowest {health_path} meanwhile {slowest * 1000:.0f} ms")


def burst(addr, path: str) -> str:
    conns = []
    started = time.time()
    for _ in range(100):
        s = socket.create_connection(addr, timeout=5)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        conns.append(s)
    times, unanswered = [], 0
    for s in conns:
        s.settimeout(max(0.01, started + 40 - time.time()))
        try:
            if s.recv(12).startswith(b"HTTP/1.1"):
                times.append(time.time() - started)
            else:
                unanswered += 1
        except OSError:
            unanswered += 1
        s.close()
    median = statistics.median(times) * 1000 if times else float("nan")
    slowest = max(times) * 1000 if times else float("nan")
    return f"median {median:.0f} ms, slowest {slowest:.0f} ms, unanswered within 40 s: {unanswered}"


def measure(binary: str) -> None:
    print(f"== {binary}")
    proc, imaging, sandbox = start(binary)
    try:
        print("imaging lines: " + lines(proc.pid, imaging, imaging, "/healthz"), flush=True)
        print("imaging burst: " + burst(imaging, "/healthz"), flush=True)
        print("sandbox lines: " + lines(proc.pid, sandbox, sandbox, "/fhir/metadata"), flush=True)
        print("sandbox burst: " + burst(sandbox, "/fhir/metadata"), flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for b in sys.argv[1:]:
        measure(b)

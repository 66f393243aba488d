#!/usr/bin/env python3
"""Retrieve and search on the wire, beside nginx serving the very same bytes (benches/wire.sh runs it).

For each shape, smart-imaging (and, when given, an anchor build of it) and nginx are driven by wrk on
127.0.0.1 in the same run, the systems taking turns round after round so that a slow moment of the machine
does not fall on one of them only; each figure is the median of the rounds:

* retrieve of the 40 x 132 KB study and of the 300 x 525 KB study as multipart/related, at 1 and 8
  clients: nginx serves smart-imaging's own saved response as one static file (sendfile);
* retrieve of one instance as application/dicom, at 1 and 8 clients: nginx serves the same file;
* ImagingStudy search (mock tenant, one patient, 2 studies), at 1 and 16 connections: nginx serves the
  saved Bundle.

It prints one table with MB/s or requests/s, the ratio to nginx and the goal, and saves it next to the
data. Usage: wire.py BIN DATA_DIR WORK_DIR [ANCHOR_BIN]; environment WIRE_SECONDS (5), WIRE_ROUNDS (3).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

SECONDS = int(os.environ.get("WIRE_SECONDS", "5"))
ROUNDS = int(os.environ.get("WIRE_ROUNDS", "3"))
ACCEPT_MULTIPART = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, headers: dict | None = None) -> tuple[bytes, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as r:
        return r.read(), dict(r.headers)


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {seconds} s")


class SmartImaging:
    """One smart-imaging process on the bench configuration, and the URLs its searches give."""

    def __init__(self, name: str, binary: str, config: str, work: str):
        self.name = name
        out = open(os.path.join(work, f"{name}.out"), "w")
        self.log = open(os.path.join(work, f"{name}.log"), "w")
        self.proc = subprocess.Popen([binary, "serve", "--config", config, "--listen", "127.0.0.1:0"],
                                     stdout=out, stderr=self.log)
        deadline = time.monotonic() + 30
        self.base = ""
        while not self.base and time.monotonic() < deadline:
            time.sleep(0.1)
            with open(os.path.join(work, f"{name}.out")) as f:
                m = re.search(r"^listening on (\S+)", f.read(), re.M)
                self.base = m.group(1) if m else ""
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited; see {work}/{name}.log")
        if not self.base:
            raise SystemExit(f"{name} did not start")
        wait_for(self.base + "/healthz")

    def search(self, tenant: str, fhir_id: str) -> tuple[str, bytes]:
        path = f"/{tenant}/fhir/ImagingStudy?patient={fhir_id}"
        body, _ = get(self.base + path, {"Authorization": "Bearer bench"})
        return path, body

    def wado(self, tenant: str, fhir_id: str) -> str:
        _, body = self.search(tenant, fhir_id)
        bundle = json.loads(body)
        resource = bundle["entry"][0]["resource"]
        return f"{resource['contained'][0]['address']}/studies/{resource['id']}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wrk(url: str, clients: int, headers: dict, out: str) -> dict:
    args = ["wrk", "-t1", f"-c{clients}", f"-d{SECONDS}s", "--timeout", "30s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    text = subprocess.run(args + [url], capture_output=True, text=True, timeout=SECONDS + 60).stdout
    with open(out, "a") as f:
        f.write(f"$ {' '.join(args)} {url}\n{text}\n")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", text)
    scale = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} non-2xx answers from {url}; see {out}")
    return {"rps": rps, "mbps": float(m.group(1)) * scale / 1e6}


def nginx_start(work: str, www: str, types: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    user = "user root root;" if os.geteuid() == 0 else ""
    locations = "\n".join(
        f"        location = /{name} {{ types {{ }} default_type '{ctype}'; }}" for name, ctype in types.items())
    conf = os.path.join(work, "nginx.conf")
    os.makedirs(os.path.join(work, "nginx-temp"), exist_ok=True)
    with open(conf, "w") as f:
        f.write(f"""# Written by benches/wire.py: static files on 127.0.0.1, as fast as nginx serves them.
{user}
daemon off;
worker_processes auto;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_temp_path {work}/nginx-temp/body;
    proxy_temp_path {work}/nginx-temp/proxy;
    fastcgi_temp_path {work}/nginx-temp/fastcgi;
    uwsgi_temp_path {work}/nginx-temp/uwsgi;
    scgi_temp_path {work}/nginx-temp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {www};
{locations}
    }}
}}
""")
    proc = subprocess.Popen(["nginx", "-p", work, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_for(base + "/" + next(iter(types)))
    return proc, base


def main() -> int:
    binary, data, work = sys.argv[1], sys.argv[2], sys.argv[3]
    anchor = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
    os.makedirs(work, exist_ok=True)
    manifest = json.load(open(os.path.join(data, "manifest.json")))
    patients = manifest["patients"]
    key = os.path.join(work, "study-token.key")
    if not os.path.exists(key):
        with open(key, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(key, 0o600)
    config = os.path.join(work, "smart-imaging.toml")
    with open(config, "w") as f:
        f.write(f'# Written by benches/wire.py.\n[server]\nlisten = "127.0.0.1:0"\nkey_file = "{key}"\n\n'
                f'[images]\nindex = "{data}/index.toml"\n')
        for folder, p in patients.items():
            tenant = folder.replace("wire-", "")
            f.write(f'\n[tenants.{tenant}]\nauthorization.type = "mock"\n'
                    f'authorization.patient = {{ id = "{p["fhir_id"]}", name = "{tenant.title()} Bench", identifier = [{{ system = '
                    f'"http://hospital.example.org/mrn", value = "{p["patient_id"]}", type = "MR" }}] }}\n'
                    f'images.lookup = "studies-by-context"\n')
    log = os.path.join(work, "wrk.txt")
    open(log, "w").close()

    servers = [SmartImaging("smart-imaging", binary, config, work)]
    if anchor:
        servers.append(SmartImaging("anchor", anchor, config, work))

    # What nginx serves: smart-imaging's own responses, saved, and the instance file itself.
    www = os.path.join(work, "www")
    os.makedirs(www, exist_ok=True)
    main_server = servers[0]
    types = {}
    for shape in ("small", "large"):
        body, headers = get(main_server.wado(shape, patients[f"wire-{shape}"]["fhir_id"]),
                            {"Accept": ACCEPT_MULTIPART, "Authorization": "Bearer bench"})
        open(os.path.join(www, shape), "wb").write(body)
        types[shape] = headers["Content-Type"]
    one = patients["wire-small"]["studies"][0]["files"][0]
    with open(os.path.join(data, one["path"]), "rb") as src:
        open(os.path.join(www, "one"), "wb").write(src.read())
    types["one"] = "application/dicom"
    search_path, bundle = main_server.search("search", patients["wire-search"]["fhir_id"])
    open(os.path.join(www, "bundle"), "wb").write(bundle)
    types["bundle"] = "application/fhir+json;charset=utf-8"
    nginx, nginx_base = nginx_start(work, www, types)

    # Each row: what is asked of smart-imaging and of nginx, and the goal as a ratio to nginx.
    rows = []
    for shape, label in (("small", "retrieve 40 x 132 KB study"), ("large", "retrieve 300 x 525 KB study")):
        for clients in (1, 8):
            rows.append((f"{label}, {clients} client{'s' if clients > 1 else ''}", clients, "mbps", 0.9,
                         lambda s, shape=shape: (s.wado(shape, patients[f"wire-{shape}"]["fhir_id"]),
                                                 {"Accept": ACCEPT_MULTIPART, "Authorization": "Bearer bench"}),
                         f"/{shape}"))
    for clients in (1, 8):
        rows.append((f"retrieve one 132 KB instance, {clients} client{'s' if clients > 1 else ''}", clients,
                     "mbps", 0.8,
                     lambda s: (s.wado("small", patients["wire-small"]["fhir_id"])
                                + f"/series/{one['series']}/instances/{one['sop']}",
                                {"Accept": "application/dicom", "Authorization": "Bearer bench"}),
                     "/one"))
    for clients, goal in ((1, 0.8), (16, 0.5)):
        rows.append((f"search, 2 studies ({len(bundle) / 1000:.1f} KB Bundle), {clients} connection"
                     f"{'s' if clients > 1 else ''}", clients, "rps", goal,
                     lambda s: (s.base + search_path, {"Authorization": "Bearer bench"}), "/bundle"))

    # Check every URL answers before measuring.
    for _, _, _, _, target, path in rows:
        for s in servers:
            url, headers = target(s)
            get(url, headers)
        get(nginx_base + path)

    figures: dict[tuple[int, str], list[float]] = {}
    for round_ in range(1, ROUNDS + 1):
        print(f"[wire] round {round_} of {ROUNDS}", file=sys.stderr)
        for n, (label, clients, unit, goal, target, path) in enumerate(rows):
            for s in servers:
                url, headers = target(s)
                figures.setdefault((n, s.name), []).append(wrk(url, clients, headers, log)[unit])
            figures.setdefault((n, "nginx"), []).append(wrk(nginx_base + path, clients, {}, log)[unit])

    for s in servers:
        s.stop()
    nginx.send_signal(signal.SIGQUIT)
    nginx.wait(15)

    names = [s.name for s in servers]
    header = f"{'shape':<58} {'unit':>5} " + " ".join(f"{n:>14}" for n in names + ["nginx"])
    header += f" {'ratio':>7} {'goal':>6}" + (f" {'vs anchor':>10}" if anchor else "") + "  verdict"
    lines = [header, "-" * len(header)]
    for n, (label, clients, unit, goal, _, _) in enumerate(rows):
        med = {name: statistics.median(figures[(n, name)]) for name in names + ["nginx"]}
        ratio = med["smart-imaging"] / med["nginx"]
        cells = " ".join(f"{med[name]:>14,.0f}" for name in names + ["nginx"])
        line = f"{label:<58} {'MB/s' if unit == 'mbps' else 'req/s':>5} {cells} {ratio:>6.2f}x {goal:>5.2f}x"
        if anchor:
            line += f" {med['smart-imaging'] / med['anchor']:>9.2f}x"
        line += "  " + ("meets" if ratio >= goal else "short")
        lines.append(line)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines.append("")
    lines.append(f"{os.cpu_count()} cores ({cpu}); wrk -t1, median of {ROUNDS} runs of {SECONDS} s each; "
                 "every server and wrk on this machine, on 127.0.0.1. ratio = smart-imaging / nginx.")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(work, "results.txt"), "w") as f:
        f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Hostile slow clients for the load test, on 127.0.0.1 only, for a bounded time. Each kind runs in
--per-kind threads, each reconnecting whenever its connection ends:

  stall       sends half a request line, then nothing: the read timeout should close it.
  dribble     sends a header one byte every 0.5 s (slowloris): each read is quick, the request never ends.
  no-read     asks for the largest study and never reads the answer: the write timeout should free the worker.
  slow-read   downloads the largest study 1 KiB every 20 ms.

At the end it prints, per kind, how many connections it made, how many the server ended, and how long they
were held.

Usage: slow_clients.py HOST:PORT SLOW.json --duration SECONDS --per-kind N
"""

import argparse
import json
import socket
import threading
import time


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.rows = {}

    def add(self, kind, held, ended_by_server, note=""):
        with self.lock:
            row = self.rows.setdefault(kind, {"connections": 0, "ended_by_server": 0, "held": [], "notes": {}})
            row["connections"] += 1
            row["ended_by_server"] += int(ended_by_server)
            row["held"].append(held)
            if note:
                row["notes"][note] = row["notes"].get(note, 0) + 1


def closed(sock, wait):
    """Whether the server closed (or answered and closed) within `wait` seconds."""
    sock.settimeout(wait)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def stall(addr, until, tally):
    while time.time() < until:
        start = time.time()
        with socket.create_connection(addr) as s:
            s.sendall(b"GET /open/fh")
            ended = closed(s, max(0.1, until - time.time()))
        tally.add("stall", time.time() - start, ended)


def dribble(addr, until, tally):
    while time.time() < until:
        start = time.time()
        ended = False
        with socket.create_connection(addr) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while time.time() < until:
                try:
                    s.sendall(b"a")
                except OSError:
                    ended = True
                    break
                if closed(s, 0.5):
                    ended = True
                    break
        tally.add("dribble", time.time() - start, ended)


def no_read(addr, until, tally, download, accept):
    while time.time() < until:
        start = time.time()
        with socket.create_connection(addr) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(f"GET {download} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n".encode())
            # Hold the connection without reading for up to 20 s.
            time.sleep(max(0.0, min(20.0, until - time.time())))
        tally.add("no-read", time.time() - start, False)


def slow_read(addr, until, tally, download, accept):
    while time.time() < until:
        start = time.time()
        got = 0
        note = "complete"
        with socket.create_connection(addr) as s:
            s.sendall(f"GET {download} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n".encode())
            s.settimeout(30)
            status = b""
            try:
                while time.time() < until:
                    data = s.recv(1024)
                    if not data:
                        break
                    if not status:
                        status = data[9:12]
                    got += len(data)
                    time.sleep(0.02)
                else:
                    note = "stopped at the end of the run"
            except OSError as e:
                note = f"error {e.__class__.__name__}"
            if status and status != b"200":
                note = f"status {status.decode(errors='replace')}"
        tally.add("slow-read", time.time() - start, False, note)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("addr")
    parser.add_argument("slow_json")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--per-kind", type=int, default=4)
    args = parser.parse_args()
    host, port = args.addr.rsplit(":", 1)
    assert host == "127.0.0.1", host
    addr = (host, int(port))
    with open(args.slow_json) as f:
        slow = json.load(f)
    until = time.time() + args.duration
    tally = Tally()
    workers = []
    for _ in range(args.per_kind):
        workers += [
            threading.Thread(target=stall, args=(addr, until, tally)),
            threading.Thread(target=dribble, args=(addr, until, tally)),
            threading.Thread(target=no_read, args=(addr, until, tally, slow["download"], slow["accept"])),
            threading.Thread(target=slow_read, args=(addr, until, tally, slow["download"], slow["accept"])),
        ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for kind, row in sorted(tally.rows.items()):
        held = row["held"]
        notes = ", ".join(f"{n} {k}" for k, n in row["notes"].items())
        print(f"SLOW {kind:9} connections {row['connections']:4}  ended by server {row['ended_by_server']:4}  "
              f"held mean {sum(held) / len(held):5.1f} s max {max(held):5.1f} s  {notes}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A small fake EHR for the load test: SMART discovery, a Backend Services token endpoint
(client_secret_basic), RFC 7662 introspection and Patient reads, on 127.0.0.1 only.

Access tokens starting with "good-" are active for patient p1 with an imaging scope; every other token is
inactive. It writes its port to --port-file once listening and, on SIGTERM, the number of calls it
answered to --counts-file.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {"discovery": 0, "token": 0, "introspect": 0, "patient": 0, "other": 0}
LOCK = threading.Lock()

PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "name": [{"given": ["Anna"], "family": "Müller"}],
    "identifier": [
        {
            "system": "http://hospital.example.org",
            "value": "MRN-1001",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
        }
    ],
}


def count(name):
    with LOCK:
        COUNTS[name] += 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body are two writes: with Nagle's algorithm the body waits for the client's delayed
    # ACK of the head, about 40 ms on every keep-alive answer, which no real EHR adds.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def form(self):
        length = int(self.headers.get("Content-Length") or 0)
        return dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))

    def do_GET(self):
        host = self.headers.get("Host", "127.0.0.1")
        if self.path == "/fhir/.well-known/smart-configuration":
            count("discovery")
            self.answer(200, {
                "issuer": f"http://{host}/auth",
                "authorization_endpoint": f"http://{host}/auth/authorize",
                "token_endpoint": f"http://{host}/auth/token",
                "introspection_endpoint": f"http://{host}/auth/introspect",
                "grant_types_supported": ["authorization_code", "client_credentials"],
                "code_challenge_methods_supported": ["S256"],
                "capabilities": ["launch-ehr", "context-ehr-patient"],
            })
        elif self.path == "/fhir/Patient/p1":
            count("patient")
            self.answer(200, PATIENT)
        else:
            count("other")
            self.answer(404, {"resourceType": "OperationOutcome"})

    def do_POST(self):
        form = self.form()
        if self.path == "/auth/token":
            count("token")
            if not self.headers.get("Authorization", "").startswith("Basic "):
                return self.answer(401, {"error": "invalid_client"})
            self.answer(200, {"access_token": "backend-token", "token_type": "bearer", "expires_in": 300})
        elif self.path == "/auth/introspect":
            count("introspect")
            if self.headers.get("Authorization") != "Bearer backend-token":
                return self.answer(401, {"error": "invalid_token"})
            token = form.get("token", "")
            if token.startswith("good-"):
                self.answer(200, {
                    "active": True,
                    "client_id": "app",
                    "scope": "launch/patient openid patient/ImagingStudy.rs",
                    "patient": "p1",
                    "exp": int(time.time()) + 3600,
                })
            else:
                self.answer(200, {"active": False})
        else:
            count("other")
            self.answer(404, {})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--counts-file", required=True)
    args = parser.parse_args()
    # socketserver's default backlog of 5 drops connections under load (a 1 s SYN retry each).
    ThreadingHTTPServer.request_queue_size = 256
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True

    def stop(*_):
        with open(args.counts_file, "w") as f:
            json.dump(COUNTS, f)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    # Renamed into place, so the script never reads a half-written port.
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A small fake EHR for the benchmark's `smart-on-fhir` tenant (issue 7).

It speaks just enough SMART on FHIR for smart-imaging's EHR client, on 127.0.0.1 only:

* ``GET  /fhir/.well-known/smart-configuration``: the token and introspection endpoints.
* ``POST /token``: a `client_credentials` grant with `client_secret_basic`; answers a backend token that
  lives an hour.
* ``POST /introspect``: RFC 7662, called with the backend token.  Any token that starts with ``tok-`` is
  active, with the scope ``patient/ImagingStudy.rs``, the configured patient and ``exp`` an hour from now;
  every other token is inactive.
* ``GET  /fhir/Patient/{id}``: the configured patient, with an identifier typed ``MR`` whose value is the
  dataset's DICOM PatientID.
* ``GET  /stats``: how many calls of each kind were answered, so the benchmark can tell a warm (cached)
  run from a cold one.

It is threaded (one thread per connection) and speaks HTTP/1.1 with keep-alive, so the server's pooled
connections are reused.  It prints ``listening on http://127.0.0.1:PORT`` once bound; ``--port 0`` (the
default) lets the system pick the port.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    """The configuration and the call counters shared by every handler thread."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.backend_token = "backend-" + str(int(time.time()))
        self.lock = threading.Lock()
        self.counts = {"discovery": 0, "token": 0, "introspect": 0, "introspect_active": 0, "patient": 0}

    def count(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-ehr/1"
    # Headers and body go out in two writes; without TCP_NODELAY the second waits for the client's
    # delayed ACK (40 ms on Linux), which would be measured as the EHR's latency.
    disable_nagle_algorithm = True
    state: State  # set on the class before the server starts

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        # One line per request would cost more than the answer itself; stay quiet.
        pass

    # -- plumbing -----------------------------------------------------------------------------------

    def read_body(self) -> bytes:
        """The request body, by Content-Length or chunked, so that the connection can be reused."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers end with an empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status: int, body: object, content_type: str = "application/json") -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def backend_authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.state.backend_token}"

    # -- endpoints ----------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        args = self.state.args
        path = urllib.parse.urlsplit(self.path).path
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if path == "/fhir/.well-known/smart-configuration":
            self.state.count("discovery")
            self.answer(200, {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "introspection_endpoint": f"{base}/introspect",
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "grant_types_supported": ["authorization_code", "client_credentials"],
                "scopes_supported": ["launch/patient", "patient/ImagingStudy.rs", "system/Patient.rs"],
                "code_challenge_methods_supported": ["S256"],
                "capabilities": ["launch-ehr", "launch-standalone", "client-confidential-symmetric",
                                 "context-ehr-patient", "permission-patient", "permission-v2"],
            })
        elif path == f"/fhir/Patient/{args.patient_id}":
            if not self.backend_authorized():
                self.answer(401, {"error": "invalid_token"})
                return
            self.state.count("patient")
            self.answer(200, {
                "resourceType": "Patient",
                "id": args.patient_id,
                "name": [{"family": "Bench", "given": ["Search"]}],
                "identifier": [{
                    "system": "http://hospital.example.org/mrn",
                    "value": args.mrn,
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                         "code": "MR"}]},
                }],
            }, "application/fhir+json")
        elif path.startswith("/fhir/Patient/"):
            self.answer(404, {"resourceType": "OperationOutcome"}, "application/fhir+json")
        elif path == "/stats":
            with self.state.lock:
                self.answer(200, dict(self.state.counts))
        else:
            self.answer(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        args = self.state.args
        path = urllib.parse.urlsplit(self.path).path
        form = urllib.parse.parse_qs(self.read_body().decode("utf-8", "replace"))
        if path == "/token":
            expected = base64.b64encode(f"{args.client_id}:{args.client_secret}".encode()).decode()
            if self.headers.get("Authorization", "") != f"Basic {expected}":
                self.answer(401, {"error": "invalid_client"})
                return
            if form.get("grant_type") != ["client_credentials"]:
                self.answer(400, {"error": "unsupported_grant_type"})
                return
            self.state.count("token")
            self.answer(200, {
                "access_token": self.state.backend_token,
                "token_type": "bearer",
                "expires_in": 3600,
                "scope": form.get("scope", ["system/Patient.rs"])[0],
            })
        elif path == "/introspect":
            if not self.backend_authorized():
                self.answer(401, {"error": "invalid_token"})
                return
            self.state.count("introspect")
            token = form.get("token", [""])[0]
            if token.startswith("tok-"):
                self.state.count("introspect_active")
                self.answer(200, {
                    "active": True,
                    "scope": "launch/patient openid fhirUser patient/ImagingStudy.rs",
                    "patient": args.patient_id,
                    "client_id": "bench-app",
                    "token_type": "Bearer",
                    "exp": int(time.time()) + 3600,
                })
            else:
                self.answer(200, {"active": False})
        else:
            self.answer(404, {"error": "not found"})


class Server(ThreadingHTTPServer):
    # Threads do not keep the process alive, and a burst of new connections (a cold run opens many
    # through the server's pool) is queued rather than refused.
    daemon_threads = True
    request_queue_size = 128


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 lets the system choose")
    parser.add_argument("--patient-id", default="pat-search", help="the FHIR id of the patient in context")
    parser.add_argument("--mrn", default="BENCH-SEARCH", help="the patient's MR identifier (DICOM PatientID)")
    parser.add_argument("--client-id", default="smart-imaging-bench")
    parser.add_argument("--client-secret", default="bench-secret")
    args = parser.parse_args()

    Handler.state = State(args)
    server = Server(("127.0.0.1", args.port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Serves OHIF's prebuilt `dist/` on 127.0.0.1:0 for tests/browser/ohif.sh, as nginx would with `try_files $uri
/index.html`: a path that names no file (OHIF's client-side routes such as `/viewer`) gets index.html.
`/app-config.js` comes from CONFIG_DIR instead, never cached, so the test can write one per study.
Prints `listening on http://ADDR` once bound. Usage: ohif_serve.py DIST CONFIG_DIR"""

import functools
import http.server
import os
import sys

DIST, CONFIG_DIR = sys.argv[1], sys.argv[2]


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm",
                      ".js": "text/javascript", ".mjs": "text/javascript"}

    def translate_path(self, path):
        name = path.split("?", 1)[0].split("#", 1)[0]
        if name == "/app-config.js":
            return os.path.join(CONFIG_DIR, "app-config.js")
        found = super().translate_path(path)
        return found if os.path.isfile(found) else os.path.join(DIST, "index.html")

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=DIST))
print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()

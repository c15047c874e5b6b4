#!/usr/bin/env python3
"""Serves a folder on 127.0.0.1 with the right MIME types (application/wasm for .wasm).

usage: serve.py DIR PORT
Prints "Serving Cairn demo at http://127.0.0.1:PORT/" once the server answers.
"""
import functools
import http.server
import sys
import threading
import urllib.request

root, port = sys.argv[1], int(sys.argv[2])


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
        ".gguf": "application/octet-stream",
        ".bin": "application/octet-stream",
    }

    def log_message(self, fmt, *args):
        pass


server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", port), functools.partial(Handler, directory=root)
)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{port}/"
urllib.request.urlopen(url, timeout=10).read()
print(f"Serving Cairn demo at {url}", flush=True)
try:
    threading.Event().wait()
except KeyboardInterrupt:
    server.shutdown()

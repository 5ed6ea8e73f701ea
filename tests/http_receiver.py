"""A local HTTP server that records the JSON bodies POSTed to it (webhook tests)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


def start_receiver() -> tuple[HTTPServer, list[tuple[str, dict]]]:
    """A running server on 127.0.0.1 and the (Content-Type, body) of each POST it got;
    call ``server.shutdown()`` when done."""
    got: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.headers["Content-Type"], json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got

"""The demo's web service: answers its version. Standard library only, started by the local driver."""

import http.server
import os
import pathlib

VERSION = pathlib.Path("VERSION").read_text().strip()
STAGE = os.environ.get("STAGE", "?")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"demo web {VERSION} ({STAGE})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, flush=True)


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()

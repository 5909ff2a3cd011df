"""A small real HTTP server for unit tests of the client layer: the SDKs send real requests over loopback, and the
test decides each answer (a status sequence with Retry-After, a dropped connection, a body) and sees each request.

For tests that need exact, repeatable answers the local Custom Vision service would not give on cue; everything
that can run against the real local service does.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


# (status, headers, JSON-serialisable body), or None: read the request, close the connection, answer nothing.
Answer = tuple[int, dict[str, str], Any] | None


@contextlib.contextmanager
def serving(answer: Callable[[Request], Answer]) -> Iterator[str]:
    """A threaded HTTP/1.1 server on a free loopback port for the length of the block; yields its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply = answer(Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if reply is None:
                self.close_connection = True
                return
            status, headers, payload = reply
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

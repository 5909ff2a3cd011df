"""The review page's HTTP server: one thread per connection, each with its own deadlines, and a cap on connections.

Why not werkzeug's server as it comes: with ``ssl_context`` it wraps the listening socket, so the TLS handshake runs
inside ``accept()`` on the one thread that accepts every connection. A client that opened a TCP connection and sent
nothing held that thread, and every reviewer's request waited until it left. Plain HTTP had no timeout at all, so
about 1,100 silent connections used up the process's file descriptors. Here:

- the listening socket stays plain; each accepted socket is wrapped with ``do_handshake_on_connect=False`` and the
  handshake runs in the connection's own thread, under :attr:`Limits.handshake_timeout`;
- every read and write on a connection has :attr:`Limits.idle_timeout` (a keep-alive connection that sends nothing
  is closed after it, on HTTP as on HTTPS), and a request body must arrive whole within :attr:`Limits.body_timeout`
  (the app reads it: :func:`pipelines.review.web._bound_body`);
- at most :attr:`Limits.max_connections` connections are open; one more closes the oldest that is *waiting* (for its
  handshake or its next request), never one whose request is being answered. So a flood of silent connections costs a
  bounded number of descriptors and threads, and cannot keep a working reviewer out: each new connection pushes out
  the oldest silent one.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

__all__ = ["ConnectionHandler", "Limits", "PageServer"]

log = logging.getLogger("cvops.review.web")


@dataclass(frozen=True)
class Limits:
    """Per-connection deadlines (seconds) and the connection cap."""

    handshake_timeout: float = 10.0
    idle_timeout: float = 30.0
    body_timeout: float = 10.0
    """The whole request body (a form of a few hundred bytes) must arrive within this."""
    max_connections: int = 64


class PageServer(ThreadedWSGIServer):
    """werkzeug's threaded WSGI server with TLS moved out of ``accept()`` and the :class:`Limits` applied."""

    def __init__(self, host: str, port: int, app: Any, *, handler: type[WSGIRequestHandler], fd: int,
                 ssl_context: ssl.SSLContext | None, limits: Limits) -> None:
        self.limits = limits
        self._open: OrderedDict[socket.socket, bool] = OrderedDict()  # connection -> busy answering a request
        self._open_lock = threading.Lock()
        self._last_full_note = 0.0
        super().__init__(host, port, app, handler, False, None, fd=fd)  # no context here: it would wrap the listener
        self.ssl_context = ssl_context  # what werkzeug reads for wsgi.url_scheme and its TLS error handling

    # -- accepting (the one listening thread: nothing here may wait on a client) --------------------------------------
    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        connection.settimeout(self.limits.handshake_timeout if self.ssl_context else self.limits.idle_timeout)
        if self.ssl_context is not None:
            connection = self.ssl_context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Admit the connection, closing the oldest waiting one when the cap is reached; refuse it (closed at once)
        only when every open connection is busy answering a request."""
        evicted = None
        with self._open_lock:
            if len(self._open) >= self.limits.max_connections:
                evicted = next((c for c, busy in self._open.items() if not busy), None)
                if evicted is None:
                    self._note_full()
                    return False
                del self._open[evicted]
            self._open[request] = False
        if evicted is not None:
            self._note_full()
            _wake(evicted)
        return True

    def _note_full(self) -> None:
        now = time.monotonic()
        if now - self._last_full_note > 10:  # one line per 10 s, however many connections a flood opens
            self._last_full_note = now
            log.warning("review page: %d connections open (the cap): closing the oldest waiting one",
                        self.limits.max_connections)

    # -- one connection (its own thread) ------------------------------------------------------------------------------
    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if self.ssl_context is not None:
                request.do_handshake()
                request.settimeout(self.limits.idle_timeout)
            self.finish_request(request, client_address)
        except OSError as exc:  # timeouts, resets, failed handshakes (ssl.SSLError is an OSError): the client's side
            log.debug("review page: connection from %s ended: %s", client_address[0], type(exc).__name__)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._open_lock:
                self._open.pop(request, None)
            self.shutdown_request(request)

    def mark(self, connection: Any, *, busy: bool) -> None:
        """A connection is busy from a complete request head until its answer is sent; waiting otherwise."""
        with self._open_lock:
            if connection in self._open:
                self._open[connection] = busy

    def open_connections(self) -> int:
        with self._open_lock:
            return len(self._open)

    def server_close(self) -> None:
        """Close the listener and wake every connection's thread (a silent client would otherwise hold ``stop()``
        until its timeout)."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            _wake(connection)
        super().server_close()


def _wake(connection: Any) -> None:
    """Shut the socket down under its thread's feet: a blocked read returns at once and the thread closes it. The
    plain socket's ``shutdown`` on purpose: ``SSLSocket.shutdown`` also drops the TLS object another thread uses."""
    with contextlib.suppress(OSError):  # already closed by its client
        socket.socket.shutdown(connection, socket.SHUT_RDWR)


class ConnectionHandler(WSGIRequestHandler):
    """werkzeug's request handler, telling the server when a connection is busy (not to be closed for a newcomer)."""

    server: PageServer
    error_message_format = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>%(code)d · cvops review'
                            '</title></head><body><h1>%(code)d %(message)s</h1><p>%(explain)s: nothing was done.</p>'
                            '<p><a href="/queue">Back to the queue</a></p></body></html>\n')

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed, overlong or unsupported request line or header) with the status's
        standard words only: its detail quotes the request line, which may hold ``?token=``."""
        super().send_error(code)

    def handle_one_request(self) -> None:
        self.server.mark(self.request, busy=False)
        super().handle_one_request()

    def parse_request(self) -> bool:
        complete = super().parse_request()
        if complete:
            self.server.mark(self.request, busy=True)
        return complete

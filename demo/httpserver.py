"""HTTP server plumbing shared by the shop services and the control API."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

MAX_BODY = 1 << 20  # bodies here are tiny JSON documents; refuse anything big

# (method, path, headers, body) -> (status, content_type, body)
Handler = Callable[[str, str, dict, bytes], tuple[int, str, bytes]]


class TrackedServer(ThreadingHTTPServer):
    """A threading HTTP server that can drop its open connections on demand.

    Closing the listening socket alone is not a crash: keep-alive connections
    already accepted would keep being served by their threads. Tracking them
    lets ``close()`` cut those too, so callers see resets/refusals at once.
    """

    daemon_threads = True
    allow_reuse_address = True  # a recovered service rebinds its port right away
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: Handler) -> None:
        self.app_handler = handler
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request, client_address):  # noqa: D102 - socketserver hook
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # noqa: D102 - socketserver hook
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):  # noqa: D102 - socketserver hook
        pass  # peers hanging up (or our own crash cutting them) is routine here

    def serve_in_thread(self, name: str) -> threading.Thread:
        """Run ``serve_forever`` on a daemon thread and return it."""
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                  name=name, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Stop accepting, close the listening socket and cut every open connection."""
        self.shutdown()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so callers' pooled sessions reuse connections
    timeout = 30  # idle keep-alive connections give their thread back eventually

    def _dispatch(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            # Unread bytes would desynchronise a keep-alive connection: answer, then close it.
            self.close_connection = True
            status, content_type, payload = json_response(
                413 if length > MAX_BODY else 400, {"message": "bad or too large Content-Length"})
        else:
            body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, content_type, payload = self.server.app_handler(
                self.command, self.path, headers, body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass  # services write their own structured access logs


def json_response(status: int, document: object) -> tuple[int, str, bytes]:
    """A handler result carrying ``document`` as JSON."""
    return status, "application/json", json.dumps(document).encode()

"""Proxies on loopback in front of the shared Elasticsearch, so one test changes what soar sees.

``CuttableProxy`` (TCP) can be cut and restored: Elasticsearch "goes away" for soar only,
which sees connections refused (and open ones reset) while the proxy is cut. It can also black-hole:
connections are accepted (new and open ones) and nothing ever comes back, as behind a dropped route or a
hung server, until ``restore_hole``.
``NoPointInTimeProxy`` (HTTP) makes the server one that offers no point in time.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hole = threading.Event()
        self._held: list[socket.socket] = []  # connections accepted while black-holed (answered never)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CuttableProxy:
        self.restore()
        return self

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        self._stop.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for conn in list(self._conns):
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    conn.close()
            self._conns.clear()

    def black_hole(self) -> None:
        """Accept, then never answer: requests already on open connections and new ones alike hang."""
        self._hole.set()

    def restore_hole(self) -> None:
        """Back to forwarding; the connections that hung are reset (their clients see an error, then reconnect)."""
        self._hole.clear()
        with self._lock:
            held, self._held = self._held, []
            for conn in list(self._conns):  # open ones lost what was sent meanwhile: reset them too
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    conn.close()
            self._conns.clear()
        for conn in held:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self.restore_hole()
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._hole.is_set():
                with self._lock:
                    self._held.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy one direction with blocking sockets; closing either side (or a cut) ends both."""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self._hole.is_set():  # black-holed: swallowed, in both directions
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)


class NoPointInTimeProxy:
    """An HTTP proxy to the real Elasticsearch that answers like a server offering no point in time.

    Every request is forwarded as is, except opening a point in time (``POST <index>/_pit``),
    which gets the 400 a server without that API answers; ``refused`` counts them.
    """

    def __init__(self, target_url: str) -> None:
        target = urlparse(target_url)
        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.path.split("?")[0].endswith("/_pit"):
                    proxy.refused += 1
                    reason = f"no handler found for uri [{self.path}] and method [{self.command}]"
                    error = {"type": "illegal_argument_exception", "reason": reason}
                    status, data = 400, json.dumps({"error": {**error, "root_cause": [error]}, "status": 400}).encode()
                    headers = [("Content-Type", "application/json"), ("X-Elastic-Product", "Elasticsearch")]
                else:
                    host, port = target.hostname or "127.0.0.1", target.port or 9200
                    upstream = http.client.HTTPConnection(host, port, timeout=60)
                    skip = {"host", "connection", "content-length"}
                    sent = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                    upstream.request(self.command, self.path, body=body, headers=sent)
                    answer = upstream.getresponse()
                    status, data = answer.status, answer.read()
                    kept = {"content-type", "x-elastic-product", "content-encoding"}
                    headers = [(k, v) for k, v in answer.getheaders() if k.lower() in kept]
                    upstream.close()
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> NoPointInTimeProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

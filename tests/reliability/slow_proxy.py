"""A TCP proxy that forwards to one upstream and slows the answers down: a slow network for real HTTP.

Used to keep a large download in flight long enough to kill the worker in the middle of its body.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

CHUNK_BYTES = 16 * 1024


def _pump(source: socket.socket, target: socket.socket, bytes_per_second: float | None) -> None:
    """Copy ``source`` to ``target`` until either side closes, at most ``bytes_per_second`` if given."""
    started, sent = time.monotonic(), 0
    try:
        while chunk := source.recv(CHUNK_BYTES):
            target.sendall(chunk)
            sent += len(chunk)
            if bytes_per_second:
                ahead = sent / bytes_per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)  # bandwidth pacing, not synchronisation
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(socketserver.BaseRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        with socket.create_connection(self.server.upstream, timeout=60) as upstream:
            upstream.settimeout(None)
            down = threading.Thread(
                target=_pump, args=(upstream, self.request, self.server.bytes_per_second), daemon=True
            )
            down.start()
            _pump(self.request, upstream, None)
            down.join()


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: tuple[str, int], bytes_per_second: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.bytes_per_second = bytes_per_second


@contextmanager
def slow_proxy(upstream_port: int, bytes_per_second: float) -> Iterator[str]:
    """Yield ``http://127.0.0.1:PORT`` forwarding to ``127.0.0.1:upstream_port``, answers paced."""
    server = _ProxyServer(("127.0.0.1", upstream_port), bytes_per_second)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

"""A local HTTP server on 127.0.0.1 that honours Range requests (as video hosts do), counts the bytes it
sends, and can be told that a file is gone: the stand-in for a video site in the download tests and
benchmarks (Python's own SimpleHTTPRequestHandler ignores Range and always sends whole files)."""

from __future__ import annotations

import http.server
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class Served:
    """What the server did: request paths, bytes of body sent, and names it now answers 404 for."""

    folder: Path
    requests: list[str] = field(default_factory=list)
    log: list[tuple[str, int]] = field(default_factory=list)  # (path, bytes sent) per request
    bytes_sent: int = 0
    gone: set[str] = field(default_factory=set)
    vanish_when: dict[str, Callable[[], bool]] = field(default_factory=dict)  # name -> gone from then on
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, path: str, sent: int) -> None:
        with self.lock:
            self.requests.append(path)
            self.log.append((path, sent))
            self.bytes_sent += sent


def _handler(served: Served) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            # a small send buffer: bytes count as sent when they leave it, not when they queue (a client that
            # seeks closes its connection early; a large buffer would count what it never asked to read)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)

        def do_HEAD(self) -> None:
            self.answer(body=False)

        def do_GET(self) -> None:
            self.answer(body=True)

        def answer(self, body: bool) -> None:
            name = self.path.lstrip("/").split("?")[0]
            path = served.folder / name
            if name in served.vanish_when and served.vanish_when[name]():
                served.gone.add(name)
            if "/" in name or name in served.gone or not path.is_file():
                served.count(self.path, 0)
                self.send_error(404)
                return
            size = path.stat().st_size
            first, last = 0, size - 1
            match = _RANGE.match(self.headers.get("Range", ""))
            if match and (match.group(1) or match.group(2)):
                if match.group(1):
                    first = int(match.group(1))
                    last = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                else:  # bytes=-N: the last N bytes
                    first = max(size - int(match.group(2)), 0)
                if first >= size:
                    served.count(self.path, 0)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(last - first + 1))
            self.end_headers()
            sent = 0
            if body:
                with path.open("rb") as handle:
                    handle.seek(first)
                    remaining = last - first + 1
                    try:
                        while remaining > 0:
                            chunk = handle.read(min(remaining, 1 << 16))
                            self.wfile.write(chunk)
                            sent += len(chunk)
                            remaining -= len(chunk)
                    except (BrokenPipeError, ConnectionResetError):  # the client had read enough (ffmpeg seeks)
                        pass
            served.count(self.path, sent)

    return Handler


@contextmanager
def range_server(folder: Path) -> Iterator[tuple[str, Served]]:
    """Serve `folder` on 127.0.0.1; yields (URL template with {ytid} for '<ytid>.mp4', what was served)."""
    served = Served(Path(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/{{ytid}}.mp4", served
    finally:
        httpd.shutdown()
        httpd.server_close()

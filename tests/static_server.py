"""A plain static file server for a mirror's web/ tree, negotiating like contrib/nginx.conf.

It stands in for nginx where a test needs "the mirror served over HTTP" without one: no
X-PyPI-Last-Serial header, only files on disk, exactly what a static host gives.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_TYPES = {
    "index.v1_json": "application/vnd.pypi.simple.v1+json",
    "index.v1_html": "application/vnd.pypi.simple.v1+html",
    "index.html": "text/html",
}


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _cut_root(self) -> bool:
        """True for the first ``cut_root`` requests of the JSON root page."""
        server = self.server
        with server.lock:  # type: ignore[attr-defined]
            if server.cut_root > 0:  # type: ignore[attr-defined]
                server.cut_root -= 1  # type: ignore[attr-defined]
                return True
        return False

    def send_head(self):  # type: ignore[no-untyped-def]
        path = self.path.split("?", 1)[0]
        if path.startswith("/simple/") and path.endswith("/"):
            accept = self.headers.get("Accept", "")
            name = (
                "index.v1_json"
                if "simple.v1+json" in accept or "latest+json" in accept
                else "index.html"
            )
            full = Path(self.translate_path(path)) / name
            if not full.is_file():
                self.send_error(404)
                return None
            if path == "/simple/" and name == "index.v1_json" and self._cut_root():
                # Announce the whole page, send half of it, hang up: a connection lost midway.
                body = full.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", _TYPES[name])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return None
            f = open(full, "rb")  # noqa: SIM115
            self.send_response(200)
            self.send_header("Content-Type", _TYPES[name])
            self.send_header("Content-Length", str(full.stat().st_size))
            self.send_header("Vary", "Accept")
            self.end_headers()
            return f
        return super().send_head()


@contextmanager
def serve_static(web: Path, *, cut_root: int = 0) -> Iterator[str]:
    """Serve ``web``; the first ``cut_root`` answers for the JSON root page stop halfway."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(web)))
    server.cut_root = cut_root  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

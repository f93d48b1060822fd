"""An embedded, read-only HTTP server for a mirror's ``web/`` tree.

It answers the way ``contrib/nginx.conf`` does, so ``fullmirror serve`` is enough for a small
team or a test, and nginx stays the choice for heavy traffic:

* ``/simple/`` and ``/simple/<name>/`` pick one of the page files by PEP 691 negotiation
  (:mod:`fullmirror.negotiation`) and answer with its exact media type and ``Vary: Accept``;
* PEP 503 trailing slashes and name normalization are 301 redirects with relative Locations;
* a project the mirror lacks is a 404, or a 302 to a fallback index when one is configured;
* ``/packages/`` is immutable octet-stream with single byte ranges (uv reads wheels by Range);
* ``/pypi/<name>/json`` and ``/json/<name>`` are the JSON API copy.

Nothing outside ``web/`` is ever served: each path segment is decoded and checked on its own,
hidden names (the ``.<name>.part`` temp files) are refused, and the resolved file must still lie
under the resolved root, so symlinks cannot lead out either. The module never prints; every
request produces one access-log line through the ``log`` callback.
"""

from __future__ import annotations

import email.utils
import errno
import functools
import gzip
import logging
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fullmirror import __version__
from fullmirror.errors import ServeError
from fullmirror.negotiation import (
    PREFERENCE,
    SIMPLE_HTML,
    SIMPLE_JSON,
    TEXT_HTML,
    RangeNotSatisfiable,
    accepts_gzip,
    decode_path,
    negotiate,
    parse_range,
    query_param,
)
from fullmirror.parse import normalize_project_name

_LOG = logging.getLogger("fullmirror")

PAGE_FILES = {SIMPLE_JSON: "index.v1_json", SIMPLE_HTML: "index.v1_html", TEXT_HTML: "index.html"}
# Clients check these exactly (uv compares the part before ";"): never application/json here.
_PAGE_TYPES = {
    SIMPLE_JSON: SIMPLE_JSON,
    SIMPLE_HTML: SIMPLE_HTML,
    TEXT_HTML: f"{TEXT_HTML}; charset=utf-8",
}
_TEXT = "text/plain; charset=utf-8"
PAGE_CACHE = "max-age=60"
PACKAGE_CACHE = "max-age=31536000, immutable"
# The root page of a full mirror is tens of MB; above this it goes out uncompressed, streamed.
_GZIP_MAX_BYTES = 32 << 20
_ROOT_TEXT = b"fullmirror package index: point pip or uv at /simple/\n"

Headers = Sequence[tuple[str, str]]
_VARY: Headers = (("Vary", "Accept"),)


@functools.lru_cache(maxsize=64)
def _gzipped(path: str, inode: int, mtime_ns: int, size: int) -> bytes:
    """The gzip body of a page, kept: the key changes whenever the mirror replaces the file."""
    with open(path, "rb") as file:
        return gzip.compress(file.read(), compresslevel=6, mtime=0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], root: str, fallback: str, log: Callable[[str], None]
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.root = root
        self.fallback = fallback
        self.log = log
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup for server_name; nothing here uses it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: object, client_address: object) -> None:
        # The base class prints a traceback to stderr (a client reset mid-request, mostly).
        _LOG.debug("connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: pip and uv fetch many pages per connection
    server_version = f"fullmirror/{__version__}"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection must not hold a thread forever
    # Headers and body go out in two writes; with Nagle on, the second waits for a delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # the access log is written once per request by _respond

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Any other method is a 405 (the base class would answer 501 Not Implemented).
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._respond(head=False, allowed=False)

    # -- plumbing ------------------------------------------------------------------------------

    def _respond(self, *, head: bool, allowed: bool = True) -> None:
        started = time.perf_counter()
        self._status, self._sent, self._ctype = 0, 0, "-"
        try:
            if allowed:
                self._route(head)
            else:
                self.close_connection = True  # a request body may follow; it is never read
                self._text(405, "method not allowed\n", head, [("Allow", "GET, HEAD")])
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client left mid-answer; nothing more to say
        except Exception:
            _LOG.exception("serving %s failed", self.path)
            self.close_connection = True
            if not self._status:
                self._text(500, "internal error\n", head)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            line = self.requestline.replace("\\", "\\\\").replace('"', '\\"')
            line = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in line)
            self.server.log(
                f'{self.client_address[0]} "{line}" {self._status} {self._sent} '
                f"{self._ctype.split(';')[0]} {elapsed:.1f}ms"
            )

    def _start(self, status: int, ctype: str | None, length: int | None, headers: Headers) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self._status, self._ctype = status, ctype or "-"

    def _body(self, data: bytes, head: bool) -> None:
        if not head and data:
            self.wfile.write(data)
            self._sent += len(data)

    def _text(self, status: int, text: str, head: bool, headers: Headers = ()) -> None:
        body = text.encode()
        self._start(status, _TEXT, len(body), headers)
        self._body(body, head)

    def _redirect(self, status: int, location: str, headers: Headers = ()) -> None:
        self._start(status, None, 0, [("Location", location), *headers])

    def _resolve(self, *parts: str) -> str | None:
        """The real path of a regular file under the root, or None (symlinks may not leave)."""
        real = os.path.realpath(os.path.join(self.server.root, *parts))
        if not real.startswith(self.server.root + os.sep) or real.endswith(".part"):
            return None
        return real if os.path.isfile(real) else None

    # -- routes --------------------------------------------------------------------------------

    def _route(self, head: bool) -> None:
        target, _, query = self.path.partition("?")
        segments = decode_path(target) if target.startswith("/") else None
        suffix = f"?{query}" if query else ""
        match segments:
            case None:
                self._text(404, "not found\n", head)
            case [""]:
                self._start(200, _TEXT, len(_ROOT_TEXT), [("Cache-Control", PAGE_CACHE)])
                self._body(_ROOT_TEXT, head)
            case ["last-modified"]:
                path = self._resolve("last-modified")
                self._file(path, _TEXT, head, [("Cache-Control", PAGE_CACHE)])
            case ["simple"]:
                self._redirect(301, f"/simple/{suffix}")
            case ["simple", ""]:
                if not self._page(("simple",), query, head):  # never sent to the fallback
                    self._text(404, "this mirror has no root index yet\n", head, _VARY)
            case ["simple", name] | ["simple", name, ""]:
                self._project(name, segments[-1] == "", suffix, query, head)
            case ["packages", *rest] if rest and rest[-1]:
                headers = [("Cache-Control", PACKAGE_CACHE)]
                path = self._resolve("packages", *rest)
                self._file(path, "application/octet-stream", head, headers)
            case ["pypi", name, *tail] if tail in ([], [""], ["json"], ["json", ""]):
                self._json_api(name, suffix, head)
            case ["json", name]:
                self._file(self._resolve("json", name), "application/json", head, gzip_ok=True)
            case _:
                self._text(404, "not found\n", head)

    def _project(self, name: str, slash: bool, suffix: str, query: str, head: bool) -> None:
        vary = _VARY
        normalized = normalize_project_name(name)
        if normalized is None:
            self._text(404, "not a valid project name\n", head, vary)
        elif normalized != name or not slash:
            self._redirect(301, f"/simple/{normalized}/{suffix}", vary)
        elif not self._page(("simple", normalized), query, head):
            if self.server.fallback:
                where = f"{self.server.fallback}/{normalized}/{suffix}"
                self._redirect(302, where, vary)
            else:
                self._text(404, f"{normalized} is not on this mirror\n", head, vary)

    def _page(self, folder: Sequence[str], query: str, head: bool) -> bool:
        """Serve the negotiated page of ``folder``; False when it has no page at all."""
        files = {kind: self._resolve(*folder, PAGE_FILES[kind]) for kind in PREFERENCE}
        available = [kind for kind, path in files.items() if path]
        if not available:
            return False
        fmt = query_param(query, "format")
        accept = ", ".join(self.headers.get_all("Accept") or []) or None
        chosen = negotiate(accept, fmt, available)
        if chosen is None:
            offer = "".join(f"  {kind}\n" for kind in available)
            text = f"none of the requested types is available; this page comes as:\n{offer}"
            self._text(406, text, head, [*_VARY, ("Cache-Control", PAGE_CACHE)])
            return True
        headers = [("Vary", "Accept, Accept-Encoding"), ("Cache-Control", PAGE_CACHE)]
        self._file(files[chosen], _PAGE_TYPES[chosen], head, headers, gzip_ok=True)
        return True

    def _json_api(self, name: str, suffix: str, head: bool) -> None:
        path = self._resolve("pypi", name, "json")
        if path:
            self._file(path, "application/json", head, gzip_ok=True)
            return
        normalized = normalize_project_name(name)
        if normalized and normalized != name and self._resolve("pypi", normalized, "json"):
            self._redirect(301, f"/pypi/{normalized}/json{suffix}")
        else:
            self._text(404, "not found\n", head)

    def _file(
        self,
        path: str | None,
        ctype: str,
        head: bool,
        extra: Headers = (),
        *,
        gzip_ok: bool = False,
    ) -> None:
        """Send the file at ``path`` (from :meth:`_resolve`); None is a 404."""
        try:
            file = open(path, "rb") if path else None  # noqa: SIM115 - closed below
        except OSError:
            file = None
        if path is None or file is None:
            self._text(404, "not found\n", head)
            return
        with file:
            st = os.fstat(file.fileno())
            modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            headers = [*extra, ("Last-Modified", modified)]
            if self._fresh(st.st_mtime):
                self._start(304, None, None, headers)
                return
            small = st.st_size <= _GZIP_MAX_BYTES
            if gzip_ok and small and accepts_gzip(self.headers.get("Accept-Encoding")):
                body = _gzipped(path, st.st_ino, st.st_mtime_ns, st.st_size)
                self._start(200, ctype, len(body), [*headers, ("Content-Encoding", "gzip")])
                self._body(body, head)
                return
            status, first, length = 200, 0, st.st_size
            if not gzip_ok:  # only static files take ranges: a gzip body has other offsets
                headers.append(("Accept-Ranges", "bytes"))
                if self.headers.get("If-Range", modified) == modified:
                    try:
                        span = parse_range(self.headers.get("Range"), st.st_size)
                    except RangeNotSatisfiable:
                        unsatisfied = [("Content-Range", f"bytes */{st.st_size}")]
                        self._text(416, "range not satisfiable\n", head, unsatisfied)
                        return
                    if span:
                        status, first, length = 206, span[0], span[1] - span[0] + 1
                        whole = f"bytes {span[0]}-{span[1]}/{st.st_size}"
                        headers.append(("Content-Range", whole))
            self._start(status, ctype, length, headers)
            if not head and length:
                # socket.sendfile uses os.sendfile: the kernel copies, the file is never in memory.
                sent = self.connection.sendfile(file, first, length)
                self._sent += sent
                if sent != length:  # the file shrank under us; the body is short, so hang up
                    self.close_connection = True

    def _fresh(self, mtime: float) -> bool:
        since = self.headers.get("If-Modified-Since")
        if not since or self.headers.get("If-None-Match"):
            return False
        try:
            when = email.utils.parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        return when.tzinfo is not None and int(mtime) <= when.timestamp()


class MirrorServer:
    """Serve ``web`` over HTTP; use as a context manager to run it in a background thread."""

    def __init__(
        self,
        web: Path,
        bind: str = "127.0.0.1",
        port: int = 8080,
        *,
        fallback_url: str = "",
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ServeError(bind, port, "not a TCP port", "pick a --port from 1 to 65535")
        if not web.is_dir():
            raise ServeError(
                bind, port, f"{web} is not a directory", "run `fullmirror mirror` first"
            )
        fallback = fallback_url.rstrip("/")
        if fallback and not fallback.startswith(("http://", "https://")):
            raise ServeError(
                bind, port, f"fallback URL {fallback_url!r} is not http(s)", "fix the URL"
            )
        try:
            self._httpd = _Server((bind, port), os.path.realpath(web), fallback, log or _LOG.info)
        except OSError as exc:
            raise ServeError(bind, port, *_explain(exc)) from exc
        self._thread: threading.Thread | None = None
        self._started = False

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._httpd.server_address[0])
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Answer requests until :meth:`shutdown` (from another thread) or an interrupt."""
        self._started = True
        self._httpd.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        """Serve from a daemon thread and return at once."""
        self._thread = threading.Thread(target=self.serve_forever, name="fullmirror-serve")
        self._thread.daemon = True
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving and close the listening socket; safe to call more than once."""
        if self._started:
            self._httpd.shutdown()  # waits for serve_forever to return
            self._started = False
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> MirrorServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def _explain(exc: OSError) -> tuple[str, str]:
    """Cause and fix of a failed bind, phrased for the command line."""
    if isinstance(exc, socket.gaierror):
        return "unknown host name or address", "give --bind an IP address such as 127.0.0.1"
    if exc.errno == errno.EADDRINUSE:
        return "address already in use", "stop the other server or pick another --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "no such address on this machine", "pick a local address for --bind"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied", "use a --port above 1023"
    return exc.strerror or str(exc), "check --bind and --port"

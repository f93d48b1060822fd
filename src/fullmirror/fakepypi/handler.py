"""The HTTP side of the fake index: routing, PyPI's responses, and the faults injected into them.

One :class:`FakeServer` (a ``ThreadingHTTPServer``) holds the index, the faults, the counters and
the page cache; one :class:`Handler` per connection answers requests with HTTP/1.1 keep-alive.
Every response carries ``X-PyPI-Last-Serial``: the project's serial on project pages and the JSON
API, the global one everywhere else.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import xmlrpc.client
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

from packaging.utils import canonicalize_name

from fullmirror.fakepypi import render
from fullmirror.fakepypi.admin import answer_admin
from fullmirror.fakepypi.faults import Faults
from fullmirror.fakepypi.filebody import send_file
from fullmirror.fakepypi.index import Index, ProjectView
from fullmirror.fakepypi.negotiate import is_json, negotiate
from fullmirror.fakepypi.pagecache import PageCache
from fullmirror.fakepypi.rpc import answer_xmlrpc
from fullmirror.fakepypi.stats import Stats

__all__ = ["FakeServer", "Handler"]

_PROJECT = re.compile(r"/simple/([^/]+)(/?)")
_JSON_API = re.compile(r"/pypi/([^/]+)/(?:([^/]+)/)?json/?")
_XMLRPC_PATHS = frozenset({"/pypi", "/pypi/", "/RPC2"})
_JSON = "application/json"
_MALFORMED = {
    "json": b'{"meta": {"api-version": "1.4", "_last-serial": ',
    "html": b'<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.',
}


class FakeServer(ThreadingHTTPServer):
    """Shared state of every connection; created and owned by :class:`FakePyPI`."""

    daemon_threads = True
    # Joining handler threads on close would wait for idle keep-alive clients; stop closes them.
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], family: socket.AddressFamily, index: Index, faults: Faults
    ) -> None:
        self.address_family = family
        super().__init__(address, Handler)
        self.index = index
        self.faults = faults
        self.stats = Stats()
        self.pages = PageCache()
        self.stopping = threading.Event()
        self.verbose = False
        port = self.server_address[1]
        shown = f"[{address[0]}]" if family == socket.AF_INET6 else address[0]
        self.base_url = f"http://{shown}:{port}"
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server stops."""
        self.stopping.wait(seconds)


class Handler(BaseHTTPRequestHandler):
    server: FakeServer
    #: The query string of the request being answered.
    query: str = ""
    #: Whether the stall fault fired for it (files then also stall halfway through the body).
    _stalled: bool = False
    protocol_version = "HTTP/1.1"
    server_version = "fakepypi/1"
    sys_version = ""
    timeout = 120

    # -- connection plumbing ---------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every small response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        self.server.track(self.connection, False)

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            # Clients (and the reset and truncate faults) drop connections: nothing to report.
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # -- responses -------------------------------------------------------------------------

    def send_head(
        self,
        status: int,
        content_type: str,
        length: int,
        serial: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("X-PyPI-Last-Serial", str(self._global() if serial is None else serial))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def respond(
        self,
        status: int,
        body: bytes,
        content_type: str,
        serial: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_head(status, content_type, len(body), serial, headers)
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib's own errors (bad request line, unknown method) must carry the serial too.
        self.close_connection = True
        try:
            self.respond_text(code, message or HTTPStatus(code).phrase, close=True)
        except OSError:
            pass

    def respond_text(
        self, status: int, text: str, serial: int | None = None, close: bool = False
    ) -> None:
        """A plain-text answer; ``close`` tells the client the connection ends after it."""
        if close:
            self.close_connection = True
        headers = {"Connection": "close"} if close else None
        self.respond(status, text.encode() + b"\n", "text/plain; charset=utf-8", serial, headers)

    def redirect(self, location: str, serial: int | None = None) -> None:
        body = f"moved to {location}\n".encode()
        self.respond(301, body, "text/plain; charset=utf-8", serial, {"Location": location})

    def reset(self) -> None:
        """Drop the connection without a response (a RST once the socket closes)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _global(self) -> int:
        return self.server.index.last_serial

    # -- dispatch --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path, _, self.query = self.path.partition("?")
        body = self._read_body()
        if body is None:
            return
        if path.startswith("/_fake/"):
            self._admin(path, body)
            return
        if self.command != "POST" and (blob := self.server.index.blob(path)) is not None:
            self._blob(*blob)
            return
        if self.command == "POST":
            if path in _XMLRPC_PATHS:
                self._xmlrpc(body)
            else:
                self._other()
            return
        if path in _XMLRPC_PATHS:
            self._other(405)
        elif path in ("/simple", "/simple/"):
            self._root(path)
        elif match := _PROJECT.fullmatch(path):
            self._project(match.group(1), bool(match.group(2)))
        elif match := _JSON_API.fullmatch(path):
            self._json_api(match.group(1), match.group(2))
        elif path.startswith("/packages/"):
            kind = "metadata" if path.endswith(".metadata") else "file"
            if self._faulted(kind, kind):
                return
            send_file(self, path, kind, self._stalled)
        else:
            self._other()

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            if self.command == "POST":
                self.respond_text(411, "Content-Length required", close=True)
                return None
            return b""
        try:
            return self.rfile.read(int(length))
        except ValueError:
            self.respond_text(400, "bad Content-Length", close=True)
            return None

    def _blob(self, data: bytes, repeat: int) -> None:
        """An injected body (see :meth:`Index.inject_blob`), streamed; no faults apply."""
        self.server.stats.incr("blob")
        self.send_head(200, "application/octet-stream", len(data) * repeat)
        if self.command == "HEAD":
            return
        for _ in range(repeat):
            if self.server.stopping.is_set():
                self.reset()
                return
            self.wfile.write(data)

    def _faulted(self, stat: str, scope: str) -> bool:
        """Count the request and apply the random faults every kind shares; True if answered."""
        self.server.stats.incr(stat)
        faults = self.server.faults
        self._stalled = False
        if faults.roll(faults.reset_rate, scope):
            self.reset()
            return True
        if faults.roll(faults.error_rate, scope):
            status = faults.pick((500, 502, 503))
            self.respond_text(status, f"fault injected: HTTP {status}")
            return True
        if faults.roll(faults.stall_rate, scope):
            self._stalled = True
            self.server.pause(faults.stall_seconds)
        return False

    def _other(self, status: int = 404) -> None:
        self.server.stats.incr("other")
        headers = {"Allow": "POST"} if status == 405 else None
        text = "method not allowed" if status == 405 else "not found"
        self.respond(status, text.encode() + b"\n", "text/plain; charset=utf-8", None, headers)

    def _media_type(self, serial: int) -> str | None:
        formats = parse_qs(self.query, keep_blank_values=True).get("format")
        # Media types contain "+", which form decoding turns into a space; nobody means a space.
        chosen = formats[0].replace(" ", "+") if formats else None
        media = negotiate(self.headers.get("Accept"), chosen)
        if media is None:
            self.respond(
                406, b"Not Acceptable\n", "text/plain; charset=utf-8", serial, {"Vary": "Accept"}
            )
        return media

    def _send_page(self, body: bytes, media: str, serial: int, scope: str) -> None:
        faults = self.server.faults
        if faults.roll(faults.malformed_rate, scope):
            body = _MALFORMED["json" if is_json(media) or scope == "json-api" else "html"]
        self.respond(200, body, media, serial, {"Vary": "Accept"})

    # -- the simple API --------------------------------------------------------------------

    def _root(self, path: str) -> None:
        if self._faulted("simple-root", "root"):
            return
        if path == "/simple":
            self.redirect("/simple/" + (f"?{self.query}" if self.query else ""))
            return
        index = self.server.index
        serial = index.last_serial
        media = self._media_type(serial)
        if media is None:
            return

        def draw() -> bytes:
            # A change landing right now may make entries newer than the serial announced;
            # that errs on the safe side (a mirror re-checks, it never misses a change).
            _, entries = index.listing()
            if is_json(media):
                return render.root_json(serial, entries)
            return render.root_html(serial, entries)

        variant = "json" if is_json(media) else "html"
        body, _ = self.server.pages.get(("root", variant), serial, draw)
        self._send_page(body, media, serial, "root")

    def _project(self, segment: str, slash: bool) -> None:
        if self._faulted("simple-project", "project"):
            return
        name = canonicalize_name(unquote(segment))
        index = self.server.index
        serial = index.project_serial(name)
        if not slash or segment != name:
            self.redirect(f"/simple/{name}/" + (f"?{self.query}" if self.query else ""), serial)
            return
        media = self._media_type(serial if serial is not None else self._global())
        if media is None:
            return
        if self._missing(name, serial):
            return
        variant = "json" if is_json(media) else "html"
        page = render.project_json if variant == "json" else render.project_html
        self._project_page(("simple", variant, name), name, media, "project", page)

    def _missing(self, name: str, serial: int | None) -> bool:
        faults = self.server.faults
        if faults.is_broken(name):
            self.respond_text(500, "Internal Server Error (broken project)", serial)
            return True
        if serial is None or faults.is_gone(name):
            self.respond_text(404, f"project {name} not found", serial)
            return True
        return False

    def _project_page(
        self,
        key: tuple[str, ...],
        name: str,
        media: str,
        scope: str,
        page: render.PageRenderer,
    ) -> None:
        server = self.server
        view = server.index.view(name)
        if view is None:
            self.respond_text(404, f"project {name} not found")
            return
        base = server.base_url
        # A page nobody can serve (the JSON API of a project without releases) renders as b"".
        body, previous = server.pages.get(
            key, view.serial, lambda: page(view, server.index, base, view.serial) or b""
        )
        serial = view.serial
        if server.faults.roll(server.faults.stale_rate, scope):
            if previous is not None:
                serial, body = previous
            else:
                serial = view.serial - 1
                body = page(view, server.index, base, serial) or b""
        if not body:
            self.respond_text(404, f"{name} has no such release", view.serial)
            return
        self._send_page(body, media, serial, scope)

    # -- the JSON API ----------------------------------------------------------------------

    def _json_api(self, segment: str, version: str | None) -> None:
        if self._faulted("json-api", "json-api"):
            return
        name = canonicalize_name(unquote(segment))
        serial = self.server.index.project_serial(name)
        if segment != name:
            tail = f"{unquote(version)}/json" if version else "json"
            self.redirect(f"/pypi/{name}/{tail}" + (f"?{self.query}" if self.query else ""), serial)
            return
        if self._missing(name, serial):
            return
        wanted = unquote(version) if version else None

        def page(view: ProjectView, index: Index, base: str, at: int) -> bytes | None:
            return render.json_api(view, index, base, at, wanted)

        self._project_page(("api", wanted or "", name), name, _JSON, "json-api", page)

    # -- XML-RPC and admin -----------------------------------------------------------------

    def _xmlrpc(self, body: bytes) -> None:
        content_type = self.headers.get("Content-Type", "")
        if not content_type.lower().startswith("text/xml"):
            self.server.stats.incr("other")
            self.respond_text(415, "XML-RPC requests must be sent as text/xml")
            return
        try:
            params, method = xmlrpc.client.loads(body, use_builtin_types=True)
        except Exception:  # whatever the parser chokes on is the client's fault
            params, method = (), None
        if self._faulted(f"xmlrpc:{method or 'invalid'}", "xmlrpc"):
            return
        faults = self.server.faults
        answer = answer_xmlrpc(self.server.index, method, params, faults)
        if faults.roll(faults.malformed_rate, "xmlrpc"):
            answer = b"<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><arr"
        self.respond(200, answer, "text/xml")

    def _admin(self, path: str, body: bytes) -> None:
        server = self.server
        status, result = answer_admin(
            self.command, path, body, server.index, server.faults, server.stats
        )
        self.respond(status, json.dumps(result).encode() + b"\n", _JSON)

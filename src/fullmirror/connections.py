"""Plain HTTP/1.1 keep-alive connections for the requests a sync sends by the thousand.

A mirror's first sync is tens of thousands of small GETs: release files, their ``.metadata``
and a page or two per project. Through httpx each costs about 1 ms of CPU in the client (URL
and header models, the connection pool's bookkeeping, h11), against about 0.3 ms through the
standard library's ``http.client``: measured, a third of a small-file sync's CPU. So the GETs
go straight to ``http.client`` on pooled connections, and the rest (XML-RPC, and any request
that needs a proxy) stays with httpx. The caller decides which path a URL takes; see
``Upstream._direct``.

What this layer promises is what the httpx path gives its callers: redirects followed (at most
20), ``gzip``/``deflate`` bodies decoded on request, a body that ends early raised as an error,
and every network failure raised as :class:`~fullmirror.errors.UpstreamUnreachable`.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import quote, urljoin, urlsplit

from fullmirror.errors import MalformedResponse, UpstreamUnreachable

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 20
CHUNK = 1 << 16
#: What may stay in a request target unescaped; ``%`` so that escapes upstream made survive.
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"
#: A connection the server closed while it sat idle shows up as one of these on reuse.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)

_Key = tuple[str, str, int]


def usable(url: str) -> bool:
    """Whether this layer can send ``url`` at all: http(s), a host, no credentials."""
    split = urlsplit(url)
    return split.scheme in ("http", "https") and bool(split.hostname) and "@" not in split.netloc


class Reply:
    """One response whose body has not been read yet."""

    __slots__ = ("_response", "headers", "status", "url")

    def __init__(self, url: str, response: http.client.HTTPResponse) -> None:
        self.url = url
        self.status = response.status
        #: Header names in lower case; a repeated header keeps its last value.
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self._response = response

    def iter_raw(self) -> Iterator[bytes]:
        """The body as sent, Content-Encoding and all."""
        response = self._response
        read = response.read
        try:
            while chunk := read(CHUNK):
                yield chunk
            # http.client's read(amt) ends quietly where the connection did.
            if response.length:
                raise http.client.IncompleteRead(b"", response.length)
        except TimeoutError as exc:
            raise UpstreamUnreachable(self.url, "timed out (read)") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamUnreachable(self.url, _reason(exc)) from exc

    def iter_decoded(self) -> Iterator[bytes]:
        """The body with a ``gzip`` or ``deflate`` Content-Encoding undone."""
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            yield from self.iter_raw()
            return
        if encoding in ("gzip", "x-gzip"):
            inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            inflate = zlib.decompressobj()
        else:
            raise MalformedResponse(self.url, f"unsupported Content-Encoding {encoding!r}")
        try:
            for chunk in self.iter_raw():
                if out := inflate.decompress(chunk):
                    yield out
            if tail := inflate.flush():
                yield tail
        except zlib.error as exc:
            raise MalformedResponse(self.url, f"undecodable {encoding} body: {exc}") from exc
        if not inflate.eof:
            raise MalformedResponse(self.url, f"{encoding} body ends early")

    @property
    def finished(self) -> bool:
        """The body was read to its end and the connection may carry another request."""
        return self._response.isclosed() and not self._response.will_close


class ConnectionPool:
    """Keep-alive connections per (scheme, host, port), shared by every thread."""

    def __init__(
        self,
        *,
        timeout: float,
        headers: dict[str, str],
        ssl_context: Callable[[], ssl.SSLContext],
        max_idle: int,
    ) -> None:
        self._timeout = timeout
        self._headers = headers
        self._ssl_factory = ssl_context
        self._ssl: ssl.SSLContext | None = None
        self._max_idle = max_idle
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def get(self, url: str, headers: dict[str, str]) -> Iterator[Reply]:
        """GET ``url``, following redirects; the connection goes back to the pool when the
        body was read to its end, and is closed otherwise."""
        for _ in range(MAX_REDIRECTS + 1):
            key, conn, reply = self._exchange(url, headers)
            location = reply.headers.get("location")
            if reply.status in _REDIRECTS and location:
                # Redirect bodies are a few bytes; reading them keeps the connection usable.
                for _chunk in reply.iter_raw():
                    pass
                self._release(key, conn, reply)
                url = urljoin(url, location)
                if not usable(url):
                    raise UpstreamUnreachable(url, "redirected to a URL this mirror cannot use")
                continue
            try:
                yield reply
            finally:
                self._release(key, conn, reply)
            return
        raise UpstreamUnreachable(url, f"more than {MAX_REDIRECTS} redirects")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [c for conns in self._idle.values() for c in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()

    def _exchange(
        self, url: str, headers: dict[str, str]
    ) -> tuple[_Key, http.client.HTTPConnection, Reply]:
        split = urlsplit(url)
        scheme = split.scheme
        host = split.hostname or ""
        try:
            port = split.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise UpstreamUnreachable(url, f"bad port: {exc}") from exc
        key = (scheme, host, port)
        target = quote(split.path or "/", safe=_TARGET_SAFE)
        if split.query:
            target += "?" + quote(split.query, safe=_TARGET_SAFE)
        conn, reused = self._checkout(key)
        while True:
            try:
                conn.request("GET", target, headers={**self._headers, **headers})
                return key, conn, Reply(url, conn.getresponse())
            except _STALE as exc:
                conn.close()
                if not reused:
                    raise UpstreamUnreachable(url, _reason(exc)) from exc
                # Sent on a connection the server had already closed: a GET is safe to repeat.
                conn, reused = self._connect(key), False
            except TimeoutError as exc:
                conn.close()
                raise UpstreamUnreachable(url, "timed out (connect or read)") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise UpstreamUnreachable(url, _reason(exc)) from exc

    def _checkout(self, key: _Key) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            conns = self._idle.get(key)
            if conns:
                return conns.pop(), True
        return self._connect(key), False

    def _connect(self, key: _Key) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            with self._lock:
                if self._ssl is None:
                    self._ssl = self._ssl_factory()
                context = self._ssl
            return http.client.HTTPSConnection(host, port, timeout=self._timeout, context=context)
        return http.client.HTTPConnection(host, port, timeout=self._timeout)

    def _release(self, key: _Key, conn: http.client.HTTPConnection, reply: Reply) -> None:
        if reply.finished:
            with self._lock:
                conns = self._idle.setdefault(key, [])
                if not self._closed and len(conns) < self._max_idle:
                    conns.append(conn)
                    return
        conn.close()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]

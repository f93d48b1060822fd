"""The upstream index over HTTP: the only module that imports httpx.

One shared ``httpx.Client`` (thread-safe, pooled keep-alive connections) serves every thread.
Requests are retried with exponential backoff and jitter on 5xx, 429, resets and timeouts;
XML-RPC calls are spaced politely and wait out PyPI's rate-limit fault for the time it names.
What comes back is handed to :mod:`fullmirror.parse` and leaves here typed.
"""

from __future__ import annotations

import random
import re
import threading
import time
import urllib.request
import xml.parsers.expat
import xmlrpc.client
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from packaging.utils import NormalizedName

from fullmirror import __version__
from fullmirror.config import Config
from fullmirror.connections import CHUNK, ConnectionPool, usable
from fullmirror.errors import (
    MalformedResponse,
    ProjectGone,
    RateLimited,
    StaleResponse,
    UpstreamError,
    UpstreamStatus,
    UpstreamUnreachable,
)
from fullmirror.listings import RootJsonReader, SerialsReader, listed, unique_sorted
from fullmirror.models import ChangelogEntry, ListedProject, Listing
from fullmirror.parse import ParsedProject, parse_changelog, parse_project_json

USER_AGENT = f"fullmirror/{__version__} (package index mirror; httpx/{httpx.__version__})"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
_JSON_TYPES = (SIMPLE_JSON, "application/vnd.pypi.simple.latest+json", "application/json")
#: What the page requests accept, as httpx's default would say it.
_ENCODINGS = "gzip, deflate"
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_RATE_LIMIT = re.compile(r"Limit may reset in (\d+) seconds")
#: Caps on documents we hold in memory: PyPI's whole root listing is ~40 MB today.
MAX_PAGE_BYTES = 64 << 20
MAX_LISTING_BYTES = 1 << 30
MAX_RATE_LIMIT_WAIT = 600.0

_T = TypeVar("_T")


class ListingSink(Protocol):
    """Where a streamed project listing goes, a batch at a time, as it arrives."""

    def restart(self) -> None:
        """Forget what earlier batches gave: the listing is being fetched again."""

    def add(self, batch: list[ListedProject]) -> None: ...


class _Reply(Protocol):
    """A response whose body is still to be read, whichever HTTP path fetched it."""

    url: str
    status: int
    #: Header names in lower case.
    headers: dict[str, str]

    def iter_raw(self) -> Iterator[bytes]: ...

    def iter_decoded(self) -> Iterator[bytes]: ...


class _HttpxReply:
    __slots__ = ("_response", "headers", "status", "url")

    def __init__(self, response: httpx.Response) -> None:
        self.url = str(response.url)
        self.status = response.status_code
        self.headers = {k.lower(): v for k, v in response.headers.items()}
        self._response = response

    def iter_raw(self) -> Iterator[bytes]:
        return _mapped(self.url, self._response.iter_raw(CHUNK))

    def iter_decoded(self) -> Iterator[bytes]:
        return _mapped(self.url, self._response.iter_bytes())


def _mapped(url: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    except httpx.TimeoutException as exc:
        raise UpstreamUnreachable(url, f"timed out ({type(exc).__name__})") from exc
    except httpx.DecodingError as exc:
        raise MalformedResponse(url, f"undecodable body: {_reason(exc)}") from exc
    except httpx.TransportError as exc:
        raise UpstreamUnreachable(url, _reason(exc)) from exc


class _Collected:
    """A sink that keeps the whole listing, for callers that need it at once."""

    def __init__(self) -> None:
        self.projects: list[ListedProject] = []

    def restart(self) -> None:
        self.projects.clear()

    def add(self, batch: list[ListedProject]) -> None:
        self.projects.extend(batch)


def make_client(*, timeout: float, proxy: str, connections: int) -> httpx.Client:
    return httpx.Client(
        headers={"User-Agent": USER_AGENT},
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        proxy=proxy or None,
        follow_redirects=True,
        # An explicit `proxy` setting wins over the environment's *_PROXY variables.
        trust_env=not proxy,
    )


def open_upstream(config: Config) -> Upstream:
    """The upstream ``config`` names, with its own HTTP clients; the caller calls
    ``upstream.close()``."""
    connections = 2 * config.workers + 2
    client = make_client(timeout=config.timeout, proxy=config.proxy, connections=connections)
    pool = None
    if not config.proxy:
        pool = ConnectionPool(
            timeout=config.timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "*/*"},
            # The same trust as the httpx client: its CA bundle and SSL_CERT_* variables.
            ssl_context=lambda: httpx.create_ssl_context(trust_env=True),
            max_idle=connections,
        )
    return Upstream(
        client,
        config.master,
        retries=config.retries,
        xmlrpc_delay=config.xmlrpc_delay,
        global_timeout=config.global_timeout,
        pool=pool,
    )


@dataclass(frozen=True, slots=True)
class _Body:
    url: str
    status: int
    #: Header names in lower case.
    headers: dict[str, str]
    content: bytes


class Upstream:
    """Typed access to one upstream index rooted at ``master``."""

    def __init__(
        self,
        client: httpx.Client,
        master: str,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        xmlrpc_delay: float = 1.0,
        global_timeout: float = 1800.0,
        sleep: Callable[[float], None] = time.sleep,
        pool: ConnectionPool | None = None,
    ) -> None:
        self.client = client
        #: Direct connections for the many small GETs of a sync; None sends all through httpx.
        self.pool = pool
        #: The environment's *_proxy settings, which the direct path must not bypass.
        self._env_proxies = urllib.request.getproxies_environment() if pool else {}
        self.master = master.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.xmlrpc_delay = xmlrpc_delay
        self.global_timeout = global_timeout
        self.sleep = sleep
        self._xmlrpc_lock = threading.Lock()
        self._last_xmlrpc = 0.0
        #: Requests sent, by kind; read by the run summary and the benchmarks.
        self.requests: dict[str, int] = {}
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()
        if self.pool is not None:
            self.pool.close()

    # -- changes -------------------------------------------------------------------------

    def changelog_last_serial(self) -> int:
        value = self._xmlrpc("changelog_last_serial")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MalformedResponse(self._rpc_url, f"changelog_last_serial gave {value!r}")
        return value

    def changelog_since(self, serial: int) -> list[ChangelogEntry]:
        """Every changelog row after ``serial``, following PyPI's 50,000-row pages."""
        entries: list[ChangelogEntry] = []
        while True:
            page = parse_changelog(
                self._xmlrpc("changelog_since_serial", serial), url=self._rpc_url
            )
            if not page:
                return entries
            entries.extend(page)
            last = max(e.serial for e in page)
            if last <= serial:
                raise MalformedResponse(
                    self._rpc_url, "changelog did not advance; refusing to loop"
                )
            serial = last

    def list_packages_with_serial(self) -> tuple[ListedProject, ...]:
        """Every project with its serial, held at once (for small callers; see
        :meth:`stream_serials`)."""
        collected = _Collected()
        self.stream_serials(collected)
        return unique_sorted(collected.projects)

    def stream_serials(self, into: ListingSink) -> None:
        """XML-RPC ``list_packages_with_serial``, parsed and handed to ``into`` as it arrives:
        PyPI's answer is tens of megabytes, and a whole parsed copy costs hundreds."""
        url = self._rpc_url

        def read(r: httpx.Response) -> None:
            reader = SerialsReader(url)
            into.restart()
            _stream_into(r.iter_bytes(), url, MAX_LISTING_BYTES, reader.feed, into)
            into.add(listed(reader.close()))

        self._xmlrpc_call("list_packages_with_serial", (), read)

    def listing(self) -> Listing:
        """The PEP 691 root listing with each project's ``_last-serial``, held at once."""
        collected = _Collected()
        serial = self.stream_listing(collected)
        return Listing(serial, unique_sorted(collected.projects))

    def stream_listing(self, into: ListingSink) -> int | None:
        """The PEP 691 root listing handed to ``into`` as it arrives; returns the index-wide
        serial its ``meta`` names, if any."""
        url = f"{self.master}/simple/"
        last: UpstreamError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._pause(attempt - 1)
            self._count("simple-root")
            try:
                with self._open(url, {"Accept": SIMPLE_JSON, "Accept-Encoding": _ENCODINGS}) as r:
                    if r.status != 200:
                        last = UpstreamStatus(url, r.status)
                        if r.status not in _RETRY_STATUS:
                            raise last
                        continue
                    self._require_json(r.url, r.headers)
                    reader = RootJsonReader(r.url)
                    into.restart()
                    _stream_into(r.iter_decoded(), url, MAX_LISTING_BYTES, reader.feed, into)
                    into.add(listed(reader.close()))
                    return reader.serial
            except UpstreamUnreachable as exc:
                last = exc
            except MalformedResponse as exc:
                # A truncated or garbled listing is usually a passing fault: ask again.
                last = exc
        assert last is not None
        raise last

    # -- projects ------------------------------------------------------------------------

    def project(self, name: NormalizedName, *, at_least: int) -> ParsedProject:
        """The project's PEP 691 page, no older than serial ``at_least``.

        A stale copy (a CDN lagging behind the changelog) is fetched again with backoff; if it
        stays stale, StaleResponse. A 404 is ProjectGone.
        """
        url = f"{self.master}/simple/{name}/"
        last: UpstreamError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._pause(attempt - 1)
            body = self._get(
                url, kind="simple-project", accept=SIMPLE_JSON, max_bytes=MAX_PAGE_BYTES
            )
            if body.status == 404:
                raise ProjectGone(url, name)
            header = body.headers.get("x-pypi-last-serial")
            header_serial = int(header) if header and header.strip().isdigit() else None
            try:
                self._require_json(body.url, body.headers)
                parsed = parse_project_json(
                    body.content, project=name, page_url=body.url, header_serial=header_serial
                )
            except MalformedResponse as exc:
                # A truncated or garbled body is usually a passing fault: ask again.
                last = exc
                continue
            if parsed.page.serial >= at_least:
                return parsed
            last = StaleResponse(url, parsed.page.serial, at_least)
        assert last is not None
        raise last

    def json_api(self, name: NormalizedName) -> bytes:
        """The raw JSON API document (``/pypi/<name>/json``) for the ``json = true`` copy."""
        url = f"{self.master}/pypi/{name}/json"
        body = self._get(url, kind="json-api", accept="application/json", max_bytes=MAX_PAGE_BYTES)
        if body.status == 404:
            raise ProjectGone(url, name)
        return body.content

    # -- files ---------------------------------------------------------------------------

    def fetch_file(
        self,
        url: str,
        *,
        offset: int,
        on_start: Callable[[int], None],
        sink: Callable[[bytes], None],
        kind: str = "file",
    ) -> None:
        """Stream one file into ``sink`` (no retries here: the caller owns the temp file).

        With ``offset`` > 0 a Range request asks for the rest; ``on_start`` is told where the
        body really starts (0 when the server ignored the range). Exceptions from ``sink``
        propagate and close the connection, which is how an overlong body is cut off.
        """
        self._count(kind)
        headers = {"Accept-Encoding": "identity"}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
        deadline = time.monotonic() + self.global_timeout
        with self._open(url, headers) as r:
            restart = r.status == 416 and offset > 0
            if not restart:
                if r.status not in (200, 206):
                    raise UpstreamStatus(url, r.status)
                start = 0
                if r.status == 206:
                    match = re.match(r"bytes (\d+)-", r.headers.get("content-range", ""))
                    start = int(match.group(1)) if match else -1
                    if start != offset:
                        raise MalformedResponse(url, "Content-Range does not match the request")
                on_start(start)
                for chunk in r.iter_raw():
                    sink(chunk)
                    if time.monotonic() > deadline:
                        raise UpstreamUnreachable(url, "took longer than global-timeout")
        if restart:
            # The partial file is not a prefix the server recognises: start over.
            self.fetch_file(url, offset=0, on_start=on_start, sink=sink, kind=kind)

    # -- internals -----------------------------------------------------------------------

    @property
    def _rpc_url(self) -> str:
        return f"{self.master}/pypi"

    def _count(self, kind: str) -> None:
        with self._count_lock:
            self.requests[kind] = self.requests.get(kind, 0) + 1

    def add_requests(self, counts: dict[str, int]) -> None:
        """Count requests another process sent to the same upstream for this run."""
        with self._count_lock:
            for kind, n in counts.items():
                self.requests[kind] = self.requests.get(kind, 0) + n

    def _pause(self, attempt: int) -> None:
        # Full jitter keeps many workers from retrying in lockstep against a struggling server.
        self.sleep(self.backoff * (2**attempt) * (0.5 + random.random() / 2))

    def _require_json(self, url: str, headers: dict[str, str]) -> None:
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in _JSON_TYPES:
            raise MalformedResponse(
                url,
                f"expected PEP 691 JSON, got Content-Type {ctype or 'none'!r}; "
                "the upstream must serve the PEP 691 simple API",
            )

    def _get(self, url: str, *, kind: str, accept: str, max_bytes: int) -> _Body:
        """GET with retries; returns 200 and 404 bodies, raises for everything else."""
        last: UpstreamError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._pause(attempt - 1)
            self._count(kind)
            try:
                with self._open(url, {"Accept": accept, "Accept-Encoding": _ENCODINGS}) as r:
                    if r.status in (200, 404):
                        content = _read_capped(r.iter_decoded(), url, max_bytes)
                        return _Body(r.url, r.status, r.headers, content)
                    last = UpstreamStatus(url, r.status)
                    if r.status not in _RETRY_STATUS:
                        raise last
            except UpstreamUnreachable as exc:
                last = exc
        assert last is not None
        raise last

    @contextmanager
    def _open(self, url: str, headers: dict[str, str]) -> Iterator[_Reply]:
        """GET ``url`` and hold the response open; network failures of the request and of
        reading its body are UpstreamUnreachable, whichever path sends it."""
        if self.pool is not None and self._direct(url):
            with self.pool.get(url, headers) as reply:
                yield reply
            return
        try:
            with self.client.stream("GET", url, headers=headers) as response:
                yield _HttpxReply(response)
        except httpx.TimeoutException as exc:
            raise UpstreamUnreachable(url, f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnreachable(url, _reason(exc)) from exc

    def _direct(self, url: str) -> bool:
        """Whether ``url`` may skip httpx: sendable, and no proxy the environment names for it."""
        if not usable(url):
            return False
        proxies = self._env_proxies
        if not proxies:
            return True
        split = urlsplit(url)
        if split.scheme not in proxies and "all" not in proxies:
            return True
        return bool(urllib.request.proxy_bypass(split.hostname or ""))

    def _xmlrpc(self, method: str, *params: int) -> object:
        def read(r: httpx.Response) -> object:
            body = _read_capped(r.iter_bytes(), self._rpc_url, MAX_LISTING_BYTES)
            return xmlrpc.client.loads(body, use_builtin_types=True)[0][0]

        return self._xmlrpc_call(method, params, read)

    def _xmlrpc_call(
        self, method: str, params: tuple[int, ...], read: Callable[[httpx.Response], _T]
    ) -> _T:
        """POST one XML-RPC call and ``read`` the 200 answer; retried as a whole."""
        url = self._rpc_url
        payload = xmlrpc.client.dumps(params, method, allow_none=True).encode()
        headers = {"Content-Type": "text/xml"}
        last: UpstreamError | None = None
        attempt = 0
        while attempt <= self.retries:
            self._space_xmlrpc()
            self._count(f"xmlrpc:{method}")
            try:
                with self.client.stream("POST", url, content=payload, headers=headers) as r:
                    if r.status_code == 200:
                        return read(r)
                    last = UpstreamStatus(url, r.status_code)
                    if r.status_code not in _RETRY_STATUS:
                        raise last
            except httpx.TimeoutException as exc:
                last = UpstreamUnreachable(url, f"timed out ({type(exc).__name__})")
            except httpx.TransportError as exc:
                last = UpstreamUnreachable(url, _reason(exc))
            except xmlrpc.client.Fault as fault:
                wait = _rate_limit_wait(fault)
                if wait is None:
                    raise MalformedResponse(
                        url, f"XML-RPC fault {fault.faultCode}: {fault.faultString[:200]}"
                    ) from fault
                last = RateLimited(url, wait)
                self.sleep(min(wait, MAX_RATE_LIMIT_WAIT))
                attempt += 1
                continue
            except (xml.parsers.expat.ExpatError, xmlrpc.client.ResponseError, IndexError):
                last = MalformedResponse(url, f"{method} answered with malformed XML-RPC")
            except MalformedResponse as exc:
                last = exc
            if attempt < self.retries:
                self._pause(attempt)
            attempt += 1
        assert last is not None
        raise last

    def _space_xmlrpc(self) -> None:
        with self._xmlrpc_lock:
            wait = self._last_xmlrpc + self.xmlrpc_delay - time.monotonic()
            if wait > 0:
                self.sleep(wait)
            self._last_xmlrpc = time.monotonic()


def _read_capped(body: Iterator[bytes], url: str, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    for chunk in body:
        total += len(chunk)
        if total > max_bytes:
            raise MalformedResponse(url, f"response larger than {max_bytes} bytes; refused")
        chunks.append(chunk)
    return b"".join(chunks)


def _stream_into(
    body: Iterator[bytes],
    url: str,
    max_bytes: int,
    feed: Callable[[bytes], list[tuple[str, int]]],
    into: ListingSink,
) -> None:
    total = 0
    for chunk in body:
        total += len(chunk)
        if total > max_bytes:
            raise MalformedResponse(url, f"response larger than {max_bytes} bytes; refused")
        into.add(listed(feed(chunk)))


def _rate_limit_wait(fault: xmlrpc.client.Fault) -> float | None:
    if fault.faultCode != -32500:
        return None
    match = _RATE_LIMIT.search(str(fault.faultString))
    return float(match.group(1)) if match else None


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]

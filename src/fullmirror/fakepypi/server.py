"""``FakePyPI``: the fake index served over real HTTP from a background thread.

::

    with FakePyPI.start(projects=30, seed=0) as up:
        up.url                     # "http://127.0.0.1:PORT", what goes into ``master``
        up.index.add_release("demo-core", "2.0")
        up.faults.error_rate = 0.05
        up.stats.snapshot()

Only loopback addresses may be bound: this is a test server and its admin endpoint lets anyone
rewrite the index.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from types import TracebackType

from fullmirror.fakepypi.corpus import generate_corpus
from fullmirror.fakepypi.faults import Faults
from fullmirror.fakepypi.handler import FakeServer
from fullmirror.fakepypi.index import Index
from fullmirror.fakepypi.stats import Stats

__all__ = ["FakePyPI", "NotLoopback", "loopback_family"]


class NotLoopback(ValueError):
    """A bind address outside 127.0.0.0/8 and ::1."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"refusing to bind {host!r}: the fake index only listens on loopback addresses "
            "(127.0.0.0/8 or ::1)"
        )


def loopback_family(host: str) -> tuple[str, socket.AddressFamily]:
    """The address to bind and its family; raises NotLoopback for anything else."""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise NotLoopback(host) from None
    if not address.is_loopback:
        raise NotLoopback(host)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return str(address), family


class FakePyPI:
    """A running fake index. Build it with :meth:`start`; stop it with :meth:`stop` or ``with``."""

    def __init__(self, index: Index, faults: Faults, host: str, port: int) -> None:
        address, family = loopback_family(host)
        self.index = index
        self.faults = faults
        self._server = FakeServer((address, port), family, index, faults)
        self._thread: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        projects: int = 30,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        file_size: int = 0,
        *,
        index: Index | None = None,
        faults: Faults | None = None,
        page_size: int | None = None,
        verbose: bool = False,
    ) -> FakePyPI:
        """Generate the corpus (unless ``index`` is given) and serve it in a daemon thread.

        ``port=0`` picks a free port. ``page_size`` lowers the changelog page size.
        """
        loopback_family(host)  # fail before spending time on the corpus
        if index is None:
            index = generate_corpus(projects, seed, file_size)
        if page_size is not None:
            index.changelog_page_size = page_size
        upstream = cls(index, faults if faults is not None else Faults(), host, port)
        upstream._server.verbose = verbose
        upstream._thread = threading.Thread(
            target=upstream._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fakepypi-{upstream.port}",
            daemon=True,
        )
        upstream._thread.start()
        return upstream

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` without a trailing slash."""
        return self._server.base_url

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def stats(self) -> Stats:
        return self._server.stats

    def stop(self) -> None:
        """Stop serving, wake stalled requests and drop open connections. Idempotent."""
        server = self._server
        server.stopping.set()
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        server.close_connections()
        server.server_close()

    def __enter__(self) -> FakePyPI:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FakePyPI {self.url} serial={self.index.last_serial}>"

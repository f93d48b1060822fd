"""The direct HTTP/1.1 path, against a server on 127.0.0.1 that answers with scripted bytes."""

from __future__ import annotations

import gzip
import socket
import socketserver
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fullmirror.config import parse_config
from fullmirror.connections import ConnectionPool, usable
from fullmirror.errors import MalformedResponse, UpstreamUnreachable
from fullmirror.upstream import open_upstream

#: An answer: the bytes to send, then whether to close the connection afterwards.
Answer = tuple[bytes, bool]


def ok(body: bytes, *headers: str, close: bool = False) -> Answer:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head).encode() + b"\r\n\r\n" + body, close)


TLS = Path(__file__).parent / "tls"


class Scripted(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer: Callable[[str], Answer], *, tls: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.accepted = 0
        self.targets: list[str] = []
        self.headers: list[str] = []
        self.tls: ssl.SSLContext | None = None
        if tls:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(TLS / "cert.pem", TLS / "key.pem")

    @property
    def base(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, addr

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up or refuses the certificate is what some tests want


class _Handler(socketserver.StreamRequestHandler):
    server: Scripted

    def handle(self) -> None:
        self.server.accepted += 1
        while True:
            line = self.rfile.readline()
            if not line:
                return
            head = [line.decode("latin-1")]
            while (h := self.rfile.readline()) not in (b"\r\n", b""):
                head.append(h.decode("latin-1"))
            target = head[0].split(" ")[1]
            self.server.targets.append(target)
            self.server.headers.append("".join(head[1:]))
            data, close = self.server.answer(target)
            self.wfile.write(data)
            self.wfile.flush()
            if close:
                return


@pytest.fixture
def serve() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def start(answer: Callable[[str], Answer], *, tls: bool = False) -> Scripted:
        server = Scripted(answer, tls=tls)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


_pools: list[ConnectionPool] = []


@pytest.fixture(autouse=True)
def _close_pools() -> Iterator[None]:
    yield
    while _pools:
        _pools.pop().close()


def _trusting() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=TLS / "cert.pem")


def pool(timeout: float = 5.0, tls: Callable[[], ssl.SSLContext] = _trusting) -> ConnectionPool:
    made = ConnectionPool(
        timeout=timeout, headers={"User-Agent": "fullmirror-test"}, ssl_context=tls, max_idle=4
    )
    _pools.append(made)
    return made


def fetch(p: ConnectionPool, url: str, *, decoded: bool = False) -> tuple[int, str, bytes]:
    with p.get(url, {}) as reply:
        body = b"".join(reply.iter_decoded() if decoded else reply.iter_raw())
        return reply.status, reply.url, body


def test_sequential_requests_share_one_connection(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda target: ok(target.encode()))
    p = pool()
    for i in range(5):
        assert fetch(p, f"{server.base}/f{i}") == (200, f"{server.base}/f{i}", f"/f{i}".encode())
    assert server.accepted == 1
    assert "User-Agent: fullmirror-test" in server.headers[0]
    p.close()


def test_a_connection_the_server_dropped_while_idle_is_replaced(serve) -> None:  # type: ignore[no-untyped-def]
    # The server closes after every answer without saying so, as an idle timeout would.
    server = serve(lambda target: ok(b"x", close=True))
    p = pool()
    for _ in range(3):
        time.sleep(0.05)
        assert fetch(p, f"{server.base}/a")[0] == 200
    assert server.accepted == 3
    p.close()


def test_connection_close_is_not_pooled(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda target: ok(b"x", "Connection: close", close=True))
    p = pool()
    fetch(p, f"{server.base}/a")
    fetch(p, f"{server.base}/b")
    assert server.accepted == 2
    assert server.targets == ["/a", "/b"]


def test_a_body_left_unread_closes_its_connection(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda target: ok(b"y" * 200_000))
    p = pool()
    with p.get(f"{server.base}/big", {}) as reply:
        next(reply.iter_raw())
    assert fetch(p, f"{server.base}/big")[2] == b"y" * 200_000
    assert server.accepted == 2


def test_redirects_are_followed_to_the_final_url(serve) -> None:  # type: ignore[no-untyped-def]
    def answer(target: str) -> Answer:
        if target == "/old":
            return (b"HTTP/1.1 301 Moved\r\nLocation: /mid/\r\nContent-Length: 3\r\n\r\nabc", False)
        if target == "/mid/":
            return (b"HTTP/1.1 307 Temp\r\nLocation: ../new\r\nContent-Length: 0\r\n\r\n", False)
        return ok(b"here")

    server = serve(answer)
    assert fetch(pool(), f"{server.base}/old") == (200, f"{server.base}/new", b"here")
    assert server.accepted == 1


def test_a_redirect_loop_gives_up(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(
        lambda t: (b"HTTP/1.1 302 F\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n", False)
    )
    with pytest.raises(UpstreamUnreachable, match="more than 20 redirects"):
        fetch(pool(), f"{server.base}/loop")
    assert len(server.targets) == 21


def test_a_redirect_to_credentials_is_refused(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(
        lambda t: (
            b"HTTP/1.1 302 F\r\nLocation: http://u:p@127.0.0.1:9/\r\nContent-Length: 0\r\n\r\n",
            False,
        )
    )
    with pytest.raises(UpstreamUnreachable, match="cannot use"):
        fetch(pool(), f"{server.base}/x")


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        ("gzip", gzip.compress(b"page " * 1000)),
        ("x-gzip", gzip.compress(b"page " * 1000)),
        ("deflate", zlib.compress(b"page " * 1000)),
        ("identity", b"page " * 1000),
    ],
)
def test_encoded_bodies_are_decoded(serve, encoding: str, packed: bytes) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda t: ok(packed, f"Content-Encoding: {encoding}"))
    assert fetch(pool(), f"{server.base}/p", decoded=True)[2] == b"page " * 1000
    # Raw reads hand over what was sent.
    assert fetch(pool(), f"{server.base}/p")[2] == packed


def test_a_cut_gzip_body_is_malformed(serve) -> None:  # type: ignore[no-untyped-def]
    packed = gzip.compress(b"page " * 1000)[:-12]
    server = serve(lambda t: ok(packed, "Content-Encoding: gzip"))
    with pytest.raises(MalformedResponse, match="ends early"):
        fetch(pool(), f"{server.base}/p", decoded=True)


@pytest.mark.parametrize(("encoding", "message"), [("br", "unsupported"), ("gzip", "undecodable")])
def test_bodies_that_cannot_be_decoded_are_malformed(serve, encoding: str, message: str) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda t: ok(b"not compressed", f"Content-Encoding: {encoding}"))
    with pytest.raises(MalformedResponse, match=message):
        fetch(pool(), f"{server.base}/p", decoded=True)


def test_a_body_shorter_than_its_length_is_an_error(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda t: (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..", True))
    with pytest.raises(UpstreamUnreachable, match=r"IncompleteRead|bytes read"):
        fetch(pool(), f"{server.base}/cut")


def test_chunked_bodies_are_read_whole(serve) -> None:  # type: ignore[no-untyped-def]
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    server = serve(lambda t: (chunked, False))
    p = pool()
    assert fetch(p, f"{server.base}/c")[2] == b"abcde"
    assert fetch(p, f"{server.base}/c")[2] == b"abcde"
    assert server.accepted == 1


def test_a_silent_server_times_out(serve) -> None:  # type: ignore[no-untyped-def]
    def answer(target: str) -> Answer:
        time.sleep(1.0)
        return ok(b"late")

    server = serve(answer)
    with pytest.raises(UpstreamUnreachable, match="timed out"):
        fetch(pool(timeout=0.2), f"{server.base}/slow")


def test_a_refused_connection_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UpstreamUnreachable, match="refused"):
        fetch(pool(), f"http://127.0.0.1:{port}/x")


def test_request_targets_are_percent_encoded_once(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda t: ok(b""))
    fetch(pool(), f"{server.base}/packages/a b/caf\u00e9-1.0.tar.gz?x=1%2F2")
    assert server.targets == ["/packages/a%20b/caf%C3%A9-1.0.tar.gz?x=1%2F2"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000/simple/", True),
        ("https://files.example/packages/x.whl", True),
        ("http://user:secret@127.0.0.1/simple/", False),
        ("ftp://127.0.0.1/x", False),
        ("file:///etc/passwd", False),
        ("http:///nohost", False),
    ],
)
def test_usable(url: str, expected: bool) -> None:
    assert usable(url) is expected


def _upstream_for(tmp_path: Path, *lines: str):  # type: ignore[no-untyped-def]
    text = "\n".join(
        [
            "[mirror]",
            f"directory = {tmp_path / 'm'}",
            "master = http://127.0.0.1:9",
            "allow-non-https = true",
            *lines,
        ]
    )
    return open_upstream(parse_config(text + "\n"))


def test_the_direct_path_respects_proxies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_PROXY")
    direct = _upstream_for(tmp_path)
    assert direct._direct("http://127.0.0.1:9/simple/")
    direct.close()

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    via_env = _upstream_for(tmp_path)
    assert not via_env._direct("http://127.0.0.1:9/simple/")
    # Only http is proxied: https still goes direct.
    assert via_env._direct("https://127.0.0.1:9/simple/")
    via_env.close()

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassed = _upstream_for(tmp_path)
    assert bypassed._direct("http://127.0.0.1:9/simple/")
    bypassed.close()

    monkeypatch.delenv("HTTP_PROXY")
    configured = _upstream_for(tmp_path, "proxy = http://127.0.0.1:3128")
    assert configured.pool is None
    configured.close()


def test_tls_connections_are_verified_and_kept_alive(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(lambda target: ok(b"secret"), tls=True)
    p = pool()
    assert fetch(p, f"{server.base}/a") == (200, f"{server.base}/a", b"secret")
    assert fetch(p, f"{server.base}/b")[2] == b"secret"
    assert server.accepted == 1
    with pytest.raises(UpstreamUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        fetch(pool(tls=ssl.create_default_context), f"{server.base}/a")


@pytest.mark.parametrize("direct", [True, False])
def test_both_paths_trust_the_same_certificates(  # type: ignore[no-untyped-def]
    serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    server = serve(lambda target: ok(b"wheel bytes"), tls=True)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    def fetched() -> bytes:
        upstream = _upstream_for(tmp_path)
        if not direct:
            assert upstream.pool is not None
            upstream.pool.close()
            upstream.pool = None
        got: list[bytes] = []
        try:
            upstream.fetch_file(
                f"{server.base}/w.whl", offset=0, on_start=lambda start: None, sink=got.append
            )
        finally:
            upstream.close()
        return b"".join(got)

    with pytest.raises(UpstreamUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        fetched()
    # The operator's own CA, named the way httpx reads it from the environment.
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "cert.pem"))
    assert fetched() == b"wheel bytes"

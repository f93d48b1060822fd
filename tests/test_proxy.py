"""Proxies through the CLI: a configured ``proxy`` or the environment's ``HTTP_PROXY`` carries
every request, and ``NO_PROXY`` sends them straight to the upstream again.

The proxy is a small forwarding one on 127.0.0.1 that counts what passes through it.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import run_cli, write_config
from fullmirror.fakepypi import FakePyPI
from mirror_checks import assert_mirror_equals_upstream

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


class _Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Proxy

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        # A proxy gets the absolute URL in the request line.
        target = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=30)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            conn.request(self.command, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            answer = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        finally:
            conn.close()
        with self.server.lock:
            self.server.seen.append(self.path)
        self.send_response(response.status, response.reason)
        for key, value in answer:
            if key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Proxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.lock = threading.Lock()
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def proxy() -> Iterator[_Proxy]:
    server = _Proxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _kinds(seen: list[str]) -> set[str]:
    return {urlsplit(url).path.split("/")[1] for url in seen}


def test_a_configured_proxy_carries_every_request(
    tmp_path: Path, upstream: FakePyPI, proxy: _Proxy
) -> None:
    config = write_config(tmp_path, upstream.url, proxy=proxy.url, json="true")
    upstream.stats.reset()
    done = run_cli(config, "mirror")
    served = sum(upstream.stats.snapshot().values())
    carried = list(proxy.seen)
    assert done.returncode == 0, done.stderr
    assert_mirror_equals_upstream(tmp_path / "mirror" / "web", upstream.url)
    # Files, pages, the JSON API and XML-RPC alike: nothing went around the proxy.
    assert {"packages", "simple", "pypi"} <= _kinds(carried)
    assert len(carried) == served


@pytest.mark.parametrize("bypassed", [False, True])
def test_the_environment_proxy_and_no_proxy_are_obeyed(
    tmp_path: Path,
    upstream: FakePyPI,
    proxy: _Proxy,
    monkeypatch: pytest.MonkeyPatch,
    bypassed: bool,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    if not bypassed:
        monkeypatch.delenv("NO_PROXY")
    config = write_config(tmp_path, upstream.url)
    upstream.stats.reset()
    done = run_cli(config, "mirror")
    served = sum(upstream.stats.snapshot().values())
    carried = list(proxy.seen)
    assert done.returncode == 0, done.stderr
    monkeypatch.delenv("HTTP_PROXY")  # the check below reads the upstream directly
    assert_mirror_equals_upstream(tmp_path / "mirror" / "web", upstream.url)
    if bypassed:
        assert carried == [] and served > 0
    else:
        assert "packages" in _kinds(carried)
        assert len(carried) == served

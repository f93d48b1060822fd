"""The served mirror as pip and uv meet it: real nginx with contrib/nginx.conf, and the
embedded ``fullmirror serve``, each over one freshly mirrored corpus, with the mirror as the
only index. What each client received is read from the server's own access log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest

from client_tools import UV, client_env, pip, run_client, uv_installed, uv_venv
from conftest import REPO, run_cli, write_config
from fullmirror.fakepypi import FakePyPI
from mirror_checks import assert_mirror_equals_upstream
from nginx_server import Logged, serve_nginx

pytestmark = pytest.mark.clients

JSON = "application/vnd.pypi.simple.v1+json"


class Served(Protocol):
    url: str

    def requests(self, since: int = 0) -> list[Logged]: ...
    def mark(self) -> int: ...


@dataclass
class Corpus:
    upstream: FakePyPI
    config: Path
    web: Path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    folder = tmp_path_factory.mktemp("served")
    with FakePyPI.start(projects=24, seed=7) as up:
        config = write_config(folder, up.url)
        result = run_cli(config, "mirror")
        assert result.returncode == 0, result.stderr
        yield Corpus(up, config, folder / "mirror" / "web")


@pytest.fixture(scope="module")
def nginx(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_nginx(corpus.web, tmp_path_factory.mktemp("nginx")) as server:
        yield server


class EmbeddedServer:
    """``fullmirror serve`` in a child process; its access log is read from stderr."""

    _LINE = re.compile(
        r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) \S+ (?P<ctype>\S*)'
    )

    def __init__(self, config: Path, log: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        self.log = log
        self._out = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fullmirror", "-c", str(config), "serve", "--port", "0"],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = re.search(r"http://127\.0\.0\.1:(\d+)", log.read_text())
            if found:
                self.url = f"http://127.0.0.1:{found[1]}"
                return
            assert self.process.poll() is None, log.read_text()
            time.sleep(0.05)
        raise AssertionError("fullmirror serve did not say where it listens: " + log.read_text())

    def requests(self, since: int = 0) -> list[Logged]:
        rows = []
        for line in self.log.read_text().splitlines():
            found = self._LINE.search(line)
            if found:
                path = found["path"].split("?", 1)[0]
                rows.append(Logged(found["method"], path, int(found["status"]), found["ctype"], ""))
        return rows[since:]

    def mark(self) -> int:
        return len(self.requests())

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._out.close()


@pytest.fixture(scope="module")
def embedded(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = EmbeddedServer(corpus.config, tmp_path_factory.mktemp("serve") / "access.log")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["nginx", "serve"])
def served(request: pytest.FixtureRequest) -> Served:
    name = "nginx" if request.param == "nginx" else "embedded"
    server: Served = request.getfixturevalue(name)
    return server


def _pip_download(tmp_path: Path, index: str, *requirements: str) -> list[str]:
    dest = tmp_path / "dl"
    shutil.rmtree(dest, ignore_errors=True)
    result = pip(
        tmp_path,
        "download",
        "--index-url",
        index,
        "--no-deps",
        "--dest",
        str(dest),
        *requirements,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return sorted(os.listdir(dest))


def test_pip_installs_with_dependencies_and_gets_json(tmp_path: Path, served: Served) -> None:
    since = served.mark()
    target = tmp_path / "target"
    result = pip(
        tmp_path,
        "install",
        "--index-url",
        served.url + "/simple/",
        "--target",
        str(target),
        "--only-binary",
        ":all:",
        "demo-app[fast]",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    installed = {p.name.split("-")[0].lower() for p in target.glob("*.dist-info")}
    assert {"demo_app", "demo_lib", "demo_core", "demo_utils", "demo_speedups"} <= installed
    assert "demo_never" not in installed

    log = served.requests(since)
    pages = [r for r in log if r.path.startswith("/simple/demo-")]
    assert pages and all(r.status == 200 for r in pages), pages
    assert all(r.content_type == JSON for r in pages), {r.content_type for r in pages}
    wheels = [r.path for r in log if r.path.endswith(".whl") and r.status in (200, 206)]
    assert any("demo_app-" in w for w in wheels), wheels
    for wheel in wheels:
        order = [r.path for r in log]
        assert wheel + ".metadata" in order, f"{wheel}: pip never asked for its .metadata"
        assert order.index(wheel + ".metadata") < order.index(wheel)


def test_uv_installs_with_dependencies_and_gets_json(tmp_path: Path, served: Served) -> None:
    env = client_env(tmp_path)
    python = uv_venv(tmp_path, env)
    since = served.mark()
    index = served.url + "/simple/"
    result = run_client([UV, "pip", "install", "-p", str(python), "-i", index, "demo-app"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {"demo-app", "demo-lib", "demo-core", "demo-utils"} <= set(uv_installed(python, env))
    pages = [r for r in served.requests(since) if r.path.startswith("/simple/demo-")]
    assert pages and all(r.content_type == JSON for r in pages)


def test_yanked_versions_only_when_pinned(tmp_path: Path, served: Served) -> None:
    index = served.url + "/simple/"
    # demo-lib 1.5 and 2.0 are yanked; the newest installable is 1.2.
    assert _pip_download(tmp_path, index, "--only-binary", ":all:", "demo-lib") == [
        "demo_lib-1.2-py3-none-any.whl"
    ]
    assert _pip_download(tmp_path, index, "--only-binary", ":all:", "demo-lib==2.0") == [
        "demo_lib-2.0-py3-none-any.whl"
    ]


def test_requires_python_is_honoured(tmp_path: Path, served: Served) -> None:
    # demo-future 2.0 needs Python >= 3.99, so every real interpreter gets 1.0.
    found = _pip_download(
        tmp_path, served.url + "/simple/", "--only-binary", ":all:", "demo-future"
    )
    assert found == ["demo_future-1.0-py3-none-any.whl"]


def test_uv_exclude_newer_uses_upload_time(tmp_path: Path, corpus: Corpus, served: Served) -> None:
    page = json.loads((corpus.web / "simple/demo-core/index.v1_json").read_text())
    times = {f["filename"]: f["upload-time"] for f in page["files"]}
    first = max(t for name, t in times.items() if "-1.0" in name)
    second = min(t for name, t in times.items() if "-1.1" in name)
    assert first < second
    cutoff = datetime.fromisoformat(second.replace("Z", "+00:00")) - timedelta(seconds=1)

    env = client_env(tmp_path)
    python = uv_venv(tmp_path, env)
    index = served.url + "/simple/"
    for exclude_newer, expected in ((cutoff.isoformat(), "1.0"), (None, "1.1")):
        extra = ["--exclude-newer", exclude_newer] if exclude_newer else []
        args = [UV, "pip", "install", "--reinstall", "-p", str(python), *extra, "-i", index]
        result = run_client([*args, "demo-core"], env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert uv_installed(python, env)["demo-core"] == expected


def test_check_passes(corpus: Corpus, served: Served) -> None:
    result = run_cli(corpus.config, "check", served.url + "/simple/", "--all")
    assert result.returncode == 0, result.stdout + result.stderr


def test_second_mirror_chains_through_nginx(tmp_path: Path, corpus: Corpus, nginx: Served) -> None:
    config = write_config(tmp_path, nginx.url, api_method="simple")
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    web = tmp_path / "mirror" / "web"
    assert_mirror_equals_upstream(web, corpus.upstream.url)
    assert sorted(os.listdir(web / "simple")) == sorted(os.listdir(corpus.web / "simple"))
    since = nginx.mark()
    again = run_cli(config, "mirror")
    assert again.returncode == 0, again.stderr
    assert not [r for r in nginx.requests(since) if r.path.startswith("/packages/")]


def test_check_reports_a_broken_tree(tmp_path: Path, corpus: Corpus) -> None:
    from fullmirror.serve import MirrorServer

    web = tmp_path / "web"
    shutil.copytree(corpus.web, web)
    page = json.loads((web / "simple/demo-core/index.v1_json").read_text())
    wheel = next(f for f in page["files"] if f["filename"].endswith(".whl"))
    metadata = (
        (web / "simple/demo-core" / wheel["url"])
        .resolve()
        .with_name(wheel["filename"] + ".metadata")
    )
    metadata.unlink()
    with MirrorServer(web, port=0, log=lambda line: None) as server:
        result = run_cli(corpus.config, "check", server.url + "/simple/", "--all")
    assert result.returncode == 1, result.stdout + result.stderr
    failing = [line for line in result.stdout.splitlines() if wheel["filename"] in line]
    assert any("metadata" in line.lower() for line in failing), result.stdout


def test_client_config_prints_pip_and_uv_setup(corpus: Corpus) -> None:
    result = run_cli(corpus.config, "client-config", "http://mirror.test:8080/")
    assert result.returncode == 0, result.stderr
    assert "index-url = http://mirror.test:8080/simple/" in result.stdout
    assert "trusted-host = mirror.test" in result.stdout
    assert "[[index]]" in result.stdout
    bad = run_cli(corpus.config, "client-config", "ftp://mirror.test/")
    assert bad.returncode == 2 and "ftp" in bad.stderr


def test_readme_demo_then_serve_then_install(tmp_path: Path) -> None:
    """The README's first command, then the lines it prints: serve the mirror, install."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    demo = subprocess.run(
        [
            sys.executable,
            "-m",
            "fullmirror",
            "demo",
            "--dir",
            str(tmp_path / "d"),
            "--projects",
            "30",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    serve_line = next(line for line in demo.stdout.splitlines() if line.strip().endswith(" serve"))
    config = Path(serve_line.split(" -c ", 1)[1].rsplit(" serve", 1)[0])
    assert config.is_file()
    assert "pip install --index-url http://127.0.0.1:8080/simple/ demo-app" in demo.stdout
    server = EmbeddedServer(config, tmp_path / "access.log")
    try:
        target = tmp_path / "target"
        result = pip(
            tmp_path,
            "install",
            "--index-url",
            server.url + "/simple/",
            "--target",
            str(target),
            "demo-app",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert any(target.glob("demo_app-*.dist-info"))
    finally:
        server.close()

"""fullmirror.check against a real mirror served over HTTP on 127.0.0.1, sound and broken."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from conftest import run_cli, write_config
from fullmirror.check import Finding, check_index, format_findings, has_violations
from fullmirror.fakepypi import FakePyPI
from static_server import _Handler, serve_static

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(scope="module")
def sound_web(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mirror for the whole module; each broken case works on a copy."""
    tmp = tmp_path_factory.mktemp("mirror")
    with pytest.MonkeyPatch.context() as mp:
        for var in PROXY_VARS:
            mp.delenv(var, raising=False)
        with FakePyPI.start(projects=24, seed=7) as up:
            result = run_cli(write_config(tmp, up.url), "mirror")
    assert result.returncode == 0, result.stderr
    return tmp / "mirror" / "web"


@pytest.fixture
def web(sound_web: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "web"
    shutil.copytree(sound_web, copy)
    return copy


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as c:
        yield c


def run_check(client: httpx.Client, web: Path, **options: object) -> list[Finding]:
    with serve_static(web) as url:
        return check_index(client, url + "/simple/", seed=1, **options)  # type: ignore[arg-type]


def failures(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check and f.severity == "fail"]


def released(web: Path, suffix: str) -> Path:
    """The first release file (or sibling) with this suffix, in a stable order."""
    return sorted((web / "packages").rglob(f"*{suffix}"))[0]


# -- a sound mirror -------------------------------------------------------------------------


def test_sound_mirror_passes_every_check(client: httpx.Client, sound_web: Path) -> None:
    findings = run_check(client, sound_web, every_file=True)
    assert not has_violations(findings), format_findings(findings)
    checks = {f.check for f in findings if f.severity == "ok"}
    assert {"negotiation", "root", "api-version", "html-vs-json", "files", "redirect"} <= checks
    # The static tree has no page for "Demo_App": a warning, never a violation.
    assert all(f.check == "redirect" for f in findings if f.severity == "warn")
    counts = [f.detail.split(", ")[:2] for f in findings if f.check == "files"]
    assert len(counts) == 24
    # every_file: every link that answered was also hashed.
    assert all(answered.split()[0] == hashed.split()[0] for answered, hashed in counts)


def test_sample_limits_the_projects_checked(client: httpx.Client, sound_web: Path) -> None:
    findings = run_check(client, sound_web, sample=3)
    pages = {f.target for f in findings if f.check == "html-vs-json"}
    assert len(pages) == 3
    assert not has_violations(findings)


def test_table_lists_problems_first_and_folds_passes() -> None:
    findings = [
        Finding("files", "simple/a/", "ok", "2 answer"),
        Finding("hash", "simple/a/ a-1.whl", "fail", "sha256 differs"),
        Finding("redirect", "simple/A/", "warn", "HTTP 404"),
    ]
    table = format_findings(findings)
    lines = table.splitlines()
    assert lines[0].split() == ["result", "check", "target", "detail"]
    assert lines[1].startswith("fail    hash")
    assert lines[2].startswith("warn    redirect")
    assert "ok      files     1 target(s)" in table
    assert lines[-1] == "1 violation(s), 1 warning(s), 1 passed"
    assert "2 answer" in format_findings(findings, verbose=True)


# -- broken on purpose -----------------------------------------------------------------------


class _ApplicationJson(_Handler):
    """Serves JSON pages as application/json, as a stock mime.types would."""

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "content-type" and value.endswith("+json"):
            value = "application/json"
        super().send_header(keyword, value)


class _NoVary(_Handler):
    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() != "vary":
            super().send_header(keyword, value)


@contextmanager
def serve_with(handler: type[_Handler], web: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(web)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


def test_application_json_is_a_violation(client: httpx.Client, sound_web: Path) -> None:
    with serve_with(_ApplicationJson, sound_web) as url:
        findings = check_index(client, url, sample=2, seed=1)
    bad = failures(findings, "negotiation")
    assert any(f.target == "simple/ [pip]" for f in bad)
    assert any("application/json" in f.detail and "uv rejects it" in f.detail for f in bad)
    assert not failures(findings, "html-vs-json")  # the HTML side is still read


def test_missing_vary_is_a_violation_when_the_type_depends_on_accept(
    client: httpx.Client, sound_web: Path
) -> None:
    with serve_with(_NoVary, sound_web) as url:
        findings = check_index(client, url, sample=1, seed=1)
    assert any("Vary: Accept" in f.detail for f in failures(findings, "negotiation"))


def test_missing_metadata_file(client: httpx.Client, web: Path) -> None:
    gone = released(web, ".metadata")
    gone.unlink()
    findings = run_check(client, web, sample=1000)
    bad = failures(findings, "metadata")
    assert [f.target.rsplit(" ", 1)[1] for f in bad] == [gone.name]
    assert "HTTP 404" in bad[0].detail


def test_corrupted_release_file_with_every_file(client: httpx.Client, web: Path) -> None:
    wheel = released(web, ".whl")
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    wheel.write_bytes(bytes(data))
    findings = run_check(client, web, every_file=True)
    bad = failures(findings, "hash")
    assert [f.target.rsplit(" ", 1)[1] for f in bad] == [wheel.name]
    assert "sha256" in bad[0].detail


def test_page_linking_a_missing_file(client: httpx.Client, web: Path) -> None:
    gone = released(web, ".tar.gz")
    gone.unlink()
    findings = run_check(client, web, sample=1000)
    bad = failures(findings, "file")
    assert [f.target.rsplit(" ", 1)[1] for f in bad] == [gone.name]
    assert "HTTP 404" in bad[0].detail


def test_html_and_json_disagree_on_yanked(client: httpx.Client, web: Path) -> None:
    page = web / "simple" / "demo-app" / "index.html"
    text = page.read_text()
    assert "data-yanked" not in text
    page.write_text(text.replace("<a href=", '<a data-yanked="bad build" href=', 1))
    findings = run_check(client, web, sample=1000)
    bad = failures(findings, "html-vs-json")
    assert len(bad) == 1 and bad[0].target == "simple/demo-app/"
    assert "yanked HTML=yes ('bad build') JSON=no" in bad[0].detail


def test_malformed_pages_become_findings(client: httpx.Client, web: Path) -> None:
    (web / "simple" / "demo-app" / "index.v1_json").write_bytes(b"{not json")
    (web / "simple" / "demo-core" / "index.html").write_bytes(b"<a href='\x00[::'>\xff</b")
    core = json.loads((web / "simple" / "demo-lib" / "index.v1_json").read_text())
    core["meta"]["api-version"] = "2.0"
    (web / "simple" / "demo-lib" / "index.v1_json").write_text(json.dumps(core))
    findings = run_check(client, web, sample=1000)
    assert any(
        f.target.startswith("simple/demo-app/") and "not a JSON object" in f.detail
        for f in failures(findings, "negotiation")
    )
    assert failures(findings, "html-vs-json")  # demo-core's HTML lost its anchors
    assert any("2.0" in f.detail for f in failures(findings, "api-version"))

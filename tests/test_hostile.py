"""fullmirror against a hostile upstream: path tricks, lying sizes, huge pages, markup in
metadata, and symlinks planted in the mirror tree. The real CLI against the fake PyPI on
127.0.0.1, whose injection hooks (``inject_file_entry``, ``override_page``, ``inject_blob``)
make it say what PyPI never would.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.utils import NormalizedName

from conftest import run_cli, write_config
from fullmirror import upstream as upstream_module
from fullmirror.errors import MalformedResponse
from fullmirror.fakepypi import FakePyPI
from fullmirror.upstream import Upstream
from mirror_checks import assert_mirror_equals_upstream, assert_tree_sound

PROJECT = "demo-app"
BODY = b"hostile bytes: any content will do, only the hashes have to match\n" * 40


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry(filename: str, url: str, body: bytes = BODY, **extra: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "filename": filename,
        "url": url,
        "hashes": {"sha256": _sha(body)},
        "size": len(body),
        "requires-python": None,
        "upload-time": "2024-01-17T16:53:12.779164Z",
        "yanked": False,
        "core-metadata": False,
    }
    entry.update(extra)
    return entry


def _offer(up: FakePyPI, filename: str, path: str, body: bytes = BODY, **extra: object) -> None:
    """Serve ``body`` at ``path`` and list it on the project page under ``filename``."""
    up.index.inject_blob(path, body)
    up.index.inject_file_entry(PROJECT, _entry(filename, up.url + path, body, **extra))


def _files_outside(tmp_path: Path) -> list[Path]:
    """Every file under ``tmp_path`` that is not the mirror or the config."""
    mirror = tmp_path / "mirror"
    return [
        p
        for p in tmp_path.rglob("*")
        if not p.is_dir() and mirror not in p.parents and p.name != "fullmirror.conf"
    ]


def _page_files(web: Path, name: str) -> dict[str, dict[str, object]]:
    doc = json.loads((web / "simple" / name / "index.v1_json").read_bytes())
    return {f["filename"]: f for f in doc["files"]}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A sibling of the mirror that must stay empty."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


def test_hostile_filenames_are_rejected_and_logged(
    tmp_path: Path, upstream: FakePyPI, outside: Path
) -> None:
    real = upstream.index.filenames(PROJECT)
    hostile = {
        "../demo_app-9.0.tar.gz": "path separator",
        "demo_app-9.0/../../../outside/x.tar.gz": "path separator",
        "..\\..\\demo_app-9.0.tar.gz": "path separator",
        "demo_app-9.0\x00.tar.gz": "control character",
        "demo_app-9.0\x1b[31m.tar.gz": "control character",
        "demo_app-9.0\n.tar.gz": "control character",
        str(outside / "demo_app-9.0.tar.gz"): "path separator",
        "demo_app-9.0%2e%2e%2fescape.tar.gz": "percent-encoded",
        "demo_app-9.0%2F..%2Fescape.tar.gz": "percent-encoded",
        "..": "relative path component",
        "demo_core-9.0.tar.gz": "not a file of project demo-app",
        "evil-9.0-py3-none-any.whl": "not a file of project demo-app",
    }
    for number, filename in enumerate(hostile):
        _offer(upstream, filename, f"/elsewhere/{number}/x.tar.gz")
    # Hostile URLs of well-named files: dot segments, plain and percent-encoded.
    bad_urls = {
        "demo_app-9.1.tar.gz": "/packages/../../outside/demo_app-9.1.tar.gz",
        "demo_app-9.2.tar.gz": "/packages/%2e%2e/%2e%2e/outside/demo_app-9.2.tar.gz",
    }
    for filename, path in bad_urls.items():
        upstream.index.inject_file_entry(PROJECT, _entry(filename, upstream.url + path))

    config = write_config(tmp_path, upstream.url)
    started = time.monotonic()
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    for filename, reason in hostile.items():
        shown = repr(filename)
        lines = [line for line in result.stderr.splitlines() if shown in line]
        assert lines, f"no log line for {shown}:\n{result.stderr}"
        assert any(f"{PROJECT}: rejected filename" in ln and reason in ln for ln in lines), lines
    for filename in bad_urls:
        assert any(
            PROJECT in ln and "rejected url" in ln and filename in ln and ".." in ln
            for ln in result.stderr.splitlines()
        ), result.stderr
    assert "Traceback" not in result.stderr

    web = tmp_path / "mirror" / "web"
    # The real files of the same project, and every other project, are mirrored as upstream.
    assert set(_page_files(web, PROJECT)) == set(real)
    assert_tree_sound(web)
    assert list(outside.iterdir()) == []
    assert _files_outside(tmp_path) == []
    assert not (web / "elsewhere").exists()
    assert not any("9.0" in p.name or "escape" in p.name for p in web.rglob("*"))


def test_url_outside_packages_is_placed_by_sha256(tmp_path: Path, upstream: FakePyPI) -> None:
    filename = "demo_app-9.9.tar.gz"
    _offer(upstream, filename, "/elsewhere/deep/dir/demo_app-9.9.tar.gz")
    # A URL in /packages/ but not in the content-addressed layout is not trusted either.
    other = b"another body\n" * 100
    _offer(upstream, "demo_app-9.8.tar.gz", "/packages/source/d/demo_app-9.8.tar.gz", other)
    config = write_config(tmp_path, upstream.url)
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr

    web = tmp_path / "mirror" / "web"
    for name, body in ((filename, BODY), ("demo_app-9.8.tar.gz", other)):
        sha = _sha(body)
        landed = web / "packages" / sha[:2] / sha[2:4] / sha[4:] / name
        assert landed.read_bytes() == body
        assert (
            _page_files(web, PROJECT)[name]["url"]
            == f"../../packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{name}"
        )
    assert not (web / "elsewhere").exists()
    assert not (web / "packages" / "source").exists()
    assert_tree_sound(web)


def test_body_longer_than_declared_size_is_cut_off(
    tmp_path: Path, upstream: FakePyPI, outside: Path
) -> None:
    declared = 1000
    chunk = b"A" * (1 << 16)
    # 16 GiB announced and streamed: reading it all would take minutes, so a quick run proves
    # the download stopped at the declared size.
    upstream.index.inject_blob("/elsewhere/endless/demo_app-9.7.tar.gz", chunk, repeat=1 << 18)
    upstream.index.inject_file_entry(
        PROJECT,
        _entry(
            "demo_app-9.7.tar.gz",
            upstream.url + "/elsewhere/endless/demo_app-9.7.tar.gz",
            chunk[:declared],
        ),
    )
    config = write_config(tmp_path, upstream.url, retries="1")
    started = time.monotonic()
    result = run_cli(config, "mirror")
    assert time.monotonic() - started < 60  # would take minutes if the body were read
    assert result.returncode == 1, result.stderr
    failed = [ln for ln in result.stderr.splitlines() if f"{PROJECT}: failed" in ln]
    assert failed and "demo_app-9.7.tar.gz" in failed[0], result.stderr
    assert f"the index says {declared}" in failed[0], failed
    assert "Traceback" not in result.stderr

    mirror = tmp_path / "mirror"
    assert not any("demo_app-9.7" in p.name for p in mirror.rglob("*"))
    assert not list(mirror.rglob("*.part"))
    assert list(outside.iterdir()) == []
    web = mirror / "web"
    assert not (web / "simple" / PROJECT).exists()
    assert (web / "simple/demo-core/index.v1_json").exists()
    assert int((mirror / "status").read_text()) < upstream.index.last_serial


def _huge_body(total: int) -> Iterator[bytes]:
    head = b'{"meta": {"api-version": "1.1"}, "name": "demo-app", "files": [], "pad": "'
    yield head
    sent = len(head)
    block = b"x" * (1 << 20)
    while sent < total:
        yield block
        sent += len(block)
    yield b'"}'


def _huge_upstream(total: int, calls: list[str]) -> Upstream:
    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(
            200,
            headers={"Content-Type": "application/vnd.pypi.simple.v1+json"},
            content=_huge_body(total),
        )

    client = httpx.Client(transport=httpx.MockTransport(answer))
    return Upstream(client, "http://127.0.0.1:9", retries=2, sleep=lambda s: None)


def test_page_larger_than_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_module, "MAX_PAGE_BYTES", 1 << 20)
    calls: list[str] = []
    up = _huge_upstream(4 << 20, calls)
    with pytest.raises(MalformedResponse, match="larger than 1048576 bytes"):
        up.project(NormalizedName("demo-app"), at_least=0)
    assert len(calls) == 1, "an oversized page is refused, not fetched again"


def test_page_larger_than_64_mib_is_refused_without_patching() -> None:
    calls: list[str] = []
    up = _huge_upstream(upstream_module.MAX_PAGE_BYTES + (1 << 20), calls)
    with pytest.raises(MalformedResponse, match="larger than"):
        up.project(NormalizedName("demo-app"), at_least=0)
    assert len(calls) == 1


SCRIPT = "<script>alert(1)</script>"


def test_markup_in_metadata_is_escaped_everywhere(tmp_path: Path, upstream: FakePyPI) -> None:
    reason = f'"><img src=x onerror=alert(1)>{SCRIPT}'
    requires = f"'\"><{SCRIPT}>=3.8"
    path = "/elsewhere/markup/demo_app-9.6.tar.gz"
    upstream.index.inject_blob(path, BODY)
    entry = _entry("demo_app-9.6.tar.gz", upstream.url + path, yanked=reason)
    entry["requires-python"] = requires
    upstream.index.inject_file_entry(PROJECT, entry)
    versions = ["1.0", SCRIPT, "9.6", "&lt;already-escaped&gt;"]
    upstream.index.override_page(
        PROJECT, versions=versions, project_status={"status": "active", "reason": SCRIPT}
    )
    # A project whose display name is markup: not a valid project name, so never mirrored.
    upstream.index.create_project(SCRIPT)
    # Markup in a release's own fields, through the index's normal API.
    upstream.index.add_release("demo-core", "8.0", requires_python=f">=3.8{SCRIPT}")
    upstream.index.yank("demo-core", "8.0", reason=SCRIPT)

    config = write_config(tmp_path, upstream.url)
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    web = tmp_path / "mirror" / "web"

    html_pages = [*web.rglob("index.html"), *web.rglob("index.v1_html")]
    assert (web / "simple/index.html") in html_pages and len(html_pages) > 10
    for page in html_pages:
        text = page.read_text("ascii")
        lowered = text.lower()
        assert "<script" not in lowered and "<img" not in lowered, page
        assert "onerror=alert" not in text or "&quot;&gt;&lt;img" in text, page
    app_html = (web / "simple" / PROJECT / "index.html").read_text()
    assert 'data-yanked="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;' in app_html
    assert 'data-requires-python="&#x27;&quot;&gt;&lt;&lt;script&gt;' in app_html

    json_pages = list(web.rglob("index.v1_json"))
    for page in json_pages:
        raw = page.read_bytes()
        assert b"<" not in raw and b">" not in raw, page
        json.loads(raw)
    doc = json.loads((web / "simple" / PROJECT / "index.v1_json").read_bytes())
    entry = {f["filename"]: f for f in doc["files"]}["demo_app-9.6.tar.gz"]
    assert entry["yanked"] == reason and entry["requires-python"] == requires
    assert set(doc["versions"]) == set(versions)
    assert doc["project-status"] == {"status": "active", "reason": SCRIPT}
    assert 'content="&lt;script&gt;alert(1)&lt;/script&gt;"' in app_html
    core = {f["filename"]: f for f in _page_files(web, "demo-core").values()}
    assert any(f["yanked"] == SCRIPT for f in core.values())

    root = json.loads((web / "simple/index.v1_json").read_bytes())
    assert all("<" not in p["name"] for p in root["projects"])
    assert not any("script" in p.name for p in (web / "simple").iterdir())
    assert_tree_sound(web)


def test_planted_directory_symlink_stops_the_run_cleanly(
    tmp_path: Path, upstream: FakePyPI, outside: Path
) -> None:
    """A symlink in web/packages/ pointing out of the mirror is tampering with the mirror
    directory: fullmirror writes nothing through it and stops with a storage error (exit 5),
    without advancing the serial; once the operator removes it, the next run converges."""
    record = upstream.index.find_file(upstream.index.filenames(PROJECT)[0])
    assert record is not None
    prefix = upstream.index.file_info(record).path.split("/")[1]
    web = tmp_path / "mirror" / "web"
    (web / "packages").mkdir(parents=True)
    (web / "packages" / prefix).symlink_to(outside, target_is_directory=True)

    config = write_config(tmp_path, upstream.url)
    result = run_cli(config, "mirror")
    assert result.returncode == 5, result.stderr
    assert "leaves the mirror directory" in result.stderr, result.stderr
    assert f"packages/{prefix}/" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(outside.iterdir()) == []
    status = tmp_path / "mirror" / "status"
    assert not status.exists() or int(status.read_text()) == 0

    (web / "packages" / prefix).unlink()
    again = run_cli(config, "mirror")
    assert again.returncode == 0, again.stderr
    assert_mirror_equals_upstream(web, upstream.url)
    assert list(outside.iterdir()) == []


def test_planted_file_symlinks_are_replaced_not_written_through(
    tmp_path: Path, upstream: FakePyPI, outside: Path
) -> None:
    """A symlink where a file or page belongs is replaced by the real file (the rename swaps
    the link itself); the file it pointed to is never opened for writing."""
    filename = upstream.index.filenames(PROJECT)[0]
    record = upstream.index.find_file(filename)
    assert record is not None
    location = upstream.index.file_info(record).path
    web = tmp_path / "mirror" / "web"
    victim = outside / "victim"
    victim.write_bytes(b"do not touch\n")
    planted = [web / location, web / "simple" / PROJECT / "index.html"]
    for link in planted:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(victim)

    config = write_config(tmp_path, upstream.url)
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    assert victim.read_bytes() == b"do not touch\n"
    assert sorted(os.listdir(outside)) == ["victim"]
    for link in planted:
        assert not link.is_symlink() and link.is_file(), link
    assert (web / location).read_bytes() == upstream.index.file_content(filename)
    assert_mirror_equals_upstream(web, upstream.url)


def test_endless_metadata_document_is_cut_off(
    tmp_path: Path, upstream: FakePyPI, outside: Path
) -> None:
    """A ``.metadata`` sibling has no declared size; a hostile one that never ends must not be
    streamed to disk until the global timeout: it is refused past a sane cap."""
    path = "/elsewhere/meta/demo_app-9.5-py3-none-any.whl"
    upstream.index.inject_blob(path, BODY)
    upstream.index.inject_blob(path + ".metadata", b"M" * (1 << 16), repeat=1 << 18)
    entry = _entry("demo_app-9.5-py3-none-any.whl", upstream.url + path)
    entry["core-metadata"] = {"sha256": _sha(b"Metadata-Version: 2.1\n")}
    upstream.index.inject_file_entry(PROJECT, entry)
    config = write_config(tmp_path, upstream.url, retries="0")
    started = time.monotonic()
    result = run_cli(config, "mirror", timeout=60)
    assert time.monotonic() - started < 60  # would take minutes if the body were read
    assert result.returncode == 1, result.stderr
    failed = [ln for ln in result.stderr.splitlines() if f"{PROJECT}: failed" in ln]
    assert failed and "demo_app-9.5-py3-none-any.whl.metadata" in failed[0], result.stderr
    mirror = tmp_path / "mirror"
    assert not any(p.name.endswith(".metadata.part") for p in mirror.rglob("*"))
    assert list(outside.iterdir()) == []


def test_fake_serves_injected_entries_in_json_and_escaped_html(upstream: FakePyPI) -> None:
    entry = _entry("../<b>demo_app-1.0.tar.gz", upstream.url + "/x", yanked=SCRIPT)
    upstream.index.inject_file_entry(PROJECT, entry)
    upstream.index.inject_blob("/x", b"abc", repeat=3)
    with httpx.Client(base_url=upstream.url) as client:
        page = client.get(
            f"/simple/{PROJECT}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        assert page.json()["files"][-1] == entry
        assert int(page.headers["X-PyPI-Last-Serial"]) == upstream.index.project_serial(PROJECT)
        html = client.get(f"/simple/{PROJECT}/", headers={"Accept": "text/html"}).text
        assert "&lt;b&gt;demo_app-1.0.tar.gz" in html and "<b>" not in html
        assert client.get("/x").content == b"abcabcabc"
    upstream.index.clear_injections()
    assert upstream.index.injected(PROJECT) == ([], {})

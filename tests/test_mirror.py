"""fullmirror mirror, end to end: the real CLI against the fake PyPI over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli, write_config
from fullmirror.fakepypi import FakePyPI
from fullmirror.storage import Storage
from mirror_checks import assert_mirror_equals_upstream, assert_tree_sound
from static_server import serve_static


def _mtimes(web: Path) -> dict[str, int]:
    return {
        str(p.relative_to(web)): p.stat().st_mtime_ns
        for p in web.rglob("*")
        if p.is_file() and p.name != "last-modified"
    }


def _status(tmp_path: Path) -> int:
    return int((tmp_path / "mirror" / "status").read_text())


def _mutate(up: FakePyPI) -> None:
    ix = up.index
    ix.create_project("Brand_New.Thing")
    ix.add_release("brand-new-thing", "0.1", kinds=("wheel", "sdist"))
    ix.add_release("demo-core", "9.0", kinds=("wheel",))
    ix.yank("demo-app", "1.0", reason="use <b>1.1</b>")
    ix.unyank("demo-lib", "1.5")
    sdist = next(
        n
        for n in ix.add_release("demo-utils", "5.0", kinds=("wheel", "sdist"))
        if n.endswith(".tar.gz")
    )
    ix.remove_file("demo-utils", sdist)
    ix.remove_release("demo-pre", "2.0b1")
    ix.remove_project("demo-never")


@pytest.mark.parametrize("method", ["xmlrpc", "simple"])
def test_first_sync_then_noop_then_every_kind_of_change(
    tmp_path: Path, upstream: FakePyPI, method: str
) -> None:
    config = write_config(tmp_path, upstream.url, api_method=method)
    web = tmp_path / "mirror" / "web"

    first = run_cli(config, "mirror")
    assert first.returncode == 0, first.stderr
    assert "projects synced" in first.stdout
    assert_mirror_equals_upstream(web, upstream.url)
    assert _status(tmp_path) == upstream.index.last_serial
    root = json.loads((web / "simple/index.v1_json").read_bytes())
    assert root["meta"]["_last-serial"] == upstream.index.last_serial
    assert all(isinstance(p["_last-serial"], int) for p in root["projects"])
    assert (tmp_path / "mirror/generation").read_text() == "fullmirror-1"

    before = _mtimes(web)
    upstream.stats.reset()
    second = run_cli(config, "mirror")
    assert second.returncode == 0, second.stderr
    assert _mtimes(web) == before, "a no-op run rewrote something"
    counts = upstream.stats.snapshot()
    assert counts.get("file", 0) == 0 and counts.get("simple-project", 0) == 0
    if method == "xmlrpc":
        assert sum(counts.values()) <= 2

    _mutate(upstream)
    third = run_cli(config, "mirror")
    assert third.returncode == 0, third.stderr
    assert_mirror_equals_upstream(web, upstream.url)
    assert _status(tmp_path) == upstream.index.last_serial
    assert not (web / "simple/demo-never").exists()
    html = (web / "simple/demo-app/index.html").read_text()
    assert "use &lt;b&gt;1.1&lt;/b&gt;" in html and "<b>1.1" not in html


def test_chain_second_mirror_of_first_over_http(tmp_path: Path, upstream: FakePyPI) -> None:
    first_dir = tmp_path / "first"
    first_dir.mkdir()
    first = write_config(first_dir, upstream.url)
    assert run_cli(first, "mirror").returncode == 0
    web1 = first_dir / "mirror" / "web"
    with serve_static(web1) as url:
        second_dir = tmp_path / "second"
        second_dir.mkdir()
        second = write_config(second_dir, url, api_method="simple")
        result = run_cli(second, "mirror")
        assert result.returncode == 0, result.stderr
        web2 = second_dir / "mirror" / "web"
        assert_mirror_equals_upstream(web2, upstream.url)
        assert sorted(os.listdir(web2 / "simple")) == sorted(os.listdir(web1 / "simple"))

        _mutate(upstream)
        assert run_cli(first, "mirror").returncode == 0
        result = run_cli(second, "mirror")
        assert result.returncode == 0, result.stderr
        assert_mirror_equals_upstream(web2, upstream.url)


def test_a_listing_cut_off_midway_is_fetched_again_or_fails_cleanly(
    tmp_path: Path, upstream: FakePyPI
) -> None:
    """The root listing is streamed into the state database as it arrives: a connection lost
    halfway restarts it from nothing, and one that never completes changes nothing."""
    first_dir = tmp_path / "first"
    first_dir.mkdir()
    first = write_config(first_dir, upstream.url)
    assert run_cli(first, "mirror").returncode == 0
    web1 = first_dir / "mirror" / "web"

    def mirror_of(url: str, name: str, retries: str) -> tuple[Path, int, str]:
        directory = tmp_path / name
        directory.mkdir()
        config = write_config(directory, url, api_method="simple", retries=retries)
        result = run_cli(config, "mirror")
        return directory / "mirror", result.returncode, result.stderr

    with serve_static(web1, cut_root=2) as url:
        mirror, code, stderr = mirror_of(url, "second", "3")
        assert code == 0, stderr
        assert_mirror_equals_upstream(mirror / "web", upstream.url)
    with serve_static(web1, cut_root=100) as url:
        mirror, code, stderr = mirror_of(url, "third", "1")
        assert code == 4, stderr
        (line,) = [ln for ln in stderr.splitlines() if "upstream unusable" in ln]
        assert f"{url}/simple/" in line
        assert not (mirror / "status").exists()
        assert not list((mirror / "web" / "simple").iterdir())
        db = sqlite3.connect(mirror / "state.db")
        assert db.execute("SELECT count(*) FROM pending").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM projects").fetchone() == (0,)
        db.close()


def test_failing_project_does_not_block_later_changes(tmp_path: Path, upstream: FakePyPI) -> None:
    config = write_config(tmp_path, upstream.url, retries="0")
    web = tmp_path / "mirror" / "web"
    upstream.faults.broken_projects = {"demo-lib"}

    first = run_cli(config, "mirror")
    assert first.returncode == 1
    assert "demo-lib" in first.stderr
    assert _status(tmp_path) == 0, "the serial passed a project that is not on disk"
    assert not (web / "simple/demo-lib").exists()
    assert (web / "simple/demo-app/index.v1_json").exists()

    upstream.index.add_release("demo-core", "7.0", kinds=("wheel",))
    second = run_cli(config, "mirror")
    assert second.returncode == 1
    assert "demo-core-7.0" in (web / "simple/demo-core/index.html").read_text().replace("_", "-")
    assert _status(tmp_path) == 0

    for _ in range(2):
        run_cli(config, "mirror")
    loud = run_cli(config, "mirror")
    assert "failed" in loud.stderr and "runs in a row" in loud.stderr

    upstream.faults.broken_projects = set()
    last = run_cli(config, "mirror")
    assert last.returncode == 0, last.stderr
    assert_mirror_equals_upstream(web, upstream.url)
    assert _status(tmp_path) == upstream.index.last_serial


def test_second_run_is_refused_while_the_lock_is_held(tmp_path: Path, upstream: FakePyPI) -> None:
    config = write_config(tmp_path, upstream.url)
    with Storage(tmp_path / "mirror").lock():
        result = run_cli(config, "mirror")
    assert result.returncode == 3
    assert "lock" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "mirror/web").exists()


def test_missing_master_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "f.conf"
    config.write_text(f"[mirror]\ndirectory = {tmp_path / 'm'}\n")
    result = run_cli(config, "mirror")
    assert result.returncode == 2
    assert "master" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_upstream(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", retries="0")
    result = run_cli(config, "mirror")
    assert result.returncode == 4
    assert "upstream unusable" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "mirror/status").exists()


def test_http_master_refused_without_allow_non_https(tmp_path: Path, upstream: FakePyPI) -> None:
    config = write_config(tmp_path, upstream.url, allow_non_https="false")
    result = run_cli(config, "mirror")
    assert result.returncode == 2
    assert "allow-non-https" in result.stderr


def test_release_files_false_links_upstream(tmp_path: Path, upstream: FakePyPI) -> None:
    config = write_config(tmp_path, upstream.url, release_files="false")
    assert run_cli(config, "mirror").returncode == 0
    web = tmp_path / "mirror" / "web"
    assert not any(p.is_file() for p in (web / "packages").rglob("*"))
    doc = json.loads((web / "simple/demo-app/index.v1_json").read_bytes())
    assert all(f["url"].startswith(upstream.url + "/packages/") for f in doc["files"])


def test_json_copy_and_html_only(tmp_path: Path, upstream: FakePyPI) -> None:
    config = write_config(tmp_path, upstream.url, json="true", simple_format="HTML")
    assert run_cli(config, "mirror").returncode == 0
    web = tmp_path / "mirror" / "web"
    doc = json.loads((web / "pypi/demo-app/json").read_bytes())
    assert doc["info"]["name"] and "releases" in doc
    assert (web / "json/demo-app").read_bytes() == (web / "pypi/demo-app/json").read_bytes()
    assert (web / "simple/demo-app/index.html").exists()
    assert not (web / "simple/demo-app/index.v1_json").exists()


def test_json_copy_is_fetched_while_the_files_download(tmp_path: Path, upstream: FakePyPI) -> None:
    # Every release file answers only after 20 s: a JSON API document asked for meanwhile was
    # asked for beside the downloads, not after them (one round trip less per project).
    upstream.faults.stall_rate = 1.0
    upstream.faults.stall_seconds = 20
    upstream.faults.scope = {"file"}
    config = write_config(tmp_path, upstream.url, json="true", processes="1", timeout="60")
    # One project with release files, so every JSON API request belongs to a stalled project.
    config.write_text(
        config.read_text()
        + "[plugins]\nenabled = allowlist_project\n[allowlist]\npackages = demo-app\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fullmirror", "-c", str(config), "mirror"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 15
        while upstream.stats["json-api"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upstream.stats["json-api"] == 1, "no JSON API request while the files stalled"
        assert upstream.stats["file"] > 0 and upstream.stats["simple-project"] == 1
    finally:
        proc.kill()
        proc.wait()


def test_tree_is_sound_after_first_sync(tmp_path: Path, upstream: FakePyPI) -> None:
    config = write_config(tmp_path, upstream.url, diff_file=str(tmp_path / "diff.txt"))
    assert run_cli(config, "mirror").returncode == 0
    assert_tree_sound(tmp_path / "mirror" / "web")
    listed = (tmp_path / "diff.txt").read_text().splitlines()
    assert any(line.endswith(".whl") for line in listed)
    assert all(Path(line).is_file() for line in listed)


def test_stale_pages_are_retried_then_counted_failed(tmp_path: Path, upstream: FakePyPI) -> None:
    config = write_config(tmp_path, upstream.url, retries="1")
    assert run_cli(config, "mirror").returncode == 0
    upstream.index.add_release("demo-core", "8.0", kinds=("wheel",))
    upstream.faults.stale_rate = 1.0
    upstream.faults.scope = {"project"}
    upstream.stats.reset()
    stale = run_cli(config, "mirror")
    assert stale.returncode == 1
    assert "stale page" in stale.stderr and "demo-core" in stale.stderr
    assert upstream.stats.snapshot()["simple-project"] == 2, "one fetch and one retry"
    assert _status(tmp_path) < upstream.index.last_serial
    assert "8.0" not in (tmp_path / "mirror/web/simple/demo-core/index.html").read_text()

    upstream.faults.stale_rate = 0.0
    fresh = run_cli(config, "mirror")
    assert fresh.returncode == 0, fresh.stderr
    assert _status(tmp_path) == upstream.index.last_serial
    assert_mirror_equals_upstream(tmp_path / "mirror" / "web", upstream.url)


def test_bandersnatch_tree_is_adopted_reusing_its_files(tmp_path: Path, upstream: FakePyPI) -> None:
    config = write_config(tmp_path, upstream.url)
    assert run_cli(config, "mirror").returncode == 0
    mirror = tmp_path / "mirror"
    # What a bandersnatch directory has: its generation, status and todo, no state.db.
    (mirror / "state.db").unlink()
    (mirror / "generation").write_text("5")
    (mirror / "status").write_text("3")
    (mirror / "todo").write_text("3\n")
    upstream.stats.reset()
    adopted = run_cli(config, "mirror")
    assert adopted.returncode == 0, adopted.stderr
    assert "adopting a bandersnatch mirror" in adopted.stderr
    counts = upstream.stats.snapshot()
    assert counts.get("file", 0) == counts.get("metadata", 0) == 0, "files were downloaded again"
    assert (mirror / "generation").read_text() == "fullmirror-1"
    assert _status(tmp_path) == upstream.index.last_serial
    assert_mirror_equals_upstream(mirror / "web", upstream.url)

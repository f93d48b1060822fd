"""Crash safety: ``kill -9`` at any moment leaves a tree nobody can be hurt by, and the next run
finishes it into exactly the mirror an uninterrupted run makes.

The mirror runs as a real child process against a fake PyPI served from this process; the test
kills it after a random (seeded) delay, checks the tree, and goes again.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, run_cli, write_config
from fullmirror.fakepypi import FakePyPI, filebody
from fullmirror.fakepypi import handler as fake_handler
from mirror_checks import assert_mirror_equals_upstream

_HREF = re.compile(r'href="([^"]+)"')
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "fullmirror", "-c", str(config), "-q", "mirror"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=_child_env(),
        )


def _kill_after(proc: subprocess.Popen[bytes], delay: float) -> bool:
    """SIGKILL ``proc`` after ``delay`` seconds; False if it had already finished by then."""
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    return False


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_part(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".part")


def _final_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not _is_part(path):
            yield path


def assert_crash_consistent(web: Path, up: FakePyPI) -> None:
    """What must hold after a kill at any moment (the root index may not exist yet, and temp
    files may be left): every page parses and links only complete, verified files; every file
    under a final name holds exactly the bytes its name promises."""
    for page in sorted((web / "simple").glob("*/index.v1_json")):
        doc = json.loads(page.read_bytes())
        for f in doc["files"]:
            if "://" in f["url"]:
                continue  # a metadata-only mirror links upstream
            path = web / f["url"].removeprefix("../../")
            assert path.is_file(), f"{page} links missing {path}"
            assert _sha256(path) == f["hashes"]["sha256"], f"{page} links wrong bytes {path}"
            cm = f.get("core-metadata")
            if isinstance(cm, dict):
                meta = Path(f"{path}.metadata")
                assert meta.is_file(), f"{page} advertises missing {meta}"
                assert _sha256(meta) == cm["sha256"], meta
    for page in sorted((web / "simple").glob("*/index.html")):
        text = page.read_text()
        assert "</html>" in text, f"partial page {page}"
        for href in _HREF.findall(text):
            url, _, fragment = html.unescape(href).partition("#")
            if "://" in url:
                continue
            path = page.parent / url
            assert path.is_file(), f"{page} links missing {path}"
            algorithm, _, digest = fragment.partition("=")
            if algorithm == "sha256":
                assert _sha256(path) == digest, f"{page} links wrong bytes {path}"
    for name in ("index.v1_json",):
        root_index = web / "simple" / name
        if root_index.exists():
            json.loads(root_index.read_bytes())
    for doc_path in _final_files(web / "json") if (web / "json").is_dir() else ():
        json.loads(doc_path.read_bytes())
    packages = web / "packages"
    for path in _final_files(packages):
        rel = path.relative_to(packages).parts
        if path.name.endswith(".metadata"):
            dist = path.name.removesuffix(".metadata")
            record = up.index.find_file(dist)
            # Only the upstream file at this very address says what its metadata must be.
            here = path.relative_to(web).with_name(dist).as_posix()
            if record is not None and up.index.file_info(record).path == here:
                expected = up.index.file_metadata(record)
                assert expected is not None
                assert path.read_bytes() == expected, f"wrong metadata bytes in {path}"
            continue
        assert len(rel) == 4, path
        address = "".join(rel[:3])
        assert _HEX64.fullmatch(address), path
        data = path.read_bytes()
        actual = {
            hashlib.blake2b(data, digest_size=32).hexdigest(),
            hashlib.sha256(data).hexdigest(),
        }
        assert address in actual, f"{path} holds bytes its address does not promise"


def _web_snapshot(web: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(web)): p.read_bytes()
        for p in web.rglob("*")
        if p.is_file() and p.relative_to(web).as_posix() != "last-modified"
    }


def _assert_same_tree(got: Path, want: Path) -> None:
    a, b = _web_snapshot(got), _web_snapshot(want)
    assert sorted(a) == sorted(b), (
        f"only in killed mirror: {sorted(set(a) - set(b))[:5]}, "
        f"only in clean mirror: {sorted(set(b) - set(a))[:5]}"
    )
    differ = [k for k in a if a[k] != b[k]]
    assert differ == [], f"differ: {differ[:5]}"
    parts = [str(p) for p in got.parent.rglob("*.part")]
    assert parts == [], parts


def _crash_loop(
    tmp_path: Path, *, kills: int, seed: int, projects: int, processes: str = "1"
) -> None:
    rng = random.Random(seed)
    with FakePyPI.start(projects=projects, seed=seed, file_size=150_000) as up:
        for sub in ("measure", "killed", "clean"):
            (tmp_path / sub).mkdir()
        # One uninterrupted run (thrown away) tells how long a run takes, for the kill range.
        measure = write_config(tmp_path / "measure", up.url, json="true")
        started = time.monotonic()
        first = run_cli(measure, "mirror")
        typical = time.monotonic() - started
        assert first.returncode == 0, first.stderr

        config = write_config(tmp_path / "killed", up.url, json="true", processes=processes)
        web = tmp_path / "killed" / "mirror" / "web"
        log = tmp_path / "killed" / "stderr.log"
        done = 0
        completed = 0
        while done < kills:
            proc = _spawn(config, log)
            started = time.monotonic()
            killed = _kill_after(proc, rng.uniform(0.0, typical))
            if killed:
                done += 1
            else:
                assert proc.returncode == 0, log.read_text()[-2000:]
                completed += 1
                # Later runs have less to do: aim the next kills within what a run now takes.
                typical = time.monotonic() - started
            if web.is_dir():
                assert_crash_consistent(web, up)
            if not killed or rng.random() < 0.25:
                # New upstream work (releases, removals, yanks) for the next runs to chew on.
                up.index.random_changes(6)
        assert completed < kills, "most runs ended before the kill; the kill range is wrong"

        final = run_cli(config, "mirror")
        assert final.returncode == 0, final.stderr

        clean_config = write_config(tmp_path / "clean", up.url, json="true")
        clean = run_cli(clean_config, "mirror")
        assert clean.returncode == 0, clean.stderr

        assert_mirror_equals_upstream(web, up.url)
        _assert_same_tree(web, tmp_path / "clean" / "mirror" / "web")


def test_kill_at_random_moments_then_finish_equals_a_clean_mirror(tmp_path: Path) -> None:
    _crash_loop(tmp_path, kills=30, seed=11, projects=30)


def test_kills_while_child_processes_sync_then_finish_equals_a_clean_mirror(
    tmp_path: Path,
) -> None:
    # The kill reaches the parent only: its sync children must go with it, and nothing they
    # were writing may be served.
    _crash_loop(tmp_path, kills=15, seed=12, projects=30, processes="2")


@pytest.mark.soak
@pytest.mark.skipif(os.environ.get("FULLMIRROR_SOAK") != "1", reason="set FULLMIRROR_SOAK=1")
def test_soak_hundreds_of_kills(tmp_path: Path) -> None:
    kills = int(os.environ.get("FULLMIRROR_SOAK_KILLS", "300"))
    _crash_loop(tmp_path, kills=kills, seed=int(time.time()), projects=60)


def test_killed_download_resumes_with_a_range_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 5_000_000
    with FakePyPI.start(projects=4, seed=5, file_size=size) as up:
        config = write_config(tmp_path, up.url)
        packages = tmp_path / "mirror" / "web" / "packages"
        log = tmp_path / "stderr.log"
        # Every file download sends half its body, then stalls: a kill then is mid-download.
        up.faults.update({"stall_rate": 1.0, "stall_seconds": 2.0, "scope": "file"})
        proc = _spawn(config, log)
        try:
            parts: dict[str, int] = {}
            deadline = time.monotonic() + 30
            while not parts and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
                parts = {
                    p.name.removeprefix(".").removesuffix(".part"): p.stat().st_size
                    for p in packages.rglob(".*.part")
                    if p.stat().st_size >= size // 4
                }
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert parts, f"no download was caught half-way; stderr: {log.read_text()[-2000:]}"
        # Sizes again after the kill: the child may have written more before it died.
        on_disk = {
            p.name.removeprefix(".").removesuffix(".part"): p.stat().st_size
            for p in packages.rglob(".*.part")
        }
        assert_crash_consistent(tmp_path / "mirror" / "web", up)

        up.faults.clear()
        seen: list[tuple[str, str | None]] = []
        real_send_file = filebody.send_file

        def recording(handler: fake_handler.Handler, path: str, kind: str, stalled: bool) -> None:
            seen.append((path.rsplit("/", 1)[-1], handler.headers.get("Range")))
            real_send_file(handler, path, kind, stalled)

        monkeypatch.setattr("fullmirror.fakepypi.handler.send_file", recording)
        second = run_cli(config, "mirror")
        assert second.returncode == 0, second.stderr
        for filename, offset in on_disk.items():
            if offset == 0:
                continue
            requests = [rng for name, rng in seen if name == filename]
            assert requests == [f"bytes={offset}-"], (filename, requests)
        assert list(packages.rglob("*.part")) == []
        assert_mirror_equals_upstream(tmp_path / "mirror" / "web", up.url)

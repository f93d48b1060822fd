"""Syncing in child processes (``[mirror] processes``): the same mirror as one process makes,
failures reported the same way, and no child outliving its run.

Every end-to-end test here runs the real CLI against the fake PyPI on 127.0.0.1 with
``processes = 2``, so the children really are spawned (auto would keep these small runs in
one process).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.utils import NormalizedName

from conftest import REPO, run_cli, write_config
from fullmirror.catalog import Pending
from fullmirror.config import parse_config
from fullmirror.errors import (
    ConfigError,
    FullmirrorError,
    HashMismatch,
    ProjectGone,
    ShardDied,
    StateError,
    StorageError,
    UnsafePath,
    UpstreamStatus,
)
from fullmirror.fakepypi import FakePyPI
from fullmirror.models import SizeSample
from fullmirror.processes import AUTO_MIN_PROJECTS, hashing_bound, shard_count
from fullmirror.shards import ShardPool, ShardSpec
from mirror_checks import assert_mirror_equals_upstream


def _snapshot(web: Path) -> dict[str, bytes]:
    return {
        p.relative_to(web).as_posix(): p.read_bytes()
        for p in web.rglob("*")
        if p.is_file() and p.name != "last-modified"
    }


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _spawn(config: Path) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "fullmirror", "-c", str(config), "mirror"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_children(proc: subprocess.Popen[str], count: int) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = _children(proc.pid)
        if len(children) >= count:
            return children
        assert proc.poll() is None, "the run ended before its children started"
        time.sleep(0.05)
    raise AssertionError("the sync children did not start")


def _stalled_run(
    tmp_path: Path, upstream: FakePyPI
) -> tuple[Path, subprocess.Popen[str], list[int]]:
    """A two-process run held in its downloads (every file stalls 6 s), with its children."""
    upstream.faults.stall_rate = 1.0
    upstream.faults.stall_seconds = 6
    upstream.faults.scope = {"file"}
    config = write_config(tmp_path, upstream.url, processes="2", timeout="30")
    proc = _spawn(config)
    children = _wait_for_children(proc, 2)
    time.sleep(1.0)  # into the stalled downloads
    return config, proc, children


# -- pure --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "pending", "cpus", "expected"),
    [
        (0, 0, 8, 1),
        (0, 1, 8, 1),
        (0, AUTO_MIN_PROJECTS - 1, 8, 1),
        (0, AUTO_MIN_PROJECTS, 2, 2),
        (0, 100_000, 2, 2),
        (0, 100_000, 64, 8),
        (0, 100_000, 1, 1),
        (0, 100_000, None, 1),
        (1, 100_000, 8, 1),
        (2, 5, 1, 2),
        (4, 3, 8, 3),
        (3, 1, 8, 1),
    ],
)
def test_shard_count(setting: int, pending: int, cpus: int | None, expected: int) -> None:
    assert shard_count(setting, pending, cpus) == expected


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (SizeSample(0, 0, 0), False),
        # The large corpus: ~3.3 files of ~8 MB per project.
        (SizeSample(64, 210, 1_700_000_000), True),
        # small-1k: ~5.5 files of a few KB per project (release files and .metadata).
        (SizeSample(64, 350, 1_000_000), False),
        # 1 MB files, one per project: hashing (1 ms) against 0.6 ms of Python work.
        (SizeSample(64, 64, 64_000_000), False),
        (SizeSample(64, 64, 400_000_000), True),
        # Records without sizes count as files of no bytes.
        (SizeSample(64, 640, 0), False),
    ],
)
def test_a_hash_pass_over_big_files_is_hashing_bound(sample: SizeSample, expected: bool) -> None:
    assert hashing_bound(sample) is expected


@pytest.mark.parametrize(
    "error",
    [
        StorageError("web/packages/ab", "No space left on device"),
        UnsafePath("../etc/passwd"),
        StateError("state.db", "not a database", "move it aside"),
        HashMismatch("http://127.0.0.1/x.whl", "sha256", "aa", "bb"),
        UpstreamStatus("http://127.0.0.1/simple/x/", 503),
        ProjectGone("http://127.0.0.1/simple/x/", "x"),
        ConfigError("mirror", "workers = 'x': bad", path="a.conf"),
        ShardDied(1234, -9),
    ],
)
def test_errors_cross_the_process_boundary_intact(error: FullmirrorError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.__dict__ == error.__dict__


def test_shard_died_names_the_signal_and_the_way_out() -> None:
    text = str(ShardDied(77, -9))
    assert "signal 9" in text and "processes = 1" in text and "retried next run" in text
    assert "exit code 3" in str(ShardDied(77, 3))


@pytest.mark.parametrize(
    ("value", "expected"), [("auto", 0), ("AUTO", 0), ("1", 1), ("2", 2), ("16", 16)]
)
def test_processes_setting(value: str, expected: int) -> None:
    text = f"[mirror]\ndirectory = /srv/m\nmaster = https://example.invalid\nprocesses = {value}\n"
    assert parse_config(text).processes == expected


@pytest.mark.parametrize("value", ["0", "17", "two", "-1", ""])
def test_processes_setting_refused(value: str) -> None:
    text = f"[mirror]\ndirectory = /srv/m\nmaster = https://example.invalid\nprocesses = {value}\n"
    with pytest.raises(ConfigError, match="must be auto or a whole number from 1 to 16"):
        parse_config(text)


def test_processes_default_is_auto() -> None:
    text = "[mirror]\ndirectory = /srv/m\nmaster = https://example.invalid\n"
    assert parse_config(text).processes == 0


# -- end to end ----------------------------------------------------------------------------------


def test_two_processes_make_the_mirror_one_process_makes(
    tmp_path: Path, upstream: FakePyPI
) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = write_config(tmp_path / "one", upstream.url, json="true", processes="1")
    two = write_config(
        tmp_path / "two",
        upstream.url,
        json="true",
        processes="2",
        diff_file=tmp_path / "two" / "diff.txt",
    )
    single = run_cli(one, "mirror")
    assert single.returncode == 0, single.stderr
    assert "syncing in" not in single.stderr
    split = run_cli(two, "mirror")
    assert split.returncode == 0, split.stderr
    assert "syncing in 2 processes" in split.stderr
    # The summary counts what the children did: same numbers as one process.
    assert single.stdout.split(" in ")[0] == split.stdout.split(" in ")[0]
    assert "0 files (" not in split.stdout

    web = tmp_path / "two" / "mirror" / "web"
    assert _snapshot(web) == _snapshot(tmp_path / "one" / "mirror" / "web")
    assert_mirror_equals_upstream(web, upstream.url)
    # diff-file lists what the children wrote as well as the parent's root pages.
    listed = set((tmp_path / "two" / "diff.txt").read_text().splitlines())
    packages = {str(p) for p in (web / "packages").rglob("*") if p.is_file()}
    assert packages and packages <= listed
    assert str(web / "simple" / "index.html") in listed
    assert not list((tmp_path / "two").rglob("*.part"))

    again = run_cli(two, "mirror")
    assert again.returncode == 0, again.stderr
    assert " 0 files (" in again.stdout or "0 projects synced" in again.stdout


def test_a_failing_project_in_a_child_is_reported_and_retried(
    tmp_path: Path, upstream: FakePyPI
) -> None:
    filename = sorted(upstream.index.filenames("demo-core"))[0]
    upstream.faults.corrupt_files = {filename}
    config = write_config(tmp_path, upstream.url, processes="2", retries="1")
    result = run_cli(config, "mirror")
    assert result.returncode == 1, result.stderr
    # The child's warning reaches the parent's log, and the run's last line names the project.
    line = next(ln for ln in result.stderr.splitlines() if "demo-core: failed" in ln)
    assert filename in line and "the index says" in line
    assert "demo-core" in result.stderr.strip().splitlines()[-1]
    web = tmp_path / "mirror" / "web"
    assert not (web / "simple" / "demo-core").exists()
    assert not any(p.name == filename for p in web.rglob("*"))
    status = int((tmp_path / "mirror" / "status").read_text())
    assert status < upstream.index.project_serial("demo-core")  # type: ignore[operator]

    upstream.faults.corrupt_files = set()
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    assert_mirror_equals_upstream(web, upstream.url)


def test_a_disk_error_in_a_child_stops_the_run_with_exit_5(
    tmp_path: Path, upstream: FakePyPI
) -> None:
    packages = tmp_path / "mirror" / "web" / "packages"
    packages.mkdir(parents=True)
    # A file where every first-level hash folder must go: no download can be placed.
    for n in range(256):
        (packages / f"{n:02x}").write_bytes(b"")
    config = write_config(tmp_path, upstream.url, processes="2")
    result = run_cli(config, "mirror")
    assert result.returncode == 5, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "cannot write" in last and "run again" in last
    assert not (tmp_path / "mirror" / "status").exists()

    for n in range(256):
        (packages / f"{n:02x}").unlink()
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    assert_mirror_equals_upstream(tmp_path / "mirror" / "web", upstream.url)


def test_a_killed_child_fails_the_run_at_once_and_the_next_run_finishes(
    tmp_path: Path, upstream: FakePyPI
) -> None:
    config, proc, children = _stalled_run(tmp_path, upstream)
    os.kill(children[0], signal.SIGKILL)
    started = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    # Well before the stalled downloads (6 s) or the timeout (30 s) could end it.
    assert time.monotonic() - started < 5, stderr
    assert proc.returncode == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert f"sync process {children[0]} ended unexpectedly (signal 9)" in last
    assert not any(_alive(pid) for pid in children), "a sync child outlived its run"

    upstream.faults.clear()
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    assert_mirror_equals_upstream(tmp_path / "mirror" / "web", upstream.url)
    assert not list((tmp_path / "mirror").rglob("*.part"))


def test_children_die_with_a_killed_parent_and_the_next_run_finishes(
    tmp_path: Path, upstream: FakePyPI
) -> None:
    config, proc, children = _stalled_run(tmp_path, upstream)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in children), "a sync child outlived its killed parent"

    upstream.faults.clear()
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    assert_mirror_equals_upstream(tmp_path / "mirror" / "web", upstream.url)


def test_a_child_lost_while_idle_still_fails_the_run(tmp_path: Path) -> None:
    # No project is in flight when the child goes, so no outcome is missing; its counts and
    # written files are, and the run must not end as if complete.
    text = (
        f"[mirror]\ndirectory = {tmp_path}\nmaster = http://127.0.0.1:9\n"
        "allow-non-https = true\nworkers = 2\n"
    )
    spec = ShardSpec(parse_config(text), False, logging.WARNING, os.getpid())
    pool = ShardPool(spec, 2)
    deadline = time.monotonic() + 60
    while len(children := _children(os.getpid())) < 2:
        assert time.monotonic() < deadline, "the sync children did not start"
        time.sleep(0.05)
    os.kill(children[0], signal.SIGKILL)
    time.sleep(2)  # the pool looks at its children every 0.5 s
    # Work handed out after the loss fails at once instead of waiting on a child that is gone.
    future = pool.submit(Pending(NormalizedName("late"), 1, 0, 0, None, None))
    assert isinstance(future.exception(timeout=1), ShardDied)
    with pytest.raises(ShardDied, match=f"sync process {children[0]} ended unexpectedly"):
        pool.close()
    assert not any(_alive(pid) for pid in children)

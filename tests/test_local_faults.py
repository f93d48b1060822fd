"""Local trouble: a full or read-only disk, a held lock, corrupt or foreign state files.

Each must end the run cleanly — one line saying what is wrong, the documented exit code, no
traceback — leave nothing corrupt behind, and the run after the problem is fixed must complete.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import filelock
import pytest

from conftest import run_cli, write_config
from fullmirror.fakepypi import FakePyPI
from mirror_checks import assert_mirror_equals_upstream, mirror_state, upstream_state
from test_crash import assert_crash_consistent

EXIT_LOCKED = 3
EXIT_STORAGE = 5
EXIT_STATE = 6


def _one_line_failure(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The run failed with ``code`` and said why in exactly one line, without a traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("fullmirror:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _mount_tmpfs(target: Path, size: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def _remount(target: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(target)], check=True)


@pytest.fixture
def tmpfs_mirror(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/mirror`` as a 2 MiB tmpfs, unmounted afterwards whatever happens."""
    target = tmp_path / "mirror"
    _mount_tmpfs(target, "2m")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.mark.parametrize("what", ["downloads", "pages"])
def test_disk_full_fails_cleanly_then_the_next_run_completes(
    tmp_path: Path, tmpfs_mirror: Path, what: str
) -> None:
    web = tmpfs_mirror / "web"
    if what == "downloads":
        # Every wheel is ~3 MB, more than the whole disk: the first one fails mid-download.
        up = FakePyPI.start(projects=6, seed=4, file_size=3_000_000)
        options: dict[str, object] = {}
    else:
        # Only pages are written (files stay upstream); there are too many of them to fit.
        up = FakePyPI.start(projects=400, seed=4)
        options = {"release_files": "false"}
    with up:
        config = write_config(tmp_path, up.url, **options)
        full = run_cli(config, "-q", "mirror")
        message = _one_line_failure(full, EXIT_STORAGE)
        assert "no space left" in message
        assert_crash_consistent(web, up)
        assert list(tmpfs_mirror.rglob("*.part")) == [], "a failed write left its temp file"

        _remount(tmpfs_mirror, "size=256m")
        again = run_cli(config, "-q", "mirror")
        assert again.returncode == 0, again.stderr
        if what == "downloads":
            assert_mirror_equals_upstream(web, up.url)
        else:
            assert mirror_state(web) == upstream_state(up.url)
        assert list(tmpfs_mirror.rglob("*.part")) == []


def test_read_only_mirror_fails_cleanly_naming_the_path(tmp_path: Path, tmpfs_mirror: Path) -> None:
    _remount(tmpfs_mirror, "size=64m")
    with FakePyPI.start(projects=10, seed=2) as up:
        config = write_config(tmp_path, up.url)
        assert run_cli(config, "-q", "mirror").returncode == 0
        up.index.add_release("demo-core", "7.0", kinds=("wheel", "sdist"))
        _remount(tmpfs_mirror, "ro")
        try:
            refused = run_cli(config, "-q", "mirror")
        finally:
            _remount(tmpfs_mirror, "rw")
        message = _one_line_failure(refused, EXIT_STORAGE)
        assert str(tmpfs_mirror) in message
        again = run_cli(config, "-q", "mirror")
        assert again.returncode == 0, again.stderr
        assert_mirror_equals_upstream(tmpfs_mirror / "web", up.url)


def test_a_second_run_is_refused_while_the_lock_is_held(tmp_path: Path, upstream: FakePyPI) -> None:
    config = write_config(tmp_path, upstream.url)
    lock_path = tmp_path / "mirror" / ".lock"
    lock_path.parent.mkdir()
    with filelock.FileLock(str(lock_path)):
        refused = run_cli(config, "-q", "mirror")
    message = _one_line_failure(refused, EXIT_LOCKED)
    assert str(lock_path) in message
    assert not (tmp_path / "mirror" / "web").exists(), "a refused run must change nothing"
    again = run_cli(config, "-q", "mirror")
    assert again.returncode == 0, again.stderr
    assert_mirror_equals_upstream(tmp_path / "mirror" / "web", upstream.url)


def _corrupt_status(mirror: Path) -> Path:
    (mirror / "status").write_text("this is not a serial\n")
    return mirror / "status"


def _corrupt_state_db(mirror: Path) -> Path:
    (mirror / "state.db").write_bytes(bytes(range(256)) * 64)
    return mirror / "state.db"


def _foreign_generation(mirror: Path) -> Path:
    (mirror / "generation").write_text("something-else\n")
    return mirror / "generation"


@pytest.mark.parametrize(
    ("damage", "advice"),
    [
        (_corrupt_status, "delete the file"),
        (_corrupt_state_db, "move it aside"),
        (_foreign_generation, "point `directory` elsewhere"),
    ],
)
def test_corrupt_or_foreign_state_file(
    tmp_path: Path, upstream: FakePyPI, damage: object, advice: str
) -> None:
    config = write_config(tmp_path, upstream.url)
    mirror = tmp_path / "mirror"
    assert run_cli(config, "-q", "mirror").returncode == 0
    upstream.index.add_release("demo-lib", "8.0", kinds=("wheel",))
    assert callable(damage)
    bad: Path = damage(mirror)

    refused = run_cli(config, "-q", "mirror")
    message = _one_line_failure(refused, EXIT_STATE)
    assert str(bad) in message and advice in message, message

    # Do what the message says.
    if advice == "point `directory` elsewhere":
        (tmp_path / "elsewhere").mkdir()
        config = write_config(tmp_path / "elsewhere", upstream.url)
        mirror = tmp_path / "elsewhere" / "mirror"
    elif advice == "move it aside":
        bad.rename(bad.with_name(bad.name + ".broken"))
    else:
        bad.unlink()
    again = run_cli(config, "-q", "mirror")
    assert again.returncode == 0, again.stderr
    assert_mirror_equals_upstream(mirror / "web", upstream.url)
    assert list(mirror.rglob("*.part")) == []

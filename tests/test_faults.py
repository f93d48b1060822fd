"""fullmirror against a faulty upstream: the real CLI against the fake PyPI on 127.0.0.1 with
its fault switches on. Each fault alone, then all of them at once: the mirror survives, never
keeps a wrong byte under a final name, never claims a serial its data has not reached, and
converges to exactly upstream's state once the faults pass (or within a few runs while they last).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from conftest import run_cli, write_config
from fullmirror.fakepypi import FakePyPI
from fullmirror.parse import parse_project_json
from mirror_checks import _key, assert_mirror_equals_upstream, upstream_state

#: Exit codes a run may end with while faults last: done, partial, upstream unusable.
SURVIVABLE = (0, 1, 4)
MAX_RUNS = 6


@pytest.fixture
def small() -> Iterator[FakePyPI]:
    """A smaller upstream than conftest's: fault tests pay for backoff sleeps."""
    with FakePyPI.start(projects=16, seed=11) as up:
        yield up


def _clean(up: FakePyPI) -> dict[str, object]:
    """Turn the faults off, returning what they were (restore with ``faults.update``)."""
    saved = up.faults.as_dict()
    up.faults.clear()
    return saved


def _status(tmp_path: Path) -> int:
    path = tmp_path / "mirror" / "status"
    return int(path.read_text()) if path.exists() else 0


def _address_matches(path: Path) -> bool:
    """A file's bytes hash to the 64-hex address its path encodes (blake2b-256 or sha256)."""
    parts = path.parts
    i = parts.index("packages")
    address = "".join(parts[i + 1 : i + 4])
    data = path.read_bytes()
    name = path.name.removesuffix(".metadata")
    if path.name.endswith(".metadata"):
        # A .metadata sibling has no address of its own: checked against the page instead.
        data = (path.parent / name).read_bytes() if (path.parent / name).exists() else b""
        if not data:
            return True
    digests = {
        hashlib.sha256(data).hexdigest(),
        hashlib.blake2b(data, digest_size=32).hexdigest(),
    }
    return address in digests


def assert_no_corrupt_file(web: Path) -> None:
    """Mid-convergence soundness: what a page links exists and is right, and every file
    under a final name holds the bytes its address promises. Verified files of a project that
    failed may wait, unlinked, for the next run; temp (``.part``) files may wait for a resume."""
    if not (web / "simple").exists():
        return
    for page in (web / "simple").glob("*/index.v1_json"):
        doc = json.loads(page.read_bytes())
        for f in doc["files"]:
            path = web / f["url"].removeprefix("../../")
            assert path.is_file(), f"{page} links missing {path}"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == f["hashes"]["sha256"], path
            cm = f.get("core-metadata")
            if isinstance(cm, dict):
                meta = Path(str(path) + ".metadata").read_bytes()
                assert hashlib.sha256(meta).hexdigest() == cm["sha256"], path
    for path in (web / "packages").rglob("*"):
        if path.is_file() and not path.name.endswith(".part"):
            assert _address_matches(path), f"corrupt file under a final name: {path}"


def assert_status_honest(tmp_path: Path, up: FakePyPI) -> None:
    """Every upstream project at or below the mirror's serial is on disk, equal to upstream."""
    status = _status(tmp_path)
    saved = _clean(up)
    try:
        want = upstream_state(up.url)
        serials = {canonicalize_name(k): v for k, v in up.index.serials().items()}
    finally:
        up.faults.update(saved)
    web = tmp_path / "mirror" / "web"
    for name, serial in serials.items():
        if serial > status:
            continue
        page_path = web / "simple" / name / "index.v1_json"
        assert page_path.exists(), f"status {status} passed {name} (serial {serial}): not on disk"
        page = parse_project_json(
            page_path.read_bytes(),
            project=name,
            page_url=f"http://mirror/simple/{name}/",
            header_serial=None,
        ).page
        got = (sorted(page.versions), _key(page.files))
        assert got == want[name], f"status {status} passed {name}, whose page differs"


def _check_run(result: subprocess.CompletedProcess[str], tmp_path: Path, up: FakePyPI) -> None:
    assert result.returncode in SURVIVABLE, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    web = tmp_path / "mirror" / "web"
    assert_no_corrupt_file(web)
    assert_status_honest(tmp_path, up)


def _converge(config: Path, tmp_path: Path, up: FakePyPI, runs: int = MAX_RUNS) -> list[int]:
    """Run until a clean exit (at most ``runs`` times), checking soundness after each run."""
    codes: list[int] = []
    for _ in range(runs):
        result = run_cli(config, "mirror")
        _check_run(result, tmp_path, up)
        codes.append(result.returncode)
        if result.returncode == 0:
            return codes
    raise AssertionError(f"no clean run in {runs} tries: exit codes {codes}")


def _assert_converged(tmp_path: Path, up: FakePyPI) -> None:
    """Exactly upstream's state, no stray or temp file, the serial at upstream's."""
    _clean(up)
    assert_mirror_equals_upstream(tmp_path / "mirror" / "web", up.url)
    assert _status(tmp_path) == up.index.last_serial


# -- each fault alone ----------------------------------------------------------------------------


def test_5xx_and_resets_are_retried_and_converge(tmp_path: Path, small: FakePyPI) -> None:
    small.faults.seed(1)
    small.faults.error_rate = 0.1
    small.faults.reset_rate = 0.1
    config = write_config(tmp_path, small.url, retries="3", workers="8")
    _converge(config, tmp_path, small)
    _assert_converged(tmp_path, small)


def test_retries_are_bounded_and_back_off(tmp_path: Path, small: FakePyPI) -> None:
    small.faults.broken_projects = {"demo-lib", "demo-core"}
    config = write_config(tmp_path, small.url, retries="2", workers="8")
    started = time.monotonic()
    result = run_cli(config, "mirror")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "HTTP 50" in result.stderr and "Traceback" not in result.stderr
    projects = len(small.index.project_names())
    # retries = 2: three requests for each broken project's page, never more; one for the rest.
    assert small.stats.snapshot().get("simple-project") == projects - 2 + 2 * 3
    assert "demo-lib: failed" in result.stderr and "demo-core: failed" in result.stderr
    # Two pauses of 0.5 s and 1 s, each with jitter down to half: at least 0.75 s.
    assert elapsed >= 0.75
    assert _status(tmp_path) == 0
    _clean(small)
    assert run_cli(config, "mirror").returncode == 0
    _assert_converged(tmp_path, small)


def test_stalls_time_out_and_converge(tmp_path: Path, small: FakePyPI) -> None:
    small.faults.seed(2)
    small.faults.stall_rate = 0.06
    small.faults.stall_seconds = 3
    small.faults.scope = {"root", "project", "file", "metadata"}
    config = write_config(tmp_path, small.url, timeout="1", retries="2", workers="8")
    started = time.monotonic()
    _converge(config, tmp_path, small)
    assert time.monotonic() - started < 90  # a guard against hangs, not a benchmark
    _assert_converged(tmp_path, small)


def test_truncated_and_corrupt_files_are_never_kept(tmp_path: Path, small: FakePyPI) -> None:
    small.faults.seed(3)
    small.faults.truncate_rate = 0.15
    small.faults.corrupt_rate = 0.1
    small.faults.scope = {"file", "metadata"}
    config = write_config(tmp_path, small.url, retries="2", workers="8")
    _converge(config, tmp_path, small)
    _assert_converged(tmp_path, small)


def test_always_corrupt_file_fails_its_project_until_fixed(tmp_path: Path, small: FakePyPI) -> None:
    filename = sorted(small.index.filenames("demo-core"))[0]
    small.faults.corrupt_files = {filename}
    config = write_config(tmp_path, small.url, retries="1")
    result = run_cli(config, "mirror")
    assert result.returncode == 1, result.stderr
    line = next(ln for ln in result.stderr.splitlines() if "demo-core: failed" in ln)
    assert filename in line and "the index says" in line
    mirror = tmp_path / "mirror"
    assert not any(p.name == filename for p in mirror.rglob("*")), "a wrong file was kept"
    assert not list(mirror.rglob("*.part"))
    assert not (mirror / "web/simple/demo-core").exists()
    _check_run(result, tmp_path, small)
    assert _status(tmp_path) < small.index.project_serial("demo-core")  # type: ignore[operator]

    small.faults.corrupt_files = set()
    assert run_cli(config, "mirror").returncode == 0
    _assert_converged(tmp_path, small)


def test_stale_page_holds_the_serial_back(tmp_path: Path, small: FakePyPI) -> None:
    config = write_config(tmp_path, small.url, retries="1")
    assert run_cli(config, "mirror").returncode == 0
    before = _status(tmp_path)
    small.index.add_release("demo-core", "7.0", kinds=("wheel",))
    small.index.add_release("demo-lib", "7.0", kinds=("wheel",))
    small.faults.stale_rate = 1.0
    small.faults.scope = {"project"}

    result = run_cli(config, "mirror")
    assert result.returncode == 1, result.stderr
    assert "stale page" in result.stderr and "demo-core" in result.stderr
    _check_run(result, tmp_path, small)
    changed = [small.index.project_serial(name) or 0 for name in ("demo-core", "demo-lib")]
    assert before <= _status(tmp_path) < min(changed)
    page = json.loads((tmp_path / "mirror/web/simple/demo-core/index.v1_json").read_bytes())
    assert "7.0" not in page["versions"]

    small.faults.stale_rate = 0.0
    assert run_cli(config, "mirror").returncode == 0
    _assert_converged(tmp_path, small)


def test_random_stale_pages_converge(tmp_path: Path, small: FakePyPI) -> None:
    small.faults.seed(4)
    small.faults.stale_rate = 0.3
    small.index.random_changes(20)
    config = write_config(tmp_path, small.url, retries="2", workers="8")
    _converge(config, tmp_path, small)
    _assert_converged(tmp_path, small)


def test_malformed_documents_are_retried(tmp_path: Path, small: FakePyPI) -> None:
    # Simple mode, so the root listing is among the malformed documents; the XML-RPC answers
    # are malformed in the mixed test below.
    small.faults.seed(5)
    small.faults.malformed_rate = 0.3
    config = write_config(tmp_path, small.url, retries="2", api_method="simple", workers="8")
    _converge(config, tmp_path, small)
    _assert_converged(tmp_path, small)


def test_xmlrpc_rate_limit_is_waited_out(tmp_path: Path, small: FakePyPI) -> None:
    small.faults.xmlrpc_ratelimit_rate = 1.0
    small.faults.ratelimit_seconds = 1
    # The limit lifts 1.5 s in: the first call is refused twice, waits 1 s each time, then passes.
    lift = threading.Timer(1.5, lambda: setattr(small.faults, "xmlrpc_ratelimit_rate", 0.0))
    config = write_config(tmp_path, small.url, retries="2")
    started = time.monotonic()
    lift.start()
    try:
        result = run_cli(config, "mirror")
    finally:
        lift.cancel()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 1.5
    first_calls = small.stats.snapshot().get("xmlrpc:changelog_last_serial", 0)
    assert first_calls >= 2
    _assert_converged(tmp_path, small)


def test_project_gone_midrun_is_removed_not_failed(tmp_path: Path, small: FakePyPI) -> None:
    config = write_config(tmp_path, small.url)
    assert run_cli(config, "mirror").returncode == 0
    web = tmp_path / "mirror" / "web"
    assert (web / "simple/demo-lib/index.v1_json").exists()
    small.index.add_release("demo-lib", "8.0", kinds=("wheel",))
    small.index.add_release("demo-core", "8.0", kinds=("wheel",))
    small.faults.gone_midrun = {"demo-lib"}

    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    assert "demo-lib: removed (gone upstream)" in result.stderr
    assert not (web / "simple/demo-lib").exists()
    assert not any("demo_lib" in p.name for p in (web / "packages").rglob("*"))
    root = json.loads((web / "simple/index.v1_json").read_bytes())
    assert "demo-lib" not in {canonicalize_name(p["name"]) for p in root["projects"]}
    versions = json.loads((web / "simple/demo-core/index.v1_json").read_bytes())["versions"]
    assert "8.0" in versions
    assert _status(tmp_path) == small.index.last_serial


# -- everything at once ---------------------------------------------------------------------------


def test_five_percent_of_every_fault_converges(tmp_path: Path, small: FakePyPI) -> None:
    upstream = small
    faults = upstream.faults
    faults.seed(2026)
    for name in (
        "error_rate",
        "reset_rate",
        "stall_rate",
        "truncate_rate",
        "corrupt_rate",
        "stale_rate",
        "malformed_rate",
        "xmlrpc_ratelimit_rate",
    ):
        setattr(faults, name, 0.05)
    faults.stall_seconds = 3
    faults.ratelimit_seconds = 1
    config = write_config(tmp_path, upstream.url, retries="2", timeout="1", workers="8")
    started = time.monotonic()
    _converge(config, tmp_path, upstream)
    # Upstream keeps changing under the faults: the mirror follows.
    upstream.index.random_changes(15)
    _converge(config, tmp_path, upstream)
    assert time.monotonic() - started < 90  # a guard against hangs, not a benchmark
    _assert_converged(tmp_path, upstream)

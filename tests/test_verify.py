"""fullmirror verify and delete, end to end through the real CLI against the fake PyPI."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import filelock
import pytest
from packaging.utils import NormalizedName

from conftest import REPO, run_cli, write_config
from fullmirror import inspection
from fullmirror.catalog import Catalog
from fullmirror.errors import InspectorDied, ShardDied, StateError
from fullmirror.fakepypi import FakePyPI
from fullmirror.inspection import (
    Expected,
    InspectOptions,
    Inspector,
    classify,
    expected_files,
)
from fullmirror.inspectors import Inspectors
from fullmirror.models import MirroredFile, MirroredPage
from fullmirror.rootpages import read_serial, write_root_pages
from fullmirror.storage import FileStat, Storage
from fullmirror.verify import batches
from mirror_checks import assert_tree_sound

SUMMARY = re.compile(
    r"verify: checked (\d+) files in (\d+) projects \((\d+) skipped.*?"
    r"(\d+) missing, (\d+) corrupt, (\d+) repaired"
)


def _mirror(tmp_path: Path, upstream: FakePyPI, **options: object) -> tuple[Path, Path]:
    config = write_config(tmp_path, upstream.url, **options)
    result = run_cli(config, "mirror")
    assert result.returncode == 0, result.stderr
    return config, tmp_path / "mirror" / "web"


def _files(web: Path) -> list[Path]:
    """Release files (not .metadata) the mirror holds, in a stable order."""
    return sorted(
        p for p in (web / "packages").rglob("*") if p.is_file() and p.suffix != ".metadata"
    )


def _rel(web: Path, path: Path) -> str:
    return "web/" + str(path.relative_to(web))


def _snapshot(web: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(web)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in web.rglob("*")
        if p.is_file()
    }


def _summary(stdout: str) -> tuple[int, ...]:
    match = SUMMARY.search(stdout)
    assert match is not None, stdout
    return tuple(int(g) for g in match.groups())


def test_clean_mirror_verifies(tmp_path: Path, upstream: FakePyPI) -> None:
    config, web = _mirror(tmp_path, upstream, json="true")
    # Pages with the same bytes are one file under two names (a hard link each).
    for name in ("demo-app", "demo-lib"):
        html = (web / "simple" / name / "index.html").stat()
        assert html.st_ino == (web / "simple" / name / "index.v1_html").stat().st_ino
        assert html.st_nlink == 2
        api = (web / "json" / name).stat()
        assert api.st_ino == (web / "pypi" / name / "json").stat().st_ino
    counted = set()
    for processes in ("1", "3"):
        config = write_config(tmp_path, upstream.url, processes=processes)
        for args in ((), ("--hash",)):
            result = run_cli(config, "verify", *args)
            assert result.returncode == 0, result.stdout + result.stderr
            files, projects, skipped, missing, corrupt, _ = _summary(result.stdout)
            assert files > 100 and projects == 24 and skipped == 0
            assert missing == corrupt == 0
            counted.add(files)
        assert ("verifying in 3 processes" in result.stderr) == (processes == "3")
    assert len(counted) == 1  # every file checked once, however the work was split
    # A later run that synced nothing moves ``status`` but leaves the root page: not damage.
    status = tmp_path / "mirror" / "status"
    status.write_text(str(int(status.read_text()) + 5))
    assert run_cli(config, "verify").returncode == 0


@pytest.mark.parametrize("damage", ["delete", "truncate", "flip"])
def test_damaged_file_found_and_repaired(tmp_path: Path, upstream: FakePyPI, damage: str) -> None:
    config, web = _mirror(tmp_path, upstream)
    victim = _files(web)[5]
    data = victim.read_bytes()
    if damage == "delete":
        victim.unlink()
    elif damage == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    else:
        victim.write_bytes(data[:10] + bytes([data[10] ^ 0xFF]) + data[11:])

    fast = run_cli(config, "verify")
    if damage == "flip":
        # Same size: only reading the bytes finds it.
        assert fast.returncode == 0, fast.stdout + fast.stderr
    else:
        assert fast.returncode == 1
        assert _rel(web, victim) in fast.stdout
    full = run_cli(config, "verify", "--hash")
    assert full.returncode == 1
    assert _rel(web, victim) in full.stdout
    assert ("missing" if damage == "delete" else "corrupt") + f": {_rel(web, victim)}" in (
        full.stdout
    )

    repair = run_cli(config, "verify", "--hash", "--repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert _summary(repair.stdout)[5] == 1
    assert victim.read_bytes() == data
    again = run_cli(config, "verify", "--hash")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_tree_sound(web)


def test_stray_and_part_files_listed_then_deleted(tmp_path: Path, upstream: FakePyPI) -> None:
    config, web = _mirror(tmp_path, upstream)
    stray = web / "packages" / "ab" / "cd" / "stray.whl"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"not referenced")
    sibling = _files(web)[0]
    part = sibling.with_name(f".{sibling.name}.part")
    part.write_bytes(b"half a download")

    listed = run_cli(config, "verify")
    assert listed.returncode == 1
    assert _rel(web, stray) in listed.stdout and _rel(web, part) in listed.stdout
    assert stray.exists() and part.exists()

    dry = run_cli(config, "verify", "--delete", "--dry-run")
    assert dry.returncode == 1
    assert f"would delete: {_rel(web, stray)}" in dry.stdout
    assert stray.exists() and part.exists()

    deleted = run_cli(config, "verify", "--delete")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert "2 unreferenced, 2 deleted" in deleted.stdout
    assert not stray.exists() and not part.exists() and sibling.exists()
    assert not (web / "packages" / "ab" / "cd").exists() or any(
        (web / "packages" / "ab" / "cd").iterdir()
    )
    assert_tree_sound(web)
    assert run_cli(config, "verify", "--hash").returncode == 0


@pytest.mark.parametrize("processes", ["1", "2"])
def test_dry_run_changes_nothing(tmp_path: Path, upstream: FakePyPI, processes: str) -> None:
    config, web = _mirror(tmp_path, upstream, processes=processes)
    files = _files(web)
    files[0].unlink()
    files[1].write_bytes(b"short")
    (web / "packages" / "stray").write_bytes(b"x")
    page = web / "simple" / "demo-lib" / "index.html"
    page.write_text(page.read_text().replace("Links for", "Links 4"))
    before = _snapshot(web)

    result = run_cli(config, "verify", "--hash", "--repair", "--delete", "--dry-run")
    assert result.returncode == 1
    assert f"would repair: {_rel(web, files[0])}" in result.stdout
    assert f"would repair: {_rel(web, files[1])}" in result.stdout
    assert "would rewrite: web/simple/demo-lib/index.html" in result.stdout
    assert "would delete: web/packages/stray" in result.stdout
    assert _snapshot(web) == before

    fixed = run_cli(config, "verify", "--hash", "--repair", "--delete")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert_tree_sound(web)
    assert "Links 4" not in page.read_text()


def test_damaged_pages_regenerated(tmp_path: Path, upstream: FakePyPI) -> None:
    config, web = _mirror(tmp_path, upstream)
    page = web / "simple" / "demo-app" / "index.html"
    original = page.read_bytes()
    page.write_bytes(original.replace(b"<a ", b"<a data-evil=1 ", 1))
    json_page = web / "simple" / "demo-app" / "index.v1_json"
    json_original = json_page.read_bytes()
    json_page.write_bytes(b"{}")
    root = web / "simple" / "index.html"
    root_original = root.read_bytes()
    root.write_bytes(b"")

    found = run_cli(config, "verify")
    assert found.returncode == 1
    for rel in ("demo-app/index.html", "demo-app/index.v1_json", "simple/index.html"):
        assert rel in found.stdout

    repaired = run_cli(config, "verify", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert page.read_bytes() == original
    assert json_page.read_bytes() == json_original
    assert root.read_bytes() == root_original
    assert run_cli(config, "verify", "--hash").returncode == 0
    assert_tree_sound(web)


def _verified_count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM verified").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("processes", ["1", "2"])
def test_killed_verify_resumes(tmp_path: Path, upstream: FakePyPI, processes: str) -> None:
    config, web = _mirror(tmp_path, upstream, verifiers="2", processes=processes)
    # The last project in name order loses a file; its repair download stalls, so the pass
    # is deterministically killed after every other project was verified.
    names = sorted(p.name for p in (web / "simple").iterdir() if p.is_dir())
    last = next(
        n
        for n in reversed(names)
        if json.loads((web / "simple" / n / "index.v1_json").read_bytes())["files"]
    )
    doc = json.loads((web / "simple" / last / "index.v1_json").read_bytes())
    victim = web / doc["files"][0]["url"].removeprefix("../../")
    good = victim.read_bytes()
    victim.unlink()
    upstream.faults.scope = {"file"}
    upstream.faults.stall_seconds = 60
    upstream.faults.stall_rate = 1.0

    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fullmirror", "-c", str(config), "verify", "--hash", "--repair"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    db = tmp_path / "mirror" / "state.db"
    try:
        deadline = time.monotonic() + 60
        while _verified_count(db) < len(names) - 1:
            assert proc.poll() is None, "verify ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    upstream.faults.stall_rate = 0.0
    resumed = run_cli(config, "verify", "--hash", "--repair")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    _, projects, skipped, missing, _, repaired = _summary(resumed.stdout)
    assert skipped == len(names) - 1 and projects == 1
    assert missing == repaired == 1
    assert victim.read_bytes() == good
    assert_tree_sound(web)

    # The pass completed: the next one checks everything again.
    full = run_cli(config, "verify", "--hash")
    assert full.returncode == 0, full.stdout + full.stderr
    assert _summary(full.stdout)[1:3] == (len(names), 0)


def test_killed_fast_pass_not_resumed_by_hash_pass(tmp_path: Path, upstream: FakePyPI) -> None:
    config, web = _mirror(tmp_path, upstream)
    db = tmp_path / "mirror" / "state.db"
    # What a fast pass killed midway leaves behind.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT OR REPLACE INTO meta VALUES('verify-pass', 'size')")
        conn.execute("INSERT INTO verified VALUES('demo-lib')")
    _files(web)[0].write_bytes(b"short")
    result = run_cli(config, "verify", "--hash")
    assert result.returncode == 1
    assert _summary(result.stdout)[1:3] == (24, 0)


# -- delete -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["xmlrpc", "simple"])
def test_delete_project_stays_deleted(tmp_path: Path, upstream: FakePyPI, method: str) -> None:
    config, web = _mirror(tmp_path, upstream, api_method=method)
    doc = json.loads((web / "simple" / "demo-lib" / "index.v1_json").read_bytes())
    files = [web / f["url"].removeprefix("../../") for f in doc["files"]]
    assert files and all(f.exists() for f in files)

    dry = run_cli(config, "delete", "--dry-run", "Demo_Lib")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 1 projects (demo-lib)" in dry.stdout
    assert (web / "simple" / "demo-lib").exists()

    result = run_cli(config, "delete", "Demo_Lib")
    assert result.returncode == 0, result.stderr
    assert not (web / "simple" / "demo-lib").exists()
    assert not any(f.exists() for f in files)
    root = json.loads((web / "simple" / "index.v1_json").read_bytes())
    assert "demo-lib" not in {p["name"].lower() for p in root["projects"]}
    assert 'href="demo-lib/"' not in (web / "simple" / "index.html").read_text()
    assert_tree_sound(web)
    assert run_cli(config, "verify", "--hash").returncode == 0

    again = run_cli(config, "mirror")
    assert again.returncode == 0, again.stderr
    assert not (web / "simple" / "demo-lib").exists()
    assert_tree_sound(web)

    # A change upstream after the deletion brings it back.
    upstream.index.add_release("demo-lib", "99.0", kinds=("wheel",))
    back = run_cli(config, "mirror")
    assert back.returncode == 0, back.stderr
    assert (web / "simple" / "demo-lib" / "index.v1_json").exists()
    assert_tree_sound(web)


def test_verify_and_delete_respect_the_lock(tmp_path: Path, upstream: FakePyPI) -> None:
    config, _ = _mirror(tmp_path, upstream)
    with filelock.FileLock(str(tmp_path / "mirror" / ".lock")):
        assert run_cli(config, "verify").returncode == 3
        assert run_cli(config, "delete", "demo-lib").returncode == 3
    assert (tmp_path / "mirror" / "web" / "simple" / "demo-lib").exists()


def test_delete_unknown_name(tmp_path: Path, upstream: FakePyPI) -> None:
    config, web = _mirror(tmp_path, upstream)
    result = run_cli(config, "delete", "no-such-project", "demo-app", "Demo.App")
    assert result.returncode == 1
    assert "no-such-project: not in this mirror" in result.stderr
    assert not (web / "simple" / "demo-app").exists()
    assert_tree_sound(web)


# -- pure decisions ---------------------------------------------------------------------------


def test_classify_and_unreferenced() -> None:
    name = NormalizedName("p")
    f = MirroredFile(
        "p-1.tar.gz", "packages/aa/bb/x/p-1.tar.gz", (("sha256", "ab"),), 3, None,
        metadata_hashes=(("sha256", "cd"),),
    )  # fmt: skip
    expected = expected_files(MirroredPage(name, "p", 1, (f,)))
    assert [e.location for e in expected] == [f.location, f.location + ".metadata"]
    e = expected[0]
    assert classify(e, None, None) == "missing"
    assert classify(e, FileStat(4, 0.0), None) == "corrupt"
    assert classify(e, FileStat(3, 0.0), None) == "ok"
    assert classify(e, FileStat(3, 0.0), "ab") == "ok"
    assert classify(e, FileStat(3, 0.0), "ff") == "corrupt"
    meta = Expected(name, "m", "packages/m", (), None, "metadata")
    assert classify(meta, FileStat(9, 0.0), "zz") == "ok"
    assert list(batches(iter("abcde"), 2)) == [["a", "b"], ["c", "d"], ["e"]]
    assert list(batches([], 2)) == []


def _page(storage: Storage, name: str, sizes: list[int]) -> MirroredPage:
    """A page of files of ``sizes`` written under ``storage``, sha256 recorded."""
    files = []
    for n, size in enumerate(sizes):
        data = bytes([n]) * size
        location = f"packages/aa/bb/{name}{n}/{name}-{n}.whl"
        part = storage.open_part("web/" + location, resume=False)
        part.file.write(data)
        part.commit()
        digest = hashlib.sha256(data).hexdigest()
        files.append(MirroredFile(f"{name}-{n}.whl", location, (("sha256", digest),), size, None))
    return MirroredPage(NormalizedName(name), name, 1, tuple(files))


def test_inspector_hashes_big_files_on_threads_and_keeps_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspection, "BIG_FILE", 100)
    storage = Storage(tmp_path)
    pages = [_page(storage, f"p{n}", [10, 300, 20, 500]) for n in range(6)]
    options = InspectOptions(full_hash=True, simple_format="ALL", digest_name="sha256", threads=2)
    inspector = Inspector(storage, options)
    for page in pages:
        for rel, data in inspection.page_documents(
            page, simple_format="ALL", digest_name="sha256"
        ).items():
            storage.write_if_changed(rel, data)
    hashed_on: dict[str, str] = {}
    check = inspector.check_file

    def spy(expected: Expected) -> tuple[inspection.Verdict, int]:
        hashed_on[expected.filename] = threading.current_thread().name
        return check(expected)

    monkeypatch.setattr(inspector, "check_file", spy)
    big = tmp_path / "web" / pages[2].files[3].location
    big.write_bytes(b"\x00" * 500)  # same size, other bytes
    (tmp_path / "web" / pages[4].files[0].location).unlink()
    (tmp_path / "web/simple/p5/index.html").write_bytes(b"<html>")
    sound = {NormalizedName("p1")}
    found = list(inspector.run([(p, p.name in sound) for p in pages], skip_sound=True))

    assert [f.name for f in found] == [p.name for p in pages]
    for finding, page in zip(found, pages, strict=True):
        assert finding.linked == tuple("web/" + f.location for f in page.files)
    assert found[1].skipped and found[1].files == 0
    checked = [f for f in found if not f.skipped]
    assert all(f.files == 4 and f.size == 830 - (10 if f.name == "p4" else 0) for f in checked)
    assert found[2].bad_files == (("web/" + pages[2].files[3].location, "corrupt"),)
    assert found[4].bad_files == (("web/" + pages[4].files[0].location, "missing"),)
    assert found[5].bad_pages == ("web/simple/p5/index.html",) and not found[5].bad_files
    assert [f.name for f in found if f.sound and not f.skipped] == ["p0", "p3"]
    # The 300- and 500-byte files went to the threads, the small ones stayed here.
    assert {hashed_on["p0-1.whl"], hashed_on["p0-3.whl"]} <= {"verify_0", "verify_1"}
    assert hashed_on["p0-0.whl"] == hashed_on["p0-2.whl"] == "MainThread"


def test_inspector_processes_share_the_catalog_and_fail_loudly(
    tmp_path: Path, upstream: FakePyPI
) -> None:
    _, web = _mirror(tmp_path, upstream)
    root = tmp_path / "mirror"
    options = InspectOptions(full_hash=True, simple_format="ALL", digest_name="sha256", threads=1)
    with Inspectors(root, 3, options, skip_sound=False) as pool:
        found = list(pool.findings())
    names = sorted(p.name for p in (web / "simple").iterdir() if p.is_dir())
    assert sorted(f.name for f in found) == names  # each project once, by one child
    assert all(f.sound for f in found)
    linked = [path for f in found for path in f.linked]
    assert len(linked) == len(set(linked)) == len(list((web / "packages").rglob("*.*")))

    with Inspectors(root, 2, options, skip_sound=False) as pool:
        os.kill(pool.pids[1], signal.SIGKILL)
        with pytest.raises(InspectorDied) as info:
            list(pool.findings())
    assert info.value.pid == pool.pids[1] and info.value.exitcode == -signal.SIGKILL
    assert "set [mirror] processes = 1" in str(info.value)

    # A child that cannot open the catalog reports why, as the parent would.
    (root / "state.db").rename(root / "state.db.moved")
    (root / "state.db").write_bytes(b"not a database" * 100)
    with Inspectors(root, 2, options, skip_sound=False) as pool, pytest.raises(StateError):
        list(pool.findings())


def test_inspect_reads_size_and_digest_through_one_descriptor(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    (tmp_path / "f").write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    stat, found = storage.inspect("f", "sha256", 3)
    assert stat is not None and stat.size == 3 and found == digest
    assert storage.inspect("f", "sha256", 4)[1] is None  # wrong size: not worth hashing
    assert storage.inspect("f", None, None)[1] is None
    assert storage.inspect("missing", "sha256", None) == (None, None)
    (tmp_path / "link").symlink_to(tmp_path / "f")
    assert storage.inspect("link", "sha256", None) == (None, None)
    os.mkfifo(tmp_path / "fifo")  # opening it for reading must not wait for a writer
    assert storage.inspect("fifo", "sha256", None) == (None, None)
    (tmp_path / "dir").mkdir()
    assert storage.inspect("dir", "sha256", None) == (None, None)
    # Small files are hashed from one read, big ones through file_digest: the same digests.
    for size in (0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 << 20):
        data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        (tmp_path / "sized").write_bytes(data)
        wanted = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "blake2b_256": hashlib.blake2b(data, digest_size=32).hexdigest(),
        }
        for algorithm, digest in wanted.items():
            assert storage.inspect("sized", algorithm, size)[1] == digest


def test_a_dead_verify_process_is_named_with_how_it_ended() -> None:
    killed = InspectorDied(41, -signal.SIGKILL)
    assert "verify process 41 ended unexpectedly (signal 9)" in str(killed)
    crashed = InspectorDied(42, None, "crashed: ValueError: boom")
    assert "(crashed: ValueError: boom)" in str(crashed)
    assert "set [mirror] processes = 1" in str(crashed)
    # It crosses from a child to the parent intact, attributes and all.
    again = pickle.loads(pickle.dumps(crashed))
    assert (type(again), str(again), again.pid, again.detail) == (
        InspectorDied,
        str(crashed),
        42,
        "crashed: ValueError: boom",
    )
    assert "(exit code 3)" in str(InspectorDied(43, 3))
    assert "(no exit status)" in str(ShardDied(44, None))


def test_checking_commands_start_without_the_http_client() -> None:
    # verify, delete and the inspector children are started often and hash for a second on
    # small mirrors: the HTTP client and the sync modules (a third of the start-up) stay out
    # until a repair or a sync needs them.
    code = (
        "import sys, fullmirror.cli, fullmirror.verify, fullmirror.delete, "
        "fullmirror.inspectors\n"
        "heavy = ('httpx', 'fullmirror.sync', 'fullmirror.upstream', 'fullmirror.shards', "
        "'logging.config')\n"
        "print(sorted(m for m in sys.modules if m in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def _sparse_mirror(root: Path, projects: int, size: int) -> None:
    """A mirror of ``projects`` projects of one file of ``size`` zero bytes each (sparse, so
    big files cost no disk), with its pages and root index, built without an upstream."""
    root.mkdir()
    storage = Storage(root)
    catalog = Catalog(root / "state.db")
    digest = hashlib.sha256(bytes(size)).hexdigest()
    for n in range(projects):
        name = f"big-{n:03}"
        location = f"packages/{n % 256:02x}/00/{name:0>60}/{name}-1.0-py3-none-any.whl"
        path = root / "web" / location
        path.parent.mkdir(parents=True)
        with path.open("wb") as f:
            f.truncate(size)
        files = (MirroredFile(path.name, location, (("sha256", digest),), size, None),)
        page = MirroredPage(NormalizedName(name), name, n + 1, files)
        catalog.put_project(page)
        for rel, data in inspection.page_documents(
            page, simple_format="ALL", digest_name="sha256"
        ).items():
            storage.write_if_changed(rel, data)
    write_root_pages(storage, catalog, read_serial(storage), "ALL")
    catalog.close()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one CPU: verify never starts children")
@pytest.mark.parametrize(("size", "processes"), [(8 << 20, 1), (1024, 2)])
def test_a_hash_pass_over_big_files_stays_in_one_process(
    tmp_path: Path, size: int, processes: int
) -> None:
    # Hashing releases the GIL, so over big files one process's threads keep the CPUs busy
    # and children would only add their start-up; small files need the children.
    _sparse_mirror(tmp_path / "mirror", 64, size)
    config = write_config(tmp_path, "http://127.0.0.1:9", verifiers="3")
    result = run_cli(config, "verify", "--hash")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _summary(result.stdout)[:5] == (64, 64, 0, 0, 0)
    assert f"verifying in {processes} process" in result.stderr
    assert ("verifying in 1 process, 5 threads: files average 8192 KiB" in result.stderr) == (
        processes == 1
    )
    if processes == 2:
        return
    # An explicit setting is obeyed whatever the files.
    config = write_config(tmp_path, "http://127.0.0.1:9", processes="2")
    result = run_cli(config, "verify", "--hash")
    assert result.returncode == 0 and "verifying in 2 processes" in result.stderr

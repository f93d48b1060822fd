"""storage.py: atomic writes, path safety, temp sweeping, the lock."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fullmirror import storage as storage_module
from fullmirror.errors import LockHeld, UnsafePath
from fullmirror.parts import Barrier, part_name
from fullmirror.storage import Storage


def test_write_if_changed_is_atomic_and_skips_identical(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    assert s.write_if_changed("web/simple/a/index.html", b"one")
    mtime = os.stat(tmp_path / "web/simple/a/index.html").st_mtime_ns
    assert not s.write_if_changed("web/simple/a/index.html", b"one")
    assert os.stat(tmp_path / "web/simple/a/index.html").st_mtime_ns == mtime
    assert s.write_if_changed("web/simple/a/index.html", b"two")
    assert (tmp_path / "web/simple/a/index.html").read_bytes() == b"two"
    assert sorted(os.listdir(tmp_path / "web/simple/a")) == ["index.html"]


@pytest.mark.parametrize(
    "rel", ["/etc/passwd", "../x", "web/../../x", "web/./x", "a\\b", "a\x00b", "", "web//x"]
)
def test_paths_that_leave_the_root_are_refused(tmp_path: Path, rel: str) -> None:
    with pytest.raises(UnsafePath):
        Storage(tmp_path).path(rel)


def test_planted_symlink_is_not_followed_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "web").mkdir(parents=True)
    (root / "web" / "packages").symlink_to(outside)
    s = Storage(root)
    with pytest.raises(UnsafePath):
        s.write_if_changed("web/packages/x.whl", b"evil")
    assert list(outside.iterdir()) == []


def test_part_is_removed_on_error_and_swept(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    with pytest.raises(RuntimeError), s.open_part("web/f.bin", resume=False) as part:
        part.file.write(b"half")
        raise RuntimeError("boom")
    assert not (tmp_path / "web/.f.bin.part").exists()
    (tmp_path / "web" / part_name("g.bin")).write_bytes(b"left by a kill")
    assert s.sweep_parts("web") == 1
    assert os.listdir(tmp_path / "web") == []


def test_remove_prunes_empty_parents(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    s.write_if_changed("web/packages/ab/cd/ef/x.whl", b"x")
    assert s.remove("web/packages/ab/cd/ef/x.whl", prune_up_to="web/packages")
    assert os.listdir(tmp_path / "web/packages") == []
    assert not s.remove("web/packages/ab/cd/ef/x.whl")


def test_second_lock_is_refused(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    with s.lock(), pytest.raises(LockHeld), Storage(tmp_path).lock():
        pass


def test_a_run_waits_for_helpers_of_an_earlier_run_then_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sync child of a killed run still holds the helper lock: the next run must not start
    # writing beside it, and says which lock stopped it.
    helper = Storage(tmp_path)
    helper.root.mkdir(parents=True, exist_ok=True)
    helper.hold_as_helper()
    monkeypatch.setattr(storage_module, "HELPER_WAIT", 0.3)
    started = time.monotonic()
    with pytest.raises(LockHeld, match=r"\.lock\.helpers"), Storage(tmp_path).lock():
        pass
    assert time.monotonic() - started >= 0.3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", ".lock.helpers"]
    assert helper._helper_fd is not None
    os.close(helper._helper_fd)  # the helper is gone: the next run goes ahead
    with Storage(tmp_path).lock():
        pass


def test_write_group_renames_only_after_one_shared_sync(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    seen: list[set[str]] = []

    def sync() -> None:
        # At the sync, the new bytes are in temp files and no target has been replaced yet.
        seen.append({p.name for p in tmp_path.rglob("*") if p.is_file()})

    storage._barrier = Barrier(sync)
    storage.write_group({"web/a": b"old"})
    changed = storage.write_group({"web/a": b"new", "web/b": b"bee", "web/c": None})
    assert changed == 2
    assert seen[-1] == {"a", ".a.part", ".b.part"}
    assert (tmp_path / "web/a").read_bytes() == b"new"
    assert (tmp_path / "web/b").read_bytes() == b"bee"
    assert not list(tmp_path.rglob("*.part"))
    assert storage.write_group({"web/a": b"new", "web/b": b"bee"}) == 0
    assert len(seen) == 2, "an unchanged group needs no sync"


def test_barrier_coalesces_concurrent_requests() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def sync() -> None:
        calls.append(1)
        gate.wait(5)

    barrier = Barrier(sync)
    threads = [threading.Thread(target=barrier.wait) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(5)
    # The first sync answers the first caller; every caller waiting behind it shares a second.
    assert 1 <= len(calls) <= 2


def test_streamed_write_compares_while_writing(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    pieces = [b"alpha-", b"beta-", b"gamma"]
    assert s.write_stream_if_changed(["a", "b"], iter(pieces))
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() == b"alpha-beta-gamma"
    before = (tmp_path / "a").stat().st_ino
    # Same bytes in other pieces: nothing is replaced.
    assert not s.write_stream_if_changed(["a", "b"], iter([b"alpha-beta-", b"gam", b"ma"]))
    assert (tmp_path / "a").stat().st_ino == before
    # Longer, shorter and different by one byte: each replaces; only the differing one changes.
    (tmp_path / "b").write_bytes(b"alpha-beta-gammaX")
    assert s.write_stream_if_changed(["a", "b"], iter(pieces))
    assert (tmp_path / "a").stat().st_ino == before
    assert (tmp_path / "b").read_bytes() == b"alpha-beta-gamma"
    assert s.write_stream_if_changed(["a"], iter([b"alpha-beta-gamm"]))
    assert s.write_stream_if_changed(["a"], iter([b"alpha-beta-gamn"]))
    assert (tmp_path / "a").read_bytes() == b"alpha-beta-gamn"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_streamed_write_that_fails_midway_leaves_the_old_file(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    (tmp_path / "page").write_bytes(b"old")

    def pieces() -> Iterator[bytes]:
        yield b"new "
        raise RuntimeError("the source failed")

    with pytest.raises(RuntimeError):
        s.write_stream_if_changed(["page"], pieces())
    assert (tmp_path / "page").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page"]


def test_several_documents_written_from_one_pass(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    (tmp_path / "json").write_bytes(b"[1,2]")
    rows = [(b"<a>", b"[1"), (b"</a>", b",2]")]
    # The second document is already on disk: only the first group's files are written.
    assert s.write_streams_if_changed([["h1", "h2"], ["json"]], iter(rows)) == ["h1", "h2"]
    assert (tmp_path / "h2").read_bytes() == b"<a></a>"
    assert s.write_streams_if_changed([["h1", "h2"], ["json"]], iter(rows)) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h1", "h2", "json"]


def test_walk_files_lists_like_os_walk_in_name_order(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    for rel in ["web/packages/b/2/f", "web/packages/b/1", "web/packages/a/x/y/z", "web/packages/c"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "web/packages/empty").mkdir()
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "secret").write_bytes(b"s")
    # A linked folder is not entered; linked and dangling files are listed.
    (tmp_path / "web/packages/b/linked").symlink_to(outside)
    (tmp_path / "web/packages/b/0-file-link").symlink_to(tmp_path / "web/packages/c")
    (tmp_path / "web/packages/b/dangling").symlink_to(tmp_path / "nowhere")
    walked = list(s.walk_files("web/packages"))
    expected = []
    for folder, dirs, files in os.walk(tmp_path / "web/packages"):
        dirs.sort()
        rel = os.path.relpath(folder, tmp_path)
        expected += [f"{rel}/{name}" for name in sorted(files)]
    assert walked == expected
    assert walked == [
        "web/packages/c",
        "web/packages/a/x/y/z",
        "web/packages/b/0-file-link",
        "web/packages/b/1",
        "web/packages/b/dangling",
        "web/packages/b/2/f",
    ]


@pytest.mark.parametrize("planted", ["symlink", "fifo", "folder"])
def test_a_temp_file_is_opened_afresh_over_whatever_was_planted(
    tmp_path: Path, planted: str
) -> None:
    root = tmp_path / "mirror"
    (root / "web").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep me")
    temp = root / "web" / part_name("f.bin")
    if planted == "symlink":
        temp.symlink_to(outside)
    elif planted == "fifo":
        os.mkfifo(temp)  # opening it for writing must not wait for a reader
    else:
        (temp / "inner").mkdir(parents=True)
    s = Storage(root)
    assert s.write_if_changed("web/f.bin", b"new")
    assert (root / "web/f.bin").read_bytes() == b"new"
    assert outside.read_bytes() == b"keep me"
    assert os.listdir(root / "web") == ["f.bin"]


def test_parts_count_their_bytes_resume_and_end_up_0644(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / part_name("f.bin")).write_bytes(b"left")
    old = os.umask(0o077)
    try:
        part = s.open_part("web/f.bin", resume=True)
    finally:
        os.umask(old)
    assert part.offset == 4
    part.file.write(b" by a kill")
    assert part.offset == 14
    part.truncate()
    assert part.offset == 0
    part.file.write(b"whole")
    part.commit()
    part.close(keep=False)
    target = tmp_path / "web/f.bin"
    assert target.read_bytes() == b"whole"
    assert (target.stat().st_mode & 0o777) == 0o644
    fresh = s.open_part("web/g.bin", resume=False)
    assert fresh.offset == 0
    fresh.close(keep=False)
    assert sorted(os.listdir(tmp_path / "web")) == ["f.bin"]


def test_read_bytes_reads_regular_files_only(tmp_path: Path) -> None:
    s = Storage(tmp_path)
    (tmp_path / "f").write_bytes(b"abc")
    assert s.read_bytes("f") == b"abc"
    assert s.read_bytes("f", size=3) == b"abc"
    assert s.read_bytes("f", size=4) is None
    assert s.read_bytes("missing") is None
    (tmp_path / "link").symlink_to(tmp_path / "f")
    assert s.read_bytes("link") is None
    os.mkfifo(tmp_path / "fifo")
    assert s.read_bytes("fifo") is None
    (tmp_path / "dir").mkdir()
    assert s.read_bytes("dir") is None
    big = os.urandom(3 << 20)
    (tmp_path / "big").write_bytes(big)
    assert s.read_bytes("big") == big


def test_one_bytes_object_in_a_group_is_written_once_and_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Storage(tmp_path)
    s.record_writes = True
    page, doc = b"<html>1</html>", b'{"v": 1}'
    group: dict[str, bytes | None] = {"simple/p/index.html": page, "simple/p/index.v1_html": page}
    group |= {"json/p": doc, "pypi/p/json": doc, "simple/p/gone": None}
    assert s.write_group(group) == 4
    html, twin = tmp_path / "simple/p/index.html", tmp_path / "simple/p/index.v1_html"
    assert html.read_bytes() == twin.read_bytes() == page
    assert html.stat().st_ino == twin.stat().st_ino and html.stat().st_nlink == 2
    assert (tmp_path / "json/p").stat().st_ino == (tmp_path / "pypi/p/json").stat().st_ino
    assert sorted(s.written) == sorted(str(tmp_path / rel) for rel in group if group[rel])
    assert not [p for p in tmp_path.rglob(".*") if p.name.endswith(".part")]

    # Equal bytes in two objects are two files; a rewrite never changes a linked file in place.
    s.write_if_changed("simple/p/index.html", b"<html>2</html>")
    assert twin.read_bytes() == page
    new = b"<html>3</html>"
    assert (
        s.write_group({"simple/p/index.html": new, "simple/p/index.v1_html": bytes(bytearray(new))})
        == 2
    )
    assert html.stat().st_ino != twin.stat().st_ino
    # One name already right: the other is written alone, not linked to the first.
    newer = b"<html>4</html>"
    s.write_if_changed("simple/p/index.html", newer)
    assert s.write_group({"simple/p/index.html": newer, "simple/p/index.v1_html": newer}) == 1
    assert html.stat().st_ino != twin.stat().st_ino and twin.read_bytes() == newer

    # A symlink planted at the twin's temp path is replaced, not followed.
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"keep")
    (tmp_path / "simple/p" / part_name("index.v1_html")).symlink_to(outside)
    last = b"<html>5</html>"
    assert s.write_group({"simple/p/index.html": last, "simple/p/index.v1_html": last}) == 2
    assert outside.read_bytes() == b"keep" and twin.read_bytes() == last
    assert html.stat().st_ino == twin.stat().st_ino

    # A filesystem without hard links gets a file of its own.
    def refuse(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    final = b"<html>6</html>"
    assert s.write_group({"simple/p/index.html": final, "simple/p/index.v1_html": final}) == 2
    assert html.read_bytes() == twin.read_bytes() == final
    assert html.stat().st_ino != twin.stat().st_ino

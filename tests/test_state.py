"""state.py and catalog.py: encodings and the state database."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.utils import NormalizedName

from fullmirror import catalog as catalog_module
from fullmirror.catalog import Catalog
from fullmirror.errors import StateError
from fullmirror.models import ListedProject, MirroredFile, MirroredPage, SizeSample
from fullmirror.state import (
    BadState,
    decode_page,
    encode_extra,
    encode_files,
    format_last_modified,
    parse_generation,
    parse_status,
)

N = NormalizedName
PAGE = MirroredPage(
    N("demo"),
    "Demo",
    7,
    (
        MirroredFile(
            "demo-1.0.tar.gz",
            "packages/aa/bb/cc/demo-1.0.tar.gz",
            (("sha256", "a" * 64),),
            10,
            "2020-01-01T00:00:00Z",
            ">=3.8",
            True,
            "bad <b>",
            None,
        ),
        MirroredFile(
            "demo-1.0-py3-none-any.whl",
            "packages/aa/bb/dd/demo-1.0-py3-none-any.whl",
            (("sha256", "b" * 64),),
            11,
            None,
            None,
            True,
            None,
            (("sha256", "c" * 64),),
        ),
    ),
    ("1.0", "0.9"),
    "archived",
    None,
)


def test_page_round_trip() -> None:
    assert decode_page(PAGE.name, "Demo", 7, encode_files(PAGE.files), encode_extra(PAGE)) == PAGE


@pytest.mark.parametrize(("text", "value"), [("42", 42), ("42\n", 42), (" 0 ", 0)])
def test_parse_status(text: str, value: int) -> None:
    assert parse_status(text) == value


@pytest.mark.parametrize("text", ["", "-1", "abc", "4 2", "\x00\x01"])
def test_parse_status_rejects(text: str) -> None:
    with pytest.raises(BadState):
        parse_status(text)


def test_generation() -> None:
    assert parse_generation("5") == ("bandersnatch", 5)
    assert parse_generation("fullmirror-1\n") == ("fullmirror", 1)
    with pytest.raises(BadState):
        parse_generation("something-else")


def test_last_modified_format() -> None:
    assert format_last_modified(0) == "19700101T00:00:00\n"


def test_catalog_projects_paths_and_pending(tmp_path: Path) -> None:
    c = Catalog(tmp_path / "state.db")
    c.add_pending({N("demo"): 7, N("other"): 3}, since=0, display_names={N("demo"): "Demo"})
    c.add_pending({N("demo"): 5}, since=4)
    pending = c.pending()
    assert pending[N("demo")].serial == 7 and pending[N("demo")].since == 0
    assert pending[N("demo")].display_name == "Demo"
    c.put_project(PAGE)
    assert c.get(N("demo")) == PAGE
    paths = [f"packages/x/{i}" for i in range(1200)]
    c.claim(N("other"), paths[::2])
    served = "packages/aa/bb/cc/demo-1.0.tar.gz"
    # Asked in chunks of 500; repeated and unowned paths simply do not answer twice.
    owners = c.owners([served, served, *paths])
    assert owners == {served: "demo", **dict.fromkeys(paths[::2], N("other"))}
    assert list(c.pending()) == [N("other")]
    c.fail(N("other"), "boom")
    assert c.pending()[N("other")].attempts == 1
    assert c.lowest_pending_since() == 0
    assert [p.name for p in c.iter_projects()] == ["demo"]
    c.drop_project(N("demo"))
    assert c.get(N("demo")) is None and c.owners([served]) == {}
    c.close()


def test_scratch_listing_compares_without_touching_the_database(tmp_path: Path) -> None:
    c = Catalog(tmp_path / "state.db")
    for name, serial in (("a", 10), ("b", 11), ("c", 4), ("old", 2)):
        c.put_project(MirroredPage(N(name), name, serial, ()))
    c.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    # Another connection holds the write lock, as a run in progress may: a plan goes on.
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    c = Catalog(tmp_path / "state.db")
    c.scratch_listing()
    sink = c.listing_sink()
    sink.restart()
    sink.add(_listed(("a", "A", 10), ("b", "B", 12), ("c", "C", 0), ("new", "New", 3)))
    changed = {p.name: p.serial for batch in c.listed_changes() for p in batch}
    assert changed == {N("b"): 12, N("c"): 0, N("new"): 3}
    assert c.unlisted() == [N("old")] and c.listing_max_serial() == 12
    c.close()
    other.execute("ROLLBACK")
    other.close()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # The stored listing was never written.
    c = Catalog(tmp_path / "state.db")
    assert c.listing_max_serial() == 0
    c.close()


def _sized(name: str, sizes: list[int | None]) -> MirroredPage:
    files = tuple(
        MirroredFile(f"{name}-{n}.whl", f"packages/aa/bb/{name}{n}/{name}-{n}.whl", (), size, None)
        for n, size in enumerate(sizes)
    )
    return MirroredPage(N(name), name, 1, files)


def test_sample_sizes_spreads_over_the_catalog_and_survives_gaps(tmp_path: Path) -> None:
    c = Catalog(tmp_path / "state.db")
    assert c.sample_sizes() == SizeSample(0, 0, 0)
    for n in range(100):
        c.put_project(_sized(f"p{n:03}", [1000 * (n + 1), None]))
    # A handful of rows: every one is read.
    assert c.sample_sizes(200) == SizeSample(100, 200, 1000 * sum(range(1, 101)))
    sample = c.sample_sizes(5)
    # Spread from the first row to the last: 1, 25, 50, 75 and 100 thousand bytes.
    assert sample == SizeSample(5, 10, 1000 * (1 + 25 + 50 + 75 + 100))
    for n in range(0, 100, 2):
        c.drop_project(N(f"p{n:03}"))
    gapped = c.sample_sizes(5)
    assert gapped.projects < 5 and gapped.files == 2 * gapped.projects
    with c._db:
        c._db.execute("UPDATE projects SET files = 'not json'")
    with pytest.raises(StateError):
        c.sample_sizes(5)
    c.close()


def test_foreign_state_file_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    with pytest.raises(StateError) as info:
        Catalog(tmp_path / "state.db").serials()
    assert "state.db" in str(info.value)


def _listed(*rows: tuple[str, str, int]) -> list[ListedProject]:
    return [ListedProject(N(name), display, serial) for name, display, serial in rows]


def test_listing_is_compared_in_the_database(tmp_path: Path) -> None:
    c = Catalog(tmp_path / "state.db")
    for name, serial in (("same", 5), ("older", 5), ("dropped", 2), ("unknown", 4)):
        c.put_project(MirroredPage(N(name), name, serial, ()))
    sink = c.listing_sink()
    sink.restart()
    sink.add(_listed(("same", "Same", 5), ("older", "older", 9), ("fresh", "Fresh", 3)))
    # Spellings that normalize alike: the highest serial wins, with the name sent beside it.
    sink.add(_listed(("fresh", "FRESH", 8), ("fresh", "fresh", 1), ("unknown", "unknown", 0)))
    changes = [p for batch in c.listed_changes() for p in batch]
    assert changes == _listed(
        ("fresh", "FRESH", 8), ("older", "older", 9), ("unknown", "unknown", 0)
    )
    assert c.unlisted() == [N("dropped")]
    assert c.listing_max_serial() == 9
    # A listing fetched again starts from nothing.
    sink.restart()
    sink.add(_listed(("same", "Same", 5)))
    assert c.unlisted() == [N("dropped"), N("older"), N("unknown")]
    c.clear_listing()
    assert c.listing_max_serial() == 0
    c.close()


def test_long_walks_go_in_batches_and_skip_rows_settled_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_module, "BATCH", 3)
    c = Catalog(tmp_path / "state.db")
    names = [N(f"p{i:02d}") for i in range(10)]
    c.add_pending(dict.fromkeys(names, 1), since=0)
    seen = []
    for item in c.iter_pending():
        seen.append(item.name)
        # Work finishing while the walk goes on: a later row settles before it is reached.
        if item.name == N("p01"):
            c.settle([N("p04")])
    assert seen == [n for n in names if n != N("p04")]
    assert c.pending_count() == 9
    assert [p.name for p in c.pending_for([N("p02"), N("p04"), N("nope")])] == [N("p02")]
    for _ in range(3):
        c.fail(N("p03"), "boom")
    c.fail(N("p05"), "once")
    assert [(p.name, p.attempts) for p in c.failing(3)] == [(N("p03"), 3)]
    for name in names:
        c.put_project(MirroredPage(name, name, 1, ()))
    assert [p.name for p in c.iter_projects()] == names
    monkeypatch.setattr(catalog_module, "PAGE_BATCH", 4)
    c.put_project(PAGE)
    c.mark_verified([N("p03"), N("demo")])
    walked = list(c.iter_pages())
    assert [page for page, _ in walked] == [c.get(n) for n in [N("demo"), *names]]
    assert [page.name for page, sound in walked if sound] == [N("demo"), N("p03")]
    assert c.verified_count() == 2
    sink = c.listing_sink()
    for name in names:
        sink.add(_listed((name, name, 2)))
    assert [len(b) for b in c.listed_changes()] == [3, 3, 3, 1]
    c.close()


def _plans_of(c: Catalog, walk: Callable[[], object]) -> list[str]:
    """The query plan steps that read ``projects`` in the statements ``walk`` runs."""
    statements: list[str] = []
    c._db.set_trace_callback(statements.append)
    try:
        walk()
    finally:
        c._db.set_trace_callback(None)
    steps = []
    for sql in statements:
        if sql.startswith("SELECT"):
            plan = c._db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
            steps += [row[3] for row in plan if " projects " in f" {row[3]} "]
    return steps


def test_walks_over_every_project_read_only_the_covering_index(tmp_path: Path) -> None:
    # At PyPI's size the table's rows (file records and all) are over a gigabyte, the
    # covering index about 90 MB: both the root index and the listing comparison must read
    # name and serial from the index alone.
    c = Catalog(tmp_path / "state.db")
    for name, serial in (("a", 1), ("b", 2)):
        c.put_project(MirroredPage(N(name), name, serial, ()))
    sink = c.listing_sink()
    sink.restart()
    sink.add(_listed(("a", "a", 1), ("b", "b", 3), ("c", "c", 1)))
    for walk in (lambda: list(c.project_batches()), lambda: list(c.listed_changes())):
        steps = _plans_of(c, walk)
        assert steps, "no statement read projects"
        assert all("COVERING INDEX projects_by_name" in step for step in steps), steps
    c.close()


def test_unreferenced_paths_are_picked_out_in_the_database(tmp_path: Path) -> None:
    c = Catalog(tmp_path / "state.db")
    c.reference(["web/packages/a", "web/packages/b"])
    c.probe(["web/packages/z", "web/packages/b"])
    # Probed and referenced in any order: only the end result counts.
    c.reference(["web/packages/b", "web/packages/c"])
    c.probe(["web/packages/.a.part", "web/packages/a", "web/packages/c"])
    assert c.unreferenced() == ["web/packages/.a.part", "web/packages/z"]
    # Another connection (a verify child, a sync) sees none of it.
    other = Catalog(tmp_path / "state.db")
    assert other.unreferenced() == []
    other.close()
    c.forget_references()
    assert c.unreferenced() == []
    c.probe(["web/packages/a"])
    assert c.unreferenced() == ["web/packages/a"]
    c.close()


def test_pages_split_into_disjoint_shares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module, "PAGE_BATCH", 3)
    c = Catalog(tmp_path / "state.db")
    names = [N(f"p{i:02d}") for i in range(20)]
    for name in reversed(names):
        c.put_project(MirroredPage(name, name, 1, ()))
    c.mark_verified([N("p07")])
    everything = [(page.name, sound) for page, sound in c.iter_pages()]
    assert everything == [(n, n == "p07") for n in names]
    for parts in (2, 3, 7):
        shares = [[(p.name, s) for p, s in c.iter_pages((k, parts))] for k in range(parts)]
        assert all(share == sorted(share) for share in shares)  # each in name order
        assert all(shares), shares
        assert sorted(x for share in shares for x in share) == everything
    c.close()
